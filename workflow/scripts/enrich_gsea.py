"""GSEA preranked on the configured gene statistic: the table and the ranking it walked."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.radiogenomics.enrich import gsea_prerank, load_collection
from hccrad.radiogenomics.gene_list import ranking_statistic, rho_matrix

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
    min_null=enrichment_cfg["min_same_sign_null"],
)
result.table.insert(0, "ranking", how)
result.table.to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.6g")
# Full precision: the running-score figure walks this ranking again, ties and all.
result.ranking.rename(how).to_csv(snakemake.output.ranking, sep="\t", float_format="%.17g")
threshold = enrichment_cfg["fdr_threshold"]
log.info(
    "%d genes ranked by %s (%d positive, %d negative); %d of %d sets at FDR < %g",
    len(result.ranking),
    how,
    (result.ranking > 0).sum(),
    (result.ranking < 0).sum(),
    (result.table["fdr"] < threshold).sum(),
    len(result.table),
    threshold,
)
for row in result.table[result.table["null_too_small"]].itertuples():
    log.warning("%s: %s", row.pathway, row.note)
