"""Segmentation rules in the tiny workflow run: masks, metrics, AUROC, overlays, auto radiomics."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813

from hccrad.imaging.batches import patient_folders, read_manifest

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
    sheet = response_sheet(results)
    train = set(sheet.index[sheet["split"] == "train"])
    # The training patients' batches, no other (the script reads their folders alone).
    batches = [read_manifest(results.parent / p) for p in inputs if "/prepared/" in p]
    assert train <= {p for batch in batches for p in batch}
    assert all(train & set(batch) for batch in batches)


def test_every_patient_gets_a_mask_on_its_image_grid_with_reference_labels(runs):
    results = runs["first"]
    sheet = response_sheet(results)
    predictions = pd.read_csv(
        results / COHORT / "segment/predictions.tsv", sep="\t", index_col="patient_id"
    )
    assert sorted(predictions.index) == sorted(sheet.index)
    prepared = patient_folders(sorted((results / COHORT / "prepared").iterdir()))
    for patient in predictions.index[predictions["status"] == "predicted"]:
        mask = sitk.ReadImage(str(results / COHORT / "segment/masks" / f"{patient}.nii.gz"))
        image = sitk.ReadImage(str(prepared[patient] / "arterial.nii.gz"))
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
    # segment.predict: held_out: the training patients are rows without a prediction.
    training = metrics[metrics["split"] == "train"]
    assert len(training) and (training["status"] == "training").all()
    summary = pd.read_csv(folder / "metrics_summary.tsv", sep="\t")
    assert {"internal_test", "external"} <= set(summary["cohort"])
    assert "train" not in set(summary["cohort"])
    assert set(summary["method"]) == {"unetplusplus", "otsu_threshold"}
    auroc = pd.read_csv(folder / "auroc.tsv", sep="\t")
    assert {"internal_test", "external"} <= set(auroc["cohort"])
    assert "train" not in set(auroc["cohort"])
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
    predicted = predictions[predictions["status"] == "predicted"]
    empty = set(predicted.index[predicted["tumour_empty"].astype(bool)])
    reasons = left_out.set_index("patient_id")["reason"]
    assert set(reasons.index[reasons == "predicted tumour mask is empty"]) == empty
    # segment.predict: held_out: the network's training patients are left out, and say why.
    training = set(predictions.index[predictions["status"] == "training"])
    assert training and set(reasons.index[reasons == "not predicted (training)"]) == training
    if len(auto):  # the tiny run's one-epoch network may find no tumour at all
        assert list(auto.columns) == list(reference.columns)
    icc = pd.read_csv(results / COHORT / "segment/radiomics_icc.tsv", sep="\t")
    assert sorted(icc["feature"]) == sorted(reference.columns)
    auc = pd.read_csv(results / COHORT / "segment/radiomics_auc.tsv", sep="\t")
    assert set(auc["mask"]) == {"reference", "predicted"}
    # Paired comparison: both masks are scored on the same patients in each cohort.
    sizes = auc.groupby(["cohort", "model"])["n"].nunique()
    assert (sizes == 1).all()


LIVER_ONLY = "sim_lihc"
LIVER_ONLY_TARGETS = (
    f"results/{LIVER_ONLY}/radiomics/features.parquet",
    f"results/{LIVER_ONLY}/exclusions.tsv",
    f"results/{LIVER_ONLY}/qc/preprocessing_qc.png",
    f"results/{LIVER_ONLY}/deep/response/deep_features.parquet",
)


@pytest.fixture(scope="module")
def liver_only_run(runs, tmp_path_factory, snakemake_bin) -> Path:
    """The tiny run again with the radiogenomics cohort liver-only: the network draws tumours."""
    from conftest import run_workflow, tiny_config

    workdir = tmp_path_factory.mktemp("liver_only")
    # copytree keeps modification times: only what masks: liver_only changes is redone.
    shutil.copytree(runs["first"].parent, workdir, dirs_exist_ok=True, symlinks=True)
    config = tiny_config()
    config["simulate"]["radiogenomics"]["masks"] = "liver_only"
    # The shared run's one-epoch network finds no tumour (deep features would then stop: no
    # crop to score); ten short epochs (about 100 s) find one in each of the five patients.
    config["segment"] |= {"epochs": 10, "tumour_slices_per_patient": 6}
    run_workflow(workdir, config, snakemake_bin, LIVER_ONLY_TARGETS)
    return workdir


def test_liver_only_cohort_gets_radiomics_from_predicted_tumours(runs, liver_only_run):
    results = liver_only_run / "results" / LIVER_ONLY
    patients = pd.read_csv(results / "sheet.tsv", sep="\t", index_col="patient_id").index
    predictions = pd.read_csv(results / "segment/predictions.tsv", sep="\t", index_col="patient_id")
    assert sorted(predictions.index) == sorted(patients)
    found = predictions.index[~predictions["tumour_empty"].astype(bool)]
    features = pd.read_parquet(results / "radiomics/features.parquet")
    exclusions = pd.read_csv(results / "exclusions.tsv", sep="\t", index_col="patient_id")
    # Nothing dropped silently: features exactly for the patients with a predicted tumour, an
    # exclusion naming the step for the others.
    assert sorted(features.index) == sorted(found)
    assert sorted([*features.index, *exclusions.index]) == sorted(patients)
    assert exclusions["step"].eq("prepare_predicted_tumour").all()
    reference = pd.read_parquet(runs["first"] / LIVER_ONLY / "radiomics/features.parquet")
    assert list(features.columns) == list(reference.columns)
    folders = patient_folders(sorted((results / "prepared").iterdir()))
    auto = patient_folders(sorted((results / "prepared_auto").iterdir()))
    for batch in (results / "radiomics/patients").iterdir():
        inputs = recorded_inputs(
            liver_only_run, f"results/{LIVER_ONLY}/radiomics/patients/{batch.name}"
        )
        assert f"results/{LIVER_ONLY}/prepared_auto/{batch.name}" in inputs, inputs
    for patient in patients:
        prepared = sitk.ReadImage(str(folders[patient] / "mask.nii.gz"))
        assert set(np.unique(sitk.GetArrayFromImage(prepared))) <= {0, 1}, patient
    for patient in found:
        predicted = sitk.ReadImage(str(results / "segment/masks" / f"{patient}.nii.gz"))
        used = sitk.ReadImage(str(auto[patient] / "mask.nii.gz"))
        assert used.GetSize() == predicted.GetSize(), patient
        assert used.GetOrigin() == pytest.approx(predicted.GetOrigin()), patient
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(used) == 2, sitk.GetArrayFromImage(predicted) == 2
        )
        assert any((auto[patient] / "crops").glob("*.npz")), patient
    deep = pd.read_parquet(results / "deep/response/deep_features.parquet")
    assert set(deep.index) <= set(found)


def test_liver_only_reruns_no_preparation_or_model_of_the_response_cohort(runs, liver_only_run):
    for name in ("deep/response/model.pt", "radiomics/features.parquet", "sheet.tsv"):
        before = (runs["first"] / COHORT / name).stat().st_mtime
        assert (liver_only_run / "results" / COHORT / name).stat().st_mtime == before, name
