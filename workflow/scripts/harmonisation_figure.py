"""The harmonisation diagnostic figure, from the tables of harmonisation_diagnostic."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.harmonisation import harmonisation_figure
from hccrad.figures.style import save_figure

log = log_to(snakemake.log[0])
pca = pd.read_csv(snakemake.input.pca, sep="\t", dtype={"patient_id": str, "centre": str})
per_feature = pd.read_csv(snakemake.input.features, sep="\t")
summary = pd.read_csv(snakemake.input.separation, sep="\t")
method = snakemake.params.harmonisation
save_figure(
    harmonisation_figure(pca, per_feature, summary, title=f"Radiomic features by centre: {method}"),
    snakemake.output.png,
)
log.info("harmonisation figure of %d features", len(per_feature))
