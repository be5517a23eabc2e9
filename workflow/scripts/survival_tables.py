"""Risk groups from each model's score (cutoff fixed on training), KM, log-rank, Cox, C-index."""

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.reporting.survival import stratify_survival, survival_settings

log = log_to(snakemake.log[0])
predictions = read_patients(snakemake.input.predictions, index=False)
sheet = read_sheet(snakemake.input.sheet)
settings = survival_settings(snakemake.params.survival)
tables = stratify_survival(predictions, sheet, snakemake.params.outcomes, settings)
for name, table in tables.items():
    table.to_csv(getattr(snakemake.output, name), sep="\t", index=False, float_format="%.6g")
for _, row in tables["logrank"].iterrows():
    log.info(
        "%s by %s in %s: log-rank P = %.3g %s",
        row["outcome"],
        row["model"],
        row["cohort"],
        row.get("p_value", float("nan")),
        row["note"],
    )
