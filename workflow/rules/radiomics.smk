# PyRadiomics per patient (one job per batch of patients, imaging.batch_size), gathered into a
# cohort table; robustness to the contour (ICC). Each patient's exclusion record (carried over
# from preparation, or the extraction's own with imaging.on_error: exclude) is gathered into
# results/<cohort>/exclusions.tsv.
# The ICC figure is drawn by figures.smk.


# A liver-only cohort's radiomics, on its patients prepared with the predicted tumour (the
# other cohorts' come with their preparation: imaging.smk, prepare_radiomics_batch).
rule radiomics_batch:
    input:
        prepared=prepared_batch,
        params=radiomics_params,
    output:
        directory("results/{cohort}/radiomics/patients/batch_{batch}"),
    log:
        "logs/{cohort}/radiomics_batch/batch_{batch}.log",
    benchmark:
        "results/benchmarks/radiomics_batch/{cohort}/batch_{batch}.tsv"
    wildcard_constraints:
        cohort=LIVER_ONLY_PATTERN,
        batch=r"\d+",
    conda:
        ENV
    threads: config["imaging"]["batch_threads"]
    resources:
        mem_mb=batch_mem_mb,
        runtime=batch_runtime(2),
    params:
        patients=batch_patients,
        radiomics=radiomics_section,
        spacing_mm=config["imaging"]["spacing_mm"],
        on_error=config["imaging"]["on_error"],
    script:
        "../scripts/radiomics_batch.py"


# The robustness patients in batches of imaging.batch_size, in their order (sheet order of the
# training patients not excluded): known once the checkpoint gather_radiomics has run.
rule perturbed_radiomics_batch:
    input:
        unpack(perturbed_batch_inputs),
        params=radiomics_params,
    output:
        directory("results/{cohort}/radiomics/perturbed/batch_{batch}"),
    log:
        "logs/{cohort}/perturbed_radiomics_batch/batch_{batch}.log",
    benchmark:
        "results/benchmarks/perturbed_radiomics_batch/{cohort}/batch_{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
    conda:
        ENV
    threads: config["imaging"]["batch_threads"]
    resources:
        mem_mb=batch_mem_mb,
        runtime=batch_runtime(3),
    params:
        # A parameter, not exclusions.tsv as an input: gather_radiomics rewrites that table
        # whenever any batch reruns, which would rerun every perturbed batch.
        patients=perturbed_batch_patients,
        radiomics=radiomics_section,
        spacing_mm=config["imaging"]["spacing_mm"],
        seed=config["seed"],
        on_error=config["imaging"]["on_error"],
    script:
        "../scripts/perturbed_radiomics_batch.py"


# A checkpoint: the robustness patients are training patients that were not excluded.
checkpoint gather_radiomics:
    input:
        per_patient("results/{cohort}/radiomics/patients/batch_{batch}"),
    output:
        features="results/{cohort}/radiomics/features.parquet",
        diagnostics="results/{cohort}/radiomics/diagnostics.tsv",
        exclusions="results/{cohort}/exclusions.tsv",
    log:
        "logs/{cohort}/gather_radiomics.log",
    benchmark:
        "results/benchmarks/gather_radiomics/{cohort}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/gather_radiomics.py"


rule radiomics_robustness:
    input:
        features="results/{cohort}/radiomics/features.parquet",
        perturbed=perturbed_tables,
    output:
        icc=report(
            "results/{cohort}/radiomics/icc.tsv",
            caption="../report/icc.rst",
            category="Radiomics",
            labels={"cohort": "{cohort}", "table": "feature ICC"},
        ),
    log:
        "logs/{cohort}/radiomics_robustness.log",
    benchmark:
        "results/benchmarks/radiomics_robustness/{cohort}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        threshold=config["radiomics"]["robustness"]["icc_threshold"],
    script:
        "../scripts/radiomics_robustness.py"


rule robust_features:
    input:
        unpack(harmonisation_reference),
        features="results/{cohort}/radiomics/features.parquet",
        icc=f"results/{RESPONSE_COHORT}/radiomics/icc.tsv",
        sheet="results/{cohort}/sheet.tsv",
    output:
        "results/{cohort}/radiomics/features_robust.parquet",
    log:
        "logs/{cohort}/robust_features.log",
    benchmark:
        "results/benchmarks/robust_features/{cohort}/robust_features.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        harmonisation=config["radiomics"]["harmonisation"],
    script:
        "../scripts/robust_features.py"


# Between-centre share of variance and a shared PCA projection, before and after harmonisation
# (response cohort); figures.smk draws them.
rule harmonisation_diagnostic:
    input:
        features="results/{cohort}/radiomics/features.parquet",
        icc="results/{cohort}/radiomics/icc.tsv",
        robust="results/{cohort}/radiomics/features_robust.parquet",
        sheet="results/{cohort}/sheet.tsv",
    output:
        separation=report(
            "results/{cohort}/radiomics/harmonisation_separation.tsv",
            caption="../report/harmonisation.rst",
            category="Radiomics",
            labels={"cohort": "{cohort}", "table": "centre separation"},
        ),
        features="results/{cohort}/radiomics/harmonisation_features.tsv",
        pca="results/{cohort}/radiomics/harmonisation_pca.tsv",
    log:
        "logs/{cohort}/harmonisation_diagnostic.log",
    benchmark:
        "results/benchmarks/harmonisation_diagnostic/{cohort}/harmonisation_diagnostic.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        harmonisation=config["radiomics"]["harmonisation"],
    script:
        "../scripts/harmonisation_diagnostic.py"
