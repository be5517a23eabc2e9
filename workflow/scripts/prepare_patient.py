"""Prepare one patient: check, resample, normalise, crop and draw (or record its exclusion)."""

from hccrad.cohort import read_sheet
from hccrad.preprocess import prepare_patient
from hccrad.runlog import log_to

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
)
log.info("patient %s: %s", patient, exclusion.reason if exclusion else "prepared")
