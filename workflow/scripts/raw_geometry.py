"""Gather every prepared patient's raw acquisition (spacing, intensities, tumour volume)."""

from hccrad.core.runlog import log_to
from hccrad.imaging.geometry import gather_raw_geometry

log = log_to(snakemake.log[0])
table = gather_raw_geometry(snakemake.input)
table.to_csv(snakemake.output[0], sep="\t", index=False, float_format="%.6g")
log.info("%d patients, %d rows", table["patient_id"].nunique(), len(table))
