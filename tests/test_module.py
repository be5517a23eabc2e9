"""The workflow as a Snakemake module of another project, and a light parse of its Snakefile."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, tiny_config

# Libraries that take seconds to import; the parse (every job on a cluster parses again) must
# not pay for them: they belong inside the scripts that use them.
HEAVY = ("torch", "lifelines", "sksurv", "xgboost", "statsmodels", "matplotlib")
# What the deploying project writes, as snakedeploy sets it up (a local clone of hccrad).
MODULE_SNAKEFILE = """\
configfile: "config/config.yaml"


module hccrad:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from hccrad as hccrad_*
"""
COHORT_TARGETS = (
    "results/sim_tace/sheet.tsv",
    "results/sim_tace/table1.png",
    "results/sim_tace/qc/cohort_qc.png",
)


def snakemake_env() -> dict[str, str]:
    """The environment with this checkout's src/ first, so that jobs import this hccrad."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def deploying_project(tmp_path: Path) -> Path:
    """A project that uses hccrad as a module, with the tiny test config as its own."""
    project = tmp_path / "project"
    (project / "workflow").mkdir(parents=True)
    (project / "config").mkdir()
    snakefile = MODULE_SNAKEFILE.format(snakefile=ROOT / "Snakefile")
    (project / "workflow" / "Snakefile").write_text(snakefile)
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    return project


@pytest.mark.workflow
def test_module_deployment_runs_the_sheet_and_cohort_figures(
    tmp_path: Path, snakemake_bin: str
) -> None:
    project = deploying_project(tmp_path)
    command = [snakemake_bin, "--cores", "2", "--snakefile", "workflow/Snakefile"]
    result = subprocess.run(
        [*command, *COHORT_TARGETS],
        cwd=project,
        env=snakemake_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for target in COHORT_TARGETS:
        assert (project / target).stat().st_size > 0, target
    # Shipped files are read from the clone, results written in the project, not the clone.
    assert not (project / "workflow" / "workflow").exists()


def test_module_deployment_finds_shipped_files(tmp_path: Path, snakemake_bin: str) -> None:
    project = deploying_project(tmp_path)
    result = subprocess.run(
        [snakemake_bin, "-n", "--snakefile", "workflow/Snakefile", "--cores", "1"],
        cwd=project,
        env=snakemake_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "hccrad_all" in result.stdout


def parse_imports() -> list[str]:
    """Every module imported by `snakemake --list-rules` here, from `python -X importtime`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "snakemake", "--list-rules"],
        cwd=ROOT,
        env=snakemake_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return re.findall(r"^import time:[^|]+\|[^|]+\|\s*([\w.]+)$", result.stderr, re.MULTILINE)


def module_level_imports(path: Path) -> set[str]:
    """Top-level names of the packages a module imports when it is loaded (not in functions)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_parse_imports_no_heavy_library() -> None:
    packages = {name.split(".")[0] for name in parse_imports()}
    assert "hccrad" in packages  # the check below reads the right output
    assert packages.isdisjoint(HEAVY), sorted(packages.intersection(HEAVY))


def test_parse_needs_only_what_snakemake_brings() -> None:
    # `snakemake --lint` where only Snakemake is installed: every hccrad module the parse loads
    # may import only the standard library, PyYAML, jsonschema and other such hccrad modules.
    # Read from the sources, since this environment's Snakemake imports pandas itself.
    loaded = sorted({name for name in parse_imports() if name.split(".")[0] == "hccrad"})
    allowed = set(sys.stdlib_module_names) | {"__future__", "yaml", "jsonschema", "hccrad"}
    for module in loaded:
        path = ROOT / "src" / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        assert module_level_imports(path) <= allowed, (module, module_level_imports(path) - allowed)
