"""ROC, calibration and decision curves of one endpoint's pooled out-of-fold predictions, and
its cohort flow diagram."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.flow import cohort_flow_figure
from hccrad.figures.models import calibration_figure, decision_curve_figure, roc_figure
from hccrad.figures.style import save_figure
from hccrad.reporting.crossval import figure_tables

log = log_to(snakemake.log[0])
endpoint = snakemake.wildcards.endpoint
tables = figure_tables(
    {
        name: pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
        for name, path in snakemake.input.items()
        if name != "flow"
    }
)
cohorts = list(dict.fromkeys(tables["auc"]["cohort"]))
save_figure(
    roc_figure(tables["roc_curves"], tables["auc"], title=f"ROC: {endpoint}", cohorts=cohorts),
    snakemake.output.roc,
)
save_figure(
    calibration_figure(
        tables["calibration_curves"],
        tables["calibration"],
        loess=tables["calibration_loess"],
        title=f"Calibration: {endpoint}",
        cohorts=cohorts,
    ),
    snakemake.output.calibration,
)
save_figure(
    decision_curve_figure(
        tables["decision_curves"], title=f"Decision curves: {endpoint}", cohorts=cohorts
    ),
    snakemake.output.decision,
)
flow = pd.read_csv(snakemake.input.flow, sep="\t", keep_default_na=False)
save_figure(cohort_flow_figure(flow, title=f"Cohort flow: {endpoint}"), snakemake.output.flow)
log.info("cross-validation figures of %s (%s)", endpoint, cohorts)
