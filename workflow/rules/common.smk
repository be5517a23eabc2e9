# Helpers shared by the rules: config validation at start, cohort lookups, target lists.

import json
from pathlib import Path

from snakemake.utils import validate

from hccrad.config import check_config, simulated_cohorts

validate(config, "../schemas/config.schema.yaml")
# Shipped files (resources/, schemas) live beside the Snakefile; results go to the working
# directory, so the workflow also runs from another folder (--directory, module use).
BASE = Path(workflow.basedir)


def resolve(path):
    """A config path: as given if it exists from the working directory, else in the workflow."""
    return path if Path(path).exists() else str(BASE / path)


config["gene_sets"] = resolve(config["gene_sets"])
check_config(config)

SIMULATED = simulated_cohorts(config)
RESPONSE_COHORT = config["cohorts"]["response"]
RADIOGENOMICS_COHORT = config["cohorts"]["radiogenomics"]
ENV = "../../envs/hccrad.yaml"


def cohort_cfg(cohort):
    """The simulate section of a simulated cohort."""
    return SIMULATED[cohort]


def shard_dirs(wildcards):
    """Every image shard folder of a simulated cohort."""
    n = cohort_cfg(wildcards.cohort)["n_shards"]
    return [f"results/{wildcards.cohort}/images/shard{s}" for s in range(1, n + 1)]


def lesion_tables(wildcards):
    """Every shard's lesion truth table of a simulated cohort."""
    n = cohort_cfg(wildcards.cohort)["n_shards"]
    return [
        f"results/{wildcards.cohort}/truth/lesions/shard{s}.tsv"
        for s in range(1, n + 1)
    ]


def all_targets():
    """The default targets: sheets, truth, QC figures and Table 1 of every cohort."""
    targets = []
    for cohort in (RESPONSE_COHORT, RADIOGENOMICS_COHORT):
        targets += [
            f"results/{cohort}/sheet.tsv",
            f"results/{cohort}/truth/truth.json",
            f"results/{cohort}/truth/lesions.tsv",
            f"results/{cohort}/qc/cohort_qc.png",
            f"results/{cohort}/table1.tsv",
            f"results/{cohort}/table1.png",
        ]
    targets += [
        f"results/{RADIOGENOMICS_COHORT}/rnaseq/gdc_sample_sheet.tsv",
        f"results/{RADIOGENOMICS_COHORT}/truth/planted_genes.tsv",
    ]
    return targets
