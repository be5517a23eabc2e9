"""Kaplan-Meier figure of one model's risk groups for one outcome, one panel per cohort."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.style import save_figure
from hccrad.figures.survival import km_figure
from hccrad.reporting.evaluation import evaluation_cohorts

log = log_to(snakemake.log[0])
outcome, model = snakemake.wildcards.outcome, snakemake.wildcards.model
endpoint = snakemake.wildcards.endpoint


def rows(path: str) -> pd.DataFrame:
    """This outcome's and model's rows of a survival table."""
    table = pd.read_csv(
        path, sep="\t", keep_default_na=False, na_values=[""], dtype={"patient_id": str}
    )
    return table[(table["outcome"] == outcome) & (table["model"] == model)]


groups = rows(snakemake.input.risk_groups)
patients = groups.set_index("patient_id")
# One row per patient and cohort it belongs to (external patients are also in their centre).
members = pd.concat(
    [
        patients.loc[index].assign(cohort=cohort)
        for cohort, index in evaluation_cohorts(patients).items()
    ]
)
figure = km_figure(
    rows(snakemake.input.km_curves),
    rows(snakemake.input.numbers_at_risk),
    rows(snakemake.input.logrank).fillna({"note": ""}),
    members,
    title=f"{outcome.upper()} by {model} risk group ({endpoint} score)",
    outcome=outcome,
)
save_figure(figure, snakemake.output.png)
log.info("KM of %s by %s (%s)", outcome, model, endpoint)
