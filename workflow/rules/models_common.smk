# Helpers of the models, evaluation and survival rules (models.smk): paths, targets, checks.

from hccrad.core.plan import EVALUATION_TABLES, SURVIVAL_TABLES

MODELS = f"results/{RESPONSE_COHORT}/models/{{endpoint}}"
EVALUATION = f"results/{RESPONSE_COHORT}/evaluation/{{endpoint}}"
SURVIVAL = f"results/{RESPONSE_COHORT}/survival/{{endpoint}}"
ENDPOINT_PATTERN = "|".join(config["endpoints"])
OUTCOME_PATTERN = "|".join(sorted(config["survival"]["outcomes"]))
# A response cohort without images (an imported sheet with images: none) has no image
# exclusions; its sheet import's exclusions stand in.
RESPONSE_EXCLUSIONS = (
    f"results/{RESPONSE_COHORT}/exclusions.tsv"
    if has_images(RESPONSE_COHORT)
    else f"results/{RESPONSE_COHORT}/sheet_exclusions.tsv"
)
# A cohort with its own feature table (sheets.<cohort>.features) is modelled on the features
# and exclusions that rule model_features (crossval.smk) gathers from it and the steps above.
COHORT_EXCLUSIONS = RESPONSE_EXCLUSIONS
BYO_FEATURES = bool(IMPORTED.get(RESPONSE_COHORT, {}).get("features"))
if BYO_FEATURES:
    RESPONSE_EXCLUSIONS = f"results/{RESPONSE_COHORT}/features/model_exclusions.tsv"


def imaging_feature_inputs(wildcards):
    """Exclusions and feature tables of the response cohort: its own table and/or the images'."""
    inputs = {"exclusions": RESPONSE_EXCLUSIONS}
    if BYO_FEATURES:
        inputs["radiomics"] = (
            f"results/{RESPONSE_COHORT}/features/model_features.parquet"
        )
    if not has_images(RESPONSE_COHORT):
        return inputs
    return {
        "radiomics": f"results/{RESPONSE_COHORT}/radiomics/features_robust.parquet",
        **inputs,
        "deep": f"results/{RESPONSE_COHORT}/deep/{wildcards.endpoint}/scores.tsv",
    }


def domain_card_inputs(wildcards):
    """The out-of-domain flags for the model card, where the response cohort has images."""
    if not has_images(RESPONSE_COHORT):
        return {}
    return {
        "domain_flags": f"{EVALUATION}/domain_flags.tsv".format(
            endpoint=wildcards.endpoint
        )
    }


def survival_outcomes(endpoint):
    """Time-to-event outcomes that an endpoint's scores stratify (survival.stratify)."""
    section = config["survival"]
    return list(section["stratify"].get(endpoint, section["outcomes"]))


for _endpoint, _outcomes in config["survival"]["stratify"].items():
    _undefined = sorted(set(_outcomes) - set(config["survival"]["outcomes"]))
    if _undefined:
        raise ValueError(
            f"survival.stratify.{_endpoint} names outcome(s) {_undefined} that "
            f"survival.outcomes does not define ({sorted(config['survival']['outcomes'])}); "
            "define them (time and event columns of the sheet) or remove them"
        )


def model_targets():
    """Tables and figures of the models, evaluation and survival rules, every endpoint."""
    targets = []
    for endpoint in config["endpoints"]:
        models = f"results/{RESPONSE_COHORT}/models/{endpoint}"
        evaluation = f"results/{RESPONSE_COHORT}/evaluation/{endpoint}"
        survival = f"results/{RESPONSE_COHORT}/survival/{endpoint}"
        targets += [
            f"{models}/{name}"
            for name in (
                "models.joblib",
                "predictions.tsv",
                "thresholds.tsv",
                "clinical_odds_ratios.tsv",
                "selected_features.tsv",
                "models.json",
                "model_card.md",
            )
        ]
        targets += [f"{evaluation}/{name}.tsv" for name in EVALUATION_TABLES]
        targets += [
            f"{evaluation}/{name}.{ext}"
            for name in ("roc", "calibration", "decision_curves")
            for ext in ("png", "pdf")
        ]
        targets += [f"{survival}/{name}.tsv" for name in SURVIVAL_TABLES]
        for outcome in survival_outcomes(endpoint):
            targets += [f"{survival}/forest_{outcome}.{ext}" for ext in ("png", "pdf")]
            targets += [
                f"{survival}/km/{outcome}/{model}.{ext}"
                for model in config["survival"]["figure_models"]
                for ext in ("png", "pdf")
            ]
    return targets
