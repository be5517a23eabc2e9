"""Pack an endpoint's fitted models, networks, thresholds and cut-offs into a bundle folder."""

import pandas as pd

from hccrad.bundle.store import BundleSources, write_bundle
from hccrad.cohorts.sheet import phases_of, read_sheet
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
inputs = snakemake.input
sheet = read_sheet(inputs.sheet)
# The DLTR network and, with deep.ensemble: folds_and_refit, the fold networks it averages.
dltr = {"model.pt": inputs.weights, "model.json": inputs.model}
for weights, described in zip(
    inputs.get("fold_weights", []), inputs.get("fold_models", []), strict=True
):
    dltr[weights.rsplit("/", 1)[-1]] = weights
    dltr[described.rsplit("/", 1)[-1]] = described
segment = (
    {"model.pt": inputs.segment_weights, "model.json": inputs.segment_model}
    if hasattr(inputs, "segment_weights")
    else {}
)
manifest = write_bundle(
    snakemake.output[0],
    BundleSources(
        endpoint=snakemake.wildcards.endpoint,
        cohort=snakemake.params.cohort,
        seed=snakemake.params.seed,
        modality=snakemake.params.modality,
        phases=phases_of(sheet),
        config=snakemake.params.config,
        models=inputs.models,
        thresholds=inputs.thresholds,
        cutoffs=inputs.cutoffs,
        calibration=inputs.calibration,
        robust_features=inputs.robust,
        radiomics_params=inputs.params,
        dltr=dltr,
        segment=segment,
        sheet=sheet,
        software_versions=pd.read_csv(inputs.software, sep="\t"),
        conformal=inputs.get("conformal"),
        domain_reference=inputs.get("domain_reference"),
    ),
)
log.info("bundle %s: %d DLTR file(s), segmentation network %s", manifest, len(dltr), bool(segment))
