# Helpers of the single-centre cross-validation rules (crossval.smk): paths, inputs, targets.

import sys

from hccrad.core.plan import CROSSVAL_TABLES

CROSSVAL = f"results/{RESPONSE_COHORT}/crossval/{{endpoint}}"


def feature_spec(cohort):
    """A cohort's bring-your-own feature table section (sheets.<cohort>.features), or None."""
    return IMPORTED.get(cohort, {}).get("features")


# Only the response cohort's models read a feature table; one named elsewhere would be ignored.
for _cohort, _spec in IMPORTED.items():
    if _spec.get("features") and _cohort != RESPONSE_COHORT:
        raise ValueError(
            f"sheets.{_cohort}.features: only the response cohort ({RESPONSE_COHORT}) reads a "
            "feature table; remove it or make the cohort the response cohort"
        )


def has_external_split(cohort):
    """Whether a response cohort has external patients (what crossval.run: auto decides on)."""
    if cohort in SIMULATED:
        return any(c.get("role") == "external" for c in cohort_cfg(cohort)["centres"])
    if IMPORTED[cohort].get("table"):
        return bool(
            table_sheet(cohort)["split"].astype(str).str.startswith("external_").any()
        )
    # A downloaded table is not known when the DAG is planned: keep the train/test models.
    return True


# crossval.run: auto -> cross-validate a cohort without an external split (one centre).
CROSSVAL_RUN = config["crossval"]["run"]
if CROSSVAL_RUN == "auto":
    CROSSVAL_RUN = not has_external_split(RESPONSE_COHORT)
    print(
        f"crossval.run: auto -> {str(CROSSVAL_RUN).lower()}: response cohort "
        f"{RESPONSE_COHORT} has {'no ' if CROSSVAL_RUN else ''}external split, so it is "
        + (
            "evaluated by repeated cross-validation"
            if CROSSVAL_RUN
            else "split train/test"
        ),
        file=sys.stderr,
    )


def feature_table_file(wildcards):
    """The feature table a sheet names, found from the working directory or the workflow."""
    return resolve(feature_spec(wildcards.cohort)["table"])


def model_feature_inputs(wildcards):
    """A feature-table cohort's checked table, its exclusions, and the radiomics it may join."""
    inputs = {
        "byo": f"results/{RESPONSE_COHORT}/features/features.parquet",
        "byo_exclusions": f"results/{RESPONSE_COHORT}/features/exclusions.tsv",
        "cohort_exclusions": COHORT_EXCLUSIONS,
    }
    if (
        has_images(RESPONSE_COHORT)
        and feature_spec(RESPONSE_COHORT).get("mode") == "add"
    ):
        inputs["radiomics"] = (
            f"results/{RESPONSE_COHORT}/radiomics/features_robust.parquet"
        )
    return inputs


def crossval_inputs(wildcards):
    """The features the models read and every exclusions table, in the order of their steps."""
    # The sheet import's exclusions come first; RESPONSE_EXCLUSIONS (models_common.smk) holds
    # the later steps' (images, feature table) and, for a cohort without images, the import's.
    exclusions = [RESPONSE_EXCLUSIONS]
    if RESPONSE_COHORT in IMPORTED and has_images(RESPONSE_COHORT):
        exclusions.insert(0, f"results/{RESPONSE_COHORT}/sheet_exclusions.tsv")
    inputs = {"exclusions": exclusions}
    if BYO_FEATURES:
        inputs["features"] = (
            f"results/{RESPONSE_COHORT}/features/model_features.parquet"
        )
    elif has_images(RESPONSE_COHORT):
        inputs["features"] = (
            f"results/{RESPONSE_COHORT}/radiomics/features_robust.parquet"
        )
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
        targets += [
            f"{folder}/{name}.png"
            for name in ("roc", "calibration", "decision_curves", "cohort_flow")
        ]
        targets += [
            f"{folder}/km_{outcome}.png" for outcome in survival_outcomes(endpoint)
        ]
        # The readers' reads are of objective response (mRECIST): other endpoints have none.
        if config["crossval"]["readers"] and endpoint == "response":
            targets += [f"{folder}/reader_{name}.tsv" for name in ("agreement", "auc")]
    if BYO_FEATURES:
        targets.append(f"results/{RESPONSE_COHORT}/features/columns.tsv")
    return targets
