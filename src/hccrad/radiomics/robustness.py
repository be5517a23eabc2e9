"""Robustness of the features to the contour: perturbed masks, each feature's ICC, the selection.

The tumour is eroded or dilated by one voxel, or its contour jittered by a smooth random field;
a feature is robust when its ICC(3,1) between the original and perturbed masks reaches the
threshold, and only robust features are kept for the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)

from hccrad.core.labels import LIVER_LABEL, TUMOUR_LABEL
from hccrad.core.seeding import rng_for
from hccrad.imaging.read import ImageQCError
from hccrad.imaging.volumes import PatientVolumes

Perturbation = Literal["erode", "dilate", "jitter"]
PERTURBATIONS: tuple[Perturbation, ...] = ("erode", "dilate", "jitter")


def perturb_mask(
    mask: sitk.Image,
    kind: Perturbation,
    *,
    seed: int = 0,
    stream: str = "",
    tumour_label: int = TUMOUR_LABEL,
    liver_label: int = LIVER_LABEL,
    jitter_mm: float | None = None,
    smoothing_mm: float | None = None,
) -> sitk.Image:
    """A re-drawn label map: tumour eroded or dilated by one voxel, or its contour jittered.

    The jitter's random field comes from (`seed`, `stream`): pass the patient id as `stream` so
    that patients get different, reproducible fields.
    """
    tumour = sitk.Equal(mask, tumour_label)
    if kind == "erode":
        new_tumour = sitk.BinaryErode(tumour, [1, 1, 1], sitk.sitkBall)
    elif kind == "dilate":
        new_tumour = sitk.BinaryDilate(tumour, [1, 1, 1], sitk.sitkBall)
    elif kind == "jitter":
        new_tumour = _jittered(
            tumour, rng_for(seed, "mask_jitter", stream), jitter_mm, smoothing_mm
        )
    else:
        raise ValueError(f"unknown perturbation {kind!r}; choose from {PERTURBATIONS}")
    if not np.any(sitk.GetArrayViewFromImage(new_tumour)):
        raise ValueError(f"the tumour disappears under {kind}: it is too small to perturb")
    labels = sitk.GetArrayFromImage(mask)
    was_tumour = labels == tumour_label
    is_tumour = sitk.GetArrayViewFromImage(new_tumour).astype(bool)
    labels[was_tumour & ~is_tumour] = liver_label  # a tumour voxel given up is liver
    labels[is_tumour] = tumour_label
    perturbed = sitk.GetImageFromArray(labels)
    perturbed.CopyInformation(mask)
    return perturbed


def _maurer_mm(region: sitk.Image) -> np.ndarray:
    """Maurer distance in mm: 0 on the region's boundary voxels, > 0 outside, < 0 inside."""
    distance = sitk.SignedMaurerDistanceMap(
        region, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.GetArrayFromImage(distance)


def _jittered(
    tumour: sitk.Image,
    rng: np.random.Generator,
    jitter_mm: float | None,
    smoothing_mm: float | None,
) -> sitk.Image:
    """Move the tumour surface by a smooth random field (SD `jitter_mm`, scale `smoothing_mm`)."""
    jitter_mm = min(tumour.GetSpacing()) if jitter_mm is None else jitter_mm
    smoothing_mm = 3 * max(tumour.GetSpacing()) if smoothing_mm is None else smoothing_mm
    # Half the difference of the tumour's and the background's Maurer maps is the signed
    # distance to the surface midway between voxels (-s/2 inside, +s/2 outside the boundary);
    # the tumour's map alone is 0 on the inner boundary and would make the jitter shrink it.
    surface_distance = (_maurer_mm(tumour) - _maurer_mm(sitk.Not(tumour))) / 2
    noise = sitk.GetImageFromArray(rng.standard_normal(surface_distance.shape))
    noise.CopyInformation(tumour)
    field = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(noise, smoothing_mm))
    field *= jitter_mm / field.std()
    # Adding a displacement d to the distance moves the surface inward by d where d > 0.
    jittered = sitk.GetImageFromArray((surface_distance + field < 0).astype(np.uint8))
    jittered.CopyInformation(tumour)
    return jittered


def perturbed_volumes(
    volumes: PatientVolumes, kind: Perturbation, *, seed: int = 0, **kwargs: Any
) -> PatientVolumes:
    """The same patient with a perturbed mask (see perturb_mask)."""
    try:
        mask = perturb_mask(volumes.mask, kind, seed=seed, stream=volumes.patient_id, **kwargs)
    except ValueError as error:
        raise ImageQCError(
            volumes.patient_id,
            volumes.sources.get("mask"),
            str(error),
            "leave this patient out of the robustness analysis, or resample to a finer spacing",
        ) from error
    return PatientVolumes(volumes.patient_id, volumes.images, mask, volumes.sources)


def feature_icc(
    original: pd.DataFrame,
    perturbed: Mapping[str, pd.DataFrame],
    *,
    threshold: float = 0.75,
) -> pd.DataFrame:
    """ICC(3,1) per feature across patients between original and perturbed-mask values.

    Columns: feature, icc, ci95_low, ci95_high, robust (icc >= threshold); one row per feature.
    """
    versions = {"original": original, **perturbed}
    patients = original.index
    for name, table in versions.items():
        if not table.index.sort_values().equals(patients.sort_values()):
            raise ValueError(f"the {name!r} table has other patients than the original table")
    if len(patients) < 3:
        raise ValueError(f"ICC needs at least 3 patients, got {len(patients)}")
    rows = [_icc_row(feature, versions, threshold) for feature in original.columns]
    return pd.DataFrame(rows, columns=["feature", "icc", "ci95_low", "ci95_high", "robust"])


def _icc_row(
    feature: str, versions: Mapping[str, pd.DataFrame], threshold: float
) -> dict[str, Any]:
    """ICC(3,1) of one feature: pingouin's ICC(C,1), two-way mixed, consistency, single."""
    long = (
        pd.concat(
            {name: table[feature] for name, table in versions.items()}, names=["mask", "patient_id"]
        )
        .rename("value")
        .reset_index()
    )
    finite = long["value"].replace([np.inf, -np.inf], np.nan).notna()
    if not finite.all() or long.groupby("mask")["value"].std().eq(0).all():
        # Constant or undefined features carry no between-patient information.
        return {
            "feature": feature,
            "icc": np.nan,
            "ci95_low": np.nan,
            "ci95_high": np.nan,
            "robust": False,
        }
    import pingouin  # slow to import (~0.7 s); only the ICC step needs it

    with np.errstate(divide="ignore", invalid="ignore"):
        table = pingouin.intraclass_corr(long, targets="patient_id", raters="mask", ratings="value")
    icc3 = table.set_index("Type").loc["ICC(C,1)"]
    low, high = (float(v) for v in icc3["CI95"])
    icc = float(icc3["ICC"])
    return {
        "feature": feature,
        "icc": icc,
        "ci95_low": low,
        "ci95_high": high,
        "robust": bool(icc >= threshold),
    }


def select_robust(features: pd.DataFrame, icc: pd.DataFrame) -> pd.DataFrame:
    """Keep the features the ICC table marks robust (the others are listed in that table)."""
    robust = icc.loc[icc["robust"].astype(bool), "feature"]
    missing = sorted(set(robust) - set(features.columns))
    if missing:
        raise ValueError(
            f"{len(missing)} robust features are not in the features table (e.g. {missing[:3]}):"
            " the ICC and the features come from different parameter files, phases or regions"
        )
    return features.loc[:, [c for c in features.columns if c in set(robust)]]
