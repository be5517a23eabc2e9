"""Tables of one endpoint's repeated cross-validation: AUC, comparisons, calibration, survival."""

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.reporting.crossval import crossval_tables
from hccrad.reporting.evaluation import evaluation_settings
from hccrad.reporting.survival import survival_settings

log = log_to(snakemake.log[0])
oof = read_patients(snakemake.input.oof, index=False)
tables = crossval_tables(
    oof,
    read_sheet(snakemake.input.sheet),
    snakemake.params.outcomes,
    evaluation_settings(snakemake.params.evaluation),
    snakemake.params.seed,
    survival_settings(snakemake.params.survival).risk_table_times,
    endpoint=snakemake.wildcards.endpoint,
)
for name, table in tables.items():
    table.to_csv(getattr(snakemake.output, name), sep="\t", index=False, float_format="%.6g")
for row in tables["auc"].itertuples():
    log.info(
        "%s %s: mean AUC %.3f (%.3f-%.3f over %d repeats)",
        row.labels,
        row.model,
        row.auc_mean,
        row.ci_low,
        row.ci_high,
        row.n_repeats,
    )
