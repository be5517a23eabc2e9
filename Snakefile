# hccrad: TACE response in hepatocellular carcinoma from imaging, and the biology behind it.
# Run `snakemake --cores all` (the default simulated cohorts) or see README.md.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    cohort="|".join(sorted(SIMULATED)),
    shard=r"\d+",
    patient=r"[A-Za-z0-9][A-Za-z0-9._-]*",


include: "workflow/rules/simulate.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/imaging.smk"
include: "workflow/rules/radiomics.smk"


rule all:
    default_target: True
    input:
        all_targets(),
