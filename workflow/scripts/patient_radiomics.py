"""PyRadiomics features of one prepared patient, every phase and region."""

from hccrad.preprocess import patient_radiomics
from hccrad.runlog import log_to

log = log_to(snakemake.log[0])
features, diagnostics = patient_radiomics(
    snakemake.wildcards.patient,
    snakemake.input.prepared,
    snakemake.input.params,
    snakemake.params.radiomics,
    snakemake.params.spacing_mm,
)
features.to_parquet(snakemake.output.features)
diagnostics.to_csv(snakemake.output.diagnostics, sep="\t", index=False)
log.info("%d features", features.shape[1])
