"""Reference- vs predicted-mask radiomics: ICC per feature, and the radiomics models' AUC."""

import pandas as pd

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.segment.evaluate import (
    auto_vs_reference_icc,
    icc_summary,
    radiomics_auc_by_mask,
)

log = log_to(snakemake.log[0])
params = snakemake.params
reference = pd.read_parquet(snakemake.input.reference)
auto = pd.read_parquet(snakemake.input.auto)
icc = auto_vs_reference_icc(reference, auto, params.threshold)
out = snakemake.output
icc.to_csv(out.icc, sep="\t", index=False, float_format="%.4f")
icc_summary(icc, params.threshold).to_csv(out.summary, sep="\t", index=False, float_format="%.4f")
# The models read the robust features (as the models rules do), from either mask.
robust = pd.read_parquet(snakemake.input.robust).columns
auc = radiomics_auc_by_mask(
    read_sheet(snakemake.input.sheet),
    # reindex: a network that found no tumour leaves a table without columns.
    {"reference": reference[robust], "predicted": auto.reindex(columns=robust)},
    params.endpoint,
    params.seed,
    params.models,
    params.alpha,
)
auc.to_csv(out.auc, sep="\t", index=False, float_format="%.4f")
log.info("ICC summary:\n%s", icc_summary(icc, params.threshold).to_string())
log.info("AUC:\n%s", auc.to_string())
