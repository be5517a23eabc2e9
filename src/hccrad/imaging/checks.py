"""Checks of what was read: one 3D volume, labels 0/1/2, one grid, plausible geometry and tumour.

Each check raises ImageQCError naming the patient, the file, the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)

from hccrad.core.labels import ALLOWED_LABELS, BACKGROUND_LABEL, TUMOUR_LABEL
from hccrad.imaging.read import ImageQCError, not_3d


def check_image(image: sitk.Image, patient_id: str, path: str | Path) -> None:
    """Require a scalar 3D volume with more than one slice per axis and no NaN/inf."""
    size = image.GetSize()
    if image.GetDimension() != 3 or min(size) < 2:
        raise not_3d(patient_id, path, size)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageQCError(
            patient_id,
            path,
            f"the image has {image.GetNumberOfComponentsPerPixel()} components per voxel",
            "convert it to a single-channel (grey-value) volume",
        )
    values = sitk.GetArrayViewFromImage(image)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        n_bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ImageQCError(
            patient_id,
            path,
            f"the image has {n_bad} NaN or infinite voxels",
            "re-export the image from the scanner data, or replace the NaNs before running",
        )


def check_mask(
    mask: sitk.Image,
    patient_id: str,
    path: str | Path,
    *,
    tumour_label: int = TUMOUR_LABEL,
    liver_only: bool = False,
) -> sitk.Image:
    """Check the label map (integer labels 0/1/2; tumour, or liver_only: liver, present)."""
    check_image(mask, patient_id, path)
    values = sitk.GetArrayViewFromImage(mask)
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise ImageQCError(
            patient_id,
            path,
            "the mask has non-integer values",
            "save the segmentation as an integer label map (0 background, 1 liver, 2 tumour)",
        )
    labels = {int(v) for v in np.unique(values)}
    if not labels <= ALLOWED_LABELS:
        raise ImageQCError(
            patient_id,
            path,
            f"the mask has labels {sorted(labels - ALLOWED_LABELS)} besides 0/1/2",
            "relabel it: 0 background, 1 liver, 2 tumour (all tumours share label 2)",
        )
    if liver_only and not labels - {BACKGROUND_LABEL}:
        raise ImageQCError(
            patient_id,
            path,
            "the mask has no liver voxels (label 1)",
            "segment the liver with label 1 (a liver model such as BAMF AIMI's will do), or "
            "exclude the patient",
        )
    if not liver_only and tumour_label not in labels:
        raise ImageQCError(
            patient_id,
            path,
            f"the mask has no tumour voxels (label {tumour_label})",
            "segment the tumour(s) with label 2, exclude the patient, or set the cohort's "
            "`masks: liver_only` to have the segmentation model draw the tumours",
        )
    return sitk.Cast(mask, sitk.sitkUInt8)


def geometry_mismatch(image: sitk.Image, reference: sitk.Image, tolerance: float) -> str | None:
    """Describe how two grids differ (size, spacing, origin, direction), or None if they agree."""
    if image.GetSize() != reference.GetSize():
        return f"size {image.GetSize()} differs from {reference.GetSize()}"
    checks = (
        ("spacing", image.GetSpacing(), reference.GetSpacing()),
        ("origin", image.GetOrigin(), reference.GetOrigin()),
        ("direction", image.GetDirection(), reference.GetDirection()),
    )
    for name, value, expected in checks:
        if not np.allclose(value, expected, rtol=0.0, atol=tolerance):
            rounded = tuple(round(v, 4) for v in value)
            expected_rounded = tuple(round(v, 4) for v in expected)
            return f"{name} {rounded} differs from {expected_rounded} (tolerance {tolerance})"
    return None


@dataclass(frozen=True)
class Plausible:
    """Ranges a human abdominal CT/MR's header geometry and tumour fall in (config: plausible)."""

    spacing_mm: tuple[float, float]
    extent_mm: tuple[float, float]
    tumour_volume_ml: tuple[float, float]

    @classmethod
    def from_config(cls, plausible: Mapping[str, Sequence[float]]) -> Plausible:
        """The ranges of the config's ``imaging: plausible`` map."""
        return cls(
            spacing_mm=_pair(plausible["spacing_mm"]),
            extent_mm=_pair(plausible["extent_mm"]),
            tumour_volume_ml=_pair(plausible["tumour_volume_ml"]),
        )


def _pair(values: Sequence[float]) -> tuple[float, float]:
    """A [min, max] config range as a tuple of floats."""
    low, high = values
    return float(low), float(high)


def _outside(values: Sequence[float], limits: tuple[float, float]) -> list[float]:
    """The values that fall outside [min, max]."""
    return [v for v in values if not limits[0] <= v <= limits[1]]


def check_plausible(
    image: sitk.Image,
    patient_id: str,
    path: str | Path,
    plausible: Plausible,
    *,
    tumour_label: int | None = TUMOUR_LABEL,
) -> None:
    """Refuse a header spacing/extent, or (masks) a tumour volume, no abdominal scan can have."""
    spacing = tuple(round(s, 4) for s in image.GetSpacing())
    extent = tuple(round(n * s, 1) for n, s in zip(image.GetSize(), spacing, strict=True))
    widen = "widen imaging: plausible: {key} in the config only if such scans are real"
    for key, values, limits in (
        ("spacing_mm", spacing, plausible.spacing_mm),
        ("extent_mm", extent, plausible.extent_mm),
    ):
        if _outside(values, limits):
            what = "voxel spacing" if key == "spacing_mm" else "field of view (size x spacing)"
            raise ImageQCError(
                patient_id,
                path,
                f"the header's {what} {values} mm is outside the plausible {list(limits)} mm "
                "of an abdominal CT/MR",
                "check the header's pixdim / slice thickness (e.g. a spacing in cm, or a slice "
                "gap taken for the thickness) and re-export the image; " + widen.format(key=key),
            )
    if tumour_label is None:
        return
    n_tumour = int(np.count_nonzero(sitk.GetArrayViewFromImage(image) == tumour_label))
    volume_ml = n_tumour * float(np.prod(image.GetSpacing())) / 1000.0
    if n_tumour and _outside([volume_ml], plausible.tumour_volume_ml):
        raise ImageQCError(
            patient_id,
            path,
            f"the tumour (label {tumour_label}) is {volume_ml:.4g} ml, outside the plausible "
            f"{list(plausible.tumour_volume_ml)} ml",
            "check the mask (a label-2 speck, or the liver drawn as tumour) and the header's "
            "spacing; " + widen.format(key="tumour_volume_ml"),
        )


def check_tumour_size(
    mask: sitk.Image,
    patient_id: str,
    path: str | Path | None,
    min_voxels: int,
    *,
    grid: str,
    fix: str,
    min_axes: int = 2,
    tumour_label: int = TUMOUR_LABEL,
) -> None:
    """Require at least ``min_voxels`` tumour voxels, spanning ``min_axes`` axes, on a grid."""
    tumour = sitk.GetArrayViewFromImage(mask) == tumour_label
    n_tumour = int(np.count_nonzero(tumour))
    # Axes along which the tumour is more than one voxel thick: PyRadiomics refuses, with
    # minimumROIDimensions: 2 (hccrad's parameter files), a tumour thin in all but one.
    spans = [np.count_nonzero(tumour.any(axis=tuple({0, 1, 2} - {k}))) for k in range(3)]
    n_axes = sum(int(span > 1) for span in spans)
    if n_tumour < min_voxels or n_axes < min_axes:
        voxel_mm3 = float(np.prod(mask.GetSpacing()))
        raise ImageQCError(
            patient_id,
            path,
            f"the tumour (label {tumour_label}) has {n_tumour} voxel(s) "
            f"({n_tumour * voxel_mm3:.4g} mm^3) spanning {n_axes} axis/axes {grid}; preparation "
            f"needs at least {min_voxels} voxels over {min_axes} or more axes",
            fix,
        )
