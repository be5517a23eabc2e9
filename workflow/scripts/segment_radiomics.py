"""Radiomic features from the predicted masks, every patient in this one job."""

from hccrad.cohorts.sheet import read_patients
from hccrad.core.runlog import log_to
from hccrad.imaging.batches import patient_folders
from hccrad.segment.evaluate import auto_radiomics

log = log_to(snakemake.log[0])
predictions = read_patients(snakemake.input.predictions)
# One folder per batch, its patients in its manifest (hccrad.imaging.batches).
folders = patient_folders(snakemake.input.prepared)
features, left_out = auto_radiomics(
    folders,
    predictions,
    snakemake.input.masks,
    snakemake.input.params,
    snakemake.params.radiomics,
    snakemake.params.spacing_mm,
)
features.to_parquet(snakemake.output.features)
left_out.to_csv(snakemake.output.left_out, sep="\t", index=False)
log.info("%d patients with features; left out: %s", len(features), left_out.to_dict("records"))
