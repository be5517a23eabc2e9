"""Volcano plot of DESeq2 high vs low DLTR score, from the DE table."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.differential import plot_volcano
from hccrad.figures.style import save_figure

log = log_to(snakemake.log[0])
de_cfg = snakemake.params.settings["differential"]
table = pd.read_csv(snakemake.input.table, sep="\t")
labels = table.dropna(subset=["symbol"]).set_index("gene")["symbol"].astype(str).to_dict()
figure = plot_volcano(
    table,
    padj_threshold=de_cfg["alpha"],
    gene_labels=labels,
    shrunk=de_cfg["shrink"],
    title=f"DLTR score high vs low ({de_cfg['grouping'].replace('_', ' ')})",
)
save_figure(figure, snakemake.output.png)
log.info("volcano of %d genes", len(table))
