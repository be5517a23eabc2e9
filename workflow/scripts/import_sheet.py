"""Import a cohort sheet: table + column map (+ downloaded images) -> sheet.tsv, exclusions."""

from pathlib import Path

import pandas as pd

from hccrad.cohort import write_table
from hccrad.runlog import log_to
from hccrad.sheet_import import check_sheet, cohort_sheet, load_column_map, read_table

log = log_to(snakemake.log[0])
spec = snakemake.params.cohort
column_map = load_column_map(snakemake.input.column_map)
table = read_table(snakemake.input.table, column_map.get("sheet_name", 0))
manifest, skipped = (
    (
        pd.read_csv(snakemake.input.manifest, sep="\t"),
        pd.read_csv(snakemake.input.manifest_exclusions, sep="\t"),
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
