"""Train the multi-task U-Net++ (segmentation + endpoint head) on the training patients only."""

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.core.torch_runtime import set_torch_threads
from hccrad.imaging.batches import patient_folders
from hccrad.segment.config import segment_config
from hccrad.segment.train import save_segmenter, train_segmenter, training_volumes

log = log_to(snakemake.log[0])
set_torch_threads(snakemake.params.segment["threads"], snakemake.threads)
config = segment_config(snakemake.params.segment)
sheet = read_sheet(snakemake.input.sheet)
# The rule's inputs are the training patients' batches; only their folders are read, in sheet
# order: test volumes are never read here.
batches = patient_folders(snakemake.input.prepared)
train = [batches[patient] for patient in sheet.index[sheet["split"] == "train"]]
volumes, outcomes, excluded = training_volumes(train, sheet, config)
if excluded:
    log.warning("left out (excluded in preparation, see exclusions.tsv): %s", excluded)
log.info("%d training patients, phases %s", len(volumes), list(config.phases))
model = train_segmenter(volumes, outcomes, config, snakemake.params.seed, log)
save_segmenter(model, snakemake.output.weights, snakemake.output.model)
model.history.to_csv(snakemake.output.history, sep="\t", index=False, float_format="%.5f")
