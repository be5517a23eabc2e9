"""Repeated stratified CV of every model of one endpoint: out-of-fold predictions, cohort flow."""

import pandas as pd

from hccrad.cohorts.feature_table import combine_features
from hccrad.cohorts.sheet import read_patients, read_sheet, write_table
from hccrad.core.runlog import log_to
from hccrad.models.crossval import (
    crossval_estimators,
    crossval_inputs,
    crossval_predictions,
    crossval_settings,
    fold_table,
)
from hccrad.models.inputs import RADIOMICS
from hccrad.models.settings import model_settings
from hccrad.reporting.crossval import flow_table

log = log_to(snakemake.log[0])
endpoint = snakemake.wildcards.endpoint
inputs = snakemake.input
settings = crossval_settings(snakemake.params.crossval)
models = model_settings(snakemake.params.models)
sheet = read_sheet(inputs.sheet)


def exclusions_of(name):
    """An exclusions input as a table of patient_id and reason."""
    return read_patients(getattr(inputs, name), index=False)


# Steps in the order a patient meets them; the flow counts each patient at the first.
named = (
    ("sheet import", "sheet_exclusions"),
    ("image preparation and radiomics", "image_exclusions"),
    ("feature table", "byo_exclusions"),
)
steps = [(step, exclusions_of(name)) for step, name in named if hasattr(inputs, name)]
source = sorted(set(sheet.index).union(*(t["patient_id"] for s, t in steps if s == "sheet import")))
for _, table in steps:
    sheet = sheet.drop(index=sheet.index.intersection(table["patient_id"]))
extracted = pd.read_parquet(inputs.radiomics) if hasattr(inputs, "radiomics") else None
features = extracted
if hasattr(inputs, "byo"):
    mode = snakemake.params.feature_mode
    features, lacking = combine_features(pd.read_parquet(inputs.byo), extracted, mode)
    if mode == "add":
        lacking = pd.DataFrame({"patient_id": lacking, "reason": "no extracted radiomics"})
        steps.append(("feature table added to the radiomics", lacking))
        sheet = sheet.drop(index=sheet.index.intersection(lacking["patient_id"]))
if features is not None:
    features = features.loc[sheet.index]
table, outcome, lacking_endpoint = crossval_inputs(sheet, features, endpoint)
steps.append((f"endpoint {endpoint}", lacking_endpoint))
columns = {RADIOMICS: list(features.columns)} if features is not None else {}
estimators = crossval_estimators(columns, models, settings, snakemake.params.seed, endpoint)
oof = crossval_predictions(table, outcome, estimators, settings, snakemake.params.seed, endpoint)
oof.assign(endpoint=endpoint).to_csv(
    snakemake.output.oof, sep="\t", index=False, float_format="%.6g"
)
folds = fold_table(outcome, settings, snakemake.params.seed, endpoint)
folds.to_csv(snakemake.output.folds, sep="\t", index=False)
flow = flow_table(source, steps)
flow.loc[len(flow)] = ["analysed", len(outcome), 0, len(outcome), ""]
flow.to_csv(snakemake.output.flow, sep="\t", index=False)
every = pd.concat(
    [t[["patient_id", "reason"]].assign(step=step) for step, t in steps], ignore_index=True
)
write_table(
    every.drop_duplicates("patient_id").set_index("patient_id"), snakemake.output.exclusions
)
log.info(
    "%s: %d patients (%d with %s = 1), %d models, %d x %d folds; flow:\n%s",
    endpoint,
    len(outcome),
    int(outcome.sum()),
    endpoint,
    len(estimators),
    settings.repeats,
    settings.folds,
    flow.to_string(index=False),
)
