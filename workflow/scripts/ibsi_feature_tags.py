"""The IBSI tag of every column of a cohort's radiomics feature table, as a sidecar TSV."""

import pandas as pd

from hccrad.core.config import read_yaml
from hccrad.core.runlog import log_to
from hccrad.radiomics.ibsi import feature_tags

log = log_to(snakemake.log[0])
columns = pd.read_parquet(snakemake.input.features).columns
settings = dict(read_yaml(snakemake.input.params).get("setting") or {})
settings |= dict(snakemake.params.radiomics.get("settings") or {})
tags = feature_tags(columns, settings)
tags.to_csv(snakemake.output[0], sep="\t", index=False)
log.info(
    "%d of %d feature columns have an IBSI tag", int((tags["ibsi_tag"] != "").sum()), len(tags)
)
