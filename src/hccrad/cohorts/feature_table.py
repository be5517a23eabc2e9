"""Bring-your-own features: a patient-id + numeric-columns table (CSV, TSV or Parquet).

A cohort from a sheet may name a feature table (``sheets.<cohort>.features``) that stands in
for, or is added to, the radiomics the workflow would extract. Ids follow the house rules
(exactly as written, checked by hccrad.cohorts.sheet_import.patient_ids). Nothing is dropped
silently: a patient in one table and not the other, or without any feature value, is a row of
the exclusions table; a non-numeric, incomplete or constant column is a row of the column
report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hccrad.cohorts.sheet import ID_COLUMN, SheetError
from hccrad.cohorts.sheet_import import patient_ids
from hccrad.cohorts.tables import read_table

# The exclusions table's columns (the format of hccrad.imaging.exclusions.gather_exclusions,
# written out here because cohorts may not import the imaging package).
EXCLUSION_COLUMNS: tuple[str, ...] = (ID_COLUMN, "cohort", "step", "file", "reason", "fix")
FEATURE_STEP = "feature_table"
# The rule that writes sheet_exclusions.tsv, whose rows have no step column.
IMPORT_STEP = "import_sheet"
COLUMN_REPORT_COLUMNS: tuple[str, ...] = ("column", "status", "reason")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class CheckedFeatures:
    """A feature table checked against a cohort: values, exclusions and the column report."""

    features: pd.DataFrame
    exclusions: pd.DataFrame
    columns: pd.DataFrame


def read_feature_table(path: str | Path, id_column: str = ID_COLUMN) -> pd.DataFrame:
    """The table indexed by its checked patient ids (as written); cells as read, not converted."""
    path = Path(path)
    if not path.is_file():
        raise SheetError(f"{path}: the feature table does not exist; fix `features.table`")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        table = pd.read_parquet(path)
        if id_column not in table.columns and table.index.name == id_column:
            table = table.reset_index()
        if id_column not in table.columns:
            raise SheetError(f"{path}: no {id_column!r} column or index in the feature table")
        # Parquet ids may be typed; an id is its text, and patient_ids rejects what is not.
        table[id_column] = [v if v is None else str(v) for v in table[id_column]]
        table.index = pd.RangeIndex(2, len(table) + 2)
    else:
        table = read_table(path, id_column=id_column)
    ids = patient_ids(table, id_column, f"feature table {path}")
    return table.drop(columns=id_column).set_axis(pd.Index(list(ids), name=ID_COLUMN))


def _numeric(values: pd.Series) -> tuple[pd.Series, list[str]]:
    """A column as floats, and the patients whose cell is not a number."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = numbers.isna() & values.notna()
    return numbers, [str(p) for p in values.index[bad.to_numpy()]]


def _listed(patients: Iterable[object], limit: int = 5) -> str:
    """A short list of patients for a report cell."""
    patients = list(patients)
    more = f" and {len(patients) - limit} more" if len(patients) > limit else ""
    return ", ".join(map(str, patients[:limit])) + more


def exclusion_rows(
    patients: Iterable[str], cohort: str, file: str, reason: str, fix: str
) -> pd.DataFrame:
    """Exclusions table rows (step feature_table) for ``patients``, one reason for all."""
    rows = [
        {
            ID_COLUMN: p,
            "cohort": cohort,
            "step": FEATURE_STEP,
            "file": file,
            "reason": reason,
            "fix": fix,
        }
        for p in patients
    ]
    return pd.DataFrame(rows, columns=list(EXCLUSION_COLUMNS))


def check_features(
    table: pd.DataFrame, patients: pd.Index, cohort: str, source: str
) -> CheckedFeatures:
    """Float features for the cohort's patients; the left-out patients and columns, with reasons.

    ``table`` comes from read_feature_table, ``patients`` are the cohort sheet's ids. A patient
    without a single feature value is excluded (a failed extraction), then a column missing for
    some of the rest, non-numeric anywhere, or constant over them is dropped and reported.
    """
    report: list[dict[str, str]] = []
    numeric: dict[str, pd.Series] = {}
    for column in table.columns:
        numbers, bad = _numeric(table[column])
        if bad:
            reason = f"non-numeric for {len(bad)} patient(s): {_listed(bad)}"
            report.append({"column": str(column), "status": "dropped", "reason": reason})
        else:
            numbers[~np.isfinite(numbers)] = np.nan  # infinite values are not measurements
            numeric[str(column)] = numbers
    values = pd.DataFrame(numeric, index=table.index)
    fix_missing = "add the patient to the feature table (or to the cohort table), or accept"
    parts = [
        exclusion_rows(
            patients.difference(values.index, sort=False),
            cohort,
            source,
            "not in the feature table",
            fix_missing,
        ),
        exclusion_rows(
            values.index.difference(patients, sort=False),
            cohort,
            source,
            "in the feature table but not in the cohort sheet (not in the cohort table, or "
            "excluded at import: sheet_exclusions.tsv)",
            "check the ids match the cohort table's exactly, or accept",
        ),
    ]
    values = values.loc[values.index.intersection(patients, sort=False)]
    empty = values.index[values.isna().all(axis=1).to_numpy()] if values.shape[1] else values.index
    parts.append(
        exclusion_rows(
            empty,
            cohort,
            source,
            f"no feature value in the feature table (all {values.shape[1]} columns empty)",
            "extract the patient's features again, or accept",
        )
    )
    values = values.drop(index=empty)
    kept = []
    for column in values.columns:
        missing = values.index[values[column].isna().to_numpy()]
        if len(missing):
            reason = f"missing for {len(missing)} patient(s): {_listed(missing)}"
        elif values[column].nunique() < 2:
            reason = f"constant ({values[column].iloc[0]:g}) over the cohort's patients"
        else:
            kept.append(column)
            continue
        report.append({"column": column, "status": "dropped", "reason": reason})
    report.extend({"column": c, "status": "kept", "reason": ""} for c in kept)
    if not kept:
        raise SheetError(
            f"{source}: no usable feature column for cohort {cohort!r} "
            f"({len(report)} column(s), all dropped: see the column report)"
        )
    exclusions = pd.concat(parts, ignore_index=True).sort_values(ID_COLUMN, ignore_index=True)
    return CheckedFeatures(
        features=values[kept].sort_index(),
        exclusions=exclusions,
        columns=pd.DataFrame(report, columns=list(COLUMN_REPORT_COLUMNS)),
    )


def combine_features(
    byo: pd.DataFrame, extracted: pd.DataFrame | None, mode: str
) -> tuple[pd.DataFrame, pd.Index]:
    """The features the models read (the table alone, or beside the extracted ones) and the
    patients of the table that the extraction lacks (to be excluded with a reason)."""
    if mode == "replace" or extracted is None:
        return byo, pd.Index([], name=ID_COLUMN)
    if mode != "add":
        raise ValueError(f"features.mode must be replace or add, got {mode!r}")
    clash = sorted(set(byo.columns) & set(extracted.columns))
    if clash:
        raise SheetError(
            f"feature table: column(s) {clash[:10]} also in the extracted radiomics; rename them"
        )
    shared = byo.index.intersection(extracted.index, sort=False)
    combined = pd.concat([extracted.loc[shared], byo.loc[shared]], axis=1).sort_index()
    return combined, byo.index.difference(shared, sort=False)


def stacked_exclusions(tables: Sequence[pd.DataFrame], cohort: str) -> pd.DataFrame:
    """Exclusions tables in the order a patient meets their steps, one row per patient.

    A table without a ``step`` column is the sheet import's (sheet_exclusions.tsv: patient_id
    and reason); a patient excluded by two steps keeps the first.
    """
    frames = []
    for table in tables:
        table = table.reset_index() if ID_COLUMN not in table.columns else table
        frame = table.reindex(columns=list(EXCLUSION_COLUMNS)).astype(object)
        frame["cohort"] = frame["cohort"].fillna(cohort)
        frame["step"] = frame["step"].fillna(IMPORT_STEP)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(EXCLUSION_COLUMNS))
    stacked = pd.concat(frames, ignore_index=True)
    return stacked.drop_duplicates(ID_COLUMN, keep="first").reset_index(drop=True)
