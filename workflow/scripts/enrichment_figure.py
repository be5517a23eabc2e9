"""ORA and GSEA dot plots and GSEA running scores, from the enrichment tables."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.enrichment import plot_enrichment_dots, plot_running_scores
from hccrad.figures.style import save_figure
from hccrad.radiogenomics.enrich import (
    load_collection,
    prerank_result_from_files,
    running_score_pathways,
)

log = log_to(snakemake.log[0])
settings = snakemake.params.settings
enrichment_cfg = settings["enrichment"]
threshold = enrichment_cfg["fdr_threshold"]
n_pathways = enrichment_cfg["dotplot_pathways"]

ora = pd.read_csv(snakemake.input.ora, sep="\t")
rule = settings["gene_list"]["ora_rule"]
shown = ora[ora["gene_list"] == rule].drop(columns="gene_list")
figure = plot_enrichment_dots(
    shown,
    x="fdr",
    n_pathways=n_pathways,
    fdr_threshold=threshold,
    title=f"ORA, gene list by {rule.replace('_', ' ')} ({shown['list_size'].iat[0]} genes)",
)
save_figure(figure, snakemake.output.ora)

gsea = prerank_result_from_files(
    snakemake.input.gsea, snakemake.input.ranking, load_collection(snakemake.input.gmt)
)
how = str(gsea.table["ranking"].iat[0])
figure = plot_enrichment_dots(
    gsea.table,
    x="nes",
    n_pathways=n_pathways,
    fdr_threshold=threshold,
    title=f"GSEA preranked by {how.replace('_', ' ')}",
)
save_figure(figure, snakemake.output.gsea)
pathways = running_score_pathways(
    gsea.table,
    named=enrichment_cfg["highlight"],
    fdr_threshold=threshold,
    max_pathways=enrichment_cfg["running_score_pathways"],
)
save_figure(plot_running_scores(gsea, pathways, n_columns=3), snakemake.output.running)
log.info("dot plots and running scores for %s", pathways)
