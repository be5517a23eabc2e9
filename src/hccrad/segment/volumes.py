"""Prepared patients as arrays for the segmenter: reading, exclusion, scaling and 2.5D stacks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from hccrad.imaging.prepared import read_exclusion
from hccrad.segment.config import ENCODER_STRIDE


@dataclass(frozen=True)
class Volume:
    """A prepared patient as arrays: phases (P, Z, Y, X), reference labels and the grid."""

    patient_id: str
    image: np.ndarray
    mask: np.ndarray | None
    reference: sitk.Image  # the grid every predicted mask copies

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel spacing in array order (z, y, x), mm."""
        return tuple(float(s) for s in reversed(self.reference.GetSpacing()))  # type: ignore[return-value]


def read_volume(folder: str | Path, patient_id: str, phases: Sequence[str]) -> Volume:
    """Read a prepared patient folder (phase volumes, reference mask if present)."""
    folder = Path(folder)
    images = []
    reference = None
    for phase in phases:
        path = folder / f"{phase}.nii.gz"
        if not path.is_file():
            raise FileNotFoundError(
                f"patient {patient_id}: {path} is missing; segmentation needs the phases "
                f"{list(phases)} (set segment.phases to the phases the cohort has)"
            )
        image = sitk.ReadImage(str(path), sitk.sitkFloat32)
        reference = reference or image
        images.append(sitk.GetArrayFromImage(image))
    mask_path = folder / "mask.nii.gz"
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path))) if mask_path.is_file() else None
    assert reference is not None
    return Volume(patient_id, np.stack(images).astype(np.float32), mask, reference)


def is_excluded(folder: str | Path) -> bool:
    """Whether preparation excluded the patient (its exclusion.tsv has a row)."""
    return bool(len(read_exclusion(folder)))


def normalise(image: np.ndarray, clip: tuple[float, float]) -> np.ndarray:
    """Clip to the configured range and scale it to [-1, 1] (keeps air and bone from dominating)."""
    low, high = clip
    scale = max(abs(low), abs(high))
    return (np.clip(image, low, high) / scale).astype(np.float32)


def slice_stack(image: np.ndarray, z: int, neighbours: int) -> np.ndarray:
    """The 2.5D input of slice z: every phase at z-k ... z+k (edges repeated), as channels."""
    depth = image.shape[1]
    indices = np.clip(np.arange(z - neighbours, z + neighbours + 1), 0, depth - 1)
    return image[:, indices].reshape(-1, *image.shape[2:])


def pad_to_multiple(array: np.ndarray, multiple: int = ENCODER_STRIDE) -> tuple[np.ndarray, tuple]:
    """Zero-pad the last two axes up to a multiple; return the array and the slices to undo it."""
    height, width = array.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    pads = [(0, 0)] * (array.ndim - 2) + [(pad_h // 2, pad_h - pad_h // 2)]
    pads += [(pad_w // 2, pad_w - pad_w // 2)]
    padded = np.pad(array, pads, mode="minimum" if array.size else "constant")
    crop = (slice(pad_h // 2, pad_h // 2 + height), slice(pad_w // 2, pad_w // 2 + width))
    return padded, crop
