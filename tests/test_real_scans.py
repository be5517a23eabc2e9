"""Real scans through preparation and radiomics: a DICOM CT with a DICOM SEG, the IBSI CT phantom
from DICOM + RTSTRUCT, and an MR (TotalSegmentator's examples, Apache-2.0; IBSI CC BY-NC).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813
from conftest import SHARED, load_default_config

from hccrad.figures.imaging import write_qc_png
from hccrad.imaging.prepare import prepare_patient
from hccrad.imaging.rtstruct import label_map_to_seg, read_series, structure_to_mask
from hccrad.imaging.volumes import load_patient, load_prepared
from hccrad.radiomics.extract import extract_region, make_extractor, params_path

TOTALSEG = SHARED / "totalsegmentator"
CT_SERIES = TOTALSEG / "example_ct_dicom"
TOTALSEG_LIVER = 5
PHANTOM = SHARED / "ibsi" / "ibsi_1_ct_radiomics_phantom"


def liver_of(segmentation: sitk.Image) -> sitk.Image:
    """TotalSegmentator's liver (label 5) as the sheet's liver label 1."""
    return sitk.Cast(sitk.Equal(segmentation, TOTALSEG_LIVER), sitk.sitkUInt8)


def corners(image: sitk.Image) -> np.ndarray:
    """The physical positions of a grid's 8 corner voxel centres, sorted."""
    size = image.GetSize()
    points = [
        image.TransformIndexToPhysicalPoint(
            [int(i * (n - 1)) for i, n in zip(c, size, strict=True)]
        )
        for c in itertools.product((0, 1), repeat=3)
    ]
    return np.array(sorted(points))


@pytest.fixture(scope="module")
def ct_seg(tmp_path_factory):
    """TotalSegmentator's liver written by highdicom as a DICOM SEG of the CT series."""
    reference, _ = read_series(CT_SERIES, "totalseg_ct")
    segmentation = sitk.ReadImage(str(TOTALSEG / "example_seg_dicom.nii.gz"))
    # The NIfTI stores the same grid with the y axis flipped: an exact nearest-neighbour copy.
    liver = sitk.Resample(
        liver_of(segmentation), reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0
    )
    path = tmp_path_factory.mktemp("seg") / "liver_seg.dcm"
    label_map_to_seg(liver, CT_SERIES, {1: "Liver"}, "totalseg_ct").save_as(path)
    return path, segmentation


def test_dicom_ct_with_seg_keeps_geometry_volume_and_hu(ct_seg):
    path, segmentation = ct_seg
    image, mask = structure_to_mask(path, CT_SERIES, "totalseg_ct")
    # Same grid as TotalSegmentator's NIfTI export of this series (its own reader, flipped y).
    np.testing.assert_allclose(corners(image), corners(segmentation), atol=1e-3)
    np.testing.assert_allclose(image.GetSpacing(), segmentation.GetSpacing(), atol=1e-6)
    voxel_ml = np.prod(image.GetSpacing()) / 1000
    ours = (sitk.GetArrayFromImage(mask) == 1).sum() * voxel_ml
    theirs = (sitk.GetArrayFromImage(segmentation) == TOTALSEG_LIVER).sum() * voxel_ml
    assert abs(ours - theirs) / theirs < 0.01
    values = sitk.GetArrayFromImage(image)
    liver_hu = np.median(values[sitk.GetArrayFromImage(mask) == 1])
    assert values.min() >= -1024 and values[0, 0, 0] < -900  # air outside the body
    assert 0 < liver_hu < 200  # soft tissue in Hounsfield units, not raw stored values


def test_dicom_ct_with_seg_is_prepared_and_gives_liver_radiomics(ct_seg, tmp_path):
    path, segmentation = ct_seg
    imaging = load_default_config()["imaging"]
    # The example is a 20-slice (40 mm) excerpt of an abdomen: below the 50 mm plausible extent.
    imaging["plausible"]["extent_mm"] = [20.0, 2500.0]
    row = pd.Series({"image_portal_venous": str(CT_SERIES), "mask": str(path)})
    folder = tmp_path / "prepared"
    exclusion = prepare_patient(
        "totalseg_ct", row, imaging, "ct", folder, "liver_only", draw_qc=write_qc_png
    )
    assert exclusion is None
    assert (folder / "qc.png").stat().st_size > 1000
    prepared = load_prepared("totalseg_ct", folder, ["portal_venous"])
    assert prepared.mask.GetSpacing() == pytest.approx(imaging["spacing_mm"])
    liver = sitk.Cast(sitk.Equal(prepared.mask, 1), sitk.sitkUInt8)
    prepared_ml = sitk.GetArrayFromImage(liver).sum() * np.prod(liver.GetSpacing()) / 1000
    seg_ml = (
        (sitk.GetArrayFromImage(segmentation) == TOTALSEG_LIVER).sum()
        * np.prod(segmentation.GetSpacing())
        / 1000
    )
    # Resampled from 0.98 x 0.98 x 2 mm to 3 mm voxels: the surface moves by under a voxel.
    assert abs(prepared_ml - seg_ml) / seg_ml < 0.05
    extractor = make_extractor(params_path("ct", original_only=True))
    features, _ = extract_region(prepared.images["portal_venous"], liver, extractor)
    original = load_patient(
        "totalseg_ct", {"portal_venous": str(CT_SERIES)}, str(path), liver_only=True
    )
    hu = sitk.GetArrayFromImage(original.images["portal_venous"])
    liver_mean = hu[sitk.GetArrayFromImage(original.mask) == 1].mean()
    # PyRadiomics re-segments to [-150, 400] HU (ct_hu parameters): the mean stays in HU.
    assert features["original_firstorder_Mean"] == pytest.approx(liver_mean, abs=10)
    assert features["original_shape_MeshVolume"] / 1000 == pytest.approx(seg_ml, rel=0.05)


def test_ibsi_phantom_from_dicom_rtstruct_matches_its_nifti_features():
    from_dicom = load_patient(
        "ibsi_ct",
        {"ct": str(PHANTOM / "dicom" / "image")},
        str(PHANTOM / "dicom" / "mask" / "DCM_RS_00060.dcm"),
    )
    image = sitk.ReadImage(str(PHANTOM / "nifti" / "image" / "phantom.nii.gz"))
    mask = sitk.ReadImage(str(PHANTOM / "nifti" / "mask" / "mask.nii.gz"))
    extractor = make_extractor(params_path("ct", original_only=True))
    dicom_mask = sitk.Cast(sitk.Greater(from_dicom.mask, 0), sitk.sitkUInt8)
    ours, _ = extract_region(from_dicom.images["ct"], dicom_mask, extractor)
    theirs, _ = extract_region(image, mask, extractor)
    assert ours.keys() == theirs.keys() and len(ours) > 90
    # Same voxels; the DICOM slice gap is 3 mm to 1.5e-13: equal to 1e-6 relative.
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


def test_real_mr_is_zscored_over_the_liver_and_gives_radiomics(tmp_path):
    segmentation = sitk.ReadImage(str(TOTALSEG / "example_seg_mr.nii.gz"))
    mask_path = tmp_path / "liver_mask.nii.gz"
    sitk.WriteImage(liver_of(segmentation), str(mask_path))
    imaging = load_default_config()["imaging"]
    row = pd.Series(
        {"image_portal_venous": str(TOTALSEG / "example_mr_sm.nii.gz"), "mask": str(mask_path)}
    )
    folder = tmp_path / "prepared"
    assert prepare_patient("totalseg_mr", row, imaging, "mri", folder, "liver_only") is None
    prepared = load_prepared("totalseg_mr", folder, ["portal_venous"])
    values = sitk.GetArrayFromImage(prepared.images["portal_venous"])
    liver = sitk.GetArrayFromImage(prepared.mask) == 1
    assert values[liver].mean() == pytest.approx(0.0, abs=0.05)
    assert values[liver].std() == pytest.approx(1.0, abs=0.05)
    region = sitk.Cast(sitk.Equal(prepared.mask, 1), sitk.sitkUInt8)
    extractor = make_extractor(params_path("mri", original_only=True), binWidth=0.25)
    features, _ = extract_region(prepared.images["portal_venous"], region, extractor)
    assert features["original_firstorder_Mean"] == pytest.approx(0.0, abs=0.1)
    assert features["original_glcm_JointEntropy"] > 0
