"""ICC(3,1) of every radiomic feature between original and perturbed masks (training patients)."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.imaging.batches import patient_files
from hccrad.radiomics.patient import split_perturbed
from hccrad.radiomics.robustness import feature_icc

log = log_to(snakemake.log[0])
# One folder per batch of robustness patients, each patient's table in the batch's order.
tables = [pd.read_parquet(path) for path in patient_files(snakemake.input.perturbed, ".parquet")]
perturbed = split_perturbed(tables)
patients = next(iter(perturbed.values())).index
original = pd.read_parquet(snakemake.input.features).loc[patients]
icc = feature_icc(original, perturbed, threshold=snakemake.params.threshold)
icc.to_csv(snakemake.output.icc, sep="\t", index=False, float_format="%.4f")
log.info("%d of %d features robust on %d patients", icc["robust"].sum(), len(icc), len(patients))
