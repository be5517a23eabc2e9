# hccrad: TACE response in hepatocellular carcinoma from imaging, and the biology behind it.
# Run `snakemake --cores all` (the default simulated cohorts) or see README.md.

import sys
from importlib.util import find_spec
from pathlib import Path

from snakemake.utils import min_version

# The parse imports only hccrad's light modules (the standard library, PyYAML, jsonschema; see
# workflow/rules/common.smk): where hccrad is not installed (an environment with only Snakemake,
# for `snakemake --lint` or a dry run), they are read from this clone's src/. Jobs need hccrad
# installed (envs/hccrad.yaml).
if find_spec("hccrad") is None:
    sys.path.insert(
        0, str(Path(workflow.current_basedir.get_path_or_uri(secret_free=True), "src"))
    )

from hccrad.core.config import read_yaml

min_version("9.0")

# Snakemake reports a YAML syntax error (a tab, say) in a config file without the file or
# the line (snakemake.common.configfile drops PyYAML's message); reading the default config
# here first names both. A --configfile is read before this file runs: see config/README.md.
if Path("config/config.yaml").is_file():
    read_yaml("config/config.yaml")


configfile: "config/config.yaml"


# The landing page of `snakemake --report`: what the workflow does, its categories, software.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    cohort="|".join(sorted(COHORTS)),
    shard=r"\d+",
    patient=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    endpoint="|".join(config["endpoints"]),


include: "workflow/rules/simulate.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/imaging.smk"
include: "workflow/rules/radiomics.smk"
include: "workflow/rules/deep.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/trust.smk"
include: "workflow/rules/crossval.smk"
include: "workflow/rules/radiogenomics.smk"
include: "workflow/rules/ibsi.smk"
include: "workflow/rules/bundle.smk"
# Last: the figures target gathers the figures of every stage above.
include: "workflow/rules/figures.smk"
# After the figures: the checklist waits for every other default target.
include: "workflow/rules/reporting.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        ibsi_targets(),
        bundle_targets(),
        predict_targets(),
        RULE_GRAPH,
        SOFTWARE_VERSIONS,
        f"{CHECKLIST}.tsv",
        f"{CHECKLIST}.md",
