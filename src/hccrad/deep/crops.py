"""Tumour crops at one size (CropSet): built from arrays or read from crop files.

Inputs are the tumour crops of `hccrad.imaging.crops` (.npz: ``image`` (phases, z, y, x) float32,
already normalised per phase, e.g. z-scored over the liver).

Several tumours per patient: `load_crops` keeps the ``top_k`` largest tumours of each patient
(default 1, the largest: the mRECIST target lesion that dominates response, and what the studies
crop). Training gives every kept crop its patient's label; a patient's score and deep features
are the mean over the patient's kept crops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import ResizeWithPadOrCrop

from hccrad.deep.config import as_size
from hccrad.stats.checks import name_patients


@dataclass(frozen=True)
class CropSet:
    """Tumour crops at one size: images (n, phases, z, y, x) and per-crop patient metadata."""

    patient_ids: tuple[str, ...]
    instances: tuple[int, ...]
    tumour_volumes_mm3: tuple[float, ...]
    phases: tuple[str, ...]
    images: np.ndarray
    masks: np.ndarray | None = None  # (n, z, y, x) labels, 2 = tumour
    spacing_zyx: tuple[tuple[float, float, float], ...] | None = None

    @property
    def patients(self) -> list[str]:
        """Patient ids in order of first appearance."""
        return list(dict.fromkeys(self.patient_ids))

    @property
    def spatial_size(self) -> tuple[int, int, int]:
        """The crops' (z, y, x) size."""
        return tuple(self.images.shape[2:])  # type: ignore[return-value]

    def __len__(self) -> int:
        """Number of crops."""
        return len(self.patient_ids)

    def subset(self, patients: Iterable[str]) -> CropSet:
        """The crops of the given patients, in their order; ValueError if one has none."""
        wanted = [str(p) for p in patients]
        rows_by_patient: dict[str, list[int]] = {}
        for row, patient in enumerate(self.patient_ids):
            rows_by_patient.setdefault(patient, []).append(row)
        missing = [p for p in wanted if p not in rows_by_patient]
        if missing:
            raise ValueError(
                f"no tumour crop for {len(missing)} patient(s): {name_patients(missing)}; "
                "crop them (hccrad.imaging.crops) or leave them out of the sheet"
            )
        return self.take([row for p in wanted for row in rows_by_patient[p]])

    def take(self, rows: Sequence[int]) -> CropSet:
        """The crops at the given row positions."""
        return CropSet(
            tuple(self.patient_ids[r] for r in rows),
            tuple(self.instances[r] for r in rows),
            tuple(self.tumour_volumes_mm3[r] for r in rows),
            self.phases,
            self.images[list(rows)],
            None if self.masks is None else self.masks[list(rows)],
            None if self.spacing_zyx is None else tuple(self.spacing_zyx[r] for r in rows),
        )


def crops_from_arrays(
    patient_ids: Sequence[str],
    images: Sequence[np.ndarray] | np.ndarray,
    *,
    spatial_size: int | Sequence[int],
    phases: Sequence[str] | None = None,
    masks: Sequence[np.ndarray] | None = None,
    instances: Sequence[int] | None = None,
    tumour_volumes_mm3: Sequence[float] | None = None,
    spacing_zyx: Sequence[Sequence[float]] | None = None,
    top_k: int = 1,
) -> CropSet:
    """A CropSet from (phases, z, y, x) arrays, padded/cropped about the centre to one size."""
    n = len(patient_ids)
    if len(images) != n:
        raise ValueError(f"{len(images)} images for {n} patient ids")
    n_channels = {np.asarray(image).shape[0] for image in images}
    if len(n_channels) != 1 or any(np.asarray(image).ndim != 4 for image in images):
        raise ValueError("every crop image must be (phases, z, y, x) with the same phase count")
    instances = list(instances) if instances is not None else [1] * n
    # Without volumes, the earlier instance number (1 = largest in hccrad.imaging) ranks higher.
    volumes = (
        list(tumour_volumes_mm3) if tumour_volumes_mm3 is not None else [-i for i in instances]
    )
    order = _largest_first(list(map(str, patient_ids)), volumes, top_k)
    size = as_size(spatial_size)
    # Centre crop/pad keeps the millimetre scale (the crops share a spacing); "edge" padding
    # avoids inventing a signal value that the normalised image does not have.
    resize_image = ResizeWithPadOrCrop(size, mode="edge")
    resize_mask = ResizeWithPadOrCrop(size, mode="constant")
    stacked = np.stack(
        [np.asarray(resize_image(np.asarray(images[i], np.float32))) for i in order]
    ).astype(np.float32)
    stacked_masks = None
    if masks is not None:
        stacked_masks = np.stack(
            [np.asarray(resize_mask(np.asarray(masks[i])[None]))[0] for i in order]
        ).astype(np.uint8)
    channels = n_channels.pop()
    return CropSet(
        patient_ids=tuple(str(patient_ids[i]) for i in order),
        instances=tuple(int(instances[i]) for i in order),
        tumour_volumes_mm3=tuple(float(volumes[i]) for i in order),
        phases=tuple(phases) if phases is not None else tuple(f"phase{c}" for c in range(channels)),
        images=stacked,
        masks=stacked_masks,
        spacing_zyx=None
        if spacing_zyx is None
        else tuple(tuple(float(s) for s in spacing_zyx[i]) for i in order),  # type: ignore[misc]
    )


def _largest_first(patient_ids: Sequence[str], volumes: Sequence[float], top_k: int) -> list[int]:
    """Row order: patients by first appearance, each patient's top_k largest tumours first."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    first_seen = {p: i for i, p in reversed(list(enumerate(patient_ids)))}
    order = sorted(range(len(patient_ids)), key=lambda i: (first_seen[patient_ids[i]], -volumes[i]))
    kept: dict[str, int] = {}
    rows = []
    for row in order:
        patient = patient_ids[row]
        if kept.get(patient, 0) < top_k:
            kept[patient] = kept.get(patient, 0) + 1
            rows.append(row)
    return rows


def load_crops(
    paths: Iterable[str | Path], spatial_size: int | Sequence[int], *, top_k: int = 1
) -> CropSet:
    """Read hccrad.imaging.crops crop files (.npz) and keep each patient's top_k largest tumours."""
    records = [_read_crop(Path(path)) for path in paths]
    if not records:
        raise ValueError("no crop files given")
    phases = records[0]["phases"]
    for record in records:
        if record["phases"] != phases:
            raise ValueError(
                f"{record['path']}: phases {record['phases']} differ from {phases} of "
                f"{records[0]['path']}; crop every patient with the same phases"
            )
    return crops_from_arrays(
        [r["patient_id"] for r in records],
        [r["image"] for r in records],
        spatial_size=spatial_size,
        phases=phases,
        masks=[r["mask"] for r in records],
        instances=[r["instance"] for r in records],
        tumour_volumes_mm3=[r["tumour_volume_mm3"] for r in records],
        spacing_zyx=[r["spacing_zyx"] for r in records],
        top_k=top_k,
    )


def _read_crop(path: Path) -> dict[str, Any]:
    """One crop file as a dict; ValueError naming the file when it is not a crop."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {
                "path": path,
                "image": data["image"].astype(np.float32),
                "mask": data["mask"],
                "phases": tuple(str(p) for p in data["phases"]),
                "patient_id": str(data["patient_id"]),
                "instance": int(data["instance"]),
                "tumour_volume_mm3": float(data["tumour_volume_mm3"]),
                "spacing_zyx": tuple(float(s) for s in data["spacing_zyx"]),
            }
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(
            f"{path}: not a readable hccrad tumour crop ({error}); rerun the crop step"
        ) from error
