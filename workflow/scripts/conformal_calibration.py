"""Out-of-fold training scores of every model and the conformal calibration built on them."""

import json

import pandas as pd

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.models.conformal import fit_conformal, held_out_scores
from hccrad.models.inputs import deep_score_table, without_exclusions
from hccrad.models.settings import model_settings

log = log_to(snakemake.log[0])
endpoint = snakemake.wildcards.endpoint
settings = model_settings(snakemake.params.models)
conformal = snakemake.params.conformal
# The same inputs as fit_models: the training rows of these tables are all that is used.
sheet = without_exclusions(
    read_sheet(snakemake.input.sheet), read_patients(snakemake.input.exclusions)
)
features = {}
if hasattr(snakemake.input, "radiomics"):
    features["radiomics"] = pd.read_parquet(snakemake.input.radiomics)
if hasattr(snakemake.input, "deep"):
    features["deep"] = deep_score_table(
        read_patients(snakemake.input.deep), sheet, settings.dltr_score_column
    )
held_out = held_out_scores(
    sheet,
    features,
    endpoint,
    snakemake.params.seed,
    snakemake.params.models,
    folds=conformal["folds"],
)
held_out.to_csv(snakemake.output.held_out, sep="\t", index=False, float_format="%.6g")
calibration = fit_conformal(held_out, conformal["alpha"])
with open(snakemake.output.conformal, "w") as handle:
    json.dump(calibration, handle, indent=1, allow_nan=False)
log.info(
    "%s: %d models calibrated on %d held-out training patients (%d folds), alpha %g",
    endpoint,
    len(calibration["models"]),
    held_out["patient_id"].nunique(),
    conformal["folds"],
    conformal["alpha"],
)
