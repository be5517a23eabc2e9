"""Tumour-centred crops of a patient's phases, for the deep-learning models, and their .npz files.

Crops are cut in the canonical orientation (``hccrad.imaging.transform``), one per tumour
(connected component of label 2, largest first) or of the largest only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)

from hccrad.core.config import crop_size_voxels
from hccrad.core.labels import BACKGROUND_LABEL, TUMOUR_LABEL
from hccrad.imaging.read import ImageQCError
from hccrad.imaging.transform import CANONICAL_ORIENTATION, orient_patient
from hccrad.imaging.volumes import PatientVolumes


@dataclass(frozen=True)
class TumourCrop:
    """A tumour-centred box of every phase, as arrays in (z, y, x) order, plus its geometry."""

    patient_id: str
    instance: int
    phases: tuple[str, ...]
    image: np.ndarray  # (phases, z, y, x) float32
    mask: np.ndarray  # (z, y, x) uint8 labels
    spacing_zyx: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    centre_xyz: tuple[float, float, float]
    tumour_volume_mm3: float


def tumour_components(mask: sitk.Image, tumour_label: int = TUMOUR_LABEL) -> sitk.Image:
    """Connected tumour components labelled 1..n, largest first (face connectivity)."""
    components = sitk.ConnectedComponent(sitk.Equal(mask, tumour_label))
    return sitk.RelabelComponent(components, sortByObjectSize=True)


def _crop_on_grid(
    image: sitk.Image, start_index: Sequence[int], size: Sequence[int], pad: float
) -> sitk.Image:
    """Copy a box starting at a voxel index; voxels outside the image get `pad`."""
    origin = image.TransformIndexToPhysicalPoint([int(i) for i in start_index])
    # The box lies on the image's own grid, so nearest neighbour copies voxels unchanged.
    return sitk.Resample(
        image,
        [int(n) for n in size],
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        origin,
        image.GetSpacing(),
        image.GetDirection(),
        pad,
        image.GetPixelID(),
    )


def crop_tumours(
    volumes: PatientVolumes,
    box_mm: Sequence[float],
    *,
    instances: Literal["largest", "all"] = "largest",
    tumour_label: int = TUMOUR_LABEL,
) -> list[TumourCrop]:
    """Tumour-centred boxes of `box_mm` (x, y, z mm): the largest tumour, or every tumour."""
    oriented = orient_patient(volumes)
    components = tumour_components(oriented.mask, tumour_label)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(components)
    labels = sorted(stats.GetLabels())
    if not labels:
        raise ImageQCError(
            volumes.patient_id,
            volumes.sources.get("mask"),
            f"the mask has no tumour voxels (label {tumour_label})",
            "segment the tumour(s) with label 2, or exclude the patient",
        )
    chosen = labels[:1] if instances == "largest" else labels
    size = crop_size_voxels(box_mm, oriented.mask.GetSpacing())
    crops = []
    for label in chosen:
        centre = stats.GetCentroid(label)
        centre_index = np.round(oriented.mask.TransformPhysicalPointToContinuousIndex(centre))
        start = (centre_index - np.asarray(size) // 2).astype(int)
        phase_arrays = [
            sitk.GetArrayFromImage(
                _crop_on_grid(image, start, size, float(sitk.GetArrayViewFromImage(image).min()))
            )
            for image in oriented.images.values()
        ]
        mask_crop = _crop_on_grid(oriented.mask, start, size, BACKGROUND_LABEL)
        crops.append(
            TumourCrop(
                patient_id=volumes.patient_id,
                instance=label,
                phases=oriented.phases,
                image=np.stack(phase_arrays).astype(np.float32),
                mask=sitk.GetArrayFromImage(mask_crop).astype(np.uint8),
                spacing_zyx=tuple(float(s) for s in reversed(mask_crop.GetSpacing())),
                origin_xyz=tuple(float(v) for v in mask_crop.GetOrigin()),
                centre_xyz=tuple(float(v) for v in centre),
                tumour_volume_mm3=float(stats.GetPhysicalSize(label)),
            )
        )
    return crops


def write_crop(crop: TumourCrop, path: str | Path) -> Path:
    """Save one crop as .npz: image (phases, z, y, x) float32, mask (z, y, x) and metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        image=crop.image,
        mask=crop.mask,
        phases=np.asarray(crop.phases),
        patient_id=np.asarray(crop.patient_id),
        instance=np.asarray(crop.instance),
        spacing_zyx=np.asarray(crop.spacing_zyx),
        origin_xyz=np.asarray(crop.origin_xyz),
        centre_xyz=np.asarray(crop.centre_xyz),
        orientation=np.asarray(CANONICAL_ORIENTATION),
        tumour_volume_mm3=np.asarray(crop.tumour_volume_mm3),
    )
    return path


def write_crops(crops: Sequence[TumourCrop], out_dir: str | Path) -> list[Path]:
    """Save every crop as <out_dir>/<patient_id>_tumour<k>.npz (k = 1 is the largest)."""
    return [
        write_crop(crop, Path(out_dir) / f"{crop.patient_id}_tumour{crop.instance}.npz")
        for crop in crops
    ]
