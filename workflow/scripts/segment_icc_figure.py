"""ICC of radiomic features from predicted against reference masks, from the ICC table."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.segment import auto_icc_figure
from hccrad.figures.style import save_figure

log = log_to(snakemake.log[0])
icc = pd.read_csv(snakemake.input.icc, sep="\t")
save_figure(auto_icc_figure(icc, snakemake.params.threshold), snakemake.output.png)
log.info("ICC figure of %d features", len(icc))
