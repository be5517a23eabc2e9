"""Discrimination, thresholds, calibration and decision curves of one endpoint's models."""

import pandas as pd

from hccrad.cohorts.sheet import read_patients
from hccrad.core.runlog import log_to
from hccrad.reporting.evaluation import evaluate_predictions, evaluation_settings

log = log_to(snakemake.log[0])
predictions = read_patients(snakemake.input.predictions, index=False)
thresholds = pd.read_csv(snakemake.input.thresholds, sep="\t")
tables = evaluate_predictions(
    predictions,
    dict(zip(thresholds["model"], thresholds["youden_threshold"], strict=True)),
    evaluation_settings(snakemake.params.evaluation),
    seed=snakemake.params.seed,
)
for name, table in tables.items():
    table.to_csv(getattr(snakemake.output, name), sep="\t", index=False, float_format="%.6g")
for _, row in tables["auc"].iterrows():
    if row["note"]:
        log.warning("AUC of %s in %s not computed: %s", row["model"], row["cohort"], row["note"])
    else:
        log.info("AUC %s %s: %.3f", row["model"], row["cohort"], row["auc"])
