"""The out-of-domain reference of the training patients, and every patient's flags."""

import json

import pandas as pd

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.core.runlog import log_to
from hccrad.models.domain import describe_patients, domain_flags, training_reference
from hccrad.models.inputs import without_exclusions

log = log_to(snakemake.log[0])
settings = snakemake.params.domain
sheet = without_exclusions(
    read_sheet(snakemake.input.sheet), read_patients(snakemake.input.exclusions)
)
raw = read_patients(snakemake.input.raw_geometry, index=False)
radiomics = pd.read_parquet(snakemake.input.radiomics)
description = describe_patients(raw, radiomics)
description = description.loc[description.index.intersection(sheet.index, sort=False)]
reference = training_reference(
    sheet,
    description,
    range_margin=settings["range_margin"],
    overall_quantile=settings["overall_quantile"],
    folds=settings["folds"],
    seed=snakemake.params.seed,
)
with open(snakemake.output.reference, "w") as handle:
    json.dump(reference, handle, indent=1, allow_nan=False)
flags = domain_flags(reference, description)
flags.to_csv(snakemake.output.flags, sep="\t", index=False, float_format="%.6g")
overall = flags[flags["check"] == "overall"].set_index("patient_id")["out_of_domain"]
by_split = overall.groupby(sheet.loc[overall.index, "split"]).agg(["sum", "size"])
log.info(
    "reference of %d training patients; overall flags per split: %s",
    reference["n_train"],
    by_split.to_dict("index"),
)
