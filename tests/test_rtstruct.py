"""DICOM RTSTRUCT (and SEG) beside a DICOM series: the label map, and every refusal's message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from conftest import SHARED

from hccrad.imaging.read import ImageQCError
from hccrad.imaging.rtstruct import (
    StructureError,
    rasterise_roi,
    structure_modality,
    structure_to_mask,
)
from hccrad.imaging.volumes import load_patient

# The IBSI-1 CT phantom (CC BY-NC 3.0: read from the shared folder, never copied).
PHANTOM = SHARED / "ibsi" / "ibsi_1_ct_radiomics_phantom"
SERIES = PHANTOM / "dicom" / "image"
RTSTRUCT = PHANTOM / "dicom" / "mask" / "DCM_RS_00060.dcm"


def edited_rtstruct(tmp_path, edit) -> str:
    """A copy of the phantom's RTSTRUCT after ``edit(dataset)``."""
    dataset = pydicom.dcmread(RTSTRUCT)
    edit(dataset)
    path = tmp_path / "RS.dcm"
    dataset.save_as(path)
    return str(path)


def test_the_phantoms_rtstruct_becomes_its_nifti_mask_voxel_for_voxel():
    image, mask = structure_to_mask(RTSTRUCT, SERIES, "ibsi_ct")
    nifti_mask = sitk.ReadImage(str(PHANTOM / "nifti" / "mask" / "mask.nii.gz"))
    nifti_image = sitk.ReadImage(str(PHANTOM / "nifti" / "image" / "phantom.nii.gz"))
    ours = sitk.GetArrayFromImage(mask)
    theirs = sitk.GetArrayFromImage(nifti_mask)
    assert set(np.unique(ours)) == {0, 2}  # GTV-1 is a tumour by the default labels
    assert (ours > 0).sum() == (theirs > 0).sum() == 125256
    assert ((ours > 0) != (theirs > 0)).sum() == 0
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(nifti_image)
    )
    np.testing.assert_allclose(image.GetOrigin(), nifti_image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(image.GetSpacing(), nifti_image.GetSpacing(), atol=1e-4)


def test_an_absent_roi_name_is_refused_with_patient_file_rois_and_fix():
    with pytest.raises(StructureError) as caught:
        structure_to_mask(RTSTRUCT, SERIES, "P007", {"^liver$": 1})
    message = str(caught.value)
    assert message.startswith(f"patient P007: {RTSTRUCT}: no ROI matches")
    assert "'GTV-1'" in message
    assert "Fix: name the ROI" in message


def test_a_roi_chosen_by_name_gets_its_label():
    _, mask = structure_to_mask(RTSTRUCT, SERIES, "ibsi_ct", {"GTV-1": 1})
    assert set(np.unique(sitk.GetArrayFromImage(mask))) == {0, 1}


def test_polygons_off_the_image_grid_are_refused(tmp_path):
    def shift(dataset):
        for contour in dataset.ROIContourSequence[0].ContourSequence:
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            points[:, 0] += 400.0  # 400 mm to the patient's left: outside the 199 mm field
            contour.ContourData = [f"{v:.4f}" for v in points.ravel()]

    with pytest.raises(StructureError, match=r"patient P1: .*RS\.dcm: a contour lies off"):
        structure_to_mask(edited_rtstruct(tmp_path, shift), SERIES, "P1")


def test_contours_between_slices_are_refused(tmp_path):
    def lift(dataset):
        contour = dataset.ROIContourSequence[0].ContourSequence[0]
        points = np.asarray(contour.ContourData, float).reshape(-1, 3)
        points[:, 2] += 1.5  # half a 3 mm slice
        contour.ContourData = [f"{v:.4f}" for v in points.ravel()]

    with pytest.raises(StructureError, match="between its slices"):
        structure_to_mask(edited_rtstruct(tmp_path, lift), SERIES, "P1")


def test_an_rtstruct_of_another_series_is_refused(tmp_path):
    def other_series(dataset):
        frame = dataset.ReferencedFrameOfReferenceSequence[0]
        series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
        series.SeriesInstanceUID = "1.2.3.4"

    with pytest.raises(StructureError, match=r"refers to series \['1.2.3.4'\].*Fix: pair"):
        structure_to_mask(edited_rtstruct(tmp_path, other_series), SERIES, "P1")


def test_a_file_that_is_no_structure_is_refused():
    image = PHANTOM / "nifti" / "image" / "phantom.nii.gz"
    assert structure_modality(image) is None
    assert structure_modality(RTSTRUCT) == "RTSTRUCT"
    with pytest.raises(StructureError, match="not a DICOM RTSTRUCT or SEG"):
        structure_to_mask(image, SERIES, "P1")


def test_an_inner_contour_is_a_hole_and_voxel_centres_decide():
    reference = sitk.Image(10, 10, 2, sitk.sitkUInt8)  # 1 mm voxels, origin 0
    outer = np.array([[1.5, 1.5, 1], [7.5, 1.5, 1], [7.5, 7.5, 1], [1.5, 7.5, 1]], float)
    inner = np.array([[3.5, 3.5, 1], [5.5, 3.5, 1], [5.5, 5.5, 1], [3.5, 5.5, 1]], float)
    filled = rasterise_roi([outer, inner], reference, "RS.dcm", "P1")
    assert filled[0].sum() == 0
    # Centres 2..7 inside the outer square (6 x 6), centres 4..5 in the hole (2 x 2).
    assert filled[1].sum() == 36 - 4
    assert not filled[1, 4, 4] and filled[1, 2, 2]


def test_the_sheet_mask_may_be_an_rtstruct_drawn_on_the_phase_series():
    volumes = load_patient("ibsi_ct", {"portal_venous": str(SERIES)}, str(RTSTRUCT))
    assert (sitk.GetArrayFromImage(volumes.mask) == 2).sum() == 125256
    with pytest.raises(ImageQCError, match=r"patient ibsi_ct: .*not a DICOM series folder"):
        load_patient(
            "ibsi_ct",
            {"portal_venous": str(PHANTOM / "nifti" / "image" / "phantom.nii.gz")},
            str(RTSTRUCT),
        )


def test_the_configs_structure_labels_reach_the_mask(default_config, monkeypatch, tmp_path):
    # imaging.structure_labels is what prepare_patient hands to the RTSTRUCT reader.
    from hccrad.imaging import prepare

    seen = {}

    def stop_after_load(*args, **kwargs):
        seen.update(kwargs)
        return load_patient(*args, **kwargs)

    monkeypatch.setattr(prepare, "load_patient", stop_after_load)
    imaging = {**default_config["imaging"], "structure_labels": {"^liver$": 1}}
    row = pd.Series({"image_portal_venous": str(SERIES), "mask": str(RTSTRUCT)})
    with pytest.raises(ImageQCError, match=r"no ROI matches the structure labels .*'GTV-1'"):
        prepare.prepare_patient("P007", row, imaging, "ct", tmp_path / "P007")
    assert seen["structure_labels"] == {"^liver$": 1}
