"""Overlap metrics of network and threshold baseline, their summary, and the head's AUROC."""

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.imaging.batches import patient_folders
from hccrad.segment.config import segment_config
from hccrad.segment.evaluate import head_auroc, metrics_summary, patient_metrics, training_baseline

log = log_to(snakemake.log[0])
config = segment_config(snakemake.params.segment)
sheet = read_sheet(snakemake.input.sheet)
predictions = read_patients(snakemake.input.predictions)
# One folder per batch, its patients in its manifest (hccrad.imaging.batches).
folders = patient_folders(snakemake.input.prepared)
# The baseline's phase and side are chosen on the training patients alone.
baseline, candidates = training_baseline(folders, sheet, config.phases)
log.info("threshold baseline: %s\n%s", baseline, candidates)
metrics = patient_metrics(
    folders, sheet, predictions, snakemake.input.masks, baseline, config.phases
)
out = snakemake.output
metrics.to_csv(out.metrics, sep="\t", index=False, float_format="%.4f")
summary = metrics_summary(metrics)
summary.to_csv(out.summary, sep="\t", index=False, float_format="%.4f")
candidates.to_csv(out.baseline, sep="\t", index=False, float_format="%.4f")
auroc = head_auroc(predictions, sheet, config.endpoint, snakemake.params.alpha)
auroc.to_csv(out.auroc, sep="\t", index=False, float_format="%.4f")
log.info("tumour Dice:\n%s", summary[summary["structure"] == "tumour"].to_string())
log.info("head AUROC:\n%s", auroc.to_string())
