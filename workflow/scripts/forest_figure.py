"""Forest plot of the multivariable Cox models (risk group and covariates) for one outcome."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.style import save_figure
from hccrad.figures.survival import forest_figure

log = log_to(snakemake.log[0])
outcome, endpoint = snakemake.wildcards.outcome, snakemake.wildcards.endpoint
cox = pd.read_csv(snakemake.input.cox, sep="\t", keep_default_na=False, na_values=[""])
cox = cox[cox["outcome"] == outcome].fillna({"note": ""})
figure = forest_figure(
    cox,
    title=f"{outcome.upper()}: multivariable Cox ({endpoint} scores)",
    models=snakemake.params.models,
)
save_figure(figure, snakemake.output.png)
log.info("forest plot of %s (%s)", outcome, endpoint)
