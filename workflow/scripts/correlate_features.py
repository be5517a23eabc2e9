"""Selected deep features (and DLTR score, radiomics) x genes: correlations and the gene list."""

import pandas as pd

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.models.inputs import training_outcome
from hccrad.radiogenomics.correlate import correlate
from hccrad.radiogenomics.expression import read_expression
from hccrad.radiogenomics.gene_list import correlation_summary, gene_list, long_table
from hccrad.radiogenomics.imaging_features import assemble_imaging

log = log_to(snakemake.log[0])
settings = snakemake.params.settings
features_cfg, correlation_cfg = settings["features"], settings["correlation"]
list_cfg = settings["gene_list"]
inputs = snakemake.input
expression = read_expression(inputs.vst)
symbols = pd.read_csv(inputs.genes, sep="\t", index_col="gene_id")["symbol"]
deep_mode = features_cfg["deep"]
deep = train_deep = outcome = None
if deep_mode != "none":
    deep = pd.read_parquet(inputs.deep)
    train_deep = pd.read_parquet(inputs.train_deep)
    outcome = training_outcome(read_sheet(inputs.train_sheet), settings["endpoint"])
scores = read_sheet(inputs.scores)["dltr_score"] if features_cfg["include_dltr_score"] else None
radiomics = pd.read_parquet(inputs.radiomics) if features_cfg["include_radiomics"] else None
imaging = assemble_imaging(
    read_sheet(inputs.sheet).index,
    expression.columns,
    deep=deep,
    train_deep=train_deep,
    train_outcome=outcome,
    deep_selection=deep_mode,
    top_k=features_cfg["top_k"],
    dltr_score=scores,
    radiomics=radiomics,
    min_patients=settings["min_matched_patients"],
    cohort=f"cohort {snakemake.params.cohort!r}",
)
features = imaging.matrix
expression = expression.loc[:, features.columns]
result = correlate(
    features,
    expression,
    method=correlation_cfg["method"],
    n_permutations=correlation_cfg["permutation_fdr"],
    seed=snakemake.params.seed,
    n_threads=snakemake.threads,
    progress=False,
)
features.T.to_csv(snakemake.output.features, sep="\t", float_format="%.6g")
imaging.selection.to_csv(snakemake.output.selection, sep="\t", index=False, float_format="%.6g")
imaging.patients.to_csv(snakemake.output.patients, sep="\t")
table_max_p = correlation_cfg["table_max_p"]
if table_max_p is not None and settings["enrichment"]["ranking"] == "dltr_score":
    raise ValueError(
        "radiogenomics.enrichment.ranking 'dltr_score' reads every gene's rho with the DLTR "
        "score from correlations.parquet: set radiogenomics.correlation.table_max_p: null"
    )
long_table(result, symbols, max_p=table_max_p).to_parquet(
    snakemake.output.correlations, index=False
)
rule_settings = {key: list_cfg[key] for key in ("p_threshold", "fdr_threshold", "fdr_scope")}
genes = gene_list(result, symbols, **rule_settings)
genes.to_csv(snakemake.output.gene_list, sep="\t", index=False, float_format="%.6g")
summary = correlation_summary(
    result,
    features,
    expression,
    null_permutations=correlation_cfg["null_permutations"],
    seed=snakemake.params.seed,
    **rule_settings,
)
summary.to_csv(snakemake.output.summary, sep="\t", index=False, float_format="%.6g")
overall = summary[summary["feature"] == "any"].set_index("rule")
log.info(
    "%d features x %d genes x %d patients; genes listed: %d by P < %g (chance %.0f), "
    "%d by FDR < %g (chance %.1f)",
    *result.rho.shape,
    result.n_samples,
    overall.at["p_rule", "n_genes"],
    list_cfg["p_threshold"],
    overall.at["p_rule", "n_genes_chance"],
    overall.at["fdr_rule", "n_genes"],
    list_cfg["fdr_threshold"],
    overall.at["fdr_rule", "n_genes_chance"],
)
