# Image preparation per patient (shared by radiomics and deep learning); its QC figure is
# drawn by figures.smk.


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
