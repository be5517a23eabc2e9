"""DESeq2 between high and low DLTR-score patients of the radiogenomics cohort; volcano plot."""

import pandas as pd

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.models.inputs import training_outcome
from hccrad.radiogenomics.differential import differential_expression
from hccrad.radiogenomics.expression import read_expression
from hccrad.radiogenomics.gene_list import dltr_groups, training_cutoff

log = log_to(snakemake.log[0])
settings = snakemake.params.settings
de_cfg = settings["differential"]
counts = read_expression(snakemake.input.counts)
scores = read_sheet(snakemake.input.scores)["dltr_score"]
missing = counts.columns.difference(scores.index)
if len(missing):
    log.warning("no DLTR score for %d RNA-seq patients, left out: %s", len(missing), list(missing))
scores = scores.loc[counts.columns.intersection(scores.index)]
cutoff = None
if de_cfg["grouping"] == "training_cutoff":
    outcome = training_outcome(read_sheet(snakemake.input.train_sheet), settings["endpoint"])
    cutoff = training_cutoff(read_sheet(snakemake.input.train_scores), outcome)
groups = dltr_groups(scores, de_cfg["grouping"], cutoff)
groups.to_csv(snakemake.output.groups, sep="\t", float_format="%.6g")
table = differential_expression(
    counts.loc[:, groups.index],
    groups["group"],
    test_level="high",
    reference_level="low",
    alpha=de_cfg["alpha"],
    shrink=de_cfg["shrink"],
    n_cpus=snakemake.threads,
)
symbols = pd.read_csv(snakemake.input.genes, sep="\t", index_col="gene_id")["symbol"]
table.insert(1, "symbol", symbols.reindex(table["gene"]).to_numpy())
table.to_csv(snakemake.output.table, sep="\t", index=False, float_format="%.6g")
log.info(
    "%d high vs %d low (cutoff %.4g); %d genes at padj < %g",
    (groups["group"] == "high").sum(),
    (groups["group"] == "low").sum(),
    groups["cutoff"].iat[0],
    (table["padj"] < de_cfg["alpha"]).sum(),
    de_cfg["alpha"],
)
