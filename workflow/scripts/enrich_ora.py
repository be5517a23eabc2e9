"""Over-representation of the gene list (both rules) in the gene-set collection."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.radiogenomics.enrich import load_collection
from hccrad.radiogenomics.gene_list import background_symbols, gene_list_enrichment

log = log_to(snakemake.log[0])
settings = snakemake.params.settings
enrichment_cfg = settings["enrichment"]
collection = load_collection(snakemake.input.gmt)
genes = pd.read_csv(snakemake.input.gene_list, sep="\t")
background = background_symbols(
    pd.read_parquet(snakemake.input.correlations, columns=["symbol", "rho"])
)
table = gene_list_enrichment(
    genes, background, collection, enrichment_cfg["min_size"], enrichment_cfg["max_size"]
)
table.to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.6g")
for name, rows in table.groupby("gene_list", sort=False):
    log.info(
        "%s: %d genes of %d tested; %d sets at FDR < %g",
        name,
        rows["list_size"].iat[0],
        rows["background_size"].iat[0],
        (rows["fdr"] < enrichment_cfg["fdr_threshold"]).sum(),
        enrichment_cfg["fdr_threshold"],
    )
