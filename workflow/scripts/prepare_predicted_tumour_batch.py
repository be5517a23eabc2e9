"""Prepare a batch of liver-only patients again with the segmentation model's tumour."""

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.figures.imaging import write_qc_png
from hccrad.imaging.batches import patient_folders
from hccrad.radiomics.batch import predicted_tumour_batch

log = log_to(snakemake.log[0])
predicted_tumour_batch(
    read_sheet(snakemake.input.sheet),
    patient_folders([snakemake.input.prepared]),
    read_patients(snakemake.input.predictions),
    snakemake.input.masks,
    snakemake.params.patients,
    snakemake.params.imaging,
    snakemake.params.modality,
    snakemake.output[0],
    draw_qc=write_qc_png,
    threads=snakemake.threads,
    log=log,
)
