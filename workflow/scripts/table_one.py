"""Table 1 of a cohort: clinical characteristics by split and centre, with P values."""

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.reporting.table_one import table_one

log = log_to(snakemake.log[0])
sheet = read_sheet(snakemake.input.sheet)
table = table_one(sheet)
table.to_csv(snakemake.output.tsv, sep="\t", lineterminator="\n")
log.info("Table 1 with %d rows", len(table))
