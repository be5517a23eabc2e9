"""The figures target: every figure is redrawn from the results tables alone, byte for byte.

Reads the shared tiny run (conftest.runs), copies it, deletes every figure and lets only the
figure rules run: anything else the figures needed (a refit, a re-extraction) would fail the
run, and a redrawn figure that differed from the original would fail the comparison.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, digests, run_workflow, tiny_config, workflow_command
from PIL import Image

FIGURE_SUFFIX = "_figure"


def workflow_rules(snakemake_bin: str) -> list[str]:
    """Rule names of the workflow (snakemake --list-rules)."""
    run = subprocess.run(
        [snakemake_bin, "--snakefile", str(ROOT / "Snakefile"), "--list-rules"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return [line.strip() for line in run.stdout.splitlines() if line.strip().isidentifier()]


def rule_of_each_output(workdir: Path, snakemake_bin: str) -> dict[str, str]:
    """The rule that wrote each output file of a finished run (snakemake --summary)."""
    run = subprocess.run(
        [*workflow_command(snakemake_bin, workdir), "--summary"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split("\t") for line in run.stdout.splitlines() if "\t" in line]
    header = rows[0]
    return {row[header.index("output_file")]: row[header.index("rule")] for row in rows[1:]}


@pytest.fixture(scope="module")
def redrawn(runs, snakemake_bin, tmp_path_factory) -> dict:
    """A copy of the tiny run whose figures were deleted and redrawn by the figure rules alone."""
    work = tmp_path_factory.mktemp("figures") / "run"
    # copytree keeps modification times: nothing upstream looks out of date in the copy.
    shutil.copytree(runs["first"].parent, work, symlinks=True)
    results = work / "results"
    before = digests(results)
    # The per-patient QC images inside prepared/ belong to image preparation, not the study.
    figures = sorted(
        p
        for p in results.rglob("*")
        if p.suffix in {".png", ".pdf", ".tiff", ".xlsx"}
        and "prepared" not in p.relative_to(results).parts
    )
    for path in figures:
        path.unlink()
    rules = [r for r in workflow_rules(snakemake_bin) if r.endswith(FIGURE_SUFFIX)]
    run_workflow(work, tiny_config(7), snakemake_bin, ("figures",), rules=(*rules, "figures"))
    return {
        "work": work,
        "before": before,
        "after": digests(results),
        "figures": figures,
        "rules": rules,
    }


def test_every_figure_comes_back_byte_identical(redrawn) -> None:
    pngs = [p for p in redrawn["figures"] if p.suffix == ".png"]
    assert len(pngs) >= 20
    assert all(p.exists() for p in redrawn["figures"])
    assert redrawn["after"] == redrawn["before"]


def test_the_rule_graph_is_among_the_figures(redrawn) -> None:
    graph = redrawn["work"] / "results" / "workflow"
    dot = (graph / "rulegraph.dot").read_text()
    for rule in ("deep_select", "fit_models", "enrich_gsea", "evaluation_figure"):
        assert f'"{rule}"' in dot
    pixels = Image.open(graph / "rulegraph.png").convert("L")
    assert pixels.getextrema()[0] < 100  # text and boxes drawn, not a blank canvas


def test_only_rules_named_figure_write_figures(redrawn, snakemake_bin) -> None:
    writers = rule_of_each_output(redrawn["work"], snakemake_bin)
    figure_writers = {
        rule for path, rule in writers.items() if path.endswith((".png", ".pdf", ".tiff"))
    }
    assert figure_writers, "no figure found in the summary"
    assert {r for r in figure_writers if not r.endswith(FIGURE_SUFFIX)} == set()
    # And every figure rule really is one: it writes figures and nothing but logs beside them
    # (and Table 1's editable .xlsx beside its drawing).
    for path, rule in writers.items():
        if rule in redrawn["rules"]:
            assert path.endswith((".png", ".pdf", ".tiff", ".dot", "table1.xlsx")), (rule, path)
