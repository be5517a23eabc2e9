"""The trust rules on the tiny run: conformal calibration and coverage, domain reference, flags."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.reporting.conformal import covered

pytestmark = pytest.mark.workflow
COHORT = "sim_tace"
ENDPOINTS = ("response", "proliferative")


def training_patients(results: Path) -> set[str]:
    """The tiny run's training patients that preparation did not exclude."""
    sheet = read_sheet(results / COHORT / "sheet.tsv")
    excluded = read_patients(results / COHORT / "exclusions.tsv").index
    train = sheet.index[sheet["split"] == "train"]
    return set(train.difference(excluded))


def check_conformal(results: Path, endpoint: str, alpha: float) -> None:
    """Calibrated on training patients only; coverage as recounted from the intervals."""
    models = results / COHORT / "models" / endpoint
    train = training_patients(results)
    calibration = json.loads((models / "conformal.json").read_text())
    for name, entry in calibration["models"].items():
        assert set(entry["patients"]) == train, name
    held_out = read_patients(models / "held_out_scores.tsv", index=False)
    assert set(held_out["patient_id"]) == train
    evaluation = results / COHORT / "evaluation" / endpoint
    intervals = read_patients(evaluation / "conformal_intervals.tsv", index=False)
    coverage = pd.read_csv(evaluation / "conformal_coverage.tsv", sep="\t")
    assert set(coverage["cohort"]) >= {"internal_test", "external", "external_B", "external_C"}
    assert coverage["coverage_nominal"].tolist() == pytest.approx([1 - alpha] * len(coverage))
    external = intervals[intervals["split"].str.startswith("external")]
    for name, rows in external.groupby("model"):
        row = coverage[(coverage["model"] == name) & (coverage["cohort"] == "external")]
        assert int(row["covered"].iloc[0]) == int(
            covered(rows["prediction_set"], rows["outcome"]).sum()
        )
        assert int(row["n"].iloc[0]) == len(rows)
    card = (models / "model_card.md").read_text()
    assert "## Conformal prediction sets: coverage" in card
    assert "| external |" in card


def check_domain(results: Path, endpoint: str) -> None:
    """Reference of training patients; every analysed patient flagged or cleared with a reason."""
    reference = json.loads(
        (results / COHORT / "models" / endpoint / "domain_reference.json").read_text()
    )
    train = training_patients(results)
    assert set(reference["patients"]) == train
    assert set(reference["overall"]["patients"]) <= train
    flags = read_patients(
        results / COHORT / "evaluation" / endpoint / "domain_flags.tsv", index=False
    )
    sheet = read_sheet(results / COHORT / "sheet.tsv")
    excluded = read_patients(results / COHORT / "exclusions.tsv").index
    overall = flags[flags["check"] == "overall"]
    assert set(overall["patient_id"]) == set(sheet.index.difference(excluded))
    assert flags["reason"].str.len().gt(0).all()
    card = (results / COHORT / "models" / endpoint / "model_card.md").read_text()
    assert "## Out-of-domain flags" in card
    raw = read_patients(results / COHORT / "raw_geometry.tsv", index=False)
    # The tiny config's centres all scan at 5 x 5 x 10 mm.
    assert (raw[["spacing_x", "spacing_y", "spacing_z"]] == [5.0, 5.0, 10.0]).all().all()
    assert set(raw["patient_id"]) >= set(overall["patient_id"])


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_conformal_calibration_and_coverage(runs, endpoint):
    check_conformal(runs["first"], endpoint, alpha=0.1)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_domain_reference_and_flags(runs, endpoint):
    check_domain(runs["first"], endpoint)
