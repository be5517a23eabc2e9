"""Liver-only cohorts (issue 8): prepared without tumour contours, then with the model's tumour."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813

from hccrad.cohorts.phantom import PHASES, render_patient, write_nifti
from hccrad.cohorts.simulate import simulate_cohort
from hccrad.core.config import ConfigError, check_config
from hccrad.core.seeding import rng_for
from hccrad.figures.imaging import write_qc_png
from hccrad.imaging.exclusions import PREDICTED_TUMOUR_STEP, PREPARE_STEP, gather_exclusions
from hccrad.imaging.prepare import prepare_patient, prepare_with_predicted_tumour
from hccrad.imaging.prepared import (
    crop_files,
    predicted_mask_path,
    read_exclusion,
    tumour_predicted,
)
from hccrad.imaging.read import ImageQCError


def _array(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def patient(tmp_path_factory) -> dict:
    """One simulated MRI patient on disk: its sheet row, and the imaging config at 3 mm."""
    from conftest import load_default_config

    config = load_default_config()
    spec = copy.deepcopy(config["simulate"]["response"])
    spec["centres"] = spec["centres"][:1]
    spec["centres"][0].update(n_patients=4, spacing_mm=[4.0, 4.0, 6.0])
    latent = simulate_cohort(spec, 5)["latent"]
    patient_id = latent.index[0]
    images, mask, affine, _ = render_patient(
        latent.loc[patient_id], spec["centres"][0], "mri", spec["image"], rng_for(5, patient_id)
    )
    base = tmp_path_factory.mktemp("liver_only")
    row = {f"image_{p}": str(base / f"{p}.nii.gz") for p in PHASES["mri"]}
    for phase, volume in images.items():
        write_nifti(row[f"image_{phase}"], volume, affine)
    row["mask"] = str(base / "mask.nii.gz")
    write_nifti(row["mask"], mask, affine)
    # The same patient as a liver model would give it: one label for the whole organ.
    row_liver = {**row, "mask": str(base / "liver_mask.nii.gz")}
    write_nifti(row_liver["mask"], (mask > 0).astype(np.uint8), affine)
    imaging = {**config["imaging"], "spacing_mm": [3.0, 3.0, 3.0], "on_error": "exclude"}
    reference = base / "prepared_reference"
    assert prepare_patient(patient_id, pd.Series(row), imaging, "mri", reference) is None
    return {
        "id": patient_id,
        "row": pd.Series(row),
        "row_liver": pd.Series(row_liver),
        "imaging": imaging,
        "reference": reference,
        "base": base,
    }


def test_a_liver_only_mask_is_prepared_without_crops(patient, tmp_path):
    folder = tmp_path / "prepared"
    exclusion = prepare_patient(
        patient["id"],
        patient["row_liver"],
        patient["imaging"],
        "mri",
        folder,
        "liver_only",
        draw_qc=write_qc_png,
    )
    assert exclusion is None
    assert set(np.unique(_array(folder / "mask.nii.gz"))) == {0, 1}
    assert crop_files(folder) == [] and (folder / "qc.png").is_file()


def test_the_qc_image_is_drawn_only_by_the_drawer_passed_in(patient, tmp_path):
    # imaging knows no matplotlib: the workflow's script hands hccrad.figures' drawer in.
    folder = tmp_path / "prepared"
    prepare_patient(patient["id"], patient["row"], patient["imaging"], "mri", folder)
    assert (folder / "mask.nii.gz").is_file() and not (folder / "qc.png").exists()


def test_liver_only_ignores_the_sheets_tumour_labels(patient, tmp_path):
    folder = tmp_path / "prepared"
    prepare_patient(patient["id"], patient["row"], patient["imaging"], "mri", folder, "liver_only")
    liver_only = _array(folder / "mask.nii.gz")
    reference = _array(patient["reference"] / "mask.nii.gz")
    np.testing.assert_array_equal(liver_only, (reference > 0).astype(np.uint8))


def test_the_reference_mode_still_requires_a_tumour(patient, tmp_path):
    with pytest.raises(ImageQCError, match=r"no tumour voxels.*masks: liver_only"):
        prepare_patient(
            patient["id"],
            patient["row_liver"],
            {**patient["imaging"], "on_error": "stop"},
            "mri",
            tmp_path / "prepared",
        )


def _liver_only_then_predicted(patient, tmp_path, predicted: np.ndarray | None):
    """Prepare liver-only, write ``predicted`` as the model's mask, prepare with its tumour."""
    prepared, auto, masks = tmp_path / "prepared", tmp_path / "auto", tmp_path / "masks"
    prepare_patient(
        patient["id"], patient["row_liver"], patient["imaging"], "mri", prepared, "liver_only"
    )
    grid = sitk.ReadImage(str(prepared / "mask.nii.gz"))
    masks.mkdir()
    if predicted is not None:
        image = sitk.GetImageFromArray(predicted.astype(np.uint8))
        image.CopyInformation(grid)
        sitk.WriteImage(image, str(predicted_mask_path(masks, patient["id"])))
    exclusion = prepare_with_predicted_tumour(
        patient["id"],
        patient["row"],
        prepared,
        predicted_mask_path(masks, patient["id"]),
        predicted is not None,
        patient["imaging"],
        "mri",
        auto,
    )
    return exclusion, auto


def test_a_perfect_prediction_reproduces_the_reference_preparation(patient, tmp_path):
    reference = patient["reference"]
    exclusion, auto = _liver_only_then_predicted(
        patient, tmp_path, _array(reference / "mask.nii.gz")
    )
    assert exclusion is None
    np.testing.assert_array_equal(_array(auto / "mask.nii.gz"), _array(reference / "mask.nii.gz"))
    for phase in PHASES["mri"]:
        ours = sitk.ReadImage(str(auto / f"{phase}.nii.gz"))
        theirs = sitk.ReadImage(str(reference / f"{phase}.nii.gz"))
        assert ours.GetSize() == theirs.GetSize()
        np.testing.assert_allclose(ours.GetSpacing(), theirs.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(ours.GetOrigin(), theirs.GetOrigin(), atol=1e-4)
        # z-scored over the same parenchyma; only the int16 storage of the first pass differs.
        values, expected = sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs)
        assert np.abs(values - expected).max() < 2e-3 * np.ptp(expected)
    (ours,), (theirs,) = crop_files(auto), crop_files(reference)
    ours, theirs = np.load(ours), np.load(theirs)
    np.testing.assert_array_equal(ours["mask"], theirs["mask"])
    np.testing.assert_array_equal(ours["phases"], theirs["phases"])
    np.testing.assert_allclose(ours["centre_xyz"], theirs["centre_xyz"])
    assert np.abs(ours["image"] - theirs["image"]).max() < 2e-3 * np.ptp(theirs["image"])


def test_the_predicted_tumour_keeps_the_prepared_grid(patient, tmp_path):
    reference_mask = _array(patient["reference"] / "mask.nii.gz")
    # A model that drew the tumour one slice too deep: its tumour, the reference liver.
    predicted = np.roll(reference_mask, 1, axis=0)
    _, auto = _liver_only_then_predicted(patient, tmp_path, predicted)
    combined = _array(auto / "mask.nii.gz")
    np.testing.assert_array_equal(combined == 2, predicted == 2)
    np.testing.assert_array_equal(combined > 0, (reference_mask > 0) | (predicted == 2))
    grid = sitk.ReadImage(str(tmp_path / "prepared" / "mask.nii.gz"))
    ours = sitk.ReadImage(str(auto / "mask.nii.gz"))
    assert (ours.GetSize(), ours.GetSpacing(), ours.GetDirection()) == (
        grid.GetSize(),
        grid.GetSpacing(),
        grid.GetDirection(),
    )
    np.testing.assert_allclose(ours.GetOrigin(), grid.GetOrigin(), atol=1e-4)


def test_no_predicted_tumour_is_an_exclusion_with_its_step(patient, tmp_path):
    exclusion, auto = _liver_only_then_predicted(patient, tmp_path, None)
    assert exclusion is not None and "found no tumour" in exclusion.reason
    table = gather_exclusions([auto], "test_cohort")
    row = table.loc[patient["id"]]
    assert row["step"] == PREDICTED_TUMOUR_STEP
    assert "masks: reference" in row["fix"] and row["file"].endswith(f"{patient['id']}.nii.gz")
    assert crop_files(auto) == []


def test_a_preparation_exclusion_is_carried_over(patient, tmp_path):
    empty = tmp_path / "empty_mask.nii.gz"
    like = sitk.ReadImage(patient["row"]["mask"])
    blank = sitk.Image(like.GetSize(), sitk.sitkUInt8)
    blank.CopyInformation(like)
    sitk.WriteImage(blank, str(empty))
    prepared, auto = tmp_path / "prepared", tmp_path / "auto"
    row = patient["row"].copy()
    row["mask"] = str(empty)
    exclusion = prepare_patient(
        patient["id"], row, patient["imaging"], "mri", prepared, "liver_only"
    )
    assert exclusion is not None and "no liver voxels" in exclusion.reason
    carried = prepare_with_predicted_tumour(
        patient["id"],
        patient["row"],
        prepared,
        tmp_path / "none.nii.gz",
        False,
        patient["imaging"],
        "mri",
        auto,
    )
    assert carried == exclusion
    assert read_exclusion(auto).loc[0, "step"] == PREPARE_STEP


def test_a_predicted_mask_on_another_grid_is_refused(patient, tmp_path):
    reference_mask = _array(patient["reference"] / "mask.nii.gz")
    prepared, auto, masks = tmp_path / "prepared", tmp_path / "auto", tmp_path / "masks"
    prepare_patient(
        patient["id"], patient["row_liver"], patient["imaging"], "mri", prepared, "liver_only"
    )
    shifted = sitk.GetImageFromArray(reference_mask)
    shifted.CopyInformation(sitk.ReadImage(str(prepared / "mask.nii.gz")))
    shifted.SetOrigin(tuple(v + 5.0 for v in shifted.GetOrigin()))
    path = predicted_mask_path(masks, patient["id"])
    masks.mkdir()
    sitk.WriteImage(shifted, str(path))
    with pytest.raises(ImageQCError, match=rf"{patient['id']}.*not on the prepared image's grid"):
        prepare_with_predicted_tumour(
            patient["id"],
            patient["row"],
            prepared,
            path,
            True,
            {**patient["imaging"], "on_error": "stop"},
            "mri",
            auto,
        )


def test_the_response_cohort_cannot_be_liver_only(default_config):
    from conftest import ROOT

    default_config["simulate"]["response"]["masks"] = "liver_only"
    with pytest.raises(ConfigError, match=r"response cohort.*masks: reference"):
        check_config(default_config, ROOT)


def test_liver_only_needs_normalisations_that_can_be_redone(default_config):
    from conftest import ROOT

    default_config["simulate"]["radiogenomics"]["masks"] = "liver_only"
    check_config(default_config, ROOT)
    default_config["imaging"]["normalisation"]["mri"] = "percentile"
    with pytest.raises(ConfigError, match=r"sim_lihc.*normalisation\.mri = 'percentile'"):
        check_config(default_config, ROOT)


def test_only_a_predicted_non_empty_tumour_counts_as_found():
    predictions = pd.DataFrame(
        {"status": ["predicted", "predicted", "excluded"], "tumour_empty": [False, True, None]},
        index=pd.Index(["a", "b", "c"], name="patient_id"),
    )
    assert [tumour_predicted(predictions, p) for p in "abc"] == [True, False, False]
