"""DLTR in the workflow: the `deep:` config, a cohort's crops and the score tables.

`hccrad.deep.select`, `.train`, `.predict` and `.explain` select, train, run and explain networks
on a CropSet; this module is what the deep rules share around them: which patients' crops a step
may read (selection reads training patients only) and how the DLTR score of each patient is
labelled (out-of-fold for training patients, the refitted network for everyone else). The figure
of the architecture comparison is hccrad.figures.deep.selection_figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hccrad.cohorts.sheet import read_patients
from hccrad.core.splits import TRAIN
from hccrad.deep.config import DeepConfig
from hccrad.deep.crops import CropSet, load_crops
from hccrad.deep.predict import SCORE_NAME
from hccrad.imaging.batches import patient_folders
from hccrad.imaging.prepared import crop_files, read_exclusion
from hccrad.stats.checks import name_patients

# Keys of the `deep:` config block that steer the workflow, not hccrad.deep.config.DeepConfig.
WORKFLOW_KEYS: tuple[str, ...] = ("threads", "gpus", "mem_mb", "runtime_min", "gradcam")
DLTR_SCORE = "dltr_score"
SCORE_COLUMNS: tuple[str, ...] = ("patient_id", "split", "centre", DLTR_SCORE, "score_source")
OUT_OF_FOLD = "out_of_fold"
REFIT = "refit"


def deep_config(deep_cfg: Mapping[str, Any], seed: int, *, progress: bool = False) -> DeepConfig:
    """The DeepConfig of the workflow's `deep:` block, seeded with the config seed."""
    settings = {k: v for k, v in deep_cfg.items() if k not in WORKFLOW_KEYS}
    return DeepConfig.from_mapping({**settings, "seed": seed, "progress": progress})


def prepared_folders(folders: Sequence[str | Path]) -> dict[str, Path]:
    """Prepared patient folders keyed by patient id, batch folders opened (imaging.batches)."""
    return patient_folders(folders)


def cohort_crops(
    folders: Mapping[str, Path], patients: Sequence[str], config: DeepConfig
) -> tuple[CropSet, list[str]]:
    """Crops of the given patients and the patients left out because preparation excluded them.

    A patient without a prepared folder is an error (the rule's inputs and the sheet disagree);
    a patient that preparation excluded (``imaging.on_error: exclude``) is listed in the cohort's
    exclusions.tsv already and is returned as excluded, never silently dropped.
    """
    missing = [p for p in patients if p not in folders]
    if missing:
        raise ValueError(
            f"no prepared folder for {len(missing)} patient(s) of the sheet: "
            f"{name_patients(missing)}; run prepare_patient for them"
        )
    excluded = [p for p in patients if len(read_exclusion(folders[p]))]
    files = []
    for patient in patients:
        if patient in excluded:
            continue
        found = crop_files(folders[patient])
        if not found:
            raise ValueError(
                f"{folders[patient] / 'crops'}: no tumour crop for patient {patient} although "
                "it was not excluded; rerun prepare_patient for it"
            )
        files += found
    if not files:
        # E.g. a liver-only cohort in which the segmentation network found no tumour at all.
        first = folders[patients[0]] if patients else None
        where = f" ({Path(first).parent.parent / 'exclusions.tsv'} says why)" if first else ""
        raise ValueError(
            f"every one of the {len(patients)} patient(s) was excluded before deep learning"
            f"{where}; there is no tumour crop to score"
        )
    return load_crops(files, config.spatial_size, top_k=config.top_k_instances), excluded


def training_sheet(sheet: pd.DataFrame, excluded: Sequence[str] = ()) -> pd.DataFrame:
    """The training rows of a sheet (indexed by patient_id), without excluded patients."""
    train = sheet.loc[sheet["split"] == TRAIN]
    return train.drop(index=[p for p in excluded if p in train.index])


def score_table(
    sheet: pd.DataFrame,
    scores: pd.Series,
    out_of_fold: pd.Series | None = None,
    source: str = REFIT,
) -> pd.DataFrame:
    """DLTR score per patient: out-of-fold for training patients, `source`'s for the rest.

    Downstream models fit on training rows; the refit network has seen those patients, so their
    in-sample scores would be optimistic. Every training patient must have an out-of-fold score
    when ``out_of_fold`` is given.
    """
    table = pd.DataFrame(
        {
            "patient_id": scores.index.astype(str),
            "split": sheet.loc[scores.index, "split"].to_numpy(),
            "centre": sheet.loc[scores.index, "centre"].to_numpy(),
            DLTR_SCORE: scores.to_numpy(dtype=float),
            "score_source": source,
        }
    ).set_index("patient_id", drop=False)
    if out_of_fold is not None:
        train = table.index[table["split"] == TRAIN]
        lacking = [p for p in train if p not in out_of_fold.index]
        if lacking:
            raise ValueError(
                f"no out-of-fold DLTR score for {len(lacking)} training patient(s): "
                f"{name_patients(lacking)}; rerun deep_select on the same sheet"
            )
        table.loc[train, DLTR_SCORE] = out_of_fold.loc[train].to_numpy(dtype=float)
        table.loc[train, "score_source"] = OUT_OF_FOLD
    return table.reset_index(drop=True)[list(SCORE_COLUMNS)]


def read_out_of_fold(path: str | Path) -> pd.Series:
    """The out-of-fold scores written by the selection step, indexed by patient_id."""
    return read_patients(path)[SCORE_NAME]
