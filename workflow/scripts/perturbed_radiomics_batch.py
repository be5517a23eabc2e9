"""Features of a batch of robustness patients under each mask perturbation (for the ICC)."""

from hccrad.core.runlog import log_to
from hccrad.imaging.batches import patient_files, patient_folders
from hccrad.radiomics.batch import Extraction, perturbed_batch

log = log_to(snakemake.log[0])
params = snakemake.params
# Each patient's radiomics record, in the batches that hold the batch's patients.
records = {
    path.name.removesuffix("_exclusion.tsv"): path
    for path in patient_files(snakemake.input.records, "_exclusion.tsv")
}
perturbed_batch(
    patient_folders(snakemake.input.prepared),
    records,
    params.patients,
    Extraction(snakemake.input.params, params.radiomics, params.spacing_mm, params.on_error),
    params.seed,
    snakemake.output[0],
    threads=snakemake.threads,
    log=log,
)
