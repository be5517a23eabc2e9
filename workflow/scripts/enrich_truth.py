"""Planted-truth recovery of the simulated cohort: planted, overlap-driven and other pathways."""

import json
from pathlib import Path

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.radiogenomics.enrich import load_collection
from hccrad.radiogenomics.gene_list import (
    background_symbols,
    enrichment_without_planted,
    planted_pathways,
    planted_recovery,
)

log = log_to(snakemake.log[0])
enrichment_cfg = snakemake.params.settings["enrichment"]
truth = json.loads(Path(snakemake.input.truth).read_text())
ora = pd.read_csv(snakemake.input.ora, sep="\t")
tables = {f"ora {rule}": rows for rule, rows in ora.groupby("gene_list", sort=False)}
tables["gsea"] = pd.read_csv(snakemake.input.gsea, sep="\t")
planted_genes = pd.read_csv(snakemake.input.planted, sep="\t")
collection = load_collection(snakemake.input.gmt)
background = background_symbols(
    pd.read_parquet(snakemake.input.correlations, columns=["symbol", "rho"])
)
ranking = pd.read_csv(
    snakemake.input.ranking, sep="\t", index_col=0, float_precision="round_trip"
).iloc[:, 0]
ranking.index = ranking.index.astype(str)
# The removal test: the same analyses, same seed, without the planted genes.
without = enrichment_without_planted(
    planted_genes["gene_name"].astype(str),
    collection,
    genes=pd.read_csv(snakemake.input.gene_list, sep="\t"),
    background=background,
    ranking=ranking,
    min_size=enrichment_cfg["min_size"],
    max_size=enrichment_cfg["max_size"],
    permutations=enrichment_cfg["permutations"],
    seed=snakemake.params.seed,
    threads=snakemake.threads,
    min_null=enrichment_cfg["min_same_sign_null"],
)
per_pathway, summary = planted_recovery(
    tables,
    without,
    planted_pathways(truth, planted_genes),
    planted_genes,
    collection,
    background,
    fdr_threshold=enrichment_cfg["fdr_threshold"],
)
per_pathway.to_csv(snakemake.output.pathways, sep="\t", index=False, float_format="%.6g")
summary.to_csv(snakemake.output.summary, sep="\t", index=False)
for row in summary.itertuples():
    log.info(
        "%s: %d of %d planted pathways significant; %d of %d non-planted (%d driven by overlap, "
        "%d other)",
        row.analysis,
        row.planted_significant,
        row.planted,
        row.non_planted_significant,
        row.non_planted_tested,
        row.driven_by_overlap,
        row.other,
    )
