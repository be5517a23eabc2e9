# Image preparation (shared by radiomics and deep learning), one job per batch of patients
# (imaging.batch_size; issue 30): a patient's work is under a second, a job's start-up is not.
# Each batch job prepares its patients in a process pool into prepared/batch_<k>/<patient>/ and,
# for a cohort with reference masks, extracts their radiomics in the same job into
# radiomics/patients/batch_<k>/ (radiomics.smk gathers them). A liver-only cohort's radiomics
# wait for the segmentation model's tumour (segment.smk, radiomics_batch). Its QC figure is drawn
# by figures.smk.


rule prepare_radiomics_batch:
    input:
        sheet="results/{cohort}/sheet.tsv",
        images=batch_images,
        params=radiomics_params,
    output:
        prepared=directory("results/{cohort}/prepared/batch_{batch}"),
        radiomics=directory("results/{cohort}/radiomics/patients/batch_{batch}"),
    log:
        "logs/{cohort}/prepare_radiomics_batch/batch_{batch}.log",
    benchmark:
        "results/benchmarks/prepare_radiomics_batch/{cohort}/batch_{batch}.tsv"
    wildcard_constraints:
        cohort=REFERENCE_PATTERN,
        batch=r"\d+",
    # Every later stage waits on the batches: before the deep and segmentation jobs (issue 30).
    priority: 20
    conda:
        ENV
    threads: config["imaging"]["batch_threads"]
    resources:
        mem_mb=batch_mem_mb,
        runtime=batch_runtime(2),
    params:
        patients=batch_patients,
        imaging=config["imaging"],
        modality=lambda wildcards: modality(wildcards.cohort),
        masks=lambda wildcards: cohort_masks(wildcards.cohort),
        radiomics=radiomics_section,
        spacing_mm=config["imaging"]["spacing_mm"],
        on_error=config["imaging"]["on_error"],
    script:
        "../scripts/prepare_radiomics_batch.py"


# A liver-only cohort: preparation alone; radiomics follow the predicted tumour (segment.smk).
rule prepare_batch:
    input:
        sheet="results/{cohort}/sheet.tsv",
        images=batch_images,
    output:
        directory("results/{cohort}/prepared/batch_{batch}"),
    log:
        "logs/{cohort}/prepare_batch/batch_{batch}.log",
    benchmark:
        "results/benchmarks/prepare_batch/{cohort}/batch_{batch}.tsv"
    wildcard_constraints:
        cohort=LIVER_ONLY_PATTERN,
        batch=r"\d+",
    # As prepare_radiomics_batch.
    priority: 20
    conda:
        ENV
    threads: config["imaging"]["batch_threads"]
    resources:
        mem_mb=batch_mem_mb,
        runtime=batch_runtime(1),
    params:
        patients=batch_patients,
        imaging=config["imaging"],
        modality=lambda wildcards: modality(wildcards.cohort),
        masks=lambda wildcards: cohort_masks(wildcards.cohort),
    script:
        "../scripts/prepare_batch.py"
