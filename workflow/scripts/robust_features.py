"""The radiomic features kept downstream: robust ones, optionally harmonised across centres."""

import pandas as pd

from hccrad.cohort import read_sheet
from hccrad.radiomics import harmonise_per_centre, select_robust
from hccrad.runlog import log_to

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
