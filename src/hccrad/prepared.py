"""The layout of a prepared patient folder, for the steps that read it without image libraries.

``hccrad.preprocess`` writes each patient's folder (volumes, tumour crops, ``exclusion.tsv``);
the deep-learning steps need only the crops and the exclusion record, and import this module so
that they do not pull in SimpleITK and PyRadiomics. The segmentation network's masks are named
here too, so that the per-patient steps reading them need not import PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_exclusion(folder: str | Path) -> pd.DataFrame:
    """The patient's exclusion record (empty when the patient is fine)."""
    return pd.read_csv(Path(folder) / "exclusion.tsv", sep="\t", dtype=str)


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
