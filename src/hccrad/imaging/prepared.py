"""The layout of a prepared patient folder, for the steps that read it without image libraries.

``hccrad.imaging.prepare`` writes each patient's folder (volumes, tumour crops, ``exclusion.tsv``);
the deep-learning steps need only the crops and the exclusion record, and import this module so
that they do not pull in SimpleITK and PyRadiomics. The segmentation network's masks are named
here too, so that the per-patient steps reading them need not import PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def read_exclusion(where: str | Path) -> pd.DataFrame:
    """A patient's exclusion record (empty when the patient is fine).

    ``where``: a prepared folder (its ``exclusion.tsv``) or a record file itself, such as the
    radiomics step's ``<patient>_exclusion.tsv``.
    """
    path = Path(where)
    if path.is_dir():
        path = path / "exclusion.tsv"
    # Every cell as written: an id such as 001 or NA stays a string; only empty cells are missing.
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""])


def crop_files(folder: str | Path) -> list[Path]:
    """A prepared patient's tumour crops, largest tumour first."""
    return sorted(
        Path(folder, "crops").glob("*.npz"), key=lambda p: int(p.stem.rsplit("tumour", 1)[1])
    )


def predicted_mask_path(mask_dir: str | Path, patient: str) -> Path:
    """Where the segmentation network's mask of a patient lives."""
    return Path(mask_dir) / f"{patient}.nii.gz"


def tumour_predicted(predictions: pd.DataFrame, patient: str) -> bool:
    """Whether segment_predict found a tumour in the patient (not excluded, mask not empty)."""
    # Excluded in preparation means "not predicted"; its prepared folder says why.
    return predictions.at[patient, "status"] == "predicted" and not bool(
        predictions.at[patient, "tumour_empty"]
    )


def prepared_paths(folder: str | Path, phases: Sequence[str]) -> dict[str, Path]:
    """Where a patient's prepared volumes live inside its folder."""
    folder = Path(folder)
    return {phase: folder / f"{phase}.nii.gz" for phase in phases} | {
        "mask": folder / "mask.nii.gz"
    }


def prepared_phases(folder: str | Path) -> list[str]:
    """Phases present in a prepared folder, in file-name order."""
    return sorted(
        p.name.removesuffix(".nii.gz")
        for p in Path(folder).glob("*.nii.gz")
        if p.name != "mask.nii.gz"
    )
