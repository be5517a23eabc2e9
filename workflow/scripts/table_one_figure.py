"""Table 1 drawn as a figure, from its TSV."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.style import save_figure
from hccrad.figures.table_one import render_table

log = log_to(snakemake.log[0])
table = pd.read_csv(snakemake.input.tsv, sep="\t", index_col=0, dtype=str, keep_default_na=False)
save_figure(render_table(table, f"Table 1. {snakemake.wildcards.cohort}"), snakemake.output.png)
log.info("Table 1 figure with %d rows", len(table))
