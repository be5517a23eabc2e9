"""Fit every response model of one endpoint on the training split; write models and predictions."""

import json

import joblib
import pandas as pd

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.models.fit import (
    describe_all,
    fit_all,
    odds_ratio_tables,
    predict_all,
    selected_features_table,
    thresholds_table,
)
from hccrad.models.inputs import deep_score_table, with_endpoint, without_exclusions
from hccrad.models.settings import model_settings

log = log_to(snakemake.log[0])
endpoint = snakemake.wildcards.endpoint
settings = model_settings(snakemake.params.models)
sheet = read_sheet(snakemake.input.sheet)
exclusions = read_patients(snakemake.input.exclusions)
sheet = without_exclusions(sheet, exclusions)
sheet, lacking = with_endpoint(sheet, endpoint)
if lacking:
    log.info("%d patient(s) without %s leave its models: %s", len(lacking), endpoint, lacking)
# A response cohort without images has no feature tables: the clinical model only.
features = {}
if hasattr(snakemake.input, "radiomics"):
    features["radiomics"] = pd.read_parquet(snakemake.input.radiomics)
if hasattr(snakemake.input, "deep"):
    features["deep"] = deep_score_table(
        read_patients(snakemake.input.deep),
        sheet,
        settings.dltr_score_column,
    )
models = fit_all(sheet, features, endpoint, snakemake.params.seed, snakemake.params.models)
joblib.dump(models, snakemake.output.models)
predict_all(models, sheet, features).to_csv(
    snakemake.output.predictions, sep="\t", index=False, float_format="%.6g"
)
thresholds_table(models).to_csv(snakemake.output.thresholds, sep="\t", index=False)
odds_ratio_tables(models["clinical"]).to_csv(
    snakemake.output.odds_ratios, sep="\t", index=False, float_format="%.6g"
)
selected = selected_features_table(models)
selected.to_csv(snakemake.output.features, sep="\t", index=False, float_format="%.6g")
with open(snakemake.output.described, "w") as handle:
    json.dump(describe_all(models), handle, indent=1, allow_nan=False, default=str)
log.info(
    "%s: %d models on %d training patients (%d excluded); clinical kept %s; %s",
    endpoint,
    len(models),
    len(models["clinical"].train_patients),
    len(exclusions),
    models["clinical"].estimator.selected_,
    selected.groupby("model")["feature"].size().to_dict(),
)
