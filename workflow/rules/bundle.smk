# The trained model bundle per endpoint (issue 33): the response cohort's fitted models, DLTR and
# segmentation networks, thresholds, cut-offs and calibration with a manifest (hccrad.bundle);
# and the scoring of a sheet of new patients with it (config predict:), as `hccrad predict`
# scores one patient. The conformal calibration and the out-of-domain reference (trust.smk) are
# packed with the models, so a new patient gets an interval and flags by the training data.


include: "bundle_common.smk"


rule model_bundle:
    input:
        unpack(bundle_inputs),
    output:
        directory(BUNDLE),
    log:
        f"logs/{RESPONSE_COHORT}/model_bundle/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/model_bundle/{RESPONSE_COHORT}/model_bundle/{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        cohort=RESPONSE_COHORT,
        seed=config["seed"],
        modality=modality(RESPONSE_COHORT),
        config={
            "imaging": config["imaging"],
            "radiomics": radiomics_for(config["radiomics"], modality(RESPONSE_COHORT)),
            "deep": config["deep"],
            "models": config["models"],
            "segment": config["segment"],
            "survival": config["survival"],
        },
    script:
        "../scripts/model_bundle.py"


rule predict_patients:
    input:
        bundle=BUNDLE,
        sheet=config["predict"]["sheet"] or [],
    output:
        predictions="results/predict/{endpoint}/predictions.tsv",
        patients=directory("results/predict/{endpoint}/patients"),
    log:
        "logs/predict/{endpoint}.log",
    benchmark:
        "results/benchmarks/predict_patients/predict/{endpoint}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: config["imaging"]["batch_threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        masks=config["predict"]["masks"],
        risk_outcome=config["predict"]["risk_outcome"],
        report=config["predict"]["report"],
    script:
        "../scripts/predict_patients.py"
