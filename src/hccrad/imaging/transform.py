"""Transforms of a patient's volumes: liver crop, bias field, blur, resampling, normalisation, axes.

Each takes and returns PatientVolumes; a failure on one phase is an ImageQCError naming the
patient, the phase's file and the fix (``map_phases``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import numpy as np
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)

from hccrad.core.labels import LIVER_LABEL, TUMOUR_LABEL
from hccrad.imaging.read import ImageQCError
from hccrad.imaging.volumes import PatientVolumes

# Orientation the crops and QC figures are put in, so that a network always sees the same axes.
CANONICAL_ORIENTATION = "LPS"
# N4 fits its bias field on a grid of about this spacing: the field is smooth over tens of cm,
# and fitting on the acquisition grid costs 5-20x more for a field that differs by <1%.
N4_FIT_SPACING_MM = 8.0
N4_ITERATIONS: tuple[int, ...] = (20, 20, 20)


Interpolator = Literal["bspline", "linear", "nearest"]
Normalisation = Literal["zscore", "percentile", "hu_window", "none"]
BiasCorrection = Literal["n4", "none"]


_SITK_INTERPOLATORS: dict[str, int] = {
    "bspline": sitk.sitkBSpline,
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
}


def resampled_grid(
    image: sitk.Image, spacing_mm: Sequence[float]
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Size and origin of a grid with the new spacing covering the same field of view."""
    old_spacing = np.asarray(image.GetSpacing())
    new_spacing = np.asarray(spacing_mm, dtype=float)
    extent = np.asarray(image.GetSize()) * old_spacing
    size = tuple(int(n) for n in np.maximum(1, np.round(extent / new_spacing)))
    # The origin is the centre of the first voxel; keep the field of view's outer corner fixed
    # (as PyRadiomics does), so the first voxel centre moves by half the change in spacing.
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    origin = np.asarray(image.GetOrigin()) + direction @ ((new_spacing - old_spacing) / 2)
    return size, tuple(float(v) for v in origin)


def resample_image(
    image: sitk.Image,
    spacing_mm: Sequence[float],
    interpolator: Interpolator = "bspline",
    *,
    default_value: float | None = None,
) -> sitk.Image:
    """Resample to a spacing over the same field of view; masks with interpolator='nearest'."""
    size, origin = resampled_grid(image, spacing_mm)
    is_label = interpolator == "nearest"
    if default_value is None:
        # Outside the old grid: background label for masks, the darkest value for images.
        default_value = 0.0 if is_label else float(sitk.GetArrayViewFromImage(image).min())
    return sitk.Resample(
        image,
        size,
        sitk.Transform(),
        _SITK_INTERPOLATORS[interpolator],
        origin,
        tuple(float(s) for s in spacing_mm),
        image.GetDirection(),
        default_value,
        image.GetPixelID() if is_label else sitk.sitkFloat32,
    )


# FWHM of a Gaussian over its sigma.
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def harmonisation_sigma_mm(
    spacing_mm: Sequence[float], resolution_mm: Sequence[float]
) -> tuple[float, float, float]:
    """Per-axis sigma (mm) of the Gaussian that takes an acquisition to a coarser resolution."""
    # An acquisition's resolution is taken as its voxel spacing (the FWHM of its point spread);
    # Gaussian blurs add in variance, so FWHM s goes to r with a blur of FWHM sqrt(r^2 - s^2).
    # Axes already as coarse as the target stay as they are.
    spacing, target = np.asarray(spacing_mm, float), np.asarray(resolution_mm, float)
    fwhm = np.sqrt(np.maximum(target**2 - spacing**2, 0.0))
    return tuple(float(v) for v in fwhm / _FWHM_PER_SIGMA)


def harmonise_resolution(image: sitk.Image, resolution_mm: Sequence[float]) -> sitk.Image:
    """Blur an image to a coarser effective resolution (mm per axis, x y z), on its own grid."""
    sigma = np.asarray(harmonisation_sigma_mm(image.GetSpacing(), resolution_mm))
    if not sigma.any():
        return image
    blur = sitk.DiscreteGaussianImageFilter()
    blur.SetVariance((sigma**2).tolist())
    blur.SetUseImageSpacing(True)
    # A tight truncation error: a 1% cut of the tails took 8% off the blur's variance.
    blur.SetMaximumError(1e-4)
    # A kernel wide enough for the largest sigma (ITK truncates at 32 voxels by default).
    blur.SetMaximumKernelWidth(int(2 * np.ceil(4 * sigma.max() / min(image.GetSpacing())) + 1))
    return blur.Execute(sitk.Cast(image, sitk.sitkFloat32))


def harmonise_patient(
    volumes: PatientVolumes, resolution_mm: Sequence[float] | None
) -> PatientVolumes:
    """Every phase at one effective resolution across centres (None: unchanged); mask as is."""
    if resolution_mm is None:
        return volumes
    return map_phases(
        volumes,
        lambda image: harmonise_resolution(image, resolution_mm),
        f"blurring to {tuple(resolution_mm)} mm",
        "check the image's spacing in its header, or set imaging: resolution_mm: null",
        errors=(RuntimeError,),
    )


def resample_patient(
    volumes: PatientVolumes,
    spacing_mm: Sequence[float],
    interpolator: Literal["bspline", "linear"] = "bspline",
    *,
    required_label: int = TUMOUR_LABEL,
) -> PatientVolumes:
    """Resample every phase (B-spline or linear) and the mask (nearest neighbour) to a spacing."""
    images = {
        phase: resample_image(image, spacing_mm, interpolator)
        for phase, image in volumes.images.items()
    }
    mask = resample_image(volumes.mask, spacing_mm, "nearest")
    if required_label not in np.unique(sitk.GetArrayViewFromImage(mask)):
        region = "tumour" if required_label == TUMOUR_LABEL else "liver"
        raise ImageQCError(
            volumes.patient_id,
            volumes.sources.get("mask"),
            f"the {region} vanishes when the mask is resampled to {tuple(spacing_mm)} mm",
            f"use a finer resampling spacing, or check that the {region} label is not a speck",
        )
    return PatientVolumes(volumes.patient_id, images, mask, volumes.sources)


def _region_values(image: sitk.Image, mask: sitk.Image, labels: Sequence[int]) -> np.ndarray:
    """Image values at the voxels whose mask label is one of `labels`."""
    inside = np.isin(sitk.GetArrayViewFromImage(mask), labels)
    return sitk.GetArrayViewFromImage(image)[inside].astype(np.float64)


def _from_array(values: np.ndarray, like: sitk.Image) -> sitk.Image:
    """A float32 image with `like`'s geometry."""
    image = sitk.GetImageFromArray(values.astype(np.float32))
    image.CopyInformation(like)
    return image


def zscore_over_liver(
    image: sitk.Image, mask: sitk.Image, *, liver_label: int = LIVER_LABEL
) -> sitk.Image:
    """(I - mean) / sd with mean and sd of the liver parenchyma (label 1, tumour excluded)."""
    # Parenchyma only: including the tumour would make the reference depend on tumour burden.
    reference = _region_values(image, mask, [liver_label])
    if reference.size < 2 or reference.std() == 0:
        raise ValueError("z-score needs liver voxels (label 1) with non-zero spread")
    values = sitk.GetArrayViewFromImage(image).astype(np.float64)
    return _from_array((values - reference.mean()) / reference.std(), image)


def n4_bias_corrected(
    image: sitk.Image,
    mask: sitk.Image,
    *,
    fit_spacing_mm: float = N4_FIT_SPACING_MM,
    iterations: Sequence[int] = N4_ITERATIONS,
) -> sitk.Image:
    """MRI divided by its N4 bias field (SimpleITK), fitted over the liver and tumour."""
    # A multiplicative field (coil sensitivity) stretches the liver's intensity spread, so the
    # z-score over the liver shrinks the tumour's contrast and texture by a scanner-dependent
    # factor; correcting it first makes liver-referenced intensities comparable across centres.
    values = sitk.GetArrayViewFromImage(image)
    region = sitk.Cast(mask > 0, sitk.sitkUInt8)
    liver = values[sitk.GetArrayViewFromImage(region) > 0]
    if liver.size == 0 or np.median(liver) <= 0:
        raise ValueError(
            "N4 needs positive MRI magnitudes over the liver (labels 1 and 2); this image's "
            "liver median is not positive"
        )
    # N4 works on log intensities: lift zeros and negatives (noise floor) just above zero.
    floor = 1e-3 * float(np.median(liver))
    positive = _from_array(np.maximum(values, floor), image)
    shrink = [max(1, round(fit_spacing_mm / s)) for s in image.GetSpacing()]
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(n) for n in iterations])
    with _one_itk_thread():
        corrector.Execute(sitk.Shrink(positive, shrink), sitk.Shrink(region, shrink))
        log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(positive))
    return _from_array(values / np.exp(log_field.astype(np.float64)), image)


@contextmanager
def _one_itk_thread() -> Iterator[None]:
    """Run SimpleITK filters on one thread inside the block, then restore the default."""
    # ITK splits work by the machine's core count, and N4's B-spline fit and reconstruction
    # then round differently (measured: 1e-7 relative between 2 and 4 threads); the field
    # must be the same bit for bit on any machine. Some of N4's inner filters take only the
    # global default, so the default itself is set.
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def correct_bias_patient(volumes: PatientVolumes, method: BiasCorrection) -> PatientVolumes:
    """Every phase bias-field corrected ('n4') or left as it is ('none')."""
    if method == "none":
        return volumes
    if method != "n4":
        raise ValueError(f"unknown bias correction {method!r}; use 'n4' or 'none'")
    return map_phases(
        volumes,
        lambda image: n4_bias_corrected(image, volumes.mask),
        "N4 bias-field correction",
        "check that this is a magnitude MRI with the liver labelled (1) on it, or set "
        "imaging: bias_correction: mri: none",
        errors=(ValueError, RuntimeError),
    )


def map_phases(
    volumes: PatientVolumes,
    transform: Callable[[sitk.Image], sitk.Image],
    step: str,
    fix: str,
    *,
    errors: tuple[type[Exception], ...] = (ValueError,),
) -> PatientVolumes:
    """Apply `transform` to every phase; a failure names the patient, the phase's file and `fix`."""
    images: dict[str, sitk.Image] = {}
    for phase, image in volumes.images.items():
        try:
            images[phase] = transform(image)
        except errors as error:
            raise ImageQCError(
                volumes.patient_id,
                volumes.sources.get(phase),
                f"{step} of the {phase} phase failed: {error}",
                fix,
            ) from error
    return PatientVolumes(volumes.patient_id, images, volumes.mask, volumes.sources)


def clip_to_percentiles(
    image: sitk.Image, mask: sitk.Image, percentiles: tuple[float, float] = (0.5, 99.5)
) -> sitk.Image:
    """Clip to percentiles of the whole liver (labels 1 and 2) and rescale to [0, 1]."""
    # Whole liver, tumour included, so that a bright arterial tumour is not clipped away.
    reference = _region_values(image, mask, [LIVER_LABEL, TUMOUR_LABEL])
    low, high = np.percentile(reference, percentiles)
    if high <= low:
        raise ValueError(f"percentiles {percentiles} of the liver are equal ({low})")
    values = sitk.GetArrayViewFromImage(image).astype(np.float64)
    return _from_array((np.clip(values, low, high) - low) / (high - low), image)


def hu_window(
    image: sitk.Image, window: tuple[float, float] = (-150.0, 250.0), *, rescale: bool = False
) -> sitk.Image:
    """Clip CT to a HU window (default liver window W400/L50); optionally rescale it to [0, 1]."""
    low, high = window
    values = np.clip(sitk.GetArrayViewFromImage(image).astype(np.float64), low, high)
    # Kept in HU by default so that the CT radiomics bin width (in HU) still means what it says.
    return _from_array((values - low) / (high - low) if rescale else values, image)


def normalise_patient(
    volumes: PatientVolumes,
    method: Normalisation,
    *,
    percentiles: tuple[float, float] = (0.5, 99.5),
    window: tuple[float, float] = (-150.0, 250.0),
    rescale_window: bool = False,
) -> PatientVolumes:
    """Normalise every phase separately: MRI 'zscore'/'percentile', CT 'hu_window', or 'none'."""

    def normalised(image: sitk.Image) -> sitk.Image:
        """One phase, normalised by `method`."""
        if method == "zscore":
            return zscore_over_liver(image, volumes.mask)
        if method == "percentile":
            return clip_to_percentiles(image, volumes.mask, percentiles)
        if method == "hu_window":
            return hu_window(image, window, rescale=rescale_window)
        if method == "none":
            return sitk.Cast(image, sitk.sitkFloat32)
        raise ValueError(f"unknown normalisation {method!r}")

    return map_phases(
        volumes,
        normalised,
        f"{method} normalisation",
        "check that the mask has a liver label (1) on this image, or choose another "
        "normalisation method",
    )


def orient_patient(
    volumes: PatientVolumes, orientation: str = CANONICAL_ORIENTATION
) -> PatientVolumes:
    """Permute/flip axes (no interpolation) so that every volume has the given orientation."""
    images = {p: sitk.DICOMOrient(im, orientation) for p, im in volumes.images.items()}
    mask = sitk.DICOMOrient(volumes.mask, orientation)
    return PatientVolumes(volumes.patient_id, images, mask, volumes.sources)


def crop_to_liver(volumes: PatientVolumes, margin_mm: float) -> PatientVolumes:
    """Cut every volume to the liver's bounding box plus ``margin_mm`` (labels > 0)."""
    # Everything downstream (resampling, radiomics, crops) looks at the liver and its tumours;
    # the rest of the abdomen only costs time and disk.
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(volumes.mask > 0, sitk.sitkUInt8))
    box = stats.GetBoundingBox(1)
    spacing, size = volumes.mask.GetSpacing(), volumes.mask.GetSize()
    start, stop = [], []
    for axis in range(3):
        pad = int(np.ceil(margin_mm / spacing[axis]))
        start.append(max(box[axis] - pad, 0))
        stop.append(min(box[axis] + box[axis + 3] + pad, size[axis]))
    extent = [b - a for a, b in zip(start, stop, strict=True)]
    images = {
        phase: sitk.RegionOfInterest(image, extent, start)
        for phase, image in volumes.images.items()
    }
    mask = sitk.RegionOfInterest(volumes.mask, extent, start)
    return PatientVolumes(volumes.patient_id, images, mask, volumes.sources)
