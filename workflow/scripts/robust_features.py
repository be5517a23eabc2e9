"""The radiomic features kept downstream: robust ones, optionally harmonised across centres."""

import pandas as pd

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.radiomics.harmonise import harmonise_per_centre
from hccrad.radiomics.robustness import select_robust

log = log_to(snakemake.log[0])
features = pd.read_parquet(snakemake.input.features)
icc = pd.read_csv(snakemake.input.icc, sep="\t")
sheet = read_sheet(snakemake.input.sheet).loc[features.index]
robust = select_robust(features, icc)
reference = None
if hasattr(snakemake.input, "reference_features"):
    # Another cohort: ComBat is fitted on the response cohort's training rows.
    reference_features = pd.read_parquet(snakemake.input.reference_features)
    reference_sheet = read_sheet(snakemake.input.reference_sheet).loc[reference_features.index]
    reference = (
        reference_features,
        reference_sheet["centre"],
        reference_sheet["split"] == "train",
    )
harmonised = harmonise_per_centre(
    robust,
    sheet["centre"],
    sheet["split"] == "train",
    method=snakemake.params.harmonisation,
    reference=reference,
)
harmonised.to_parquet(snakemake.output[0])
log.info(
    "%d of %d features kept (ICC); harmonisation %s%s",
    robust.shape[1],
    features.shape[1],
    snakemake.params.harmonisation,
    " against the response cohort's training rows" if reference is not None else "",
)
