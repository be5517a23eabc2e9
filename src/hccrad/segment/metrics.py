"""Overlap metrics of predicted against reference masks: Dice, IoU, HD95 and volumes."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from hccrad.core.labels import LIVER_LABEL, TUMOUR_LABEL

STRUCTURES: dict[str, tuple[int, ...]] = {
    "tumour": (TUMOUR_LABEL,),
    "liver": (LIVER_LABEL, TUMOUR_LABEL),  # the liver includes its tumours
}


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1 when both are empty)."""
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * float((prediction & reference).sum()) / total


def hd95_mm(prediction: np.ndarray, reference: np.ndarray, spacing_zyx: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (NaN when either mask is empty)."""
    if not prediction.any() or not reference.any():
        return float("nan")
    # Imported here: torch and MONAI cost ~2.5 s, and only this metric needs them (issue 30).
    import torch
    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():
        # MONAI's own internal call of get_mask_edges warns about its deprecated argument.
        warnings.simplefilter("ignore", FutureWarning)
        distance = compute_hausdorff_distance(
            torch.from_numpy(prediction[np.newaxis, np.newaxis]),
            torch.from_numpy(reference[np.newaxis, np.newaxis]),
            include_background=True,
            percentile=95,
            spacing=[float(s) for s in spacing_zyx],
        )
    return float(distance.item())


def overlap_metrics(
    prediction: np.ndarray, reference: np.ndarray, spacing_zyx: Sequence[float]
) -> dict[str, float]:
    """Dice, IoU, HD95 (mm) and volumes (ml) with the relative volume error (%) of one structure."""
    both = int((prediction & reference).sum())
    union = int((prediction | reference).sum())
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    reference_ml = float(reference.sum()) * voxel_ml
    predicted_ml = float(prediction.sum()) * voxel_ml
    return {
        "dice": dice(prediction, reference),
        "iou": 1.0 if union == 0 else both / union,
        "hd95_mm": hd95_mm(prediction, reference, spacing_zyx),
        "reference_ml": reference_ml,
        "predicted_ml": predicted_ml,
        "volume_error_pct": (
            100.0 * (predicted_ml - reference_ml) / reference_ml if reference_ml else float("nan")
        ),
    }


def label_metrics(
    predicted: np.ndarray, reference: np.ndarray, spacing_zyx: Sequence[float]
) -> list[dict[str, Any]]:
    """Overlap metrics of tumour and liver between two label maps (one row each)."""
    return [
        {"structure": name}
        | overlap_metrics(np.isin(predicted, labels), np.isin(reference, labels), spacing_zyx)
        for name, labels in STRUCTURES.items()
    ]
