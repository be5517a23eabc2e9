"""Gather per-patient radiomics into the cohort's features table, diagnostics and exclusions."""

import pandas as pd

from hccrad.preprocess import gather_exclusions
from hccrad.radiomics import gather_features
from hccrad.runlog import log_to

log = log_to(snakemake.log[0])
frames = [pd.read_parquet(path) for path in snakemake.input.features]
features = gather_features([frame for frame in frames if len(frame)])
features.to_parquet(snakemake.output.features)
diagnostics = [pd.read_csv(p, sep="\t") for p in snakemake.input.diagnostics]
pd.concat([d for d in diagnostics if len(d)]).to_csv(
    snakemake.output.diagnostics, sep="\t", index=False
)
exclusions = gather_exclusions(snakemake.input.prepared, snakemake.wildcards.cohort)
exclusions.to_csv(snakemake.output.exclusions, sep="\t")
log.info("%d patients x %d features; %d excluded", *features.shape, len(exclusions))
