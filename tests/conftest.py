"""Shared fixtures: the default config, a tiny config for fast end-to-end runs, paths."""

from __future__ import annotations

import copy
import hashlib
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from snakemake.utils import update_config

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "realdata"


def load_default_config() -> dict[str, Any]:
    """The shipped default config (config/config.yaml) as a plain dict."""
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


TEST_CONFIG = ROOT / ".test" / "config.yaml"


def tiny_config(seed: int = 7) -> dict[str, Any]:
    """The default config with .test/config.yaml over it, as `--configfile` merges them."""
    config = copy.deepcopy(load_default_config())
    update_config(config, yaml.safe_load(TEST_CONFIG.read_text()))
    config["seed"] = seed
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


def workflow_command(snakemake_bin: str, workdir: Path, *targets: str) -> list[str]:
    """snakemake on the repository's workflow, in workdir, with workdir/config.yaml."""
    return [
        snakemake_bin,
        *targets,  # before the options: --quiet takes several values
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
    ]


def dry_run_jobs(workdir: Path, config: dict[str, Any], snakemake_bin: str) -> dict[str, int]:
    """Jobs per rule that a dry run of the default target plans (before any checkpoint)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [*workflow_command(snakemake_bin, workdir), "-n"],
        capture_output=True,
        encoding="utf-8",
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stats = run.stdout.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, flags=re.M)}


def run_workflow(
    workdir: Path,
    config: dict,
    snakemake_bin: str,
    targets: tuple[str, ...] = (),
    rules: tuple[str, ...] = (),
) -> None:
    """Run ``targets`` (default: the default target) of the workflow on ``config``.

    ``rules``, if given, are the only rules allowed to run (--allowed-rules).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [
            *workflow_command(snakemake_bin, workdir, *targets),
            "--cores",
            "2",
            *(["--allowed-rules", *rules] if rules else []),
            "--quiet",
            "rules",
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]


def digests(results: Path) -> dict[str, str]:
    """md5 of every file under results/ except the run-time benchmarks."""
    return {
        str(p.relative_to(results)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file() and "benchmarks" not in p.parts
    }


@pytest.fixture(scope="session")
def runs(tmp_path_factory, snakemake_bin) -> dict[str, Path]:
    """The tiny config run twice with one seed, and its simulation once with another.

    Session-scoped: every workflow test file reads these runs instead of running its own.
    """
    base = tmp_path_factory.mktemp("workflow")
    simulation = (
        "results/sim_tace/sheet.tsv",
        "results/sim_lihc/truth/planted_genes.tsv",
    )
    out = {}
    for name, seed, targets in (("first", 7, ()), ("again", 7, ()), ("other", 8, simulation)):
        run_workflow(base / name, tiny_config(seed), snakemake_bin, targets)
        out[name] = base / name / "results"
    return out
