"""The DLTR architecture selection figure, from the selection tables."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.deep import selection_figure
from hccrad.figures.style import save_figure

log = log_to(snakemake.log[0])
table = pd.read_csv(snakemake.input.selection, sep="\t")
summary = pd.read_csv(snakemake.input.summary, sep="\t")
winner = str(summary.sort_values("rank")["architecture"].iat[0])
save_figure(selection_figure(table, summary, winner), snakemake.output.png)
log.info("selection figure: %d architectures, winner %s", len(summary), winner)
