# Input functions and targets of workflow/rules/ibsi.smk.


def ibsi_targets():
    """The IBSI tag sidecar of every radiomics feature table the default run writes."""
    targets = [
        f"results/{cohort}/radiomics/features_ibsi_tags.tsv"
        for cohort in (RESPONSE_COHORT, RADIOGENOMICS_COHORT)
        if has_images(cohort) and has_images(RESPONSE_COHORT)
    ]
    predicted = f"results/{RESPONSE_COHORT}/segment/radiomics_predicted.parquet"
    if f"results/{RESPONSE_COHORT}/segment/radiomics_icc.tsv" in segment_targets():
        targets.append(predicted.replace(".parquet", "_ibsi_tags.tsv"))
    return targets


def ibsi_data(wildcards):
    """The IBSI-1 data folder (phantoms, reference values) named by ibsi.data."""
    data = (config.get("ibsi") or {}).get("data")
    if not data:
        raise ValueError(
            "results/ibsi/conformance.tsv needs the IBSI-1 phantoms and reference values: set "
            "ibsi.data to their folder (a copy of oncoray/mirp test/data, e.g. "
            "--config 'ibsi={data: path/to/mirp/test/data}')"
        )
    return data
