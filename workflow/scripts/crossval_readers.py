"""Reader sensitivity of one endpoint's cross-validation: kappa between readers, AUC per reader."""

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.reporting.crossval import reader_tables

log = log_to(snakemake.log[0])
tables = reader_tables(
    read_patients(snakemake.input.oof, index=False),
    read_sheet(snakemake.input.sheet),
    snakemake.params.readers,
    snakemake.params.seed,
)
tables["reader_agreement"].to_csv(
    snakemake.output.agreement, sep="\t", index=False, float_format="%.6g"
)
tables["reader_auc"].to_csv(snakemake.output.auc, sep="\t", index=False, float_format="%.6g")
for row in tables["reader_agreement"].itertuples():
    log.info("kappa %s vs %s: %.3f (%.3f-%.3f), n = %d", *row[1:3], *row[5:8], row.n)
