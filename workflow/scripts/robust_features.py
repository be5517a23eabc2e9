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
harmonised = harmonise_per_centre(
    robust, sheet["centre"], sheet["split"] == "train", method=snakemake.params.harmonisation
)
harmonised.to_parquet(snakemake.output[0])
log.info(
    "%d of %d features kept (ICC); harmonisation %s",
    robust.shape[1],
    features.shape[1],
    snakemake.params.harmonisation,
)
