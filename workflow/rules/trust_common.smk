# Helpers of the trust rules (trust.smk): paths and targets of the conformal calibration and the
# out-of-domain reference (issue 33). Uses MODELS, EVALUATION and RESPONSE_COHORT from
# models_common.smk.

RAW_GEOMETRY = "results/{cohort}/raw_geometry.tsv"


def domain_inputs(wildcards):
    """Raw geometry, robust radiomics, sheet and exclusions of the response cohort."""
    return {
        "raw_geometry": RAW_GEOMETRY.format(cohort=RESPONSE_COHORT),
        "radiomics": imaging_feature_inputs(wildcards)["radiomics"],
        "sheet": f"results/{RESPONSE_COHORT}/sheet.tsv",
        "exclusions": RESPONSE_EXCLUSIONS,
    }


def trust_targets():
    """Conformal calibration and coverage, and (with images) the domain reference and flags."""
    targets = []
    for endpoint in config["endpoints"]:
        models = f"results/{RESPONSE_COHORT}/models/{endpoint}"
        evaluation = f"results/{RESPONSE_COHORT}/evaluation/{endpoint}"
        targets += [
            f"{models}/conformal.json",
            f"{models}/held_out_scores.tsv",
            f"{evaluation}/conformal_coverage.tsv",
            f"{evaluation}/conformal_intervals.tsv",
        ]
        if has_images(RESPONSE_COHORT):
            targets += [
                f"{models}/domain_reference.json",
                f"{evaluation}/domain_flags.tsv",
            ]
    if has_images(RESPONSE_COHORT):
        targets.append(RAW_GEOMETRY.format(cohort=RESPONSE_COHORT))
    return targets
