"""Cohort sheets: one row per patient, the contract between where data come from and the rest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import yaml

from hccrad.core.splits import TRAIN

ID_COLUMN = "patient_id"
# Clinical covariates of the sheet contract (workflow/schemas/sheet.schema.yaml).
CLINICAL_COVARIATES: tuple[str, ...] = (
    "age",
    "sex",
    "aetiology",
    "bclc",
    "tumour_number",
    "tumour_size_mm",
    "afp",
    "child_pugh",
    "albi_score",
    "albi_grade",
)


class SheetError(ValueError):
    """A cohort sheet that breaks its contract; the message names the file, patient and fix."""


def read_patients(
    path: str | Path, *, index: bool = True, dtype: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """A patients table (TSV) with patient_id exactly as written, by default as its index.

    Ids are strings (``001`` stays ``001``) and only empty cells are missing, so an id such as
    ``NA`` survives; this is how write_table writes tables (NaN as an empty cell).
    """
    table = pd.read_csv(
        path,
        sep="\t",
        dtype={ID_COLUMN: str, **(dtype or {})},
        keep_default_na=False,
        na_values=[""],
    )
    if ID_COLUMN not in table.columns:
        raise SheetError(f"{path}: no {ID_COLUMN!r} column; the first column must be {ID_COLUMN}.")
    return table.set_index(ID_COLUMN) if index else table


def read_sheet(path: str | Path) -> pd.DataFrame:
    """Read a cohort sheet (TSV) with patient_id as a string index; empty cells are missing."""
    return read_patients(path, dtype={"centre": str, "bclc": str})


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a patients table as TSV with patient_id first and a fixed float format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", float_format="%.6g", lineterminator="\n")


def image_columns(sheet: pd.DataFrame) -> list[str]:
    """The sheet's image columns (one per phase) in sheet order."""
    return [c for c in sheet.columns if c.startswith("image_")]


def phases_of(sheet: pd.DataFrame) -> list[str]:
    """Phase names of the sheet's image columns (image_arterial -> arterial)."""
    return [c.removeprefix("image_") for c in image_columns(sheet)]


def json_ready(value: Any) -> Any:
    """A cell as JSON: NaN becomes null, numpy scalars plain Python numbers."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def validate_sheet(
    sheet: pd.DataFrame,
    schema_path: str | Path,
    source: str | Path,
    base_dir: str | Path = ".",
    required: Sequence[str] = (),
) -> None:
    """Check a sheet against its schema, unique ids, required columns and that files exist."""
    duplicated = sheet.index[sheet.index.duplicated()].unique().tolist()
    if duplicated:
        raise SheetError(f"{source}: patient ids appear more than once: {duplicated}.")
    missing_columns = [c for c in required if c not in sheet.columns]
    if missing_columns:
        raise SheetError(f"{source}: missing column(s) {missing_columns}; add them to the sheet.")
    if not image_columns(sheet):
        raise SheetError(f"{source}: no image_<phase> column; give one image path per phase.")
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for patient, row in sheet.reset_index().iterrows():
        record = {k: json_ready(v) for k, v in row.items()}
        errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
        if errors:
            problems = "; ".join(
                f"{'.'.join(map(str, e.path)) or 'row'}: {e.message}" for e in errors
            )
            raise SheetError(
                f"{source}: patient {record[ID_COLUMN]} (row {patient + 1}): {problems}. "
                f"See {schema_path} for the allowed values."
            )
    base = Path(base_dir)
    for column in [*image_columns(sheet), "mask"]:
        for patient, value in sheet[column].items():
            if isinstance(value, str) and not (base / value).exists():
                raise SheetError(
                    f"{source}: patient {patient}: {column} file {value} does not exist; "
                    "fix the path (relative to the working directory) or remove the patient."
                )


def robustness_patients(sheet: pd.DataFrame, n_patients: int) -> list[str]:
    """Training patients for the robustness analysis: the first n in sheet order, never test."""
    train = sheet.index[sheet["split"] == TRAIN]
    if len(train) < 3:
        raise ValueError(
            f"only {len(train)} training patients for the radiomics ICC; it needs at least 3: "
            "enlarge the training split"
        )
    return list(train[:n_patients])
