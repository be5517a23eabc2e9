"""Import a cohort sheet: table + column map (+ downloaded images) -> sheet.tsv, exclusions."""

from pathlib import Path

from hccrad.cohorts.column_map import load_column_map
from hccrad.cohorts.sheet import read_patients, write_table
from hccrad.cohorts.sheet_import import check_sheet, cohort_sheet
from hccrad.cohorts.tables import read_mapped_table
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
spec = snakemake.params.cohort
column_map = load_column_map(snakemake.input.column_map)
table = read_mapped_table(snakemake.input.table, column_map)
manifest, skipped = (
    (
        read_patients(snakemake.input.manifest, index=False),
        read_patients(snakemake.input.manifest_exclusions, index=False),
    )
    if spec["images"] == "idc"
    else (None, None)
)
sheet, exclusions = cohort_sheet(
    table,
    column_map,
    spec,
    snakemake.params.seed,
    snakemake.input.table,
    Path(snakemake.output.sheet).parent,
    manifest,
    skipped,
)
check_sheet(sheet, snakemake.input.schema, snakemake.input.table)
write_table(sheet, snakemake.output.sheet)
exclusions.to_csv(snakemake.output.exclusions, sep="\t", index=False)
log.info("sheet of %d patients; %d excluded", len(sheet), len(exclusions))
