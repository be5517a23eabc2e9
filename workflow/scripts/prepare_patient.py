"""Prepare one patient: check, resample, normalise, crop and draw (or record its exclusion)."""

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.figures.imaging import write_qc_png
from hccrad.imaging.prepare import prepare_patient

log = log_to(snakemake.log[0])
patient = snakemake.wildcards.patient
row = read_sheet(snakemake.input.sheet).loc[patient]
exclusion = prepare_patient(
    patient,
    row,
    snakemake.params.imaging,
    snakemake.params.modality,
    snakemake.output[0],
    masks=snakemake.params.masks,
    draw_qc=write_qc_png,
)
log.info("patient %s: %s", patient, exclusion.reason if exclusion else "prepared")
