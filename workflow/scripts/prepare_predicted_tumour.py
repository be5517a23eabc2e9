"""Prepare a liver-only patient again with the segmentation model's tumour (or exclude it)."""

from pathlib import Path

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.figures.imaging import write_qc_png
from hccrad.imaging.prepare import prepare_with_predicted_tumour
from hccrad.imaging.prepared import predicted_mask_path, tumour_predicted

log = log_to(snakemake.log[0])
patient = snakemake.wildcards.patient
predictions = read_patients(snakemake.input.predictions)
exclusion = prepare_with_predicted_tumour(
    patient,
    read_sheet(snakemake.input.sheet).loc[patient],
    snakemake.input.prepared,
    predicted_mask_path(snakemake.input.masks, patient),
    tumour_predicted(predictions, patient),
    snakemake.params.imaging,
    snakemake.params.modality,
    Path(snakemake.output[0]),
    draw_qc=write_qc_png,
)
log.info("patient %s: %s", patient, exclusion.reason if exclusion else "prepared")
