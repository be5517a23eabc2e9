"""The project's own conventions, checked where CI runs: ruff, snakefmt and snakemake --lint."""

from __future__ import annotations

import re
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
        ("ruff", "check", "--no-cache", *PYTHON_DIRS),
        ("ruff", "format", "--check", "--no-cache", *PYTHON_DIRS),
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


def _rule_blocks() -> dict[str, str]:
    """Each rule's text in workflow/rules, by rule name."""
    blocks = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"^(?:rule|checkpoint) (\w+):\n", path.read_text(), flags=re.MULTILINE)
        blocks.update(dict(zip(parts[1::2], parts[2::2], strict=True)))
    return blocks


def test_report_captions_name_only_their_rules_params():
    # A caption reading a param its rule lacks fails `snakemake --report` only at the very end.
    checked = 0
    for rule, text in _rule_blocks().items():
        params_block = re.search(r"^    params:\n((?:        .*\n)+)", text, flags=re.MULTILINE)
        params = (
            set(re.findall(r"^        (\w+)=", params_block.group(1), flags=re.MULTILINE))
            if params_block
            else set()
        )
        for caption in re.findall(r'caption="\.\./report/([\w.]+)"', text):
            used = re.findall(
                r"snakemake\.params\.(\w+)",
                (ROOT / "workflow" / "report" / caption).read_text(),
            )
            assert set(used) <= params, f"{caption} of rule {rule} uses {set(used) - params}"
            checked += 1
    assert checked > 20


# Backticked words of docs/architecture.md that name repository files; placeholders skipped.
REPO_PREFIXES = (
    "src/",
    "workflow/",
    "config/",
    "resources/",
    "tests/",
    "benchmarks/",
    "envs/",
    "profiles/",
)


def test_architecture_page_names_only_existing_paths():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    paths = [
        word
        for word in re.findall(r"`([^`\s]+)`", page)
        if word.startswith(REPO_PREFIXES) and not set(word) & set("<{*")
    ]
    assert len(paths) > 50, paths
    missing = sorted({p for p in paths if not (ROOT / p).exists()})
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


# Tests read the project's shared real data (conftest.SHARED); CI's script says it is there.
OUTSIDE_CLONE_ALLOWED = ("tests/", ".ci/run")


def test_nothing_refers_to_files_outside_the_clone():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no list of tracked files")
    offenders = []
    for name in listed.stdout.decode().split("\0"):
        path = ROOT / name
        if not name or name.startswith(OUTSIDE_CLONE_ALLOWED) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary data
        offenders += [
            f"{name}: {needle}" for needle in ("../shared", "DESIGN.md") if needle in text
        ]
    assert not offenders, offenders
