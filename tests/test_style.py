"""The project's own conventions, checked where CI runs: ruff, snakefmt and snakemake --lint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PYTHON_DIRS = [d for d in ("src", "tests", "workflow", "benchmarks") if (ROOT / d).is_dir()]


def run(*args: str) -> subprocess.CompletedProcess:
    """Run a tool of the test environment from the repository root."""
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=ROOT,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", *PYTHON_DIRS),
        ("ruff", "format", "--check", *PYTHON_DIRS),
        ("snakefmt", "--check", "Snakefile", "workflow/rules"),
    ],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_code_style_is_clean(command):
    result = run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_has_no_findings():
    result = run("snakemake", "--lint", "--cores", "1")
    output = result.stdout + result.stderr
    assert "Congratulations" in output, output
