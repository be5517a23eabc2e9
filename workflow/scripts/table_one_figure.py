"""Table 1 drawn as a figure and written as an editable .xlsx, from its TSV."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.style import save_figure
from hccrad.figures.table_one import render_table, write_table_xlsx

log = log_to(snakemake.log[0])
table = pd.read_csv(snakemake.input.tsv, sep="\t", index_col=0, dtype=str, keep_default_na=False)
title = f"Table 1. {snakemake.wildcards.cohort}"
save_figure(render_table(table, title), snakemake.output.png)
write_table_xlsx(table, snakemake.output.xlsx, title)
log.info("Table 1 figure with %d rows", len(table))
