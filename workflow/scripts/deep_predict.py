"""DLTR score and penultimate-layer deep features of every patient of a cohort."""

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.core.torch_runtime import set_torch_threads
from hccrad.deep import dltr
from hccrad.deep.networks import load_model
from hccrad.deep.predict import deep_features, predict_ensemble

log = log_to(snakemake.log[0])
set_torch_threads(snakemake.params.deep["threads"], snakemake.threads)
config = dltr.deep_config(snakemake.params.deep, snakemake.params.seed)
model = load_model(snakemake.input.weights, snakemake.input.model, device=config.device)
# The DLTR score: the refit alone, or with the selection's fold networks (deep.ensemble).
members = [model] + [
    load_model(weights, description, device=config.device)
    for weights, description in zip(
        snakemake.input.get("fold_weights", []), snakemake.input.get("fold_models", []), strict=True
    )
]
sheet = read_sheet(snakemake.input.sheet)
crops, excluded = dltr.cohort_crops(
    dltr.prepared_folders(snakemake.input.prepared), list(sheet.index), config
)
if excluded:
    log.warning("no score for patients excluded in preparation (exclusions.tsv): %s", excluded)
scores = predict_ensemble(members, crops, device=config.device)
features = deep_features(model, crops, device=config.device)
out_of_fold = (
    dltr.read_out_of_fold(snakemake.input.out_of_fold) if snakemake.input.out_of_fold else None
)
table = dltr.score_table(sheet, scores, out_of_fold, source=config.ensemble)
table.to_csv(snakemake.output.scores, sep="\t", index=False, float_format="%.6f")
features.to_parquet(snakemake.output.features)
log.info(
    "%d patients scored by %d network(s) (%s), %d deep features",
    len(table),
    len(members),
    table["score_source"].value_counts().to_dict(),
    features.shape[1],
)
