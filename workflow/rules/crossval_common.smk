# Helpers of the single-centre cross-validation rules (crossval.smk): paths, inputs, targets.

from hccrad.core.plan import CROSSVAL_TABLES

CROSSVAL = f"results/{RESPONSE_COHORT}/crossval/{{endpoint}}"


def feature_spec(cohort):
    """A cohort's bring-your-own feature table section (sheets.<cohort>.features), or None."""
    return IMPORTED.get(cohort, {}).get("features")


def feature_table_file(wildcards):
    """The feature table a sheet names, found from the working directory or the workflow."""
    return resolve(feature_spec(wildcards.cohort)["table"])


def crossval_feature_inputs(wildcards):
    """The response cohort's features: its own table, the extracted radiomics, or both."""
    inputs = {}
    spec = feature_spec(RESPONSE_COHORT)
    if spec is not None:
        inputs["byo"] = f"results/{RESPONSE_COHORT}/features/features.parquet"
        inputs["byo_exclusions"] = f"results/{RESPONSE_COHORT}/features/exclusions.tsv"
    if has_images(RESPONSE_COHORT) and (
        spec is None or spec.get("mode", "replace") == "add"
    ):
        inputs["radiomics"] = (
            f"results/{RESPONSE_COHORT}/radiomics/features_robust.parquet"
        )
    if has_images(RESPONSE_COHORT):
        inputs["image_exclusions"] = f"results/{RESPONSE_COHORT}/exclusions.tsv"
    if RESPONSE_COHORT in IMPORTED:
        inputs["sheet_exclusions"] = f"results/{RESPONSE_COHORT}/sheet_exclusions.tsv"
    return inputs


def crossval_targets():
    """Tables of the cross-validation, every endpoint."""
    targets = []
    for endpoint in config["endpoints"]:
        folder = f"results/{RESPONSE_COHORT}/crossval/{endpoint}"
        targets += [
            f"{folder}/{name}.tsv"
            for name in ("oof_predictions", "folds", "cohort_flow", "exclusions")
        ]
        targets += [f"{folder}/{name}.tsv" for name in CROSSVAL_TABLES]
    if feature_spec(RESPONSE_COHORT) is not None:
        targets.append(f"results/{RESPONSE_COHORT}/features/columns.tsv")
    return targets
