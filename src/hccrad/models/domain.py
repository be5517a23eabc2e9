"""Out-of-domain checks: does a patient resemble the training patients the models learnt from?

A patient is described (``describe_patients``) by the raw acquisition (voxel spacing per axis
and the 1st/50th/99th intensity percentile inside the liver per phase, from
``hccrad.imaging.geometry``), the tumour volume, and the robust radiomic features the models
read. ``fit_domain_reference`` learns, from training patients only:

- per check, the training range widened by ``range_margin`` of its width on each side (of the
  value itself where every training patient has the same value, e.g. one scanner's spacing);
- overall, a Mahalanobis distance on the standardised robust features with a Ledoit-Wolf
  shrunk covariance (a plain covariance is singular with more features than patients), its
  threshold the ``overall_quantile`` of training patients' held-out distances (each fold's
  patients measured against a reference fitted on the other folds: in-sample distances are
  optimistically small, and a threshold set on them would flag ordinary new patients).

``domain_flags`` then says, per patient and check, whether the value lies outside and why. The
reference is JSON: per-check bounds and the overall check's training matrix, from which the
shrunk covariance is recomputed deterministically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf
from sklearn.model_selection import KFold

from hccrad.core.seeding import rng_for
from hccrad.core.splits import SPLIT_COLUMN, TRAIN
from hccrad.imaging.geometry import RAW_GEOMETRY_COLUMNS, raw_geometry_row
from hccrad.models.base import plain
from hccrad.stats.checks import require_columns

__all__ = [
    "FLAG_COLUMNS",
    "describe_patients",
    "domain_flags",
    "fit_domain_reference",
    "raw_geometry_row",
    "training_reference",
]

FLAG_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "check",
    "value",
    "low",
    "high",
    "out_of_domain",
    "reason",
)
OVERALL = "overall"
SPACING = ("spacing_x", "spacing_y", "spacing_z")
INTENSITY = ("intensity_p01", "intensity_p50", "intensity_p99")
TUMOUR_VOLUME = "tumour_volume_ml"
# Where a liver-only cohort's raw mask has no tumour: the radiomics' own tumour volume.
VOXEL_VOLUME_SUFFIX = "_tumour_original_shape_VoxelVolume"
METHOD = (
    "per check: training range widened by range_margin; overall: Mahalanobis distance on the "
    "standardised robust radiomic features (Ledoit-Wolf shrunk covariance), threshold the "
    "overall_quantile of the training patients' held-out distances"
)


# --------------------------------------------------------------------------- description


def describe_patients(raw_geometry: pd.DataFrame, radiomics: pd.DataFrame) -> pd.DataFrame:
    """One row per patient (index patient_id): raw geometry, tumour volume, radiomic features.

    Spacing per axis, ``<phase>_intensity_p01/p50/p99``, ``tumour_volume_ml`` (the raw mask's,
    else the radiomics' tumour VoxelVolume), then ``radiomics`` (patients x robust features).
    """
    require_columns(raw_geometry, list(RAW_GEOMETRY_COLUMNS[:8]), "raw geometry")
    raw = raw_geometry.assign(patient_id=raw_geometry["patient_id"].astype(str))
    first = raw.drop_duplicates("patient_id").set_index("patient_id")
    # Phases share the mask's grid (hccrad.imaging.volumes.load_patient): one spacing each.
    parts = [first[list(SPACING)]]
    wide = raw.pivot(index="patient_id", columns="phase", values=list(INTENSITY))
    wide.columns = [f"{phase}_{stat}" for stat, phase in wide.columns]
    parts.append(wide[sorted(wide.columns)])
    volume = (
        first[TUMOUR_VOLUME].astype(float)
        if TUMOUR_VOLUME in first
        else pd.Series(np.nan, index=first.index)
    )
    voxel_volume = [c for c in radiomics.columns if c.endswith(VOXEL_VOLUME_SUFFIX)]
    if voxel_volume:
        from_features = radiomics[voxel_volume[0]].astype(float) / 1000.0
        volume = volume.combine_first(from_features.reindex(volume.index))
    parts.append(volume.rename(TUMOUR_VOLUME).to_frame())
    description = pd.concat(parts, axis=1)
    features = radiomics.set_axis(radiomics.index.astype(str)).astype(float)
    clash = sorted(set(description.columns) & set(features.columns))
    if clash:
        raise ValueError(f"radiomics: column(s) {clash[:5]} clash with the raw geometry's")
    out = description.join(features, how="outer")
    out.index.name = "patient_id"
    return out


def _kind(column: str, features: Sequence[str]) -> tuple[str, str]:
    """A check's words and unit: 'voxel spacing z' mm, 'arterial intensity p99', ..."""
    if column in SPACING:
        return f"voxel spacing {column[-1]}", "mm"
    if column == TUMOUR_VOLUME:
        return "tumour volume", "mL"
    if column in features:
        return f"radiomic feature {column}", ""
    phase, stat = column.rsplit("_intensity_", 1)
    return f"{phase} intensity {stat} inside the liver", ""


# --------------------------------------------------------------------------- reference


def _bounds(values: pd.Series, margin: float) -> tuple[float, float, float, float]:
    """Training min and max, and the accepted low and high (widened by margin)."""
    low, high = float(values.min()), float(values.max())
    width = high - low if high > low else abs(high) or 1.0
    return low, high, low - margin * width, high + margin * width


def _overall_model(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, LedoitWolf]:
    """Centre, scale and Ledoit-Wolf fit of a training matrix (patients x features)."""
    centre = matrix.mean(axis=0)
    scale = matrix.std(axis=0)
    scale[scale == 0] = 1.0
    return centre, scale, LedoitWolf().fit((matrix - centre) / scale)


def _distances(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mahalanobis distances of ``rows`` from the reference fitted on ``matrix``."""
    centre, scale, model = _overall_model(matrix)
    return np.sqrt(model.mahalanobis((rows - centre) / scale))


def fit_domain_reference(
    train_description: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    range_margin: float = 0.25,
    overall_quantile: float = 0.99,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-check training bounds and the overall Mahalanobis reference, JSON-ready.

    ``train_description``: describe_patients rows of training patients only. ``features``:
    the robust radiomic columns of the overall score (default: every column that is not raw
    geometry or tumour volume).
    """
    geometry = [c for c in train_description.columns if c in SPACING or "_intensity_" in c]
    geometry += [TUMOUR_VOLUME] if TUMOUR_VOLUME in train_description else []
    if features is None:
        features = [c for c in train_description.columns if c not in geometry]
    checks = {}
    for column in [*geometry, *features]:
        values = train_description[column].astype(float).dropna()
        if values.empty:  # e.g. no tumour volume in any training patient: nothing to compare
            continue
        label, unit = _kind(column, features)
        train_min, train_max, low, high = _bounds(values, range_margin)
        checks[column] = {
            "label": label,
            "unit": unit,
            "n": len(values),
            "train_min": train_min,
            "train_max": train_max,
            "low": low,
            "high": high,
        }
    matrix = train_description[list(features)].astype(float).dropna()
    overall = None
    if len(features) and len(matrix) >= max(folds, 3):
        held = np.empty(len(matrix))
        random_state = int(rng_for(seed, "domain", "folds").integers(2**31 - 1))
        values = matrix.to_numpy()
        for fit_rows, test_rows in KFold(folds, shuffle=True, random_state=random_state).split(
            values
        ):
            held[test_rows] = _distances(values[fit_rows], values[test_rows])
        overall = {
            "features": list(features),
            "patients": list(matrix.index.astype(str)),
            "matrix": values.tolist(),
            "threshold": float(np.quantile(held, overall_quantile)),
            "quantile": overall_quantile,
            "held_out_distance_median": float(np.median(held)),
        }
    return plain(
        {
            "method": METHOD,
            "n_train": len(train_description),
            "patients": list(train_description.index.astype(str)),
            "range_margin": range_margin,
            "checks": checks,
            OVERALL: overall,
        }
    )


# --------------------------------------------------------------------------- flags


def _number(value: float) -> str:
    """A value for a reason: four significant digits."""
    return f"{value:.4g}"


def _reason(label: str, unit: str, value: float, check: Mapping[str, Any], outside: bool) -> str:
    """'voxel spacing z 12 mm outside training 1-5 mm (accepted 0.6-5.4)', or within."""
    unit = f" {unit}" if unit else ""
    if not np.isfinite(value):
        return f"{label}: no value (cannot be compared with training)"
    where = "outside" if outside else "within"
    return (
        f"{label} {_number(value)}{unit} {where} training {_number(check['train_min'])}-"
        f"{_number(check['train_max'])}{unit} (accepted {_number(check['low'])}-"
        f"{_number(check['high'])})"
    )


def domain_flags(reference: Mapping[str, Any], description: pd.DataFrame) -> pd.DataFrame:
    """One row per patient and check, plus an ``overall`` row: value, bounds, flag, reason.

    A value that is missing is flagged too: a patient that cannot be compared is not in domain.
    """
    rows = []
    checks = reference["checks"]
    overall = reference.get(OVERALL)
    if overall is not None:
        distance = _overall_distances(overall, description)
    for patient, values in description.iterrows():
        for column, check in checks.items():
            value = float(values[column]) if column in values.index else np.nan
            outside = not np.isfinite(value) or not check["low"] <= value <= check["high"]
            rows.append(
                {
                    "patient_id": str(patient),
                    "check": column,
                    "value": value,
                    "low": check["low"],
                    "high": check["high"],
                    "out_of_domain": bool(outside),
                    "reason": _reason(check["label"], check["unit"], value, check, outside),
                }
            )
        if overall is not None:
            rows.append(_overall_row(str(patient), distance[patient], overall))
    return pd.DataFrame(rows, columns=list(FLAG_COLUMNS))


def _overall_distances(overall: Mapping[str, Any], description: pd.DataFrame) -> pd.Series:
    """Each patient's Mahalanobis distance from the training reference (NaN if a value lacks)."""
    features = overall["features"]
    present = description.reindex(columns=features).astype(float)
    complete = present.notna().all(axis=1)
    distance = pd.Series(np.nan, index=description.index)
    if complete.any():
        rows = present[complete].to_numpy()
        distance[complete] = _distances(np.asarray(overall["matrix"], dtype=float), rows)
    return distance


def _overall_row(patient: str, distance: float, overall: Mapping[str, Any]) -> dict[str, Any]:
    """The overall check's row of one patient."""
    threshold = overall["threshold"]
    n = len(overall["features"])
    label = f"Mahalanobis distance over {n} robust radiomic features"
    if not np.isfinite(distance):
        outside, reason = True, f"{label}: a feature value is missing (cannot be compared)"
    else:
        outside = distance > threshold
        where = "above" if outside else "within"
        reason = (
            f"{label} {_number(distance)} {where} the training threshold {_number(threshold)} "
            f"(the {overall['quantile']:g} quantile of held-out training distances)"
        )
    return {
        "patient_id": patient,
        "check": OVERALL,
        "value": distance,
        "low": 0.0,
        "high": threshold,
        "out_of_domain": bool(outside),
        "reason": reason,
    }


def training_reference(
    sheet: pd.DataFrame, description: pd.DataFrame, **settings: Any
) -> dict[str, Any]:
    """fit_domain_reference on the sheet's training patients only (every other split ignored)."""
    require_columns(sheet, [SPLIT_COLUMN], "cohort sheet")
    train = sheet.index[sheet[SPLIT_COLUMN] == TRAIN].astype(str)
    rows = description.loc[description.index.intersection(train, sort=False)]
    if rows.empty:
        raise ValueError("domain reference: no training patient has a description")
    return fit_domain_reference(rows, **settings)
