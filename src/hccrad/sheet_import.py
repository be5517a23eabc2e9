"""Bring-your-own cohort sheets: a table (CSV, TSV, xlsx) and a column map -> the cohort sheet.

The column map (a YAML file, see config/README.md) names, for every sheet column, the table
column(s) it comes from, how values are recoded (``values``), converted (``unit``) and, for
several readers, combined (``combine: first``). Patients lacking a required value go to an
exclusions table with the reason; an unmapped value stops with the patient, column and fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import yaml
from sklearn.model_selection import train_test_split

from hccrad.cohort import ID_COLUMN, SheetError, json_ready

DAYS_PER_MONTH = 365.25 / 12
# Factors to the sheet's units: times in months, lengths in mm.
UNITS = {
    "months": 1.0,
    "weeks": 7.0 / DAYS_PER_MONTH,
    "days": 1.0 / DAYS_PER_MONTH,
    "years": 12.0,
    "mm": 1.0,
    "cm": 10.0,
}
MAP_KEYS = {"patient_id", "constants", "columns", "required", "split", "sheet_name"}
SPEC_KEYS = {"column", "columns", "combine", "values", "unit"}
SPLIT_KEYS = {"column", "value", "internal_test_fraction", "stratify"}


def load_column_map(path: str | Path) -> dict[str, Any]:
    """A column map from YAML, checked for unknown keys."""
    column_map = yaml.safe_load(Path(path).read_text())
    if not isinstance(column_map, dict) or "patient_id" not in column_map:
        raise SheetError(f"{path}: a column map needs at least `patient_id: <table column>`")
    unknown = sorted(set(column_map) - MAP_KEYS)
    if unknown:
        raise SheetError(f"{path}: unknown key(s) {unknown}; known: {sorted(MAP_KEYS)}")
    for target, spec in column_map.get("columns", {}).items():
        if isinstance(spec, dict) and (bad := sorted(set(spec) - SPEC_KEYS)):
            raise SheetError(f"{path}: columns.{target}: unknown key(s) {bad}")
    if bad := sorted(set(column_map.get("split", {})) - SPLIT_KEYS):
        raise SheetError(f"{path}: split: unknown key(s) {bad}; known: {sorted(SPLIT_KEYS)}")
    return column_map


def read_table(path: str | Path, sheet_name: str | int = 0) -> pd.DataFrame:
    """A clinical table from CSV, TSV or Excel (``sheet_name`` picks the Excel sheet)."""
    path = Path(path)
    if not path.is_file():
        raise SheetError(f"{path}: the cohort table does not exist; fix `table` in the config")
    if path.suffix.lower() in {".xlsx", ".xls"}:
        return pd.read_excel(path, sheet_name=sheet_name)
    return pd.read_csv(path, sep="\t" if path.suffix.lower() in {".tsv", ".txt"} else ",")


def _key(value: Any) -> str | None:
    """A cell as the string a ``values`` map is keyed by (1.0 -> '1'); None when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _recode(
    values: pd.Series, mapping: Mapping[Any, Any], target: str, column: str, source: str
) -> pd.Series:
    """Values recoded through ``mapping``; an unmapped value stops naming patient and fix."""
    lookup = {str(k): v for k, v in mapping.items()}
    out = []
    for patient, value in values.items():
        key = _key(value)
        if key is None:
            out.append(None)
        elif key in lookup:
            out.append(lookup[key])
        else:
            raise SheetError(
                f"{source}: patient {patient}: column {column!r} has value {key!r}, which "
                f"columns.{target}.values does not map (it maps {sorted(lookup)}); add it to "
                "the column map (null for missing)."
            )
    return pd.Series(out, index=values.index, dtype=object)


def map_column(table: pd.DataFrame, target: str, spec: Any, source: str) -> pd.Series:
    """One sheet column from the table: a column name or a spec (see the module docstring)."""
    spec = {"column": spec} if isinstance(spec, str) else dict(spec)
    sources = spec.get("columns") or [spec.get("column")]
    missing = [c for c in sources if c not in table.columns]
    if missing:
        raise SheetError(
            f"{source}: columns.{target} names column(s) {missing} that the table lacks "
            f"(it has {list(table.columns)[:12]}...); fix the column map"
        )
    parts = []
    for column in sources:
        values = table[column]
        if "values" in spec:
            values = _recode(values, spec["values"], target, column, source)
        if "unit" in spec:
            if spec["unit"] not in UNITS:
                raise SheetError(f"{source}: columns.{target}.unit must be one of {list(UNITS)}")
            values = pd.to_numeric(values, errors="raise") * UNITS[spec["unit"]]
        parts.append(values)
    if len(parts) > 1 and spec.get("combine", "first") != "first":
        raise SheetError(f"{source}: columns.{target}.combine must be 'first'")
    # combine: first -> the first column with a value, in the listed order (reader 1, 2, ...).
    combined = parts[0].astype(object)
    for part in parts[1:]:
        combined = combined.where(combined.notna(), part.astype(object))
    return combined.rename(target)


def assign_splits(
    sheet: pd.DataFrame, split: Mapping[str, Any], seed: int, source: str
) -> pd.Series:
    """The split: a table column, else a seeded train/internal_test split by an endpoint."""
    if split.get("column"):
        return sheet[split["column"]].astype(str)
    if split.get("value"):
        return pd.Series(split["value"], index=sheet.index, name="split")
    fraction = float(split.get("internal_test_fraction", 0.0))
    splits = pd.Series("train", index=sheet.index, name="split")
    if fraction <= 0:
        return splits
    stratify = split.get("stratify")
    labels = sheet[stratify].astype(int) if stratify else None
    if labels is not None and labels.value_counts().min() < 2:
        raise SheetError(f"{source}: split.stratify = {stratify!r} has a class of < 2 patients")
    _, test = train_test_split(
        list(sheet.index), test_size=fraction, random_state=seed, stratify=labels
    )
    splits.loc[test] = "internal_test"
    return splits


def import_sheet(
    table: pd.DataFrame, column_map: Mapping[str, Any], seed: int, source: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cohort sheet (indexed by patient_id, sorted) and the exclusions (patient, reason)."""
    id_column = column_map["patient_id"]
    if id_column not in table.columns:
        raise SheetError(f"{source}: patient_id column {id_column!r} is not in the table")
    ids = table[id_column].astype(str).str.strip()
    if ids.duplicated().any():
        raise SheetError(
            f"{source}: patient ids appear more than once: {sorted(ids[ids.duplicated()])}"
        )
    indexed = table.set_axis(pd.Index(ids, name=ID_COLUMN)).sort_index()
    sheet = pd.DataFrame(index=indexed.index)
    for name, value in column_map.get("constants", {}).items():
        sheet[name] = value
    for target, spec in column_map.get("columns", {}).items():
        sheet[target] = map_column(indexed, target, spec, source)
    if "mask" not in sheet:
        sheet["mask"] = None
    required = list(column_map.get("required", []))
    lacking = sheet[required].isna() if required else pd.DataFrame(index=sheet.index)
    reasons = (
        lacking.apply(
            lambda row: "; ".join(f"no {c} ({_describe(column_map, c)})" for c in row.index[row]),
            axis=1,
        )
        if required
        else pd.Series(dtype=str)
    )
    excluded = reasons[reasons.astype(bool)] if len(reasons) else reasons
    exclusions = pd.DataFrame(
        {ID_COLUMN: excluded.index, "reason": excluded.to_numpy()}, columns=[ID_COLUMN, "reason"]
    )
    sheet = sheet.drop(index=excluded.index)
    split = column_map.get("split", {})
    sheet.insert(1 if "centre" in sheet else 0, "split", assign_splits(sheet, split, seed, source))
    floats = [
        t
        for t, spec in column_map.get("columns", {}).items()
        if "unit" in dict(spec if isinstance(spec, dict) else {})
    ]
    return _typed(sheet, floats), exclusions


def _describe(column_map: Mapping[str, Any], target: str) -> str:
    """Where a sheet column comes from, for exclusion reasons."""
    spec = column_map["columns"].get(target, target)
    spec = {"column": spec} if isinstance(spec, str) else spec
    sources = spec.get("columns") or [spec.get("column")]
    return "missing in " + ", ".join(map(str, sources))


def _typed(sheet: pd.DataFrame, floats: Sequence[str] = ()) -> pd.DataFrame:
    """Numeric columns as numbers; whole-number columns (0/1, counts) as nullable integers."""
    out = sheet.copy()
    for column in out.columns:
        numeric = pd.to_numeric(out[column], errors="coerce")
        present = out[column].notna()
        if present.any() and numeric[present].notna().all():
            is_int = np.isclose(numeric[present] % 1, 0).all()
            out[column] = numeric.astype("Int64") if is_int and column not in floats else numeric
    return out


def check_sheet(sheet: pd.DataFrame, schema_path: str | Path, source: str) -> None:
    """The sheet against its JSON schema, row by row, naming the patient (images optional)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for patient, row in sheet.reset_index().iterrows():
        record = {k: json_ready(v if not pd.isna(v) else None) for k, v in row.items()}
        errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
        if errors:
            problems = "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
            raise SheetError(
                f"{source}: patient {record[ID_COLUMN]} (row {patient + 1}): {problems}. "
                "Fix the column map (values, unit) or the table."
            )


def sheet_patients(table_path: str | Path, column_map_path: str | Path, seed: int) -> list[str]:
    """Patient ids the import keeps (known when the workflow is planned)."""
    column_map = load_column_map(column_map_path)
    table = read_table(table_path, column_map.get("sheet_name", 0))
    sheet, _ = import_sheet(table, column_map, seed, str(table_path))
    return list(sheet.index)


def image_paths(
    patients: Sequence[str], cohort_dir: str | Path, phases: Sequence[str], mask: bool
) -> pd.DataFrame:
    """Where the DICOM conversion puts each patient's phases and mask (results/<cohort>/nifti)."""
    nifti = Path(cohort_dir) / "nifti"
    columns = {
        f"image_{phase}": [str(nifti / p / f"{phase}.nii.gz") for p in patients] for phase in phases
    }
    if mask:
        columns["mask"] = [str(nifti / p / "mask.nii.gz") for p in patients]
    return pd.DataFrame(columns, index=pd.Index(patients, name=ID_COLUMN))


def with_patients(table: pd.DataFrame, id_column: str, patients: Sequence[str]) -> pd.DataFrame:
    """The table plus an id-only row for each patient it lacks (a downloaded clinical table)."""
    lacking = sorted(set(patients) - set(table[id_column].astype(str)))
    return pd.concat([table, pd.DataFrame({id_column: lacking})], ignore_index=True)


def imaged_sheet(
    sheet: pd.DataFrame,
    exclusions: pd.DataFrame,
    images: pd.DataFrame,
    imaging_exclusions: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sheet rows with images only; the others join the exclusions with the manifest's reason."""
    reasons = imaging_exclusions.set_index(ID_COLUMN)["reason"]
    lacking = sheet.index.difference(images.index, sort=False)
    extra = pd.DataFrame(
        {
            ID_COLUMN: lacking,
            "reason": [
                f"no imaging selected: {reasons.get(p, 'not in the IDC index')}" for p in lacking
            ],
        }
    )
    kept = sheet.drop(index=lacking)
    kept = kept.drop(columns=[c for c in images.columns if c in kept.columns])
    out = pd.concat([kept, images.loc[kept.index]], axis=1)
    all_exclusions = pd.concat([exclusions, extra], ignore_index=True)
    return out, all_exclusions.sort_values(ID_COLUMN, ignore_index=True)


def cohort_sheet(
    table: pd.DataFrame,
    column_map: Mapping[str, Any],
    spec: Mapping[str, Any],
    seed: int,
    source: str,
    cohort_dir: str | Path,
    manifest: pd.DataFrame | None = None,
    manifest_exclusions: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An imported cohort's sheet and exclusions: the mapped table, with IDC images if any."""
    if spec["images"] != "idc" or manifest is None or manifest_exclusions is None:
        return import_sheet(table, column_map, seed, source)
    imaged = sorted(manifest["patient_id"].unique())
    if not spec["table"]:
        # A downloaded table may lack imaged patients: they stay, their clinical cells empty.
        table = with_patients(table, column_map["patient_id"], imaged)
    sheet, exclusions = import_sheet(table, column_map, seed, source)
    images = image_paths(
        imaged, cohort_dir, list(spec["idc"]["phases"]), bool(spec["idc"]["segmentation"])
    )
    return imaged_sheet(sheet, exclusions, images, manifest_exclusions)


def check_imported(
    name: str, spec: Mapping[str, Any], config: Mapping[str, Any], resolve: Any = str
) -> None:
    """Cross-checks of one `sheets` cohort: files exist, endpoints and images are mapped."""
    where = f"sheets.{name}"
    column_map = load_column_map(resolve(spec["column_map"]))
    if spec["table"] and not Path(resolve(spec["table"])).is_file():
        raise SheetError(f"{where}.table: {spec['table']} does not exist; fix the path.")
    if not spec["table"] and not spec.get("gdc", {}).get("clinical"):
        raise SheetError(f"{where}: give a table, or gdc.clinical: true to download one.")
    mapped = set(column_map.get("columns", {})) | set(column_map.get("constants", {}))
    if spec["role"] == "response":
        for endpoint in config["endpoints"]:
            if endpoint not in mapped:
                raise SheetError(
                    f"{where}: endpoints lists {endpoint!r}, which the column map "
                    f"{spec['column_map']} does not map; map it or drop it from endpoints."
                )
    if spec["images"] == "idc" and "idc" not in spec:
        raise SheetError(f"{where}: images: idc needs an idc section (index, phases, ...).")
    if spec["images"] == "sheet" and not any(c.startswith("image_") for c in mapped):
        raise SheetError(f"{where}: images: sheet needs image_<phase> columns in the column map.")
    figure_models = config["survival"]["figure_models"]
    if spec["role"] == "response" and spec["images"] == "none" and figure_models != ["clinical"]:
        raise SheetError(
            f"{where} has no images, so only the clinical model is fitted: set "
            f"survival.figure_models to [clinical] (it is {figure_models})."
        )
