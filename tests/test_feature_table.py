"""Bring-your-own feature tables: reading, ids, exclusions and the column report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hccrad.cohorts.feature_table import (
    EXCLUSION_COLUMNS,
    check_features,
    combine_features,
    read_feature_table,
    stacked_exclusions,
)
from hccrad.cohorts.sheet import SheetError

RADTACE = Path(__file__).parents[2] / "shared" / "realdata" / "radtace"
CLINICAL = Path(__file__).parents[1] / "resources" / "hcc_tace_seg" / "hcc_tace_seg_clinical.csv"


def write(path: Path, text: str) -> Path:
    """A small table file."""
    path.write_text(text)
    return path


def test_csv_ids_stay_as_written_and_cells_are_checked(tmp_path):
    table = read_feature_table(
        write(tmp_path / "f.csv", "patient_id,a,b\n001,1.5,x\nNA,2.5,3\n010,3.5,4\n")
    )
    assert list(table.index) == ["001", "NA", "010"]
    checked = check_features(table, pd.Index(["001", "NA", "010"]), "c", "f.csv")
    assert list(checked.features.columns) == ["a"]
    assert checked.features.loc["001", "a"] == 1.5
    report = checked.columns.set_index("column")
    assert report.loc["b", "status"] == "dropped"
    assert "non-numeric for 1 patient(s): 001" in report.loc["b", "reason"]


def test_tsv_and_parquet_read_the_same(tmp_path):
    frame = pd.DataFrame({"patient_id": ["p1", "p2"], "f": [1.0, 2.0]})
    frame.to_csv(tmp_path / "f.tsv", sep="\t", index=False)
    frame.set_index("patient_id").to_parquet(tmp_path / "f.parquet")
    tsv = read_feature_table(tmp_path / "f.tsv")
    parquet = read_feature_table(tmp_path / "f.parquet")
    assert list(tsv.index) == list(parquet.index) == ["p1", "p2"]
    assert pd.to_numeric(tsv["f"]).tolist() == parquet["f"].tolist()


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ("p1\np1", "more than once"),
        ("../p1\np2", "path traversal"),
        (" p1\np2", "spaces around it"),
    ],
)
def test_bad_ids_stop_naming_the_row(tmp_path, ids, message):
    rows = "\n".join(f"{i},1" for i in ids.split("\n"))
    with pytest.raises(SheetError, match=message):
        read_feature_table(write(tmp_path / "f.csv", f"patient_id,a\n{rows}\n"))


def test_id_in_one_table_only_is_an_exclusion_row():
    table = pd.DataFrame(
        {"a": [1.0, 2.0, 3.0, 4.0], "b": [4.0, 3.0, 1.0, 2.0]},
        index=pd.Index(["p1", "p2", "p3", "extra"], name="patient_id"),
    )
    checked = check_features(table, pd.Index(["p1", "p2", "p3", "absent"]), "cohort", "f.csv")
    exclusions = checked.exclusions.set_index("patient_id")
    assert list(checked.exclusions.columns) == list(EXCLUSION_COLUMNS)
    assert sorted(exclusions.index) == ["absent", "extra"]
    assert exclusions.loc["absent", "reason"] == "not in the feature table"
    assert "not in the cohort sheet" in exclusions.loc["extra", "reason"]
    assert set(exclusions["step"]) == {"feature_table"}
    assert list(checked.features.index) == ["p1", "p2", "p3"]


def test_empty_patient_excluded_then_incomplete_and_constant_columns_reported():
    table = pd.DataFrame(
        {
            "good": [1.0, 2.0, 3.0, np.nan],
            "gap": [1.0, np.nan, 3.0, np.nan],
            "flat": [5.0, 5.0, 5.0, np.nan],
            "inf": [1.0, 2.0, np.inf, np.nan],
        },
        index=pd.Index(["p1", "p2", "p3", "p4"], name="patient_id"),
    )
    checked = check_features(table, table.index, "c", "f.csv")
    assert checked.exclusions["patient_id"].tolist() == ["p4"]
    assert "no feature value" in checked.exclusions["reason"].iloc[0]
    report = checked.columns.set_index("column")
    assert report.loc["good", "status"] == "kept"
    assert report.loc["gap", "reason"] == "missing for 1 patient(s): p2"
    assert report.loc["flat", "reason"].startswith("constant (5)")
    assert report.loc["inf", "reason"] == "missing for 1 patient(s): p3"
    assert list(checked.features.columns) == ["good"]


def test_no_usable_column_stops():
    table = pd.DataFrame({"flat": [1.0, 1.0]}, index=pd.Index(["a", "b"], name="patient_id"))
    with pytest.raises(SheetError, match="no usable feature column"):
        check_features(table, table.index, "c", "f.csv")


def test_add_mode_joins_and_names_patients_without_extraction():
    byo = pd.DataFrame({"own": [1.0, 2.0]}, index=pd.Index(["a", "b"], name="patient_id"))
    extracted = pd.DataFrame({"x": [3.0]}, index=pd.Index(["a"], name="patient_id"))
    combined, lacking = combine_features(byo, extracted, "add")
    assert list(combined.columns) == ["x", "own"] and list(combined.index) == ["a"]
    assert list(lacking) == ["b"]
    assert combine_features(byo, extracted, "replace")[0] is byo
    with pytest.raises(SheetError, match="also in the extracted"):
        combine_features(byo, extracted.rename(columns={"x": "own"}), "add")


@pytest.mark.skipif(not RADTACE.is_dir(), reason="needs ../shared/realdata (RadTACE features)")
def test_radtace_ids_match_the_clinical_table_exactly():
    features = read_feature_table(RADTACE / "radtace_features_lesion.csv")
    clinical = pd.read_csv(CLINICAL, dtype=str, keep_default_na=False)
    assert features.shape == (105, 2016)
    assert sorted(features.index) == sorted(clinical["TCIA_ID"])
    checked = check_features(features, pd.Index(clinical["TCIA_ID"]), "c", "radtace")
    # Four patients have no features at all (their extraction failed upstream); four
    # LBP first-order columns are constant over the others.
    assert checked.exclusions["patient_id"].tolist() == ["HCC_082", "HCC_085", "HCC_089", "HCC_095"]
    assert (checked.columns["status"] == "dropped").sum() == 4
    assert checked.features.shape == (101, 2012)


def test_stacked_exclusions_keep_each_patient_at_its_first_step():
    imported = pd.DataFrame({"patient_id": ["a", "b"], "reason": ["no response", "no ttp"]})
    features = check_features(
        pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=pd.Index(["a", "c", "d"], name="patient_id")),
        pd.Index(["c", "d", "e"]),
        "cohort",
        "f.csv",
    ).exclusions
    stacked = stacked_exclusions([imported, features], "cohort").set_index("patient_id")
    assert list(stacked.index) == ["a", "b", "e"]
    assert (
        stacked.loc["a", "step"] == "import_sheet" and stacked.loc["a", "reason"] == "no response"
    )
    assert stacked.loc["e", "step"] == "feature_table"
    assert (stacked["cohort"] == "cohort").all()
