"""Features of one training patient under each mask perturbation (for the ICC)."""

from hccrad.core.runlog import log_to
from hccrad.radiomics.patient import patient_perturbed_radiomics

log = log_to(snakemake.log[0])
table = patient_perturbed_radiomics(
    snakemake.wildcards.patient,
    snakemake.input.prepared,
    snakemake.input.params,
    snakemake.params.radiomics,
    snakemake.params.spacing_mm,
    snakemake.params.seed,
    exclusion=snakemake.input.exclusion,
    on_error=snakemake.params.on_error,
)
table.to_parquet(snakemake.output[0])
log.info("perturbations: %s", ", ".join(table["perturbation"]) or "none (patient excluded)")
