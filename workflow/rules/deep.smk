# 3D CNN selection (DLTR), predictions, deep features and Grad-CAM maps (issue 4); their
# figures are drawn from these outputs by figures.smk.
# DLTR is selected and fitted on the response cohort's training split, once per endpoint; every
# cohort (the radiogenomics one included) is only ever predicted by that network.


include: "deep_common.smk"


rule deep_select:
    input:
        sheet="results/{cohort}/sheet.tsv",
        prepared=training_prepared,
    output:
        selection=report(
            "results/{cohort}/deep/{endpoint}/selection.tsv",
            caption="../report/deep_selection.rst",
            category="Deep learning",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "table": "architecture x fold AUC"},
        ),
        summary="results/{cohort}/deep/{endpoint}/selection_summary.tsv",
        weights="results/{cohort}/deep/{endpoint}/model.pt",
        model="results/{cohort}/deep/{endpoint}/model.json",
        fold_weights=fold_networks("pt"),
        fold_models=fold_networks("json"),
        history="results/{cohort}/deep/{endpoint}/history.tsv",
        out_of_fold="results/{cohort}/deep/{endpoint}/out_of_fold.tsv",
    log:
        "logs/{cohort}/deep_select/{endpoint}.log",
    benchmark:
        "results/benchmarks/deep_select/{cohort}/{endpoint}.tsv"
    # The second longest chain: started before the short jobs, beside segmentation.
    priority: 10
    conda:
        ENV
    threads: config["deep"]["threads"]
    resources:
        mem_mb=config["deep"]["mem_mb"],
        runtime=config["deep"]["runtime_min"],
        gpu=config["deep"]["gpus"],
    params:
        deep=config["deep"],
        seed=config["seed"],
    script:
        "../scripts/deep_select.py"


rule deep_predict:
    input:
        unpack(dltr_network),
        sheet="results/{cohort}/sheet.tsv",
        prepared=per_patient("results/{cohort}/{prepared}/batch_{batch}"),
        out_of_fold=out_of_fold_scores,
    output:
        scores="results/{cohort}/deep/{endpoint}/scores.tsv",
        features="results/{cohort}/deep/{endpoint}/deep_features.parquet",
    log:
        "logs/{cohort}/deep_predict/{endpoint}.log",
    benchmark:
        "results/benchmarks/deep_predict/{cohort}/{endpoint}.tsv"
    conda:
        ENV
    threads: config["deep"]["threads"]
    resources:
        mem_mb=config["deep"]["mem_mb"],
        runtime=config["deep"]["runtime_min"],
        gpu=config["deep"]["gpus"],
    params:
        deep=config["deep"],
        seed=config["seed"],
    script:
        "../scripts/deep_predict.py"


rule deep_gradcam:
    input:
        unpack(dltr_network),
        sheet="results/{cohort}/sheet.tsv",
        prepared=per_patient("results/{cohort}/{prepared}/batch_{batch}"),
        scores="results/{cohort}/deep/{endpoint}/scores.tsv",
    output:
        panels="results/{cohort}/deep/{endpoint}/gradcam.npz",
    log:
        "logs/{cohort}/deep_gradcam/{endpoint}.log",
    benchmark:
        "results/benchmarks/deep_gradcam/{cohort}/{endpoint}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=config["deep"]["mem_mb"],
        runtime=config["deep"]["runtime_min"],
        gpu=config["deep"]["gpus"],
    params:
        deep=config["deep"],
        seed=config["seed"],
    script:
        "../scripts/deep_gradcam.py"
