# Multi-task segmentation (issue 8): a 2.5D U-Net++ with an EfficientNet-B0 encoder segments liver
# and tumour and predicts the endpoint; trained on the response cohort's training split, it
# predicts every patient, is scored against the reference masks beside an Otsu baseline, and its
# masks give radiomic features that are compared with the reference-mask ones. A cohort with
# `masks: liver_only` gets its tumours from this network (prepared_auto/, read by radiomics and
# deep learning through prepared_dir). Its figures are drawn by figures.smk.


include: "segment_common.smk"


rule segment_train:
    input:
        sheet="results/{cohort}/sheet.tsv",
        prepared=segment_training_prepared,
    output:
        weights="results/{cohort}/segment/model.pt",
        model="results/{cohort}/segment/model.json",
        history="results/{cohort}/segment/history.tsv",
    log:
        "logs/{cohort}/segment_train.log",
    benchmark:
        "results/benchmarks/segment_train/{cohort}.tsv"
    # The longest chain of the default run (train, predict, radiomics): started first (issue 30).
    priority: 20
    conda:
        ENV
    threads: config["segment"]["threads"]
    resources:
        mem_mb=config["segment"]["mem_mb"],
        runtime=config["segment"]["runtime_min"],
        gpu=config["segment"]["gpus"],
    params:
        segment=config["segment"],
        seed=config["seed"],
    script:
        "../scripts/segment_train.py"


rule segment_predict:
    input:
        # One network for every cohort: the response cohort's, trained on its training split.
        weights=f"results/{RESPONSE_COHORT}/segment/model.pt",
        model=f"results/{RESPONSE_COHORT}/segment/model.json",
        sheet="results/{cohort}/sheet.tsv",
        prepared=per_patient("results/{cohort}/prepared/batch_{batch}"),
    output:
        masks=directory("results/{cohort}/segment/masks"),
        predictions="results/{cohort}/segment/predictions.tsv",
    log:
        "logs/{cohort}/segment_predict.log",
    benchmark:
        "results/benchmarks/segment_predict/{cohort}.tsv"
    # On the default run's longest chain: see segment_train.
    priority: 20
    conda:
        ENV
    threads: config["segment"]["threads"]
    resources:
        mem_mb=config["segment"]["mem_mb"],
        runtime=config["segment"]["runtime_min"],
        gpu=config["segment"]["gpus"],
    params:
        # The masks depend on torch's thread count, so a change of it reruns the rule.
        torch_threads=config["segment"]["threads"],
        # segment.predict: held_out skips the patients the network was trained on.
        skip_training=lambda wildcards: config["segment"]["predict"] == "held_out"
        and wildcards.cohort == RESPONSE_COHORT,
    script:
        "../scripts/segment_predict.py"


rule prepare_predicted_tumour_batch:
    input:
        sheet="results/{cohort}/sheet.tsv",
        prepared="results/{cohort}/prepared/batch_{batch}",
        masks="results/{cohort}/segment/masks",
        predictions="results/{cohort}/segment/predictions.tsv",
    output:
        directory("results/{cohort}/prepared_auto/batch_{batch}"),
    log:
        "logs/{cohort}/prepare_predicted_tumour_batch/batch_{batch}.log",
    benchmark:
        "results/benchmarks/prepare_predicted_tumour_batch/{cohort}/batch_{batch}.tsv"
    wildcard_constraints:
        batch=r"\d+",
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
    script:
        "../scripts/prepare_predicted_tumour_batch.py"


rule segment_evaluate:
    input:
        sheet="results/{cohort}/sheet.tsv",
        prepared=per_patient("results/{cohort}/prepared/batch_{batch}"),
        masks="results/{cohort}/segment/masks",
        predictions="results/{cohort}/segment/predictions.tsv",
    output:
        metrics=report(
            "results/{cohort}/segment/metrics.tsv",
            caption="../report/segment_metrics.rst",
            category="Segmentation",
            labels={"table": "per-patient Dice, IoU, HD95"},
        ),
        summary=report(
            "results/{cohort}/segment/metrics_summary.tsv",
            caption="../report/segment_metrics.rst",
            category="Segmentation",
            labels={"table": "metrics per cohort"},
        ),
        baseline="results/{cohort}/segment/threshold_baseline.tsv",
        auroc=report(
            "results/{cohort}/segment/auroc.tsv",
            caption="../report/segment_auroc.rst",
            category="Segmentation",
            labels={"table": "classification head AUROC"},
        ),
    log:
        "logs/{cohort}/segment_evaluate.log",
    benchmark:
        "results/benchmarks/segment_evaluate/{cohort}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        segment=config["segment"],
        alpha=config["evaluation"]["alpha"],
    script:
        "../scripts/segment_evaluate.py"


rule segment_radiomics:
    input:
        params=radiomics_params,
        prepared=per_patient("results/{cohort}/prepared/batch_{batch}"),
        masks="results/{cohort}/segment/masks",
        predictions="results/{cohort}/segment/predictions.tsv",
    output:
        features="results/{cohort}/segment/radiomics_predicted.parquet",
        left_out="results/{cohort}/segment/radiomics_predicted_left_out.tsv",
    log:
        "logs/{cohort}/segment_radiomics.log",
    benchmark:
        "results/benchmarks/segment_radiomics/{cohort}.tsv"
    # On the default run's longest chain: see segment_train.
    priority: 20
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        radiomics=radiomics_section,
        spacing_mm=config["imaging"]["spacing_mm"],
    script:
        "../scripts/segment_radiomics.py"


rule segment_compare:
    input:
        sheet="results/{cohort}/sheet.tsv",
        reference="results/{cohort}/radiomics/features.parquet",
        robust="results/{cohort}/radiomics/features_robust.parquet",
        auto="results/{cohort}/segment/radiomics_predicted.parquet",
    output:
        icc=report(
            "results/{cohort}/segment/radiomics_icc.tsv",
            caption="../report/segment_radiomics.rst",
            category="Segmentation",
            labels={"table": "ICC reference vs predicted masks"},
        ),
        summary="results/{cohort}/segment/radiomics_icc_summary.tsv",
        auc=report(
            "results/{cohort}/segment/radiomics_auc.tsv",
            caption="../report/segment_radiomics.rst",
            category="Segmentation",
            labels={"table": "radiomics model AUC by mask"},
        ),
    log:
        "logs/{cohort}/segment_compare.log",
    benchmark:
        "results/benchmarks/segment_compare/{cohort}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        threshold=config["radiomics"]["robustness"]["icc_threshold"],
        endpoint=config["segment"]["endpoint"],
        seed=config["seed"],
        models=config["models"],
        alpha=config["evaluation"]["alpha"],
    script:
        "../scripts/segment_compare.py"
