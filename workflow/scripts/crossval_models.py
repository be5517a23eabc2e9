"""Repeated stratified CV of every model of one endpoint: out-of-fold predictions, cohort flow."""

import pandas as pd

from hccrad.cohorts.feature_table import stacked_exclusions
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
# The folds run on the threads the job was granted (crossval.n_jobs, or fewer with --cores).
settings = crossval_settings({**snakemake.params.crossval, "n_jobs": snakemake.threads})
sheet = read_sheet(snakemake.input.sheet)
cohort = snakemake.params.cohort
exclusions = stacked_exclusions(
    [read_patients(path, index=False) for path in snakemake.input.exclusions], cohort
)
# Patients of the source table: the sheet's and those its import left out.
source = list(sheet.index.union(exclusions["patient_id"][exclusions["step"] == "import_sheet"]))
sheet = sheet.drop(index=sheet.index.intersection(exclusions["patient_id"]))
features = None
if hasattr(snakemake.input, "features"):
    features = pd.read_parquet(snakemake.input.features).loc[sheet.index]
table, outcome, lacking = crossval_inputs(sheet, features, endpoint)
# Patients without the endpoint are scored (never fitted) for the survival of risk groups.
unlabelled = table.drop(index=outcome.index)
steps = [(step, rows) for step, rows in exclusions.groupby("step", sort=False)]
steps.append((f"endpoint {endpoint}", lacking))
columns = {RADIOMICS: list(features.columns)} if features is not None else {}
seed = snakemake.params.seed
estimators = crossval_estimators(
    columns, model_settings(snakemake.params.models), settings, seed, endpoint
)
oof = crossval_predictions(table, outcome, estimators, settings, seed, endpoint, unlabelled)
oof.assign(endpoint=endpoint).to_csv(
    snakemake.output.oof, sep="\t", index=False, float_format="%.6g"
)
fold_table(outcome, settings, seed, endpoint).to_csv(snakemake.output.folds, sep="\t", index=False)
flow = flow_table(source, steps)
flow.loc[len(flow)] = ["analysed", len(outcome), 0, len(outcome), ""]
# The survival of out-of-fold risk groups also scores the patients without the endpoint.
flow.loc[len(flow)] = [
    "survival of risk groups",
    len(outcome),
    -len(unlabelled),
    len(table),
    f"analysed, and {len(unlabelled)} without {endpoint} scored by models they were not fitted on",
]
flow.to_csv(snakemake.output.flow, sep="\t", index=False)
every = stacked_exclusions([exclusions, lacking.assign(step=f"endpoint {endpoint}")], cohort)
write_table(every.set_index("patient_id"), snakemake.output.exclusions)
log.info(
    "%s: %d patients (%d with %s = 1; %d more scored for survival only), %d models, "
    "%d x %d folds; flow:\n%s",
    endpoint,
    len(outcome),
    int(outcome.sum()),
    endpoint,
    len(unlabelled),
    len(estimators),
    settings.repeats,
    settings.folds,
    flow.to_string(index=False),
)
