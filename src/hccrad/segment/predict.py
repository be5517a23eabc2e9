"""Prediction with a trained segmenter: label volumes, the patient's score and masks on disk.

Predicted masks are label maps like the reference ones (0 background, 1 liver, 2 tumour) on the
prepared image's grid (same size, spacing, origin and direction). A volume where the network
finds no tumour gets a mask without label 2 and ``tumour_empty`` set, never an error.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk  # noqa: N813
import torch
from scipy.special import expit

from hccrad.core.labels import BACKGROUND_LABEL, TUMOUR_LABEL
from hccrad.core.torch_runtime import resolve_device
from hccrad.imaging.prepared import predicted_mask_path
from hccrad.segment.train import Segmenter
from hccrad.segment.volumes import (
    Volume,
    is_excluded,
    normalise,
    pad_to_multiple,
    read_volume,
    slice_stack,
)


@dataclass(frozen=True)
class Prediction:
    """A predicted label volume (array order z, y, x) and the patient's endpoint score."""

    labels: np.ndarray
    response_score: float

    @property
    def tumour_empty(self) -> bool:
        """True when the network found no tumour voxel in the volume."""
        return not bool((self.labels == TUMOUR_LABEL).any())


@torch.no_grad()
def predict_volume(model: Segmenter, volume: Volume, batch_size: int = 16) -> Prediction:
    """Labels of every slice (whole slices, padded to the encoder stride) and the score."""
    config = model.config
    device = resolve_device(config.device, "segment.device")
    network = model.network.to(device).eval()
    image = normalise(volume.image, config.intensity_clip)
    depth = image.shape[1]
    stacks = np.stack([slice_stack(image, z, config.neighbour_slices) for z in range(depth)])
    padded, crop = pad_to_multiple(stacks)
    labels, logits = [], []
    for start in range(0, depth, batch_size):
        batch = torch.from_numpy(padded[start : start + batch_size]).to(device)
        segmentation, response = network(batch)
        labels.append(segmentation.argmax(dim=1).cpu().numpy()[(slice(None), *crop)])
        logits.append(response.float().cpu().numpy())
    label_volume = keep_largest_organ(np.concatenate(labels).astype(np.uint8))
    slice_logits = np.concatenate(logits)
    return Prediction(label_volume, patient_score(label_volume, slice_logits))


def keep_largest_organ(labels: np.ndarray) -> np.ndarray:
    """Background outside the largest connected liver-plus-tumour region (SimpleITK components).

    Slice-wise prediction leaves tumour-like specks in kidneys, spleen and vessels; a tumour
    lies in the liver, so only the largest connected region of labels 1 and 2 is kept.
    (MONAI's KeepLargestConnectedComponent would need scikit-image, not a dependency.)
    """
    if not labels.any():
        return labels
    foreground = sitk.GetImageFromArray((labels > 0).astype(np.uint8))
    components = sitk.RelabelComponent(
        sitk.ConnectedComponent(foreground, True), sortByObjectSize=True
    )
    largest = sitk.GetArrayFromImage(components) == 1
    return np.where(largest, labels, BACKGROUND_LABEL).astype(np.uint8)


def patient_score(labels: np.ndarray, slice_logits: np.ndarray) -> float:
    """The endpoint probability: mean logit over predicted tumour slices (else all slices)."""
    tumour_area = (labels == TUMOUR_LABEL).sum(axis=(1, 2))
    chosen = tumour_area > 0 if tumour_area.any() else np.ones(len(labels), dtype=bool)
    # Area-weighted: slices through the bulk of the tumour say more than its edges.
    weights = np.where(tumour_area.any(), tumour_area, 1.0)[chosen]
    logit = float(np.average(slice_logits[chosen], weights=weights))
    return float(expit(logit))


def mask_image(labels: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A label array as a UInt8 image on exactly the reference image's grid."""
    if labels.shape != sitk.GetArrayViewFromImage(reference).shape:
        raise ValueError(
            f"labels of shape {labels.shape} do not fit the image grid "
            f"{sitk.GetArrayViewFromImage(reference).shape}"
        )
    image = sitk.GetImageFromArray(labels.astype(np.uint8))
    image.CopyInformation(reference)
    return image


def write_mask(labels: np.ndarray, reference: sitk.Image, path: str | Path) -> Path:
    """Write a predicted mask as NIfTI on the reference grid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(mask_image(labels, reference), str(path), useCompression=True)
    return path


def predict_cohort(
    model: Segmenter,
    folders: Mapping[str, str | Path],
    sheet: pd.DataFrame,
    mask_dir: str | Path,
    log: Any = None,
    training: Collection[str] = (),
) -> pd.DataFrame:
    """Predict every patient: masks into ``mask_dir`` and one table row per patient.

    Patients excluded in preparation get a row with status ``excluded`` and no mask; the
    network's ``training`` patients one with status ``training`` and no mask.
    """
    rows = []
    for patient, folder in folders.items():
        row: dict[str, Any] = {
            "patient_id": patient,
            "split": sheet.at[patient, "split"],
            "centre": sheet.at[patient, "centre"],
        }
        if is_excluded(folder):
            rows.append(row | {"status": "excluded", "note": "excluded in preparation"})
            continue
        if patient in training:
            note = "the network was trained on this patient; not predicted (segment.predict)"
            rows.append(row | {"status": "training", "note": note})
            continue
        volume = read_volume(folder, patient, model.config.phases)
        prediction = predict_volume(model, volume)
        write_mask(prediction.labels, volume.reference, predicted_mask_path(mask_dir, patient))
        voxel_ml = float(np.prod(volume.spacing_zyx)) / 1000.0
        rows.append(
            row
            | {
                "status": "predicted",
                "note": "no tumour found: empty tumour mask" if prediction.tumour_empty else "",
                "tumour_empty": prediction.tumour_empty,
                "tumour_ml": float((prediction.labels == TUMOUR_LABEL).sum()) * voxel_ml,
                "response_score": prediction.response_score,
            }
        )
        if log:
            log.info("%s: tumour %.1f ml", patient, rows[-1]["tumour_ml"])
    return pd.DataFrame(rows).set_index("patient_id")
