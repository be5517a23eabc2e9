"""One outcome's survival figures: the Cox forest plot and each figure model's Kaplan-Meier."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.figures.style import save_figure
from hccrad.figures.survival import forest_figure, km_figure
from hccrad.reporting.evaluation import evaluation_cohorts

log = log_to(snakemake.log[0])
outcome, endpoint = snakemake.wildcards.outcome, snakemake.wildcards.endpoint
models = snakemake.params.models


def outcome_rows(path: str) -> pd.DataFrame:
    """This outcome's rows of a survival table."""
    table = pd.read_csv(
        path, sep="\t", keep_default_na=False, na_values=[""], dtype={"patient_id": str}
    )
    return table[table["outcome"] == outcome]


cox = outcome_rows(snakemake.input.cox).fillna({"note": ""})
figure = forest_figure(
    cox, title=f"{outcome.upper()}: multivariable Cox ({endpoint} scores)", models=models
)
save_figure(figure, snakemake.output.forest)
log.info("forest plot of %s (%s)", outcome, endpoint)

groups = outcome_rows(snakemake.input.risk_groups)
curves = outcome_rows(snakemake.input.km_curves)
at_risk = outcome_rows(snakemake.input.numbers_at_risk)
logrank = outcome_rows(snakemake.input.logrank).fillna({"note": ""})
for model, png in zip(models, snakemake.output.km, strict=True):
    patients = groups[groups["model"] == model].set_index("patient_id")
    # One row per patient and cohort it belongs to (external patients are also in their centre).
    members = pd.concat(
        [
            patients.loc[index].assign(cohort=cohort)
            for cohort, index in evaluation_cohorts(patients).items()
        ]
    )
    figure = km_figure(
        curves[curves["model"] == model],
        at_risk[at_risk["model"] == model],
        logrank[logrank["model"] == model],
        members,
        title=f"{outcome.upper()} by {model} risk group ({endpoint} score)",
        outcome=outcome,
    )
    save_figure(figure, png)
    log.info("KM of %s by %s (%s)", outcome, model, endpoint)
