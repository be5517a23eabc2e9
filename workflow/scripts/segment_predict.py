"""Predict the cohort's patients: masks on the prepared grid and the head's scores."""

from pathlib import Path

from hccrad.cohorts.sheet import read_sheet, write_table
from hccrad.core.runlog import log_to
from hccrad.core.splits import TRAIN
from hccrad.core.torch_runtime import set_torch_threads
from hccrad.imaging.batches import patient_folders
from hccrad.segment.predict import predict_cohort
from hccrad.segment.train import load_segmenter

log = log_to(snakemake.log[0])
set_torch_threads(snakemake.params.torch_threads, snakemake.threads)
model = load_segmenter(snakemake.input.weights, snakemake.input.model)
sheet = read_sheet(snakemake.input.sheet)
# One folder per batch, its patients in its manifest (hccrad.imaging.batches).
folders = patient_folders(snakemake.input.prepared)
Path(snakemake.output.masks).mkdir(parents=True, exist_ok=True)
# The network's own training patients (segment.predict: held_out) get a row, not a mask.
training = set(sheet.index[sheet["split"] == TRAIN]) if snakemake.params.skip_training else set()
predictions = predict_cohort(model, folders, sheet, snakemake.output.masks, log, training)
write_table(predictions, snakemake.output.predictions)
log.info("%s", predictions["status"].value_counts().to_dict())
