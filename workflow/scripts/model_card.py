"""The model card (markdown) of one endpoint, from the models', evaluation and survival tables."""

import json
from pathlib import Path

import pandas as pd

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.models.inputs import without_exclusions
from hccrad.reporting.conformal import domain_summary
from hccrad.reporting.model_card import model_card

log = log_to(snakemake.log[0])


def table(path: str) -> pd.DataFrame:
    """A TSV with empty cells as missing and 'NA'-like strings kept."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""]).fillna({"note": ""})


exclusions = read_patients(snakemake.input.exclusions)
sheet = without_exclusions(read_sheet(snakemake.input.sheet), exclusions)
card = model_card(
    endpoint=snakemake.wildcards.endpoint,
    cohort=snakemake.params.cohort,
    sheet=sheet,
    exclusions=exclusions,
    described=json.loads(Path(snakemake.input.described).read_text()),
    selected_features=table(snakemake.input.features),
    auc=table(snakemake.input.auc),
    calibration=table(snakemake.input.calibration),
    threshold_metrics=table(snakemake.input.threshold_metrics),
    delong=table(snakemake.input.delong),
    logrank=table(snakemake.input.logrank),
    cox=table(snakemake.input.cox),
    settings=snakemake.params.settings,
    seed=snakemake.params.seed,
    survival_models=snakemake.params.survival_models,
    conformal_coverage=table(snakemake.input.conformal_coverage),
    domain_summary=(
        domain_summary(read_patients(snakemake.input.domain_flags, index=False), sheet)
        if hasattr(snakemake.input, "domain_flags")
        else None
    ),
)
Path(snakemake.output[0]).write_text(card)
log.info("model card of %s: %d lines", snakemake.wildcards.endpoint, card.count("\n"))
