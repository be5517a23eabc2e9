"""The threshold baseline: Otsu's threshold within the reference liver, fitted on training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import SimpleITK as sitk  # noqa: N813

from hccrad.core.labels import BACKGROUND_LABEL, LIVER_LABEL, TUMOUR_LABEL
from hccrad.segment.metrics import STRUCTURES, dice
from hccrad.segment.volumes import Volume

METHOD_BASELINE = "otsu_threshold"  # the baseline's name in the evaluation tables


@dataclass(frozen=True)
class ThresholdBaseline:
    """Otsu's threshold within the reference liver on one phase, tumour on one side of it."""

    phase: str
    tumour_below: bool


def otsu_tumour(image: np.ndarray, liver: np.ndarray, tumour_below: bool) -> np.ndarray:
    """Tumour voxels: the Otsu class (within the liver) on the tumour's side of the threshold."""
    if not liver.any():
        return np.zeros_like(liver, dtype=bool)
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetMaskValue(1)
    otsu.Execute(sitk.GetImageFromArray(image), sitk.GetImageFromArray(liver.astype(np.uint8)))
    threshold = otsu.GetThreshold()
    side = image < threshold if tumour_below else image > threshold
    return side & liver


def baseline_labels(
    volume: Volume, baseline: ThresholdBaseline, phases: Sequence[str]
) -> np.ndarray:
    """Baseline label map: the reference liver, relabelled tumour where Otsu says so."""
    assert volume.mask is not None
    liver = np.isin(volume.mask, STRUCTURES["liver"])
    image = volume.image[list(phases).index(baseline.phase)]
    labels = np.where(liver, LIVER_LABEL, BACKGROUND_LABEL).astype(np.uint8)
    labels[otsu_tumour(image, liver, baseline.tumour_below)] = TUMOUR_LABEL
    return labels


def fit_threshold_baseline(
    volumes: Sequence[Volume], phases: Sequence[str]
) -> tuple[ThresholdBaseline, pd.DataFrame]:
    """The phase and side with the best mean training tumour Dice, and every candidate's Dice."""
    rows = []
    for phase in phases:
        for below in (True, False):
            candidate = ThresholdBaseline(phase, below)
            scores = [
                dice(baseline_labels(v, candidate, phases) == TUMOUR_LABEL, v.mask == TUMOUR_LABEL)
                for v in volumes
                if v.mask is not None
            ]
            rows.append({"phase": phase, "tumour_below": below, "train_dice": np.mean(scores)})
    table = pd.DataFrame(rows)
    best = table.loc[table["train_dice"].idxmax()]
    return ThresholdBaseline(str(best["phase"]), bool(best["tumour_below"])), table
