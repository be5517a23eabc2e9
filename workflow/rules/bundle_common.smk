# Helpers of the model-bundle rules (bundle.smk): the bundle path, its inputs, targets.

BUNDLE = f"results/{RESPONSE_COHORT}/bundle/{{endpoint}}"


def bundle_inputs(wildcards):
    """The run's files a bundle is made of (the DLTR network from dltr_network)."""
    inputs = {
        "models": f"{MODELS}/models.joblib".format(endpoint=wildcards.endpoint),
        "thresholds": f"{MODELS}/thresholds.tsv".format(endpoint=wildcards.endpoint),
        "cutoffs": f"{SURVIVAL}/cutoffs.tsv".format(endpoint=wildcards.endpoint),
        "calibration": f"{EVALUATION}/calibration.tsv".format(
            endpoint=wildcards.endpoint
        ),
        "robust": f"results/{RESPONSE_COHORT}/radiomics/features_robust.parquet",
        "params": resolve(config["radiomics"]["params"][modality(RESPONSE_COHORT)]),
        "sheet": f"results/{RESPONSE_COHORT}/sheet.tsv",
        "software": SOFTWARE_VERSIONS,
        # The segmentation network: trained by every run with images (segment_targets).
        "segment_weights": f"results/{RESPONSE_COHORT}/segment/model.pt",
        "segment_model": f"results/{RESPONSE_COHORT}/segment/model.json",
        # The conformal calibration and the out-of-domain reference (trust.smk).
        "conformal": f"{MODELS}/conformal.json".format(endpoint=wildcards.endpoint),
        "domain_reference": f"{MODELS}/domain_reference.json".format(
            endpoint=wildcards.endpoint
        ),
    }
    return inputs | dltr_network(wildcards)


def bundle_targets():
    """A bundle per endpoint where the models use images (not a feature-table-only cohort)."""
    if not has_images(RESPONSE_COHORT) or BYO_FEATURES or CROSSVAL_RUN:
        return []
    return [BUNDLE.format(endpoint=endpoint) for endpoint in config["endpoints"]]


def predict_targets():
    """Per endpoint, the scored sheet of new patients (config predict.sheet), if one is set."""
    if not config["predict"]["sheet"] or not bundle_targets():
        return []
    return [
        f"results/predict/{endpoint}/predictions.tsv"
        for endpoint in config["endpoints"]
    ]
