"""A patient's raw acquisition as read: voxel spacing, intensities inside the mask, tumour size.

Measured on the images as the sheet gives them, before any cropping, resampling or
normalisation, because the out-of-domain checks (``hccrad.models.domain``) ask whether a new
scanner or protocol resembles the training ones. Preparation writes one table per patient
(``raw_geometry.tsv`` in the prepared folder, one row per phase); rule ``raw_geometry`` gathers
them per cohort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)

from hccrad.cohorts.sheet import read_patients
from hccrad.core.labels import BACKGROUND_LABEL, TUMOUR_LABEL
from hccrad.imaging.batches import patient_folders
from hccrad.imaging.checks import geometry_mismatch
from hccrad.imaging.prepared import read_exclusion

RAW_GEOMETRY_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "phase",
    "spacing_x",
    "spacing_y",
    "spacing_z",
    "intensity_p01",
    "intensity_p50",
    "intensity_p99",
    "tumour_volume_ml",
)
RAW_GEOMETRY_FILE = "raw_geometry.tsv"


def raw_geometry_row(
    patient_id: str, phase: str, image: sitk.Image, mask: sitk.Image
) -> dict[str, Any]:
    """Spacing (mm), 1st/50th/99th intensity percentile inside the mask, tumour volume (mL).

    The intensities are those of every labelled voxel (liver and tumour), so that a liver-only
    mask and a mask with the tumour describe the same organ; the tumour volume counts label 2
    (NaN when the mask has none, as a liver-only mask).
    """
    mismatch = geometry_mismatch(image, mask, 1e-3)
    if mismatch is not None:
        raise ValueError(f"patient {patient_id}, {phase}: image and mask grids differ: {mismatch}")
    labels = sitk.GetArrayViewFromImage(mask)
    values = sitk.GetArrayViewFromImage(image)[labels > BACKGROUND_LABEL].astype(float)
    if values.size == 0:
        raise ValueError(f"patient {patient_id}, {phase}: the mask labels no voxel")
    p01, p50, p99 = np.percentile(values, [1, 50, 99])
    spacing = [float(s) for s in image.GetSpacing()]
    tumour_voxels = int(np.count_nonzero(labels == TUMOUR_LABEL))
    volume = tumour_voxels * float(np.prod(mask.GetSpacing())) / 1000.0
    return {
        "patient_id": patient_id,
        "phase": phase,
        "spacing_x": spacing[0],
        "spacing_y": spacing[1],
        "spacing_z": spacing[2],
        "intensity_p01": float(p01),
        "intensity_p50": float(p50),
        "intensity_p99": float(p99),
        "tumour_volume_ml": volume if tumour_voxels else np.nan,
    }


def raw_geometry_table(
    patient_id: str, images: Mapping[str, sitk.Image], mask: sitk.Image
) -> pd.DataFrame:
    """One raw_geometry_row per phase of a patient."""
    rows = [raw_geometry_row(patient_id, phase, image, mask) for phase, image in images.items()]
    return pd.DataFrame(rows, columns=list(RAW_GEOMETRY_COLUMNS))


def write_raw_geometry(folder: str | Path, table: pd.DataFrame) -> Path:
    """The table as ``raw_geometry.tsv`` in a prepared patient folder."""
    path = Path(folder) / RAW_GEOMETRY_FILE
    table.to_csv(path, sep="\t", index=False, float_format="%.6g")
    return path


def read_raw_geometry(folder: str | Path) -> pd.DataFrame:
    """A prepared patient folder's raw_geometry.tsv (ids and phases kept as written)."""
    path = Path(folder) / RAW_GEOMETRY_FILE
    if not path.is_file():
        raise ValueError(
            f"{path}: missing (prepared before hccrad recorded the raw geometry); prepare the "
            "patient again"
        )
    return read_patients(path, index=False, dtype={"phase": str})[list(RAW_GEOMETRY_COLUMNS)]


def gather_raw_geometry(batches: Sequence[str | Path]) -> pd.DataFrame:
    """Every prepared patient's raw_geometry.tsv, in batch order (excluded patients may lack one).

    A patient prepared without exclusion but without the table was prepared by an hccrad that
    did not record it: ValueError naming the patients and the fix.
    """
    frames, lacking = [], []
    for patient, folder in patient_folders(batches).items():
        path = folder / RAW_GEOMETRY_FILE
        if path.is_file():
            frames.append(read_raw_geometry(folder))
        elif not len(read_exclusion(folder)):
            lacking.append(patient)
    if lacking:
        raise ValueError(
            f"prepared patient(s) {lacking[:10]} have no {RAW_GEOMETRY_FILE} (prepared before "
            "hccrad recorded the raw geometry); prepare them again: snakemake --forcerun "
            "prepare_radiomics_batch (or prepare_batch for a liver-only cohort)"
        )
    if not frames:
        return pd.DataFrame(columns=list(RAW_GEOMETRY_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(RAW_GEOMETRY_COLUMNS)]
