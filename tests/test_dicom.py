"""DICOM series -> NIfTI and DICOM SEG -> label map, on tiny series written inside the tests."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from hccrad.cohorts.dicom import DicomError, convert_patient, convert_series

SHAPE = (6, 8, 10)  # slices, rows, columns
SPACING = (0.8, 0.7)  # row, column spacing (mm)
SLICE_MM = 2.5
LABELS = {"^liver": 1, "mass|tumou?r": 2}


def ct_slices(
    folder: Path,
    *,
    study: str,
    frame: str,
    acquisition: int = 1,
    z_positions: list[float] | None = None,
    orientation: list[float] | None = None,
    offset: int = 0,
) -> list[Dataset]:
    """A tiny CT series (one file per slice) with the attributes highdicom needs."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    z_positions = z_positions or [10.0 + SLICE_MM * k for k in range(SHAPE[0])]
    datasets = []
    for k, z in enumerate(z_positions):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.PatientName = "HCC_T01", "Test^Phantom"
        ds.PatientBirthDate, ds.PatientSex = "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series_uid
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20000101", "120000", "1"
        ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 2, k + 1
        ds.AcquisitionNumber = acquisition
        ds.FrameOfReferenceUID = frame
        ds.ImagePositionPatient = [-4.0, -3.0, z]
        ds.ImageOrientationPatient = orientation or [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = list(SPACING)
        ds.SliceThickness = SLICE_MM
        ds.Rows, ds.Columns = SHAPE[1], SHAPE[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.Manufacturer = "hccrad-test"
        pixels = (np.arange(SHAPE[1] * SHAPE[2]).reshape(SHAPE[1:]) + 100 * k + offset).astype(
            np.int16
        )
        ds.PixelData = pixels.tobytes()
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        datasets.append(pydicom.dcmread(path))
    return datasets


def segmentation(sources: list[Dataset], target: Path) -> np.ndarray:
    """A DICOM SEG of three segments (liver, tumour mass, portal vein); the expected labels."""
    liver = np.zeros(SHAPE, dtype=bool)
    liver[1:5, 1:7, 1:9] = True
    tumour = np.zeros(SHAPE, dtype=bool)
    tumour[2:4, 3:5, 3:6] = True
    vein = np.zeros(SHAPE, dtype=bool)
    vein[1:3, 0:1, 0:2] = True

    def segment(number: int, label: str) -> hd.seg.SegmentDescription:
        return hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=codes.cid7166.ConnectiveTissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )

    # Manual segments (no algorithm); the tumour lies inside the liver segment.
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.stack([liver, tumour, vein], axis=-1).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            segment(1, "Liver"),
            segment(2, "Tumor Mass"),
            segment(3, "Portal vein"),
        ],
        series_instance_uid=generate_uid(),
        series_number=300,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="hccrad-test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    target.mkdir(parents=True, exist_ok=True)
    seg.save_as(target / "seg.dcm")
    expected = np.zeros(SHAPE, dtype=np.uint8)
    expected[liver] = 1
    expected[tumour] = 2
    return expected


def manifest(roles: list[str]) -> pd.DataFrame:
    """Manifest rows of one patient (only the role column is read by the conversion)."""
    return pd.DataFrame({"patient_id": "HCC_T01", "role": roles})


@pytest.fixture
def study() -> tuple[str, str]:
    """A study and a frame-of-reference UID."""
    return generate_uid(), generate_uid()


def test_series_and_seg_become_nifti_and_labels(tmp_path, study):
    sources = ct_slices(tmp_path / "dl" / "portal_venous", study=study[0], frame=study[1])
    expected = segmentation(sources, tmp_path / "dl" / "segmentation")
    report = convert_patient(
        tmp_path / "dl", manifest(["portal_venous", "segmentation"]), tmp_path / "nii", LABELS
    )
    image = sitk.ReadImage(str(tmp_path / "nii" / "portal_venous.nii.gz"))
    mask = sitk.ReadImage(str(tmp_path / "nii" / "mask.nii.gz"))
    assert image.GetSize() == (SHAPE[2], SHAPE[1], SHAPE[0])
    assert image.GetSpacing() == pytest.approx((SPACING[1], SPACING[0], SLICE_MM))
    values = sitk.GetArrayFromImage(image)
    assert values[3, 0, 0] == 300 - 1024  # rescaled HU, slice order kept
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), expected)
    assert mask.GetOrigin() == pytest.approx(image.GetOrigin())
    assert report["mask"]["voxels_per_label"] == np.bincount(expected.ravel()).tolist()
    assert json.loads((tmp_path / "nii" / "conversion.json").read_text())["mask"]["drawn_on"] == (
        "portal_venous"
    )


def test_shuffled_file_order_is_sorted_by_position(tmp_path, study):
    z = [10.0 + SLICE_MM * k for k in (3, 0, 5, 1, 4, 2)]
    ct_slices(tmp_path / "s", study=study[0], frame=study[1], z_positions=z)
    check = convert_series(tmp_path / "s", "portal_venous", tmp_path / "pv.nii.gz")
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "pv.nii.gz")))
    # Slice written k-th has value 100 k; sorted by z the order is that of `z`'s ranks.
    assert [int(v) + 1024 for v in values[:, 0, 0]] == [100, 300, 500, 0, 400, 200]
    assert check.slice_spacing_mm == pytest.approx(SLICE_MM)


def test_missing_slice_is_an_error(tmp_path, study):
    z = [10.0 + SLICE_MM * k for k in (0, 1, 2, 4, 5, 6)]
    ct_slices(tmp_path / "s", study=study[0], frame=study[1], z_positions=z)
    with pytest.raises(DicomError, match=r"uneven slice spacing.*1 slice\(s\) missing"):
        convert_series(tmp_path / "s", "portal_venous", tmp_path / "pv.nii.gz")


def test_mixed_orientation_is_an_error(tmp_path, study):
    ct_slices(tmp_path / "s", study=study[0], frame=study[1])
    ct_slices(
        tmp_path / "s",
        study=study[0],
        frame=study[1],
        z_positions=[40.0],
        orientation=[1.0, 0.0, 0.0, 0.0, 0.0, -1.0],
    )
    with pytest.raises(DicomError, match="different orientations"):
        convert_series(tmp_path / "s", "portal_venous", tmp_path / "pv.nii.gz")


def test_two_phase_series_keeps_the_acquisition_the_seg_was_drawn_on(tmp_path, study):
    folder = tmp_path / "dl" / "portal_venous"
    arterial = ct_slices(folder, study=study[0], frame=study[1], acquisition=1)
    ct_slices(folder, study=study[0], frame=study[1], acquisition=2, offset=7)
    segmentation(arterial, tmp_path / "dl" / "segmentation")
    report = convert_patient(
        tmp_path / "dl", manifest(["portal_venous", "segmentation"]), tmp_path / "nii", LABELS
    )
    assert report["series"]["portal_venous"]["acquisitions"] == [1, 2]
    assert report["series"]["portal_venous"]["chosen_acquisition"] == 1
    # Without a SEG the later acquisition (portal venous after arterial) is kept.
    check = convert_series(folder, "portal_venous", tmp_path / "late.nii.gz")
    assert check.chosen_acquisition == 2


def test_seg_without_known_segments_is_an_error(tmp_path, study):
    sources = ct_slices(tmp_path / "dl" / "portal_venous", study=study[0], frame=study[1])
    segmentation(sources, tmp_path / "dl" / "segmentation")
    with pytest.raises(DicomError, match=r"no segment .* its segments are \['Liver'"):
        convert_patient(
            tmp_path / "dl",
            manifest(["portal_venous", "segmentation"]),
            tmp_path / "nii",
            {"spleen": 1},
        )


def test_empty_download_folder_is_an_error(tmp_path):
    (tmp_path / "s").mkdir()
    with pytest.raises(DicomError, match="no DICOM files; rerun the download"):
        convert_series(tmp_path / "s", "portal_venous", tmp_path / "pv.nii.gz")
