"""Gather a simulated cohort's sheet (images, mask, clinical, endpoints) and validate it."""

from pathlib import Path

import pandas as pd

from hccrad.cohorts.phantom import PHASES
from hccrad.cohorts.sheet import read_sheet, validate_sheet, write_table
from hccrad.cohorts.simulate import attach_image_paths
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
cohort_cfg = snakemake.params.cohort
patients = read_sheet(snakemake.input.patients)
cohort_dir = Path(snakemake.output.sheet).parent
sheet = attach_image_paths(
    patients, cohort_dir, cohort_cfg["n_shards"], PHASES[cohort_cfg["modality"]]
)
validate_sheet(sheet, snakemake.input.schema, snakemake.output.sheet)
write_table(sheet, snakemake.output.sheet)
lesions = pd.concat([read_sheet(path) for path in snakemake.input.lesions]).loc[sheet.index]
write_table(lesions, snakemake.output.lesions)
log.info("sheet of %d patients validated", len(sheet))
