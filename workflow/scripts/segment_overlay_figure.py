"""Predicted vs reference tumour contours for a few patients per centre."""

from hccrad.cohorts.sheet import read_patients
from hccrad.core.runlog import log_to
from hccrad.figures.segment import overlay_figure
from hccrad.figures.style import save_figure
from hccrad.imaging.batches import patient_folders
from hccrad.segment.evaluate import overlay_patients

log = log_to(snakemake.log[0])
metrics = read_patients(snakemake.input.metrics, index=False)
# One folder per batch, its patients in its manifest (hccrad.imaging.batches).
folders = patient_folders(snakemake.input.prepared)
patients = overlay_patients(metrics, snakemake.params.per_centre)
figure = overlay_figure(patients, folders, snakemake.input.masks, metrics, snakemake.params.phase)
save_figure(figure, snakemake.output.png)
log.info("overlays of %s", patients)
