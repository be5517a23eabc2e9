"""Kaplan-Meier curves of the out-of-fold risk groups of one outcome, one panel per model."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.style import save_figure
from hccrad.figures.survival import km_figure
from hccrad.reporting.crossval import km_figure_tables

log = log_to(snakemake.log[0])
outcome, endpoint = snakemake.wildcards.outcome, snakemake.wildcards.endpoint
tables = km_figure_tables(
    {
        name: pd.read_csv(
            path, sep="\t", keep_default_na=False, na_values=[""], dtype={"patient_id": str}
        )
        for name, path in snakemake.input.items()
    },
    outcome,
    repeat=1,
)
figure = km_figure(
    tables["km_curves"],
    tables["numbers_at_risk"],
    tables["logrank"],
    tables["risk_groups"],
    title=f"{outcome.upper()} by out-of-fold risk group ({endpoint} models, repeat 1)",
    outcome=outcome,
)
save_figure(figure, snakemake.output.png)
log.info("KM of %s by out-of-fold risk group, %s, repeat 1", outcome, endpoint)
