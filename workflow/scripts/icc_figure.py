"""The radiomic feature ICC figure, from the ICC table."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.radiomics import icc_figure
from hccrad.figures.style import save_figure

log = log_to(snakemake.log[0])
icc = pd.read_csv(snakemake.input.icc, sep="\t")
save_figure(icc_figure(icc, snakemake.params.threshold), snakemake.output.png)
log.info("ICC figure of %d features", len(icc))
