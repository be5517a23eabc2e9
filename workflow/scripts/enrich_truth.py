"""Planted-truth recovery of the simulated cohort: planted and non-planted significant pathways."""

import json
from pathlib import Path

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.radiogenomics.enrich import load_collection
from hccrad.radiogenomics.gene_list import background_symbols, planted_pathways, planted_recovery

log = log_to(snakemake.log[0])
truth = json.loads(Path(snakemake.input.truth).read_text())
ora = pd.read_csv(snakemake.input.ora, sep="\t")
tables = {f"ora {rule}": rows for rule, rows in ora.groupby("gene_list", sort=False)}
tables["gsea"] = pd.read_csv(snakemake.input.gsea, sep="\t")
planted_genes = pd.read_csv(snakemake.input.planted, sep="\t")
per_pathway, summary = planted_recovery(
    tables,
    planted_pathways(truth, planted_genes),
    planted_genes,
    load_collection(snakemake.input.gmt),
    background_symbols(pd.read_parquet(snakemake.input.correlations, columns=["symbol", "rho"])),
    fdr_threshold=snakemake.params.fdr_threshold,
)
per_pathway.to_csv(snakemake.output.pathways, sep="\t", index=False, float_format="%.6g")
summary.to_csv(snakemake.output.summary, sep="\t", index=False)
for row in summary.itertuples():
    log.info(
        "%s: %d of %d planted pathways significant, %d of %d non-planted",
        row.analysis,
        row.planted_significant,
        row.planted,
        row.non_planted_significant,
        row.non_planted_tested,
    )
