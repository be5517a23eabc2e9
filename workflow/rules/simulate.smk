# Simulated cohorts: patients and planted truth, images in shards, RNA-seq in GDC format.


rule simulate_patients:
    output:
        patients="results/{cohort}/simulated/patients.tsv",
        latent="results/{cohort}/truth/latent.tsv",
        truth="results/{cohort}/truth/truth.json",
    log:
        "logs/{cohort}/simulate_patients.log",
    benchmark:
        "results/benchmarks/simulate_patients/{cohort}/simulate_patients.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cohort=lambda wildcards: simulation_spec(wildcards.cohort),
        seed=config["seed"],
    script:
        "../scripts/simulate_patients.py"


rule render_images:
    input:
        patients="results/{cohort}/simulated/patients.tsv",
        latent="results/{cohort}/truth/latent.tsv",
    output:
        images=directory("results/{cohort}/images/shard{shard}"),
        lesions="results/{cohort}/truth/lesions/shard{shard}.tsv",
    log:
        "logs/{cohort}/render_images_shard{shard}.log",
    benchmark:
        "results/benchmarks/render_images/{cohort}_shard{shard}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        cohort=lambda wildcards: simulation_spec(wildcards.cohort),
        seed=config["seed"],
    script:
        "../scripts/render_images.py"


rule simulate_rnaseq:
    input:
        latent="results/{cohort}/truth/latent.tsv",
        gmt=config["gene_sets"],
        tpm=BASE / "resources/tcga_lihc/linnorm_LIHC_tpm_10pairs.csv.gz",
    output:
        files=directory("results/{cohort}/rnaseq/files"),
        sample_sheet="results/{cohort}/rnaseq/gdc_sample_sheet.tsv",
        genes="results/{cohort}/truth/genes.tsv",
        planted="results/{cohort}/truth/planted_genes.tsv",
        samples="results/{cohort}/truth/rnaseq_samples.tsv",
    log:
        "logs/{cohort}/simulate_rnaseq.log",
    benchmark:
        "results/benchmarks/simulate_rnaseq/{cohort}.tsv"
    wildcard_constraints:
        cohort=SIMULATED_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        cohort=lambda wildcards: simulation_spec(wildcards.cohort),
        seed=config["seed"],
    script:
        "../scripts/simulate_rnaseq.py"


checkpoint gather_sheet:
    input:
        patients="results/{cohort}/simulated/patients.tsv",
        shards=shard_dirs,
        lesions=lesion_tables,
        schema=BASE / "workflow/schemas/sheet.schema.yaml",
    output:
        sheet="results/{cohort}/sheet.tsv",
        lesions="results/{cohort}/truth/lesions.tsv",
    log:
        "logs/{cohort}/gather_sheet.log",
    benchmark:
        "results/benchmarks/gather_sheet/{cohort}/gather_sheet.tsv"
    wildcard_constraints:
        cohort=SIMULATED_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cohort=lambda wildcards: simulation_spec(wildcards.cohort),
    script:
        "../scripts/gather_sheet.py"
