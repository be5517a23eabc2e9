"""Prepare a batch of patients and extract their radiomics, one worker process per patient."""

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.figures.imaging import write_qc_png
from hccrad.radiomics.batch import Extraction, prepare_batch

log = log_to(snakemake.log[0])
prepare_batch(
    read_sheet(snakemake.input.sheet),
    snakemake.params.patients,
    snakemake.params.imaging,
    snakemake.params.modality,
    snakemake.output.prepared,
    masks=snakemake.params.masks,
    draw_qc=write_qc_png,
    extraction=Extraction(
        snakemake.input.params,
        snakemake.params.radiomics,
        snakemake.params.spacing_mm,
        snakemake.params.on_error,
    ),
    radiomics=snakemake.output.radiomics,
    threads=snakemake.threads,
    log=log,
)
