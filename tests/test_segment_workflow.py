"""Segmentation rules in the tiny workflow run: masks, metrics, AUROC, overlays, auto radiomics."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813

pytestmark = pytest.mark.workflow

COHORT = "sim_tace"


def recorded_inputs(workdir: Path, output: str) -> list[str]:
    """The inputs Snakemake recorded for an output (its metadata file, keyed by the path)."""
    key = base64.urlsafe_b64encode(output.encode()).decode()
    return json.loads((workdir / ".snakemake" / "metadata" / key).read_text())["input"]


def response_sheet(results: Path) -> pd.DataFrame:
    """The response cohort's sheet, indexed by patient_id."""
    return pd.read_csv(results / COHORT / "sheet.tsv", sep="\t", index_col="patient_id")


def test_default_target_writes_every_segmentation_output(runs):
    folder = runs["first"] / COHORT / "segment"
    for name in (
        "model.pt",
        "history.tsv",
        "predictions.tsv",
        "metrics.tsv",
        "metrics_summary.tsv",
        "threshold_baseline.tsv",
        "auroc.tsv",
        "overlay.png",
        "overlay.pdf",
        "radiomics_predicted.parquet",
        "radiomics_icc.tsv",
        "radiomics_icc_summary.tsv",
        "radiomics_icc.png",
        "radiomics_icc.pdf",
        "radiomics_auc.tsv",
    ):
        assert (folder / name).stat().st_size > 0, name


def test_training_reads_the_training_patients_only(runs):
    results = runs["first"]
    inputs = recorded_inputs(results.parent, f"results/{COHORT}/segment/model.pt")
    prepared = {Path(p).name for p in inputs if "/prepared/" in p}
    sheet = response_sheet(results)
    assert prepared == set(sheet.index[sheet["split"] == "train"])


def test_every_patient_gets_a_mask_on_its_image_grid_with_reference_labels(runs):
    results = runs["first"]
    sheet = response_sheet(results)
    predictions = pd.read_csv(
        results / COHORT / "segment/predictions.tsv", sep="\t", index_col="patient_id"
    )
    assert sorted(predictions.index) == sorted(sheet.index)
    for patient in predictions.index[predictions["status"] == "predicted"]:
        mask = sitk.ReadImage(str(results / COHORT / "segment/masks" / f"{patient}.nii.gz"))
        image = sitk.ReadImage(str(results / COHORT / "prepared" / patient / "arterial.nii.gz"))
        assert mask.GetSize() == image.GetSize(), patient
        assert mask.GetSpacing() == pytest.approx(image.GetSpacing()), patient
        assert mask.GetOrigin() == pytest.approx(image.GetOrigin()), patient
        assert mask.GetDirection() == pytest.approx(image.GetDirection()), patient
        labels = sitk.GetArrayFromImage(mask)
        assert set(np.unique(labels)) <= {0, 1, 2}, patient
        assert predictions.loc[patient, "tumour_empty"] == (not (labels == 2).any()), patient


def test_metrics_list_network_and_baseline_for_every_patient_and_cohort(runs):
    folder = runs["first"] / COHORT / "segment"
    metrics = pd.read_csv(folder / "metrics.tsv", sep="\t")
    sheet = response_sheet(runs["first"])
    counts = metrics.groupby("patient_id").size()
    assert sorted(counts.index) == sorted(sheet.index)
    assert (counts == 4).all()  # 2 methods x (tumour, liver)
    evaluated = metrics[metrics["status"] == "evaluated"]
    assert evaluated["dice"].between(0, 1).all()
    assert evaluated["iou"].le(evaluated["dice"] + 1e-9).all()
    summary = pd.read_csv(folder / "metrics_summary.tsv", sep="\t")
    assert {"train", "internal_test", "external"} <= set(summary["cohort"])
    assert set(summary["method"]) == {"unetplusplus", "otsu_threshold"}
    auroc = pd.read_csv(folder / "auroc.tsv", sep="\t")
    assert {"train", "internal_test", "external"} <= set(auroc["cohort"])
    defined = auroc["auc"].notna()
    assert auroc.loc[defined, "auc"].between(0, 1).all()
    assert (auroc.loc[~defined, "note"].fillna("").astype(str).str.len() > 0).all()


def test_auto_radiomics_has_the_reference_features_and_an_icc_for_each(runs):
    results = runs["first"]
    reference = pd.read_parquet(results / COHORT / "radiomics/features.parquet")
    folder = results / COHORT / "segment"
    auto = pd.read_parquet(folder / "radiomics_predicted.parquet")
    left_out = pd.read_csv(folder / "radiomics_predicted_left_out.tsv", sep="\t")
    predictions = pd.read_csv(folder / "predictions.tsv", sep="\t", index_col="patient_id")
    # Nothing dropped silently: every patient has features or a reason, never both.
    assert sorted([*auto.index, *left_out["patient_id"]]) == sorted(response_sheet(results).index)
    empty = set(predictions.index[predictions["tumour_empty"].astype(bool)])
    reasons = left_out.set_index("patient_id")["reason"]
    assert set(reasons.index[reasons == "predicted tumour mask is empty"]) == empty
    if len(auto):  # the tiny run's one-epoch network may find no tumour at all
        assert list(auto.columns) == list(reference.columns)
    icc = pd.read_csv(results / COHORT / "segment/radiomics_icc.tsv", sep="\t")
    assert sorted(icc["feature"]) == sorted(reference.columns)
    auc = pd.read_csv(results / COHORT / "segment/radiomics_auc.tsv", sep="\t")
    assert set(auc["mask"]) == {"reference", "predicted"}
    # Paired comparison: both masks are scored on the same patients in each cohort.
    sizes = auc.groupby(["cohort", "model"])["n"].nunique()
    assert (sizes == 1).all()
