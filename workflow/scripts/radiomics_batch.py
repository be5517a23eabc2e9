"""PyRadiomics features of a batch of prepared patients, one worker process per patient."""

from hccrad.core.runlog import log_to
from hccrad.radiomics.batch import Extraction, radiomics_batch

log = log_to(snakemake.log[0])
radiomics_batch(
    snakemake.input.prepared,
    snakemake.params.patients,
    Extraction(
        snakemake.input.params,
        snakemake.params.radiomics,
        snakemake.params.spacing_mm,
        snakemake.params.on_error,
    ),
    snakemake.output[0],
    threads=snakemake.threads,
    log=log,
)
