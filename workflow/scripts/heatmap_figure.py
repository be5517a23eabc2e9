"""Heatmap of the selected imaging features x the most correlated genes, from the correlations."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.enrichment import plot_rho_heatmap
from hccrad.figures.style import save_figure
from hccrad.radiogenomics.gene_list import rho_matrix

log = log_to(snakemake.log[0])
correlations = pd.read_parquet(snakemake.input.correlations)
symbols = correlations.drop_duplicates("gene_id").set_index("gene_id")["symbol"]
spearman = snakemake.params.method == "spearman"
figure = plot_rho_heatmap(
    rho_matrix(correlations),
    n_genes=snakemake.params.n_genes,
    gene_labels=symbols.dropna().astype(str).to_dict(),
    value_label=r"Spearman $\rho$" if spearman else r"Pearson $r$",
    value_symbol=r"$\rho$" if spearman else r"$r$",
)
save_figure(figure, snakemake.output.png)
log.info("heatmap of %d features", correlations["feature"].nunique())
