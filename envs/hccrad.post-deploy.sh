#!/usr/bin/env bash
# Snakemake runs this inside the environment of envs/hccrad.yaml right after creating it
# (--sdm conda). Two installs that a conda `pip:` section cannot express:
# - PyRadiomics 3.0.1 (the version of requirements/lock.txt) builds from source against the
#   environment's numpy, which needs pip's --no-build-isolation;
# - hccrad itself, from the clone this file belongs to (the version being deployed), editable, so
#   the environment follows the clone's code without a rebuild.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation pyradiomics==3.0.1
clone="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -f "$clone/pyproject.toml" ] || [ ! -d "$clone/src/hccrad" ]; then
    echo "hccrad post-deploy: $0 is not inside an hccrad clone, so hccrad cannot be installed" >&2
    echo "into this environment. Deploy the workflow from a local clone (README.md, 'Use as a" >&2
    echo "module'), or install hccrad into the environment yourself: pip install -e <clone>." >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation -e "$clone"
python -m pip check
