"""A feature-table cohort's model inputs: its features (alone or with radiomics), exclusions."""

import pandas as pd

from hccrad.cohorts.feature_table import (
    FEATURE_STEP,
    combine_features,
    exclusion_rows,
    stacked_exclusions,
)
from hccrad.cohorts.sheet import read_patients, write_table
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
inputs = snakemake.input
cohort = snakemake.params.cohort
extracted = pd.read_parquet(inputs.radiomics) if hasattr(inputs, "radiomics") else None
features, lacking = combine_features(pd.read_parquet(inputs.byo), extracted, snakemake.params.mode)
exclusions = stacked_exclusions(
    [
        read_patients(inputs.cohort_exclusions, index=False),
        read_patients(inputs.byo_exclusions, index=False),
        exclusion_rows(
            lacking,
            cohort,
            inputs.byo,
            "no extracted radiomics to add the feature table to",
            "see the patient's image exclusion, or use features.mode: replace",
        ).assign(step=FEATURE_STEP),
    ],
    cohort,
)
features.to_parquet(snakemake.output.features)
write_table(exclusions.set_index("patient_id"), snakemake.output.exclusions)
log.info(
    "%d patients x %d features (%s); %d patients excluded: %s",
    *features.shape,
    snakemake.params.mode,
    len(exclusions),
    exclusions.groupby("step", sort=False).size().to_dict(),
)
