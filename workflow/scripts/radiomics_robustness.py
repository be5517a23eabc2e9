"""ICC(3,1) of every radiomic feature between original and perturbed masks (training patients)."""

import pandas as pd

from hccrad.core.runlog import log_to
from hccrad.radiomics.patient import split_perturbed
from hccrad.radiomics.robustness import feature_icc

log = log_to(snakemake.log[0])
perturbed = split_perturbed([pd.read_parquet(path) for path in snakemake.input.perturbed])
patients = next(iter(perturbed.values())).index
original = pd.read_parquet(snakemake.input.features).loc[patients]
icc = feature_icc(original, perturbed, threshold=snakemake.params.threshold)
icc.to_csv(snakemake.output.icc, sep="\t", index=False, float_format="%.4f")
log.info("%d of %d features robust on %d patients", icc["robust"].sum(), len(icc), len(patients))
