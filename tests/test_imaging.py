"""hccrad.imaging: reading, QC errors, resampling, normalisation, crops and outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from scipy import ndimage

from hccrad.figures.imaging import write_qc_png
from hccrad.imaging.crops import crop_tumours, write_crops
from hccrad.imaging.exclusions import EXCLUSION_COLUMNS, call_or_exclude
from hccrad.imaging.read import ImageQCError
from hccrad.imaging.transform import (
    correct_bias_patient,
    harmonise_patient,
    harmonise_resolution,
    normalise_patient,
    resample_patient,
)
from hccrad.imaging.volumes import MRI_PHASES, PatientVolumes, load_patient
from hccrad.imaging.write import write_preprocessed

PHASES = MRI_PHASES
SPACING = (0.8, 0.8, 2.5)
ORIGIN = (-20.0, 15.0, 30.0)
# y and z flipped (right-handed, as DICOM requires): the crops must come out in LPS all the same.
DIRECTION = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)
BIG_TUMOUR = (6.0, 6.0, 0.0, 6.0)  # offset from the liver centre (x, y, z mm) and radius mm
SMALL_TUMOUR = (-8.0, -6.0, 0.0, 3.5)


def with_geometry(array: np.ndarray) -> sitk.Image:
    """An image of a (z, y, x) array on the test grid."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    return image


def phantom_arrays(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Phase arrays and a label array: a liver ellipsoid with a big and a small tumour."""
    rng = np.random.default_rng(seed)
    shape = (16, 40, 48)  # z, y, x: 40 x 100 x 38.4 mm... in index order
    z, y, x = np.indices(shape) * np.array(SPACING[::-1])[:, None, None, None]
    cx, cy, cz = 48 * 0.8 / 2, 40 * 0.8 / 2, 16 * 2.5 / 2
    liver = ((x - cx) / 17) ** 2 + ((y - cy) / 14) ** 2 + ((z - cz) / 16) ** 2 <= 1
    labels = np.where(liver, 1, 0).astype(np.uint8)
    for dx, dy, dz, radius in (BIG_TUMOUR, SMALL_TUMOUR):
        labels[(x - cx - dx) ** 2 + (y - cy - dy) ** 2 + (z - cz - dz) ** 2 <= radius**2] = 2
    phases = {}
    for phase, tumour_mean in zip(PHASES, (180.0, 120.0, 40.0), strict=True):
        values = rng.normal(10.0, 2.0, shape)
        values[labels == 1] = rng.normal(100.0, 8.0, (labels == 1).sum())
        values[labels == 2] = rng.normal(tumour_mean, 8.0, (labels == 2).sum())
        phases[phase] = values.astype(np.float32)
    return phases, labels


def phantom_volumes(patient_id: str = "HCC_007") -> PatientVolumes:
    """The phantom as in-memory volumes."""
    phases, labels = phantom_arrays()
    images = {phase: with_geometry(values) for phase, values in phases.items()}
    return PatientVolumes(patient_id, images, with_geometry(labels))


def write_dicom_series(image: sitk.Image, folder: Path) -> None:
    """Write a volume as one int16 DICOM file per slice, with per-slice position tags."""
    folder.mkdir(parents=True)
    volume = sitk.Cast(image, sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = volume.GetDirection()
    orientation = "\\".join(str(v) for v in (*direction[0:7:3], *direction[1:8:3]))
    for k in range(volume.GetDepth()):
        slice_ = volume[:, :, k]
        tags = {
            "0008|0060": "MR",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.1.1",
            "0020|0037": orientation,
            "0020|0032": "\\".join(str(v) for v in volume.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0013": str(k + 1),
            "0018|0050": str(SPACING[2]),
        }
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_)


@pytest.fixture
def patient_files(tmp_path: Path) -> tuple[dict[str, Path], Path]:
    """Phantom files: arterial NIfTI, portal venous NRRD, hepatobiliary DICOM series, NIfTI mask."""
    phases, labels = phantom_arrays()
    paths = {
        "arterial": tmp_path / "HCC_007_arterial.nii.gz",
        "portal_venous": tmp_path / "HCC_007_portal_venous.nrrd",
        "hepatobiliary": tmp_path / "HCC_007_hepatobiliary_dicom",
    }
    sitk.WriteImage(with_geometry(phases["arterial"]), str(paths["arterial"]))
    sitk.WriteImage(with_geometry(phases["portal_venous"]), str(paths["portal_venous"]))
    write_dicom_series(with_geometry(phases["hepatobiliary"]), paths["hepatobiliary"])
    mask_path = tmp_path / "HCC_007_mask.nii.gz"
    sitk.WriteImage(with_geometry(labels), str(mask_path))
    return paths, mask_path


def test_load_patient_reads_nifti_nrrd_and_dicom(
    patient_files: tuple[dict[str, Path], Path],
) -> None:
    """Every supported format loads onto the mask's grid with its values."""
    paths, mask_path = patient_files
    volumes = load_patient("HCC_007", paths, mask_path, phases=PHASES)
    phases, labels = phantom_arrays()
    assert volumes.phases == PHASES
    for phase in PHASES:
        image = volumes.images[phase]
        assert image.GetSize() == volumes.mask.GetSize()
        np.testing.assert_allclose(image.GetSpacing(), SPACING, atol=1e-4)
        np.testing.assert_allclose(image.GetOrigin(), ORIGIN, atol=1e-4)
        # DICOM stores int16: values agree to truncation.
        np.testing.assert_allclose(sitk.GetArrayFromImage(image), phases[phase], atol=1.0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volumes.mask), labels)
    assert volumes.mask.GetPixelID() == sitk.sitkUInt8


def _drop_tumour(paths: dict[str, Path], mask_path: Path) -> Path:
    labels = sitk.ReadImage(str(mask_path))
    sitk.WriteImage(sitk.Cast(labels != 2, sitk.sitkUInt8) * labels, str(mask_path))
    return mask_path


def _shift_origin(paths: dict[str, Path], mask_path: Path) -> Path:
    image = sitk.ReadImage(str(paths["arterial"]))
    image.SetOrigin((ORIGIN[0] + 5.0, *ORIGIN[1:]))
    sitk.WriteImage(image, str(paths["arterial"]))
    return paths["arterial"]


def _add_nans(paths: dict[str, Path], mask_path: Path) -> Path:
    image = sitk.ReadImage(str(paths["arterial"]))
    values = sitk.GetArrayFromImage(image)
    values[3, 10:12, 10:12] = np.nan
    nan_image = sitk.GetImageFromArray(values)
    nan_image.CopyInformation(image)
    sitk.WriteImage(nan_image, str(paths["arterial"]))
    return paths["arterial"]


def _make_2d(paths: dict[str, Path], mask_path: Path) -> Path:
    image = sitk.ReadImage(str(paths["arterial"]))
    sitk.WriteImage(image[:, :, 8], str(paths["arterial"]))
    return paths["arterial"]


def _delete_phase_file(paths: dict[str, Path], mask_path: Path) -> Path:
    paths["portal_venous"].unlink()
    return paths["portal_venous"]


def _leave_phase_out(paths: dict[str, Path], mask_path: Path) -> str:
    del paths["hepatobiliary"]
    return "hepatobiliary phase has no file"


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (_drop_tumour, "no tumour voxels"),
        (_shift_origin, "different grids: origin"),
        (_add_nans, "NaN"),
        (_make_2d, "not a 3D volume"),
        (_delete_phase_file, "does not exist"),
        (_leave_phase_out, "has no file"),
    ],
)
def test_bad_input_names_patient_file_and_problem(
    patient_files: tuple[dict[str, Path], Path], spoil, problem: str
) -> None:
    """Each bad input raises ImageQCError naming patient, file and problem; 'exclude' returns it."""
    paths, mask_path = patient_files
    culprit = spoil(paths, mask_path)
    with pytest.raises(ImageQCError) as raised:
        load_patient("HCC_007", paths, mask_path, phases=PHASES)
    message = str(raised.value)
    assert "HCC_007" in message and problem in message and "Fix:" in message
    if isinstance(culprit, Path):
        assert culprit.name in message
    result, exclusion = call_or_exclude(
        load_patient, "HCC_007", paths, mask_path, phases=PHASES, on_error="exclude"
    )
    assert result is None
    assert exclusion is not None and exclusion.patient_id == "HCC_007"
    assert problem in exclusion.reason
    assert set(exclusion.as_row()) == set(EXCLUSION_COLUMNS)


def test_call_or_exclude_passes_results_through(
    patient_files: tuple[dict[str, Path], Path],
) -> None:
    """A good patient comes back with no exclusion."""
    paths, mask_path = patient_files
    volumes, exclusion = call_or_exclude(
        load_patient, "HCC_007", paths, mask_path, on_error="exclude"
    )
    assert exclusion is None and volumes is not None and volumes.phases == PHASES


@pytest.mark.parametrize("interpolator", ["bspline", "linear"])
def test_resampling_keeps_field_of_view_and_labels(interpolator: str) -> None:
    """Same corner and extent (to one new voxel), new spacing, labels stay 0/1/2, tumour kept."""
    volumes = phantom_volumes()
    resampled = resample_patient(volumes, (1.0, 1.0, 1.0), interpolator)

    def corner(image: sitk.Image) -> np.ndarray:
        return np.asarray(image.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)))

    def extent(image: sitk.Image) -> np.ndarray:
        return np.asarray(image.GetSize()) * np.asarray(image.GetSpacing())

    for image in (*resampled.images.values(), resampled.mask):
        assert image.GetSpacing() == (1.0, 1.0, 1.0)
        assert image.GetDirection() == DIRECTION
        np.testing.assert_allclose(corner(image), corner(volumes.mask), atol=1e-9)
        assert np.all(np.abs(extent(image) - extent(volumes.mask)) <= 1.0)
    labels = sitk.GetArrayFromImage(resampled.mask)
    assert resampled.mask.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(labels)) == {0, 1, 2}
    # Tumour volume is preserved to a few per cent by nearest-neighbour resampling.
    before = (sitk.GetArrayFromImage(volumes.mask) == 2).sum() * np.prod(SPACING)
    assert (labels == 2).sum() * 1.0 == pytest.approx(before, rel=0.05)


def _impulse(spacing: tuple[float, float, float], size: int = 33) -> sitk.Image:
    """A unit impulse in the centre of a cube image with the given spacing."""
    array = np.zeros((size, size, size), np.float32)
    array[size // 2, size // 2, size // 2] = 1.0
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def _spread_mm2(image: sitk.Image) -> np.ndarray:
    """Variance (mm^2) of an image's intensity along x, y and z, as a distribution."""
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    variances = []
    for axis_zyx, spacing in zip((2, 1, 0), image.GetSpacing(), strict=True):
        profile = array.sum(axis=tuple(a for a in range(3) if a != axis_zyx))
        position = (np.arange(profile.size) - profile.size // 2) * spacing
        variances.append(float((profile * position**2).sum() / profile.sum()))
    return np.asarray(variances)


def test_resolution_harmonisation_blurs_finer_axes_to_the_target() -> None:
    """A point at 1 x 2 x 6 mm spreads by (r^2 - s^2) / (8 ln 2) per axis towards 3 x 3 x 6 mm."""
    impulse = _impulse((1.0, 2.0, 6.0))
    blurred = harmonise_resolution(impulse, (3.0, 3.0, 6.0))
    expected = np.array([3.0**2 - 1.0**2, 3.0**2 - 2.0**2, 0.0]) / (8 * np.log(2))
    np.testing.assert_allclose(_spread_mm2(blurred), expected, rtol=0.02, atol=1e-6)
    # The blur moves intensity, it does not add or remove it.
    assert sitk.GetArrayFromImage(blurred).sum() == pytest.approx(1.0, rel=1e-3)
    # Already as coarse as the target (or coarser): the image is returned as it is.
    coarse = _impulse((3.0, 3.0, 8.0))
    assert harmonise_resolution(coarse, (3.0, 3.0, 6.0)) is coarse


def test_harmonised_patient_keeps_grid_and_mask() -> None:
    """Every phase is blurred on its own grid; the mask is untouched; None changes nothing."""
    volumes = phantom_volumes()
    assert harmonise_patient(volumes, None) is volumes
    target = tuple(2.0 * s for s in SPACING)
    harmonised = harmonise_patient(volumes, target)
    assert harmonised.mask is volumes.mask and harmonised.phases == volumes.phases
    for phase, image in harmonised.images.items():
        original = volumes.images[phase]
        assert image.GetSize() == original.GetSize()
        assert image.GetSpacing() == original.GetSpacing()
        # Smoother: less voxel-to-voxel variation than the acquisition.
        laplacian = [
            np.abs(ndimage.laplace(sitk.GetArrayFromImage(i).astype(float))).mean()
            for i in (image, original)
        ]
        assert laplacian[0] < laplacian[1]


def test_normalisation_per_phase() -> None:
    """z-score over liver parenchyma, percentile clip to [0, 1], HU window clip."""
    volumes = phantom_volumes()
    labels = sitk.GetArrayFromImage(volumes.mask)
    zscored = normalise_patient(volumes, "zscore")
    for image in zscored.images.values():
        liver = sitk.GetArrayFromImage(image)[labels == 1]
        assert liver.mean() == pytest.approx(0.0, abs=1e-4)
        assert liver.std() == pytest.approx(1.0, abs=1e-4)
    clipped = normalise_patient(volumes, "percentile", percentiles=(1.0, 99.0))
    values = sitk.GetArrayFromImage(clipped.images["arterial"])
    assert values.min() == 0.0 and values.max() == 1.0
    windowed = normalise_patient(volumes, "hu_window", window=(20.0, 150.0))
    values = sitk.GetArrayFromImage(windowed.images["arterial"])
    assert values.min() == 20.0 and values.max() == 150.0


def test_zscore_without_liver_label_names_patient() -> None:
    """z-scoring needs the liver label; without it the error says so."""
    volumes = phantom_volumes()
    labels = sitk.GetArrayFromImage(volumes.mask)
    labels[labels == 1] = 0
    mask = sitk.GetImageFromArray(labels)
    mask.CopyInformation(volumes.mask)
    bad = PatientVolumes("HCC_007", volumes.images, mask, {"arterial": "a.nii.gz"})
    with pytest.raises(ImageQCError, match=r"HCC_007: a\.nii\.gz: zscore normalisation"):
        normalise_patient(bad, "zscore")


def tumour_centroid_voxel(mask: np.ndarray) -> np.ndarray:
    """Centroid (z, y, x index) of the largest tumour component in a crop's mask."""
    # A crop can hold part of a neighbouring tumour; the centred one is the largest here.
    components, _ = ndimage.label(mask == 2)
    largest = np.bincount(components.ravel())[1:].argmax() + 1
    return np.argwhere(components == largest).mean(axis=0)


@pytest.mark.parametrize("box_mm", [(32.0, 32.0, 30.0), (40.0, 24.0, 20.0)])
def test_crop_has_requested_shape_and_is_centred_on_largest_tumour(
    box_mm: tuple[float, float, float],
) -> None:
    """Box voxels = box_mm / spacing; the largest tumour sits in the middle of the crop."""
    volumes = resample_patient(phantom_volumes(), (1.0, 1.0, 2.0))
    (crop,) = crop_tumours(volumes, box_mm)
    expected_zyx = tuple(round(b / s) for b, s in zip(box_mm[::-1], (2.0, 1.0, 1.0), strict=True))
    assert crop.image.shape == (3, *expected_zyx)
    assert crop.image.dtype == np.float32
    assert crop.mask.shape == expected_zyx
    assert crop.instance == 1 and crop.phases == PHASES
    offset = tumour_centroid_voxel(crop.mask) - (np.asarray(expected_zyx) - 1) / 2
    assert np.all(np.abs(offset) <= 1.0)
    big_volume = 4 / 3 * np.pi * BIG_TUMOUR[3] ** 3
    assert crop.tumour_volume_mm3 == pytest.approx(big_volume, rel=0.15)


def test_crop_every_tumour_largest_first_and_npz_round_trip(tmp_path: Path) -> None:
    """instances='all' gives one crop per tumour, largest first; .npz keeps arrays and metadata."""
    volumes = phantom_volumes()
    crops = crop_tumours(volumes, (16.0, 16.0, 15.0), instances="all")
    assert [crop.instance for crop in crops] == [1, 2]
    assert crops[0].tumour_volume_mm3 > crops[1].tumour_volume_mm3
    for crop in crops:
        offset = tumour_centroid_voxel(crop.mask) - (np.asarray(crop.mask.shape) - 1) / 2
        assert np.all(np.abs(offset) <= 1.0)
    paths = write_crops(crops, tmp_path / "crops")
    assert [p.name for p in paths] == ["HCC_007_tumour1.npz", "HCC_007_tumour2.npz"]
    with np.load(paths[0]) as saved:
        np.testing.assert_array_equal(saved["image"], crops[0].image)
        assert saved["image"].shape[0] == 3 and saved["image"].dtype == np.float32
        assert saved["phases"].tolist() == list(PHASES)
        assert str(saved["patient_id"]) == "HCC_007"
        assert str(saved["orientation"]) == "LPS"
        np.testing.assert_allclose(saved["spacing_zyx"], SPACING[::-1])


def test_crop_beyond_the_image_is_padded() -> None:
    """A box larger than the image keeps its shape; outside voxels get the phase minimum."""
    volumes = phantom_volumes()
    (crop,) = crop_tumours(volumes, (80.0, 80.0, 80.0))
    assert crop.image.shape == (3, 32, 100, 100)
    assert crop.image[0, 0, 0, 0] == sitk.GetArrayViewFromImage(volumes.images["arterial"]).min()


def test_preprocessed_nifti_round_trip(tmp_path: Path) -> None:
    """Written phases and mask read back on the same grid, values to int16 quantisation."""
    volumes = normalise_patient(phantom_volumes(), "zscore")
    image_paths = {phase: tmp_path / f"HCC_007_{phase}.nii.gz" for phase in PHASES}
    mask_path = tmp_path / "HCC_007_mask.nii.gz"
    write_preprocessed(volumes, image_paths, mask_path)
    again = load_patient("HCC_007", image_paths, mask_path)
    for phase in PHASES:
        written = sitk.GetArrayFromImage(volumes.images[phase])
        step = (written.max() - written.min()) / 65535  # nibabel's int16 slope
        np.testing.assert_allclose(
            sitk.GetArrayFromImage(again.images[phase]), written, rtol=0, atol=step
        )
        assert again.images[phase].GetOrigin() == pytest.approx(volumes.images[phase].GetOrigin())
        assert again.images[phase].GetDirection() == pytest.approx(
            volumes.images[phase].GetDirection()
        )
    assert again.mask.GetPixelID() == sitk.sitkUInt8


def test_qc_png_is_written(tmp_path: Path) -> None:
    """The QC figure is a PNG with one panel per phase."""
    from matplotlib.image import imread

    path = write_qc_png(phantom_volumes(), tmp_path / "qc" / "HCC_007.png", dpi=80)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(path).shape
    assert width > 2 * height  # three panels side by side


def biased_liver(field_amplitude: float) -> PatientVolumes:
    """A 240 mm liver (value 100, tumour 50, noise SD 2) times a smooth left-right bias field."""
    rng = np.random.default_rng(3)
    shape, spacing = (24, 80, 80), (3.0, 3.0, 6.0)
    z, y, x = np.indices(shape) * np.array(spacing[::-1])[:, None, None, None]
    liver = ((x - 120) / 100) ** 2 + ((y - 120) / 80) ** 2 + ((z - 72) / 60) ** 2 <= 1
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[(x - 140) ** 2 + (y - 120) ** 2 + (z - 72) ** 2 <= 20**2] = 2
    truth = np.where(labels == 2, 50.0, np.where(labels == 1, 100.0, 5.0))
    field = np.exp(field_amplitude * np.cos(np.pi * x / 240.0))
    values = (truth * field + rng.normal(0.0, 2.0, shape)).astype(np.float32)

    def on_grid(array: np.ndarray) -> sitk.Image:
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        return image

    return PatientVolumes(
        "HCC_042", {"portal_venous": on_grid(values)}, on_grid(labels), {"portal_venous": "pv.nii"}
    )


def test_n4_removes_a_smooth_multiplicative_field_and_keeps_the_tumour_contrast() -> None:
    """The liver's spread comes back to its noise level; tumour/liver ratio stays near 0.5."""
    volumes = biased_liver(0.3)
    labels = sitk.GetArrayFromImage(volumes.mask)
    before = sitk.GetArrayFromImage(volumes.images["portal_venous"])
    corrected = correct_bias_patient(volumes, "n4")
    after = sitk.GetArrayFromImage(corrected.images["portal_venous"])

    def liver_cv(values: np.ndarray) -> float:
        return float(values[labels == 1].std() / values[labels == 1].mean())

    assert liver_cv(before) > 0.15
    # The noise alone (SD 2 on 100) would give 0.02.
    assert liver_cv(after) < 0.05
    ratio = after[labels == 2].mean() / after[labels == 1].mean()
    assert ratio == pytest.approx(0.5, abs=0.02)
    assert correct_bias_patient(volumes, "none") is volumes


def test_n4_is_the_same_bit_for_bit_whatever_the_itk_thread_count() -> None:
    """The field does not depend on the machine's cores, and the global default is restored."""
    volumes = biased_liver(0.2)
    default = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    results = []
    try:
        for threads in (1, 3):
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
            image = correct_bias_patient(volumes, "n4").images["portal_venous"]
            results.append(sitk.GetArrayFromImage(image))
            assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(default)
    np.testing.assert_array_equal(results[0], results[1])


def test_n4_on_an_image_that_is_not_a_magnitude_mri_names_patient_file_and_fix() -> None:
    """A liver with a non-positive median (e.g. CT in HU, or a z-scored image) is refused."""
    volumes = biased_liver(0.0)
    shifted = volumes.images["portal_venous"] - 200.0
    bad = PatientVolumes("HCC_042", {"portal_venous": shifted}, volumes.mask, volumes.sources)
    with pytest.raises(ImageQCError, match=r"HCC_042: pv\.nii: N4 .* bias_correction: mri: none"):
        correct_bias_patient(bad, "n4")
