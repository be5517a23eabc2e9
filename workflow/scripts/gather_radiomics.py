"""Gather per-patient radiomics into the cohort's features table, diagnostics and exclusions."""

from hccrad.core.runlog import log_to
from hccrad.imaging.batches import patient_files
from hccrad.radiomics.patient import gather_radiomics

log = log_to(snakemake.log[0])
# The batch folders in batch order, each patient's files in its batch's order: the cohort's.
batches = list(snakemake.input)
# Each patient's record: its preparation's exclusion carried over, or its extraction's.
features, diagnostics, exclusions = gather_radiomics(
    patient_files(batches, ".parquet"),
    patient_files(batches, "_diagnostics.tsv"),
    patient_files(batches, "_exclusion.tsv"),
    snakemake.wildcards.cohort,
)
features.to_parquet(snakemake.output.features)
diagnostics.to_csv(snakemake.output.diagnostics, sep="\t", index=False)
exclusions.to_csv(snakemake.output.exclusions, sep="\t")
log.info("%d patients x %d features; %d excluded", *features.shape, len(exclusions))
