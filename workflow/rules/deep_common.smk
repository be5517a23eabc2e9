# Helpers of the deep-learning rules (deep.smk): which crops each step reads, targets.


def training_prepared(wildcards):
    """Batch folders of the training patients (from the sheet, via its checkpoint)."""
    from hccrad.cohorts.sheet import read_sheet  # pandas: not at parse (common.smk)

    sheet = read_sheet(
        checkpoints.gather_sheet.get(cohort=wildcards.cohort).output.sheet
    )
    # Their batches' folders; the script reads the training patients' folders alone.
    train = sheet.index[sheet["split"] == "train"]
    return batch_folders(wildcards.cohort, train, "prepared")


def fold_networks(extension, folder="results/{cohort}/deep/{endpoint}"):
    """The winner's network of each CV fold (weights .pt or config .json), in fold order."""
    folds = range(1, config["deep"]["folds"] + 1)
    return [f"{folder}/fold{fold}.{extension}" for fold in folds]


def dltr_network(wildcards):
    """The DLTR network of an endpoint from the response cohort (and its fold networks)."""
    folder = f"results/{RESPONSE_COHORT}/deep/{wildcards.endpoint}"
    network = {"weights": f"{folder}/model.pt", "model": f"{folder}/model.json"}
    if config["deep"].get("ensemble", "refit") == "folds_and_refit":
        network["fold_weights"] = fold_networks("pt", folder)
        network["fold_models"] = fold_networks("json", folder)
    return network


def out_of_fold_scores(wildcards):
    """The selection's out-of-fold training scores, for the response cohort only."""
    if wildcards.cohort != RESPONSE_COHORT:
        return []
    return f"results/{RESPONSE_COHORT}/deep/{wildcards.endpoint}/out_of_fold.tsv"


def deep_targets():
    """Selection, network, Grad-CAM per endpoint; scores and deep features of both cohorts."""
    targets = []
    for endpoint in config["endpoints"]:
        folder = f"results/{RESPONSE_COHORT}/deep/{endpoint}"
        targets += [
            f"{folder}/selection.tsv",
            f"{folder}/selection.png",
            f"{folder}/gradcam.png",
        ]
        for cohort in (RESPONSE_COHORT, RADIOGENOMICS_COHORT):
            targets += [
                f"results/{cohort}/deep/{endpoint}/scores.tsv",
                f"results/{cohort}/deep/{endpoint}/deep_features.parquet",
            ]
    return targets
