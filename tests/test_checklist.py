"""The TRIPOD+AI / CLEAR reporting checklist: the resource, the resolver, the tiny run's table."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, tiny_config

from hccrad.reporting.checklist import (
    STATUS_ANSWERED,
    STATUS_MISSING,
    STATUS_USER,
    checklist_markdown,
    markdown_headings,
    read_checklist,
    resolve_checklist,
)

RESOURCE = ROOT / "resources" / "reporting" / "checklist.tsv"
# Outputs of issue 33's other parts (bundle, trust), built on their own branches: until their
# rules are in the workflow, the items that name them are allowed to be missing, with the rule.
PENDING = {
    "/bundle/": "model_bundle",
    "conformal.json": "conformal_calibration",
    "domain_reference.json": "domain_reference",
}


def test_resource_lists_every_tripod_ai_item():
    table = read_checklist(RESOURCE)
    tripod = table.loc[table["guideline"] == "TRIPOD+AI", "item"].tolist()
    # TRIPOD+AI: 27 main items, 52 with their sub-items.
    assert len(tripod) == 52
    assert sorted({int(re.match(r"\d+", item).group()) for item in tripod}) == list(range(1, 28))
    clear = table.loc[table["guideline"] == "CLEAR", "item"].astype(int)
    assert clear.between(1, 58).all() and len(clear) >= 30


def test_every_reference_is_well_formed_and_every_doc_heading_exists():
    table = read_checklist(RESOURCE)
    for row in table.itertuples(index=False):
        for reference in row.answered_by.split(" ; "):
            kind, _, target = reference.partition(":")
            assert kind in {"output", "doc", "user"}, (row.item, reference)
            if kind == "doc":
                file, _, heading = target.partition("#")
                assert heading in markdown_headings(ROOT / file), (row.item, reference)
            if kind == "output":
                assert all(p.startswith("results/") for p in target.split("|")), reference


def tiny_checklist() -> pd.DataFrame:
    """Four items: an output with an alternative, a per-endpoint output, a doc, the user's."""
    return pd.DataFrame(
        {
            "guideline": "TRIPOD+AI",
            "item": ["20b", "23a", "18e", "17"],
            "topic": ["characteristics", "performance", "data", "ethics"],
            "text": ["t"] * 4,
            "answered_by": [
                "output:results/{cohort}/table1.tsv",
                "output:results/{cohort}/evaluation/{endpoint}/auc.tsv"
                "|results/{cohort}/crossval/{endpoint}/auc.tsv",
                "doc:README.md#Real data",
                "user",
            ],
        }
    )


def touch(path: Path) -> None:
    """An empty file and its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")


def test_resolver_finds_outputs_and_reports_a_missing_one(tmp_path):
    run = tmp_path / "run"
    touch(run / "results/c/table1.tsv")
    touch(run / "results/c/crossval/response/auc.tsv")  # the alternative, one endpoint only
    resolved = resolve_checklist(tiny_checklist(), run, ROOT, "c", ["response", "proliferative"])
    status = dict(zip(resolved["item"], resolved["status"], strict=True))
    assert status == {
        "20b": STATUS_ANSWERED,
        "23a": STATUS_MISSING,
        "18e": STATUS_ANSWERED,
        "17": STATUS_USER,
    }
    missing = resolved.set_index("item").loc["23a", "missing"]
    # Neither alternative holds for every endpoint: the first one's missing files are named.
    assert (
        missing
        == "results/c/evaluation/response/auc.tsv; results/c/evaluation/proliferative/auc.tsv"
    )
    touch(run / "results/c/crossval/proliferative/auc.tsv")
    resolved = resolve_checklist(tiny_checklist(), run, ROOT, "c", ["response", "proliferative"])
    row = resolved.set_index("item").loc["23a"]
    assert row["status"] == STATUS_ANSWERED and "crossval/proliferative" in row["where"]
    # A heading that the document lacks is missing too.
    renamed = tiny_checklist().replace("doc:README.md#Real data", "doc:README.md#Real dat")
    resolved = resolve_checklist(renamed, run, ROOT, "c", ["response", "proliferative"])
    assert resolved.set_index("item").loc["18e", "status"] == STATUS_MISSING
    assert "| 18e | data | missing | missing: README.md#Real dat |" in checklist_markdown(resolved)


def workflow_rules() -> set[str]:
    """Every rule name declared in the workflow's rule files."""
    text = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    return set(re.findall(r"^rule (\w+):", text, flags=re.M))


@pytest.mark.workflow
def test_tiny_run_checklist_points_at_existing_outputs(runs):
    results = runs["first"]
    table = pd.read_csv(
        results / "reporting" / "tripod_ai_checklist.tsv", sep="\t", dtype=str
    ).fillna("")
    assert len(table) == len(read_checklist(RESOURCE))
    assert set(table["status"]) <= {STATUS_ANSWERED, STATUS_USER, STATUS_MISSING}
    rules = workflow_rules()
    for row in table[table["status"] == STATUS_MISSING].itertuples(index=False):
        for path in row.missing.split("; "):
            pending = [rule for part, rule in PENDING.items() if part in path]
            assert pending and pending[0] not in rules, f"{row.item}: {path} is missing"
    for row in table[table["status"] == STATUS_ANSWERED].itertuples(index=False):
        for place in row.where.split("; "):
            if place.startswith("results/"):
                assert (results.parent / place).exists(), (row.item, place)
    config = tiny_config()
    cohort, endpoints = config["cohorts"]["response"], config["endpoints"]
    performance = table.set_index(["guideline", "item"]).loc[("TRIPOD+AI", "23a")]
    assert performance["status"] == STATUS_ANSWERED
    for endpoint in endpoints:
        assert f"results/{cohort}/evaluation/{endpoint}/auc.tsv" in performance["where"]
    assert (results / "reporting" / "tripod_ai_checklist.md").read_text().startswith("# ")
