"""Patient ids written by one step are read back exactly as written by the next."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hccrad.cohorts.sheet import SheetError, read_patients, read_sheet, write_table
from hccrad.deep.dltr import read_out_of_fold
from hccrad.radiomics.extract import gather_features

IDS = ["001", "A-7", "12", "NA", "0012"]


def _table(ids: list[str]) -> pd.DataFrame:
    """A patients table with ids that type inference would rewrite."""
    return pd.DataFrame(
        {"split": ["train"] * len(ids), "score": [0.1 * (i + 1) for i in range(len(ids))]},
        index=pd.Index(ids, name="patient_id"),
    )


def test_ids_that_look_like_numbers_or_missing_round_trip_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "scores.tsv"
    write_table(_table(IDS), path)
    table = read_patients(path)
    assert list(table.index) == IDS
    assert list(read_patients(path, index=False)["patient_id"]) == IDS
    assert list(read_sheet(path).index) == IDS


def test_only_empty_cells_are_missing_in_a_patients_table(tmp_path: Path) -> None:
    table = _table(IDS).assign(note=["", "NA", "none", "n/a", ""])
    path = tmp_path / "notes.tsv"
    write_table(table, path)
    notes = read_patients(path)["note"]
    assert notes.isna().tolist() == [True, False, False, False, True]
    assert notes.loc["A-7"] == "NA"


def test_a_table_without_patient_id_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "scores.tsv"
    _table(IDS).reset_index().rename(columns={"patient_id": "id"}).to_csv(
        path, sep="\t", index=False
    )
    with pytest.raises(SheetError, match=r"scores\.tsv: no 'patient_id' column; the first"):
        read_patients(path)


def test_out_of_fold_scores_and_gathered_features_keep_ids(tmp_path: Path) -> None:
    scores = _table(IDS).rename(columns={"score": "deep_score"})
    write_table(scores, tmp_path / "oof.tsv")
    assert list(read_out_of_fold(tmp_path / "oof.tsv").index) == IDS
    paths = []
    for patient in IDS:
        path = tmp_path / f"{patient}.tsv"
        write_table(_table([patient])[["score"]], path)
        paths.append(path)
    gathered = gather_features(paths)
    assert list(gathered.index) == IDS and len(gathered) == len(IDS)
