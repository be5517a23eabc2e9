# Imported cohorts (issue 7): a bring-your-own sheet through a column map, IDC imaging (DICOM
# and DICOM SEG -> NIfTI), GDC RNA-seq and clinical data. Downloads go to download.data_dir;
# the manifest is selected offline from the shipped IDC index, so a dry run needs no network.
# No rule owns a folder of download.data_dir: Snakemake deletes a failed job's outputs, so a
# download rule's output is the table of the files it verified (and, for the GDC, links to
# them); verified files and partial ones survive a failure and the rerun fetches only the rest.


include: "download_common.smk"


rule idc_manifest:
    input:
        index=lambda wildcards: resolve(IMPORTED[wildcards.cohort]["idc"]["index"]),
    output:
        manifest="results/{cohort}/download/idc_manifest.tsv",
        exclusions="results/{cohort}/download/idc_exclusions.tsv",
    log:
        "logs/{cohort}/idc_manifest.log",
    benchmark:
        "results/benchmarks/idc_manifest/{cohort}/idc_manifest.tsv"
    wildcard_constraints:
        cohort=IDC_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        selection=lambda wildcards: IMPORTED[wildcards.cohort]["idc"],
    script:
        "../scripts/idc_manifest.py"


rule download_idc_patient:
    input:
        manifest="results/{cohort}/download/idc_manifest.tsv",
    output:
        "results/{cohort}/download/idc/{patient}.tsv",
    log:
        "logs/{cohort}/download_idc/{patient}.log",
    benchmark:
        "results/benchmarks/download_idc_patient/{cohort}/{patient}.tsv"
    wildcard_constraints:
        cohort=IDC_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=120,
    params:
        base_url=DOWNLOAD["idc_base_url"],
        policy=POLICY,
        folder=lambda wildcards: f"{DATA_DIR}/{wildcards.cohort}/idc/{wildcards.patient}",
    script:
        "../scripts/download_idc_patient.py"


rule dicom_to_nifti:
    input:
        verified="results/{cohort}/download/idc/{patient}.tsv",
        manifest="results/{cohort}/download/idc_manifest.tsv",
    output:
        directory("results/{cohort}/nifti/{patient}"),
    log:
        "logs/{cohort}/dicom_to_nifti/{patient}.log",
    benchmark:
        "results/benchmarks/dicom_to_nifti/{cohort}/{patient}.tsv"
    wildcard_constraints:
        cohort=IDC_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        labels=lambda wildcards: IMPORTED[wildcards.cohort]["idc"]["segment_labels"],
        dicom=lambda wildcards: f"{DATA_DIR}/{wildcards.cohort}/idc/{wildcards.patient}",
    script:
        "../scripts/dicom_to_nifti.py"


rule download_gdc_rnaseq:
    output:
        files=directory("results/{cohort}/rnaseq/files"),
        sample_sheet="results/{cohort}/rnaseq/gdc_sample_sheet.tsv",
        verified="results/{cohort}/rnaseq/gdc_files.tsv",
    log:
        "logs/{cohort}/download_gdc_rnaseq.log",
    benchmark:
        "results/benchmarks/download_gdc_rnaseq/{cohort}.tsv"
    wildcard_constraints:
        cohort=GDC_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        base_url=DOWNLOAD["gdc_base_url"],
        project=lambda wildcards: IMPORTED[wildcards.cohort]["gdc"]["project"],
        policy=POLICY,
        folder=lambda wildcards: f"{DATA_DIR}/{wildcards.cohort}/gdc",
    script:
        "../scripts/download_gdc_rnaseq.py"


rule download_gdc_clinical:
    output:
        "results/{cohort}/download/gdc_clinical.tsv",
    log:
        "logs/{cohort}/download_gdc_clinical.log",
    benchmark:
        "results/benchmarks/download_gdc_clinical/{cohort}/download_gdc_clinical.tsv"
    wildcard_constraints:
        cohort=GDC_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        base_url=DOWNLOAD["gdc_base_url"],
        project=lambda wildcards: IMPORTED[wildcards.cohort]["gdc"]["project"],
        policy=POLICY,
    script:
        "../scripts/download_gdc_clinical.py"


checkpoint import_sheet:
    input:
        unpack(import_inputs),
    output:
        sheet="results/{cohort}/sheet.tsv",
        exclusions="results/{cohort}/sheet_exclusions.tsv",
    log:
        "logs/{cohort}/import_sheet.log",
    benchmark:
        "results/benchmarks/import_sheet/{cohort}/import_sheet.tsv"
    wildcard_constraints:
        cohort=IMPORTED_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cohort=lambda wildcards: IMPORTED[wildcards.cohort],
        seed=config["seed"],
    script:
        "../scripts/import_sheet.py"
