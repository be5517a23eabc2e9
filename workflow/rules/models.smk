# Response models per endpoint, their evaluation and survival stratification (issue 5).
# Everything is fitted on the training split of the response cohort; the other splits and the
# external centres are only scored. Their figures are drawn by figures.smk.


include: "models_common.smk"


rule fit_models:
    input:
        unpack(imaging_feature_inputs),
        sheet=f"results/{RESPONSE_COHORT}/sheet.tsv",
    output:
        models=f"{MODELS}/models.joblib",
        predictions=f"{MODELS}/predictions.tsv",
        thresholds=f"{MODELS}/thresholds.tsv",
        odds_ratios=report(
            f"{MODELS}/clinical_odds_ratios.tsv",
            caption="../report/clinical_odds_ratios.rst",
            category="Response models",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "table": "clinical odds ratios"},
        ),
        features=f"{MODELS}/selected_features.tsv",
        described=f"{MODELS}/models.json",
    log:
        f"logs/{RESPONSE_COHORT}/fit_models/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/fit_models/{RESPONSE_COHORT}_{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        models=config["models"],
        seed=config["seed"],
    script:
        "../scripts/fit_models.py"


rule evaluate_models:
    input:
        predictions=f"{MODELS}/predictions.tsv",
        thresholds=f"{MODELS}/thresholds.tsv",
    output:
        auc=report(
            f"{EVALUATION}/auc.tsv",
            caption="../report/model_auc.rst",
            category="Response models",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "table": "AUC (95% CI)"},
        ),
        threshold_metrics=f"{EVALUATION}/threshold_metrics.tsv",
        delong=f"{EVALUATION}/delong.tsv",
        calibration=f"{EVALUATION}/calibration.tsv",
        calibration_curves=f"{EVALUATION}/calibration_curves.tsv",
        calibration_loess=f"{EVALUATION}/calibration_loess.tsv",
        decision_curves=f"{EVALUATION}/decision_curves.tsv",
        roc_curves=f"{EVALUATION}/roc_curves.tsv",
    log:
        f"logs/{RESPONSE_COHORT}/evaluate_models/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/evaluate_models/{RESPONSE_COHORT}_{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        evaluation=config["evaluation"],
        seed=config["seed"],
    script:
        "../scripts/evaluate_models.py"


rule survival_tables:
    input:
        predictions=f"{MODELS}/predictions.tsv",
        sheet=f"results/{RESPONSE_COHORT}/sheet.tsv",
    output:
        cutoffs=f"{SURVIVAL}/cutoffs.tsv",
        risk_groups=f"{SURVIVAL}/risk_groups.tsv",
        km_curves=f"{SURVIVAL}/km_curves.tsv",
        median_survival=f"{SURVIVAL}/median_survival.tsv",
        numbers_at_risk=f"{SURVIVAL}/numbers_at_risk.tsv",
        logrank=report(
            f"{SURVIVAL}/logrank.tsv",
            caption="../report/survival_logrank.rst",
            category="Survival",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "table": "log-rank"},
        ),
        cox=report(
            f"{SURVIVAL}/cox.tsv",
            caption="../report/survival_forest.rst",
            category="Survival",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "table": "Cox hazard ratios"},
        ),
        concordance=f"{SURVIVAL}/concordance.tsv",
        td_auc=f"{SURVIVAL}/td_auc.tsv",
    log:
        f"logs/{RESPONSE_COHORT}/survival_tables/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/survival_tables/{RESPONSE_COHORT}_{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        survival=config["survival"],
        outcomes=lambda wildcards: survival_outcomes(wildcards.endpoint),
    script:
        "../scripts/survival_tables.py"


rule model_card:
    input:
        unpack(domain_card_inputs),
        sheet=f"results/{RESPONSE_COHORT}/sheet.tsv",
        exclusions=RESPONSE_EXCLUSIONS,
        described=f"{MODELS}/models.json",
        features=f"{MODELS}/selected_features.tsv",
        auc=f"{EVALUATION}/auc.tsv",
        calibration=f"{EVALUATION}/calibration.tsv",
        threshold_metrics=f"{EVALUATION}/threshold_metrics.tsv",
        delong=f"{EVALUATION}/delong.tsv",
        logrank=f"{SURVIVAL}/logrank.tsv",
        cox=f"{SURVIVAL}/cox.tsv",
        # trust.smk: the conformal sets' coverage on the test and external patients.
        conformal_coverage=f"{EVALUATION}/conformal_coverage.tsv",
    output:
        report(
            f"{MODELS}/model_card.md",
            caption="../report/model_card.rst",
            category="Response models",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "table": "model card"},
        ),
    log:
        f"logs/{RESPONSE_COHORT}/model_card/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/model_card/{RESPONSE_COHORT}/model_card/{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cohort=RESPONSE_COHORT,
        seed=config["seed"],
        settings={
            "models": config["models"],
            "evaluation": config["evaluation"],
            "survival": config["survival"],
        },
        survival_models=config["survival"]["figure_models"],
    script:
        "../scripts/model_card.py"


rule model_results:
    default_target: False
    input:
        model_targets(),
