"""ROC, calibration and decision-curve figures of one endpoint's models, one panel per cohort."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.models import calibration_figure, decision_curve_figure, roc_figure
from hccrad.figures.style import save_figure

log = log_to(snakemake.log[0])
endpoint = snakemake.wildcards.endpoint
auc = pd.read_csv(snakemake.input.auc, sep="\t", keep_default_na=False, na_values=[""]).fillna(
    {"note": ""}
)
cohorts = list(dict.fromkeys(auc["cohort"]))
roc = pd.read_csv(snakemake.input.roc_curves, sep="\t")
save_figure(roc_figure(roc, auc, title=f"ROC: {endpoint}", cohorts=cohorts), snakemake.output.roc)
calibration = pd.read_csv(
    snakemake.input.calibration, sep="\t", keep_default_na=False, na_values=[""]
)
curves = pd.read_csv(snakemake.input.calibration_curves, sep="\t")
loess = pd.read_csv(snakemake.input.calibration_loess, sep="\t")
save_figure(
    calibration_figure(
        curves,
        calibration.fillna({"note": ""}),
        loess=loess,
        title=f"Calibration: {endpoint}",
        cohorts=cohorts,
    ),
    snakemake.output.calibration,
)
decision = pd.read_csv(snakemake.input.decision_curves, sep="\t")
save_figure(
    decision_curve_figure(decision, title=f"Decision curves: {endpoint}", cohorts=cohorts),
    snakemake.output.decision,
)
log.info("figures of %s for cohorts %s", endpoint, cohorts)
