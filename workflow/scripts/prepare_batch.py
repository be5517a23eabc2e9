"""Prepare a batch of patients (a liver-only cohort), one worker process per patient."""

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.figures.imaging import write_qc_png
from hccrad.radiomics.batch import prepare_batch

log = log_to(snakemake.log[0])
prepare_batch(
    read_sheet(snakemake.input.sheet),
    snakemake.params.patients,
    snakemake.params.imaging,
    snakemake.params.modality,
    snakemake.output[0],
    masks=snakemake.params.masks,
    draw_qc=write_qc_png,
    threads=snakemake.threads,
    log=log,
)
