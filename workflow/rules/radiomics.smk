# PyRadiomics per patient, gathered into a cohort table; robustness to the contour (ICC).
# Each patient's exclusion record (carried over from preparation, or the extraction's own with
# imaging.on_error: exclude) is gathered into results/<cohort>/exclusions.tsv.
# The ICC figure is drawn by figures.smk.


rule patient_radiomics:
    input:
        prepared=prepared_patient,
        params=radiomics_params,
    output:
        features="results/{cohort}/radiomics/patients/{patient}.parquet",
        diagnostics="results/{cohort}/radiomics/patients/{patient}_diagnostics.tsv",
        exclusion="results/{cohort}/radiomics/patients/{patient}_exclusion.tsv",
    log:
        "logs/{cohort}/patient_radiomics/{patient}.log",
    benchmark:
        "results/benchmarks/patient_radiomics/{cohort}/{patient}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        radiomics=radiomics_section,
        spacing_mm=config["imaging"]["spacing_mm"],
        on_error=config["imaging"]["on_error"],
    script:
        "../scripts/patient_radiomics.py"


rule patient_perturbed_radiomics:
    input:
        prepared=prepared_patient,
        params=radiomics_params,
        exclusion="results/{cohort}/radiomics/patients/{patient}_exclusion.tsv",
    output:
        "results/{cohort}/radiomics/perturbed/{patient}.parquet",
    log:
        "logs/{cohort}/patient_perturbed_radiomics/{patient}.log",
    benchmark:
        "results/benchmarks/patient_perturbed_radiomics/{cohort}/{patient}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        radiomics=radiomics_section,
        spacing_mm=config["imaging"]["spacing_mm"],
        seed=config["seed"],
        on_error=config["imaging"]["on_error"],
    script:
        "../scripts/patient_perturbed_radiomics.py"


# A checkpoint: the robustness patients are training patients that were not excluded.
checkpoint gather_radiomics:
    input:
        features=per_patient("results/{cohort}/radiomics/patients/{patient}.parquet"),
        diagnostics=per_patient(
            "results/{cohort}/radiomics/patients/{patient}_diagnostics.tsv"
        ),
        exclusions=per_patient(
            "results/{cohort}/radiomics/patients/{patient}_exclusion.tsv"
        ),
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
