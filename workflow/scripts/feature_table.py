"""Check a cohort's own feature table against its sheet: features, exclusions, column report."""

from hccrad.cohorts.feature_table import check_features, read_feature_table
from hccrad.cohorts.sheet import read_sheet, write_table
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
spec = snakemake.params.spec
sheet = read_sheet(snakemake.input.sheet)
table = read_feature_table(snakemake.input.table, spec.get("id_column", "patient_id"))
checked = check_features(table, sheet.index, snakemake.wildcards.cohort, snakemake.input.table)
checked.features.to_parquet(snakemake.output.features)
write_table(checked.exclusions.set_index("patient_id"), snakemake.output.exclusions)
checked.columns.to_csv(snakemake.output.columns, sep="\t", index=False)
dropped = checked.columns[checked.columns["status"] == "dropped"]
log.info(
    "%s: %d patients x %d features kept; %d patient(s) excluded, %d column(s) dropped",
    snakemake.input.table,
    *checked.features.shape,
    len(checked.exclusions),
    len(dropped),
)
for row in dropped.itertuples():
    log.warning("column %s dropped: %s", row.column, row.reason)
