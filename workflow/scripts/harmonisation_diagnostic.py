"""Between-centre share of variance and a PCA of the features before and after harmonising."""

import pandas as pd

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.radiomics.harmonise import harmonisation_pca, separation_table
from hccrad.radiomics.robustness import select_robust

log = log_to(snakemake.log[0])
after = pd.read_parquet(snakemake.input.robust)
before = select_robust(
    pd.read_parquet(snakemake.input.features), pd.read_csv(snakemake.input.icc, sep="\t")
)
before = before.loc[after.index, after.columns]
sheet = read_sheet(snakemake.input.sheet).loc[after.index]
per_feature, summary = separation_table(before, after, sheet["centre"])
summary.insert(0, "harmonisation", snakemake.params.harmonisation)
summary.to_csv(snakemake.output.separation, sep="\t", index=False)
per_feature.to_csv(snakemake.output.features, sep="\t", index=False)
harmonisation_pca(before, after, sheet, sheet["split"] == "train").to_csv(
    snakemake.output.pca, sep="\t", index=False
)
log.info("between-centre share of variance, mean over features:\n%s", summary.to_string())
