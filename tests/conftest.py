"""Shared fixtures: the default config, a tiny config for fast end-to-end runs, paths."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "realdata"


def load_default_config() -> dict[str, Any]:
    """The shipped default config (config/config.yaml) as a plain dict."""
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def tiny_config(seed: int = 7) -> dict[str, Any]:
    """The default config shrunk to a handful of coarse patients, for workflow tests."""
    config = copy.deepcopy(load_default_config())
    config["seed"] = seed
    config["qc"]["patients_per_centre"] = 1
    for key, n in (("response", (10, 2, 2)), ("radiogenomics", (5,))):
        cohort = config["simulate"][key]
        cohort["n_shards"] = 2 if key == "response" else 1
        cohort["image"] = {**cohort["image"], "fov_mm": [320, 320, 150]}
        for centre, size in zip(cohort["centres"], n, strict=True):
            centre["n_patients"] = size
            centre["spacing_mm"] = [5.0, 5.0, 10.0]
    config["imaging"]["spacing_mm"] = [4.0, 4.0, 4.0]
    config["imaging"]["crop"]["box_mm"] = [48.0, 48.0, 48.0]
    config["radiomics"]["robustness"]["n_patients"] = 4
    config["simulate"]["radiogenomics"]["rnaseq"]["n_genes"] = 6000
    config["simulate"]["radiogenomics"]["rnaseq"]["n_noncoding"] = 100
    return config


@pytest.fixture
def default_config() -> dict[str, Any]:
    """A fresh copy of the default config."""
    return load_default_config()


@pytest.fixture(scope="session")
def snakemake_bin() -> str:
    """The snakemake executable of the environment running the tests."""
    import sys

    candidate = Path(sys.executable).parent / "snakemake"
    return str(candidate) if candidate.exists() else "snakemake"


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_blas() -> None:
    """Keep BLAS single-threaded so results and timings do not depend on the core count."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
