"""PyRadiomics features of one prepared patient, every phase and region (or its exclusion)."""

from hccrad.core.runlog import log_to
from hccrad.radiomics.patient import radiomics_or_exclusion

log = log_to(snakemake.log[0])
result = radiomics_or_exclusion(
    snakemake.wildcards.patient,
    snakemake.input.prepared,
    snakemake.input.params,
    snakemake.params.radiomics,
    snakemake.params.spacing_mm,
    snakemake.params.on_error,
)
result.write(snakemake.output.features, snakemake.output.diagnostics, snakemake.output.exclusion)
if len(result.exclusion):
    record = result.exclusion.iloc[0]
    log.info("excluded at %s: %s: %s", record["step"], record["file"], record["reason"])
else:
    log.info("%d features", result.features.shape[1])
