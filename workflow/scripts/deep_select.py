"""Architecture selection by CV on the training patients only, then the winner's refit: DLTR."""

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.core.torch_runtime import set_torch_threads
from hccrad.deep import dltr
from hccrad.deep.networks import save_model
from hccrad.deep.predict import warn_if_tumour_clipped
from hccrad.deep.select import select_and_refit

log = log_to(snakemake.log[0])
set_torch_threads(snakemake.params.deep["threads"], snakemake.threads)
endpoint = snakemake.wildcards.endpoint
config = dltr.deep_config(snakemake.params.deep, snakemake.params.seed, progress=True)
sheet = read_sheet(snakemake.input.sheet)
# The rule's inputs are the training patients' batches; only the training patients' crops are
# read (cohort_crops below): test crops are never read here.
folders = dltr.prepared_folders(snakemake.input.prepared)
crops, excluded = dltr.cohort_crops(folders, list(sheet.index[sheet["split"] == "train"]), config)
if excluded:
    log.warning("left out (excluded in preparation, see exclusions.tsv): %s", excluded)
train = dltr.training_sheet(sheet, excluded)
log.info("%s: %d training patients, device %s", endpoint, len(train), config.device)
warn_if_tumour_clipped(crops, config.intensity_clip)
selection = select_and_refit(train, crops, config, endpoint=endpoint)

out = snakemake.output
# Wall times go to the log, not the table: the table is a result and must not vary by run.
log.info("seconds per fold:\n%s", selection.table[["architecture", "fold", "seconds"]])
selection.table.drop(columns="seconds").to_csv(
    out.selection, sep="\t", index=False, float_format="%.4f"
)
selection.summary.to_csv(out.summary, sep="\t", index=False, float_format="%.4f")
save_model(selection.model, out.weights, out.model)
for network, weights, description in zip(
    selection.fold_models, out.fold_weights, out.fold_models, strict=True
):
    save_model(network, weights, description)
selection.model.history.to_csv(out.history, sep="\t", index=False, float_format="%.5f")
selection.out_of_fold.rename_axis("patient_id").to_frame().to_csv(
    out.out_of_fold, sep="\t", float_format="%.6f"
)
log.info("DLTR for %s: %s\n%s", endpoint, selection.winner, selection.summary.to_string())
