"""Bad images and masks: each is refused by name (patient, file, problem, fix), never read as zeros.

Function-level cases of hccrad.imaging.read.read_image, hccrad.imaging.volumes.load_patient and
hccrad.imaging.prepare.prepare_patient (on_error stop and exclude) on small synthetic CT volumes.
"""

from __future__ import annotations

import copy
import gzip
import io
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813
from conftest import ROOT, load_default_config

from hccrad.core.config import radiomics_for
from hccrad.imaging.checks import Plausible
from hccrad.imaging.exclusions import call_or_exclude, gather_exclusions
from hccrad.imaging.prepare import prepare_patient
from hccrad.imaging.read import ImageQCError, read_image
from hccrad.imaging.volumes import load_patient
from hccrad.radiomics.patient import patient_radiomics

PATIENT = "007"  # an id a hospital writes: it must stay "007" in every message
PHASE = "portal_venous"
SHAPE = (80, 80, 20)  # x, y, z voxels
SPACING = (2.0, 2.0, 5.0)  # mm: a 160 x 160 x 100 mm field of view
REEXPORT = "re-export"


def labels_for(
    shape: tuple[int, ...] = SHAPE,
    spacing: tuple[float, ...] = SPACING,
    tumour_radius_mm: float = 12.0,
) -> np.ndarray:
    """A label map (x, y, z): a liver ellipsoid (1) with a spherical tumour (2) at its centre."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    extent = np.asarray(shape) * np.asarray(spacing)
    semi = 0.35 * extent
    liver = (x / semi[0]) ** 2 + (y / semi[1]) ** 2 + (z / semi[2]) ** 2 <= 1
    tumour = x**2 + y**2 + z**2 <= tumour_radius_mm**2
    return np.where(tumour & liver, 2, np.where(liver, 1, 0)).astype(np.uint8)


def ct_for(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A CT (int16 HU) of a label map: body 50, liver 110, tumour 70, plus noise."""
    rng = np.random.default_rng(seed)
    hu = np.choose(labels, [50.0, 110.0, 70.0]) + rng.normal(0.0, 10.0, labels.shape)
    return np.round(hu).astype(np.int16)


def affine_for(spacing: tuple[float, ...]) -> np.ndarray:
    """A RAS affine with the given spacing (LPS voxel order, as DICOM converters write)."""
    return np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])


def write(path: Path, array: np.ndarray, spacing: tuple[float, ...] = SPACING) -> Path:
    """Write a NIfTI with scanner-coded qform and sform (nibabel)."""
    nifti = nib.Nifti1Image(array, affine_for(spacing))
    nifti.header.set_xyzt_units(xyz="mm")
    nifti.set_qform(nifti.affine, code=1)
    nifti.set_sform(nifti.affine, code=1)
    nib.save(nifti, str(path))
    return path


def write_case(
    folder: Path,
    labels: np.ndarray | None = None,
    spacing: tuple[float, ...] = SPACING,
    image: np.ndarray | None = None,
) -> tuple[dict[str, Path], Path]:
    """Write a patient's one CT phase and mask into ``folder``; return (image paths, mask)."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = labels_for() if labels is None else labels
    image = ct_for(labels) if image is None else image
    image_path = write(folder / f"{PATIENT}_{PHASE}.nii.gz", image, spacing)
    mask_path = write(folder / f"{PATIENT}_mask.nii.gz", labels, spacing)
    return {PHASE: image_path}, mask_path


def truncate(path: Path, fraction: float = 0.5) -> int:
    """Keep the first ``fraction`` of a file's bytes (an interrupted copy); return the size."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return len(data)


def imaging_cfg(**changes: Any) -> dict[str, Any]:
    """The default config's imaging section at the test grid's own spacing, with changes."""
    cfg = copy.deepcopy(load_default_config()["imaging"]) | {"spacing_mm": list(SPACING)}
    return cfg | changes


def sheet_row_of(image_paths: dict[str, Path | str], mask_path: Path | str) -> pd.Series:
    """A cohort sheet row as the workflow reads it (image_<phase> columns and mask)."""
    cells = {f"image_{phase}": str(path) for phase, path in image_paths.items()}
    return pd.Series(cells | {"mask": str(mask_path)})


def assert_names(message: str, file: Path | str | None, *problem_and_fix: str) -> None:
    """The message names the patient, the file, each expected phrase and a fix."""
    assert f"patient {PATIENT}:" in message
    if file is not None:
        assert str(file) in message
    assert "Fix:" in message
    for phrase in problem_and_fix:
        assert phrase in message, f"{phrase!r} not in {message!r}"


def load(image_paths: dict[str, Path | None], mask_path: Path | None, **kwargs: Any):
    """load_patient of the test patient, with the default config's checks."""
    cfg = imaging_cfg()
    return load_patient(
        PATIENT,
        image_paths,
        mask_path,
        plausible=Plausible.from_config(cfg["plausible"]),
        min_tumour_voxels=cfg["min_tumour_voxels"]["original"],
        tolerance=cfg["geometry_tolerance_mm"],
        **kwargs,
    )


def refused(image_paths: dict[str, Path | None], mask_path: Path | None, **kwargs: Any) -> str:
    """The ImageQCError message load_patient raises; under 'exclude' the same reason returns."""
    with pytest.raises(ImageQCError) as raised:
        load(image_paths, mask_path, **kwargs)
    result, exclusion = call_or_exclude(load, image_paths, mask_path, on_error="exclude", **kwargs)
    assert result is None and exclusion is not None
    assert exclusion.patient_id == PATIENT and exclusion.reason == raised.value.problem
    assert exclusion.fix == raised.value.fix and exclusion.file == raised.value.path
    return str(raised.value)


def prepare_both_ways(
    tmp_path: Path, row: pd.Series, cfg: dict[str, Any], file: Path | str, *phrases: str
) -> None:
    """prepare_patient stops with the message (stop) and records one exclusion row (exclude)."""
    with pytest.raises(ImageQCError) as raised:
        prepare_patient(PATIENT, row, cfg | {"on_error": "stop"}, "ct", tmp_path / "stop")
    assert_names(str(raised.value), file, *phrases)
    good_images, good_mask = write_case(tmp_path / "good")
    folders = {PATIENT: tmp_path / "excluded", "008": tmp_path / "fine"}
    exclusion = prepare_patient(PATIENT, row, cfg | {"on_error": "exclude"}, "ct", folders[PATIENT])
    assert exclusion is not None
    fine = prepare_patient(
        "008",
        sheet_row_of(good_images, good_mask),
        cfg | {"on_error": "exclude"},
        "ct",
        folders["008"],
    )
    assert fine is None
    table = gather_exclusions(list(folders.values()), "byo")
    # Only the bad patient is listed, with the file, the reason and the fix; nothing else.
    assert list(table.index) == [PATIENT]
    assert table.loc[PATIENT, "file"] == str(file)
    assert table.loc[PATIENT, "reason"] == raised.value.problem
    assert table.loc[PATIENT, "fix"] == raised.value.fix
    assert not (folders[PATIENT] / "mask.nii.gz").exists()
    assert (folders["008"] / "mask.nii.gz").is_file()


# --- files that cannot be read whole -------------------------------------------------------


def test_gzipped_csv_named_nii_gz_is_not_a_nifti_image(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    with gzip.open(images[PHASE], "wt") as handle:
        handle.write("x,y,z,hu\n1,2,3,40\n")
    message = refused(images, mask)
    assert_names(message, images[PHASE], "the file is not a NIfTI image", "x,y,z", "table")


def test_truncated_float32_nii_gz_names_the_bytes_of_voxel_data(tmp_path: Path) -> None:
    labels = labels_for()
    images, mask = write_case(tmp_path, labels, image=ct_for(labels).astype(np.float32))
    truncate(images[PHASE])
    expected = int(np.prod(SHAPE)) * 4
    message = refused(images, mask)
    assert_names(message, images[PHASE], "the file is truncated", f"of {expected} bytes", REEXPORT)
    assert "EOFError" not in message


def test_truncated_int16_nii_gz_is_refused_not_read_as_zeros(tmp_path: Path) -> None:
    images, _ = write_case(tmp_path)
    # SimpleITK alone reads this file without a word, zero-filling what is missing.
    truncate(images[PHASE])
    zero_filled = sitk.GetArrayFromImage(sitk.ReadImage(str(images[PHASE])))
    assert (zero_filled == 0).mean() > 0.3
    with pytest.raises(ImageQCError) as raised:
        read_image(images[PHASE], PATIENT)
    expected = int(np.prod(SHAPE)) * 2
    assert_names(str(raised.value), images[PHASE], "the file is truncated", f"of {expected} bytes")
    available = int(str(raised.value).split("the file is truncated: ")[1].split(" ")[0])
    assert 0 < available < expected


def test_truncated_mask_is_refused_even_with_the_tumour_in_the_kept_half(tmp_path: Path) -> None:
    # The tumour sits in the first slices, which the kept half of the file still holds.
    labels = np.zeros(SHAPE, np.uint8)
    labels[10:70, 10:70, :] = 1
    labels[30:40, 30:40, 0:3] = 2
    images, mask = write_case(tmp_path, labels)
    truncate(mask, 0.6)
    message = refused(images, mask)
    assert_names(message, mask, "the file is truncated", f"of {int(np.prod(SHAPE))} bytes")


def test_header_only_nii_gz_has_no_voxel_data(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    # The 348-byte header and the 4-byte extension flag, and nothing after them.
    header = gzip.decompress(images[PHASE].read_bytes())[:352]
    images[PHASE].write_bytes(gzip.compress(header))
    message = refused(images, mask)
    assert_names(message, images[PHASE], "the file is truncated: 0 of", REEXPORT)


def test_nifti_pair_header_named_nii_gz_points_to_the_separate_img(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    pair = nib.Nifti1Pair(ct_for(labels_for()), affine_for(SPACING))
    nib.save(pair, str(tmp_path / "pair.img"))
    images[PHASE].write_bytes(gzip.compress((tmp_path / "pair.hdr").read_bytes()))
    message = refused(images, mask)
    assert_names(message, images[PHASE], "header of a NIfTI pair", "one .nii.gz")


def test_header_with_fewer_slices_than_the_data_is_a_size_mismatch(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    data = bytearray(gzip.decompress(images[PHASE].read_bytes()))
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(data[:348])))
    header["dim"][3] = SHAPE[2] // 2  # the header says 10 slices; the file holds 20
    data[:348] = header.binaryblock
    images[PHASE].write_bytes(gzip.compress(bytes(data)))
    message = refused(images, mask)
    assert_names(message, images[PHASE], "bytes of voxel data", "does not match the data")


def test_corrupt_gzip_stream_is_refused(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    data = bytearray(images[PHASE].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # a damaged block (e.g. a bad sector)
    images[PHASE].write_bytes(bytes(data))
    message = refused(images, mask)
    assert_names(message, images[PHASE], REEXPORT)
    assert "gzip stream is damaged" in message or "truncated" in message


def test_wrong_magic_is_refused(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    data = bytearray(gzip.decompress(images[PHASE].read_bytes()))
    data[344:348] = b"abc\x00"  # NIfTI-1's magic field
    images[PHASE].write_bytes(gzip.compress(bytes(data)))
    message = refused(images, mask)
    assert_names(message, images[PHASE], "magic", REEXPORT)


def test_nifti2_file_is_named_with_the_conversion(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    nib.save(nib.Nifti2Image(ct_for(labels_for()), affine_for(SPACING)), str(images[PHASE]))
    message = refused(images, mask)
    assert_names(message, images[PHASE], "NIfTI-2", "save it as NIfTI-1")


def test_plain_nii_cut_short_is_truncated(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    plain = tmp_path / f"{PATIENT}_{PHASE}.nii"
    plain.write_bytes(gzip.decompress(images[PHASE].read_bytes()))
    truncate(plain, 0.7)
    message = refused({PHASE: plain}, mask)
    assert_names(message, plain, "the file is truncated")


def test_truncated_nrrd_is_refused_with_simpleitks_reason(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    nrrd = tmp_path / f"{PATIENT}_{PHASE}.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(images[PHASE])), str(nrrd), useCompression=True)
    truncate(nrrd, 0.6)
    message = refused({PHASE: nrrd}, mask)
    assert_names(message, nrrd, "SimpleITK cannot read it", "bytes but received", REEXPORT)


def write_dicom_series(image: sitk.Image, folder: Path) -> list[Path]:
    """Write a volume as one int16 DICOM file per slice with position tags; return the files."""
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    orientation = "\\".join(str(v) for v in (*direction[0:7:3], *direction[1:8:3]))
    files = []
    for k in range(image.GetDepth()):
        slice_ = sitk.Cast(image[:, :, k], sitk.sitkInt16)
        tags = {
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.7",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.7.1",
            "0020|0037": orientation,
            "0020|0032": "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0013": str(k + 1),
        }
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        files.append(folder / f"slice{k:03d}.dcm")
        writer.SetFileName(str(files[-1]))
        writer.Execute(slice_)
    return files


@pytest.fixture
def dicom_case(tmp_path: Path) -> tuple[dict[str, Path], Path, list[Path]]:
    """The test patient with its CT as a DICOM series folder; (image paths, mask, slice files)."""
    images, mask = write_case(tmp_path)
    folder = tmp_path / f"{PATIENT}_{PHASE}_dicom"
    files = write_dicom_series(sitk.ReadImage(str(images[PHASE])), folder)
    return {PHASE: folder}, mask, files


def test_dicom_series_with_a_truncated_slice_names_the_slice(dicom_case) -> None:
    images, mask, files = dicom_case
    assert load(images, mask).images[PHASE].GetSize() == SHAPE  # the intact series reads
    truncate(files[7])
    message = refused(images, mask)
    assert_names(message, images[PHASE], "cannot be read", files[7].name)


def test_dicom_folder_with_a_dicomdir_still_reads(dicom_case) -> None:
    """A DICOM file of no series (a CD's DICOMDIR) is not taken for a damaged slice."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    images, mask, _ = dicom_case
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.1125.7.9"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    directory = Dataset()
    directory.file_meta = meta
    directory.FileSetID = "CD"
    directory.save_as(images[PHASE] / "DICOMDIR", enforce_file_format=True)
    assert load(images, mask).images[PHASE].GetSize() == SHAPE


def test_dicom_series_with_a_missing_slice_is_unevenly_spaced(dicom_case) -> None:
    images, mask, files = dicom_case
    files[7].unlink()
    message = refused(images, mask)
    assert_names(message, images[PHASE], "unevenly spaced", "a slice is missing", "complete series")


def test_dicom_folder_without_a_series_is_named(dicom_case) -> None:
    images, mask, files = dicom_case
    for file in files:
        file.write_bytes(b"not a dicom file")
    message = refused(images, mask)
    assert_names(message, images[PHASE], "no DICOM series")


# --- implausible geometry and tumour size (prepare_patient, stop and exclude) ---------------


def test_spacing_5x5x100_of_a_body_ct_stops_with_the_value(tmp_path: Path) -> None:
    # A 475-slice body CT whose header says 100 mm slices (5 mm meant): 20x the volume.
    shape, spacing = (64, 64, 475), (5.0, 5.0, 100.0)
    labels = np.zeros(shape, np.uint8)
    labels[12:52, 12:52, 150:350] = 1
    labels[28:36, 28:36, 240:260] = 2
    images, mask = write_case(tmp_path / "in", labels, spacing)
    cfg = imaging_cfg()
    prepare_both_ways(
        tmp_path,
        sheet_row_of(images, mask),
        cfg,
        mask,
        "(5.0, 5.0, 100.0) mm",
        "plausible [0.1, 20.0]",
        "pixdim",
        "plausible: spacing_mm",
    )


def test_field_of_view_of_a_crop_is_implausible(tmp_path: Path) -> None:
    # A 32 x 32 x 20 mm box (a tumour crop exported instead of the scan).
    shape, spacing = (40, 40, 8), (0.8, 0.8, 2.5)
    labels = labels_for(shape, spacing, tumour_radius_mm=8.0)
    images, mask = write_case(tmp_path / "in", labels, spacing)
    prepare_both_ways(
        tmp_path,
        sheet_row_of(images, mask),
        imaging_cfg(),
        mask,
        "field of view",
        "(32.0, 32.0, 20.0) mm",
        "plausible: extent_mm",
    )


def test_tumour_larger_than_plausible_stops_with_its_volume(tmp_path: Path) -> None:
    # 10 mm voxels: a 250 x 250 x 180 mm block labelled tumour is 11.25 l (HCC-TACE-Seg's
    # largest tumour is 4.05 l).
    shape, spacing = (30, 30, 20), (10.0, 10.0, 10.0)
    labels = np.ones(shape, np.uint8)
    labels[2:27, 2:27, 1:19] = 2
    volume_ml = int((labels == 2).sum()) * float(np.prod(spacing)) / 1000
    images, mask = write_case(tmp_path / "in", labels, spacing)
    prepare_both_ways(
        tmp_path,
        sheet_row_of(images, mask),
        imaging_cfg(),
        mask,
        f"tumour (label 2) is {volume_ml:.4g} ml",
        "plausible [0.1, 10000.0] ml",
        "tumour_volume_ml",
    )


def test_tumour_smaller_than_plausible_stops_with_its_volume(tmp_path: Path) -> None:
    labels = labels_for()
    labels[labels == 2] = 1
    labels[40:42, 40:42, 10] = 2  # 4 voxels of 20 mm^3: 0.08 ml
    images, mask = write_case(tmp_path / "in", labels)
    prepare_both_ways(
        tmp_path,
        sheet_row_of(images, mask),
        imaging_cfg(),
        mask,
        "0.08 ml",
        "plausible [0.1, 10000.0] ml",
        "label-2 speck",
    )


def test_one_voxel_tumour_fails_at_preparation_naming_the_mask(tmp_path: Path) -> None:
    labels = labels_for()
    labels[labels == 2] = 1
    labels[40, 40, 10] = 2
    images, mask = write_case(tmp_path / "in", labels)
    prepare_both_ways(
        tmp_path,
        sheet_row_of(images, mask),
        imaging_cfg(),
        mask,
        "has 1 voxel(s)",
        "on the mask's own grid",
        "stray click",
        "min_tumour_voxels",
    )


def test_tumour_one_voxel_thin_after_resampling_fails_at_preparation(tmp_path: Path) -> None:
    labels = labels_for()
    labels[labels == 2] = 1
    labels[40, 40, 5:15] = 2  # a 10-voxel rod along z: 0.2 ml, but one voxel thin
    images, mask = write_case(tmp_path / "in", labels)
    prepare_both_ways(
        tmp_path,
        sheet_row_of(images, mask),
        imaging_cfg(),
        mask,
        "spanning 1 axis",
        "after resampling to (2.0, 2.0, 5.0) mm",
        "finer imaging: spacing_mm",
    )


def test_tumour_below_the_resampled_minimum_fails_at_preparation(tmp_path: Path) -> None:
    # A minimum the other patient's 12 mm tumour meets and this 8 mm one does not.
    small = labels_for(tumour_radius_mm=8.0)
    images, mask = write_case(tmp_path / "in", small)
    n_tumour = int((small == 2).sum())
    cfg = imaging_cfg(min_tumour_voxels={"original": 2, "resampled": n_tumour + 1})
    prepare_both_ways(
        tmp_path,
        sheet_row_of(images, mask),
        cfg,
        mask,
        f"has {n_tumour} voxel(s)",
        f"at least {n_tumour + 1} voxels",
        "min_tumour_voxels",
    )


def test_smallest_tumour_that_passes_preparation_gives_radiomics(tmp_path: Path) -> None:
    """A 2 x 2 x 2 tumour (the resampled minimum) goes through radiomics and its ring."""
    labels = labels_for()
    labels[labels == 2] = 1
    labels[40:42, 40:42, 10:12] = 2  # 8 voxels of 20 mm^3: 0.16 ml
    images, mask = write_case(tmp_path / "in", labels)
    cfg = imaging_cfg()
    folder = tmp_path / "prepared"
    assert prepare_patient(PATIENT, sheet_row_of(images, mask), cfg, "ct", folder) is None
    radiomics_cfg = radiomics_for(load_default_config()["radiomics"], "ct")
    features, _ = patient_radiomics(
        PATIENT, folder, ROOT / radiomics_cfg["params"]["ct"], radiomics_cfg, cfg["spacing_mm"]
    )
    assert list(features.index) == [PATIENT]
    assert features.filter(like="peritumoural").notna().all(axis=None)
    assert features.filter(like="_tumour_").notna().all(axis=None)


# --- empty sheet cells ----------------------------------------------------------------------


def test_empty_mask_cell_names_the_mask_column(tmp_path: Path) -> None:
    images, _ = write_case(tmp_path)
    for empty in (None, float("nan"), "", "  "):
        message = refused(images, empty)
        assert_names(message, None, "no file is given", "`mask` column")
        assert "<no file>" in message


def test_empty_image_cell_names_the_image_column(tmp_path: Path) -> None:
    _, mask = write_case(tmp_path)
    message = refused({PHASE: None}, mask)
    assert_names(message, None, f"`image_{PHASE}` column", "has no file")
    with pytest.raises(ImageQCError, match=f"`image_{PHASE}` column"):
        prepare_patient(
            PATIENT, sheet_row_of({PHASE: ""}, mask), imaging_cfg(), "ct", tmp_path / "p"
        )


# --- cases that already behaved well, kept so -------------------------------------------------


def test_grid_mismatch_names_the_config_tolerance_key(tmp_path: Path) -> None:
    labels = labels_for()
    images, mask = write_case(tmp_path, labels)
    shifted = affine_for(SPACING)
    shifted[0, 3] += 0.01  # 0.01 mm: rounding noise of an exporting tool
    nib.save(nib.Nifti1Image(ct_for(labels), shifted), str(images[PHASE]))
    message = refused(images, mask)
    assert_names(message, images[PHASE], "different grids: origin", "geometry_tolerance_mm")
    assert "`tolerance`" not in message
    # The config key is what load_patient uses, through prepare_patient.
    cfg = imaging_cfg(geometry_tolerance_mm=0.05)
    assert prepare_patient(PATIENT, sheet_row_of(images, mask), cfg, "ct", tmp_path / "p") is None


def test_nan_voxels_are_counted_and_named(tmp_path: Path) -> None:
    labels = labels_for()
    values = ct_for(labels).astype(np.float32)
    values[5:7, 5:7, 3] = np.nan
    images, mask = write_case(tmp_path, labels, image=values)
    message = refused(images, mask)
    assert_names(message, images[PHASE], "the image has 4 NaN or infinite voxels")


def test_missing_file_is_named(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    images[PHASE].unlink()
    assert_names(refused(images, mask), images[PHASE], "the file does not exist", "cohort sheet")


def test_2d_image_is_not_a_3d_volume(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    write(images[PHASE], ct_for(labels_for())[:, :, 10])
    assert_names(refused(images, mask), images[PHASE], "not a 3D volume", "single slice")


def test_4d_image_is_not_a_3d_volume(tmp_path: Path) -> None:
    images, mask = write_case(tmp_path)
    volume = ct_for(labels_for())
    write(images[PHASE], np.stack([volume, volume], axis=-1))
    assert_names(refused(images, mask), images[PHASE], "not a 3D volume", "4D")


def test_labels_other_than_0_1_2_are_named(tmp_path: Path) -> None:
    labels = labels_for()
    image = ct_for(labels)
    labels[0:3, 0:3, 0] = 5
    images, mask = write_case(tmp_path, labels, image=image)
    assert_names(refused(images, mask), mask, "labels [5] besides 0/1/2", "relabel")


def test_float_mask_with_non_integer_values_is_refused(tmp_path: Path) -> None:
    labels = labels_for().astype(np.float32)
    labels[labels == 1] = 0.7  # a probability map saved as the mask
    images, mask = write_case(tmp_path, labels, image=ct_for(labels_for()))
    assert_names(refused(images, mask), mask, "non-integer values", "integer label map")


def test_mask_without_tumour_label_is_named(tmp_path: Path) -> None:
    labels = np.minimum(labels_for(), 1).astype(np.uint8)
    images, mask = write_case(tmp_path, labels)
    assert_names(refused(images, mask), mask, "no tumour voxels (label 2)", "liver_only")


# --- the checked reader gives what SimpleITK gives for a whole file ----------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "int16",
        "float32",
        "uint8_mask",
        "int16_with_slope",
        "sform_only",
        "plain_nii",
        "big_endian",
    ],
)
def test_whole_files_read_as_simpleitk_reads_them(tmp_path: Path, kind: str) -> None:
    """read_image reads once with nibabel: same voxels, type and geometry as SimpleITK's reader."""
    labels = labels_for()
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    affine = affine_for(SPACING)
    affine[:3, :3] = rotation @ affine[:3, :3]
    affine[:3, 3] = (12.5, -40.0, 310.0)
    array: np.ndarray = {
        "int16": ct_for(labels),
        "float32": ct_for(labels).astype(np.float32) / 7,
        "uint8_mask": labels,
        "int16_with_slope": ct_for(labels).astype(np.float32) / 1000,
        "sform_only": ct_for(labels),
        "plain_nii": ct_for(labels),
        "big_endian": ct_for(labels),
    }[kind]
    if kind == "big_endian":
        nifti = nib.Nifti1Image(array, affine, nib.Nifti1Header(endianness=">"))
    else:
        nifti = nib.Nifti1Image(array, affine)
    if kind == "int16_with_slope":
        nifti.set_data_dtype(np.int16)  # nibabel writes scl_slope; ITK reads float32
    if kind == "sform_only":
        nifti.set_qform(None, code=0)
        nifti.set_sform(affine, code=2)
    path = tmp_path / ("image.nii" if kind == "plain_nii" else "image.nii.gz")
    nib.save(nifti, str(path))
    if kind == "big_endian":
        assert gzip.decompress(path.read_bytes())[:4] == (348).to_bytes(4, "big")
    ours, theirs = read_image(path, PATIENT), sitk.ReadImage(str(path))
    assert ours.GetPixelID() == theirs.GetPixelID()
    assert ours.GetSize() == theirs.GetSize()
    assert ours.GetSpacing() == theirs.GetSpacing()
    assert ours.GetOrigin() == theirs.GetOrigin()
    assert ours.GetDirection() == theirs.GetDirection()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs))
