# Single-centre evaluation (issue 28): a cohort's own feature table (bring-your-own features)
# and repeated stratified cross-validation of every model with a permuted-label control. With
# crossval.run true these replace the train/test models of models.smk in the default targets.


include: "crossval_common.smk"


rule feature_table:
    input:
        table=feature_table_file,
        sheet="results/{cohort}/sheet.tsv",
    output:
        features="results/{cohort}/features/features.parquet",
        exclusions="results/{cohort}/features/exclusions.tsv",
        columns="results/{cohort}/features/columns.tsv",
    log:
        "logs/{cohort}/feature_table.log",
    benchmark:
        "results/benchmarks/feature_table/{cohort}/feature_table.tsv"
    wildcard_constraints:
        cohort=IMPORTED_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=lambda wildcards: feature_spec(wildcards.cohort),
    script:
        "../scripts/feature_table.py"


rule model_features:
    input:
        unpack(model_feature_inputs),
    output:
        features=f"results/{RESPONSE_COHORT}/features/model_features.parquet",
        exclusions=f"results/{RESPONSE_COHORT}/features/model_exclusions.tsv",
    log:
        f"logs/{RESPONSE_COHORT}/model_features.log",
    benchmark:
        f"results/benchmarks/model_features/{RESPONSE_COHORT}/model_features.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cohort=RESPONSE_COHORT,
        mode=lambda wildcards: feature_spec(RESPONSE_COHORT).get("mode", "replace"),
    script:
        "../scripts/model_features.py"


rule crossval_models:
    input:
        unpack(crossval_inputs),
        sheet=f"results/{RESPONSE_COHORT}/sheet.tsv",
    output:
        oof=f"{CROSSVAL}/oof_predictions.tsv",
        folds=f"{CROSSVAL}/folds.tsv",
        flow=report(
            f"{CROSSVAL}/cohort_flow.tsv",
            caption="../report/crossval_cohort_flow.rst",
            category="Cross-validation",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "table": "cohort flow"},
        ),
        exclusions=f"{CROSSVAL}/exclusions.tsv",
    log:
        f"logs/{RESPONSE_COHORT}/crossval_models/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/crossval_models/{RESPONSE_COHORT}_{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: config["crossval"]["n_jobs"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        models=config["models"],
        crossval=config["crossval"],
        seed=config["seed"],
        cohort=RESPONSE_COHORT,
    script:
        "../scripts/crossval_models.py"


rule crossval_readers:
    input:
        oof=f"{CROSSVAL}/oof_predictions.tsv",
        sheet=f"results/{RESPONSE_COHORT}/sheet.tsv",
    output:
        agreement=f"{CROSSVAL}/reader_agreement.tsv",
        auc=f"{CROSSVAL}/reader_auc.tsv",
    log:
        f"logs/{RESPONSE_COHORT}/crossval_readers/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/crossval_readers/{RESPONSE_COHORT}/crossval_readers/{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        readers=config["crossval"]["readers"],
        seed=config["seed"],
    script:
        "../scripts/crossval_readers.py"


rule crossval_evaluate:
    input:
        oof=f"{CROSSVAL}/oof_predictions.tsv",
        sheet=f"results/{RESPONSE_COHORT}/sheet.tsv",
    output:
        **{name: f"{CROSSVAL}/{name}.tsv" for name in CROSSVAL_TABLES if name != "auc"},
        auc=report(
            f"{CROSSVAL}/auc.tsv",
            caption="../report/crossval_auc.rst",
            category="Cross-validation",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "table": "AUC over repeats"},
        ),
    log:
        f"logs/{RESPONSE_COHORT}/crossval_evaluate/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/crossval_evaluate/{RESPONSE_COHORT}/crossval_evaluate/{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        outcomes=lambda wildcards: {
            name: config["survival"]["outcomes"][name]
            for name in survival_outcomes(wildcards.endpoint)
        },
        evaluation=config["evaluation"],
        survival=config["survival"],
        seed=config["seed"],
    script:
        "../scripts/crossval_evaluate.py"
