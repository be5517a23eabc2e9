# Image preparation per patient (shared by radiomics and deep learning) and its QC.


rule prepare_patient:
    input:
        sheet="results/{cohort}/sheet.tsv",
        images=patient_shard,
    output:
        directory("results/{cohort}/prepared/{patient}"),
    log:
        "logs/{cohort}/prepare_patient/{patient}.log",
    benchmark:
        "results/benchmarks/prepare_patient/{cohort}/{patient}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        imaging=config["imaging"],
        modality=lambda wildcards: modality(wildcards.cohort),
        masks=lambda wildcards: cohort_masks(wildcards.cohort),
    script:
        "../scripts/prepare_patient.py"


rule preprocessing_qc_figure:
    input:
        sheet="results/{cohort}/sheet.tsv",
        prepared=per_patient("results/{cohort}/{prepared}/{patient}"),
    output:
        png=report(
            "results/{cohort}/qc/preprocessing_qc.png",
            caption="../report/preprocessing_qc.rst",
            category="Cohorts",
            subcategory="{cohort}",
            labels={"cohort": "{cohort}", "figure": "preprocessing QC"},
        ),
        pdf="results/{cohort}/qc/preprocessing_qc.pdf",
    log:
        "logs/{cohort}/preprocessing_qc_figure.log",
    benchmark:
        "results/benchmarks/preprocessing_qc_figure/{cohort}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        per_centre=config["qc"]["patients_per_centre"],
        modality=lambda wildcards: modality(wildcards.cohort),
    script:
        "../scripts/preprocessing_qc_figure.py"
