"""GSEA preranked on the configured gene statistic; dot plot and running-score plots."""

import pandas as pd

from hccrad.enrich import (
    gsea_prerank,
    load_collection,
    plot_enrichment_dots,
    plot_running_scores,
    running_score_pathways,
)
from hccrad.radiogenomics import ranking_statistic, rho_matrix
from hccrad.runlog import log_to
from hccrad.style import save_figure

log = log_to(snakemake.log[0])
settings = snakemake.params.settings
enrichment_cfg = settings["enrichment"]
how = enrichment_cfg["ranking"]
symbols = pd.read_csv(snakemake.input.genes, sep="\t", index_col="gene_id")["symbol"]
ranking = ranking_statistic(
    how,
    symbols,
    rho=rho_matrix(pd.read_parquet(snakemake.input.correlations)),
    de_table=pd.read_csv(snakemake.input.de, sep="\t") if how == "de_stat" else None,
)
collection = load_collection(snakemake.input.gmt)
result = gsea_prerank(
    ranking,
    collection,
    permutations=enrichment_cfg["permutations"],
    seed=snakemake.params.seed,
    threads=snakemake.threads,
    min_size=enrichment_cfg["min_size"],
    max_size=enrichment_cfg["max_size"],
)
result.table.insert(0, "ranking", how)
result.table.to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.6g")
result.ranking.rename(how).to_csv(snakemake.output.ranking, sep="\t", float_format="%.6g")
threshold = enrichment_cfg["fdr_threshold"]
figure = plot_enrichment_dots(
    result.table,
    x="nes",
    n_pathways=enrichment_cfg["dotplot_pathways"],
    fdr_threshold=threshold,
    title=f"GSEA preranked by {how.replace('_', ' ')}",
)
save_figure(figure, snakemake.output.dotplot)
pathways = running_score_pathways(
    result.table,
    named=enrichment_cfg["highlight"],
    fdr_threshold=threshold,
    max_pathways=enrichment_cfg["running_score_pathways"],
)
save_figure(plot_running_scores(result, pathways, n_columns=3), snakemake.output.running)
log.info(
    "%d genes ranked by %s; %d of %d sets at FDR < %g; running scores for %s",
    len(result.ranking),
    how,
    (result.table["fdr"] < threshold).sum(),
    len(result.table),
    threshold,
    pathways,
)
