"""Bring-your-own cohort sheets: a table (CSV, TSV, xlsx) and a column map -> the cohort sheet.

The table is read as written (hccrad.cohorts.tables) and each sheet column made by its column
map (hccrad.cohorts.column_map); here patients get their checked ids and splits. Patients
lacking a required value go to an exclusions table with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import yaml
from sklearn.model_selection import train_test_split

from hccrad.cohorts.column_map import (
    TEXT_COLUMNS,
    check_column_map,
    column_sources,
    is_threshold,
    load_column_map,
    map_column,
    threshold_column,
)
from hccrad.cohorts.sheet import ID_COLUMN, SheetError, json_ready
from hccrad.cohorts.tables import TABLE_ROW, read_mapped_table
from hccrad.core.splits import INTERNAL_TEST, TRAIN

# The schema's patient_id and split patterns: an id names files and folders
# (results/<cohort>/prepared/<patient>), so it may not hold '/', '..' or spaces.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SPLIT_PATTERN = re.compile(r"^(train|internal_test|external_[A-Za-z0-9]+|radiogenomics)$")
ID_FIX = (
    "give every row an id of letters, digits, '.', '_' or '-' that starts with a letter or "
    "digit, as written in the table (no spaces around it)"
)


def _splits(
    given: pd.Series, source: str, where: str, rows: Mapping[str, int] | None = None
) -> pd.Series:
    """A split column checked against the sheet's split values, naming every bad patient."""
    bad = [(p, v) for p, v in given.items() if not (isinstance(v, str) and SPLIT_PATTERN.match(v))]
    if bad:
        listed = ", ".join(
            f"patient {p} ({'row ' + str(rows[p]) + ', ' if rows and p in rows else ''}"
            f"{None if pd.isna(v) else v!r})"
            for p, v in bad
        )
        raise SheetError(
            f"{source}: {where} has split value(s) that are not train, internal_test, "
            f"external_<name> or radiogenomics: {listed}. Fix: correct the table, or recode "
            "with columns.split.values."
        )
    return given.astype(str).rename("split")


def assign_splits(
    sheet: pd.DataFrame, split: Mapping[str, Any], seed: int, source: str
) -> pd.Series:
    """A split for everyone (``value``), else a seeded train/internal_test split by an endpoint."""
    if split.get("value"):
        given = pd.Series(split["value"], index=sheet.index, name="split")
        return _splits(given, source, "split.value")
    fraction = float(split.get("internal_test_fraction", 0.0))
    splits = pd.Series(TRAIN, index=sheet.index, name="split")
    if fraction <= 0:
        return splits
    stratify = split.get("stratify")
    # Patients without the label (kept for survival) are a stratum of their own.
    labels = sheet[stratify].astype(float).fillna(-1).astype(int) if stratify else None
    if labels is not None and labels.value_counts().min() < 2:
        raise SheetError(f"{source}: split.stratify = {stratify!r} has a class of < 2 patients")
    _, test = train_test_split(
        list(sheet.index), test_size=fraction, random_state=seed, stratify=labels
    )
    splits.loc[test] = INTERNAL_TEST
    return splits


def _table_rows(table: pd.DataFrame) -> list[int]:
    """Each table row's number as a spreadsheet shows it (header = row 1)."""
    if table.index.name == TABLE_ROW:
        return [int(r) for r in table.index]
    return list(range(2, len(table) + 2))


def patient_ids(table: pd.DataFrame, id_column: str, source: str) -> pd.Series:
    """The id column, as written, checked: none empty, file-name safe, none repeated.

    The Series is indexed by table row numbers; the message names every bad row.
    """
    if id_column not in table.columns:
        raise SheetError(
            f"{source}: patient_id column {id_column!r} is not in the table (it has "
            f"{list(table.columns)[:12]}). Fix: set `patient_id:` in the column map."
        )
    ids = pd.Series(list(table[id_column]), index=_table_rows(table), dtype=object)
    problems = []
    for row, patient in ids.items():
        if not isinstance(patient, str) or not patient.strip():
            problems.append(f"row {row}: the patient id is empty")
        elif patient != patient.strip():
            problems.append(f"row {row}: patient id {patient!r} has spaces around it")
        elif "/" in patient or "\\" in patient or patient.startswith("."):
            problems.append(
                f"row {row}: patient id {patient!r} would be a path, not a folder name "
                "(path traversal)"
            )
        elif not ID_PATTERN.match(patient):
            problems.append(
                f"row {row}: patient id {patient!r} has characters other than letters, "
                "digits, '.', '_' and '-'"
            )
    if problems:
        raise SheetError(
            f"{source}: column {id_column!r} (patient_id): {'; '.join(problems)}. "
            f"Fix: {ID_FIX}, or delete the row."
        )
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        listed = "; ".join(
            f"patient {p} in rows {list(rows.index)}" for p, rows in repeated.groupby(repeated)
        )
        raise SheetError(
            f"{source}: patient ids appear more than once: {listed}. Fix: keep one row per "
            "patient (merge or delete the others)."
        )
    return ids


def import_sheet(
    table: pd.DataFrame, column_map: Mapping[str, Any], seed: int, source: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cohort sheet (indexed by patient_id, sorted) and the exclusions (patient, reason)."""
    check_column_map(column_map, source)
    id_column = column_map["patient_id"]
    ids = patient_ids(table, id_column, source)
    rows = dict(zip(ids, ids.index, strict=True))
    indexed = table.set_axis(pd.Index(list(ids), name=ID_COLUMN)).sort_index()
    sheet = pd.DataFrame(index=indexed.index)
    for name, value in column_map.get("constants", {}).items():
        sheet[name] = value
    columns = column_map.get("columns", {})
    for target, spec in columns.items():
        if not is_threshold(spec):
            sheet[target] = map_column(indexed, target, spec, source, rows)
    # Threshold endpoints come from mapped sheet columns (times already in months).
    for target, spec in columns.items():
        if is_threshold(spec):
            sheet[target], reasons = threshold_column(sheet, target, spec["threshold"])
            sheet[reasons.name] = reasons.replace("", None)
    if "mask" not in sheet:
        sheet["mask"] = None
    split = dict(column_map.get("split", {}))
    # The split from the table: columns.split (recodable) or split.column, as documented.
    given = sheet.pop("split") if "split" in sheet else None
    if split.get("column"):
        given = map_column(indexed, "split", split["column"], source, rows)
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
    if given is not None:
        column = split.get("column") or column_sources(column_map["columns"]["split"])[0]
        splits = _splits(given.loc[sheet.index], source, f"column {column!r}", rows)
    else:
        splits = assign_splits(sheet, split, seed, source)
    sheet.insert(1 if "centre" in sheet else 0, "split", splits)
    floats = [
        t
        for t, spec in column_map.get("columns", {}).items()
        if "unit" in dict(spec if isinstance(spec, dict) else {})
    ]
    return _typed(sheet, floats), exclusions


def _describe(column_map: Mapping[str, Any], target: str) -> str:
    """Where a sheet column comes from, for exclusion reasons."""
    spec = column_map["columns"].get(target, target)
    if is_threshold(spec):
        return f"{spec['threshold']['event']} censored before the threshold, or missing"
    return "missing in " + ", ".join(map(str, column_sources(spec)))


def _typed(sheet: pd.DataFrame, floats: Sequence[str] = ()) -> pd.DataFrame:
    """Number columns as numbers (whole numbers as nullable integers); text stays as written.

    A bring-your-own column outside the contract is a number column when all its values are
    numbers (as reading sheet.tsv would make it).
    """
    out = sheet.copy()
    for column in out.columns:
        if column in TEXT_COLUMNS or column.startswith("image_"):
            continue
        numeric = pd.to_numeric(out[column], errors="coerce")
        present = out[column].notna()
        if present.any() and numeric[present].notna().all():
            is_int = np.isclose(numeric[present] % 1, 0).all()
            out[column] = numeric.astype("Int64") if is_int and column not in floats else numeric
    return out


def _schema_fix(error: jsonschema.ValidationError, column: str) -> str:
    """The fix for one schema violation of a sheet column."""
    if column == ID_COLUMN:
        return ID_FIX
    if error.validator == "enum":
        allowed = [v for v in error.validator_value if v is not None]
        return f"recode the table's values with columns.{column}.values (to {allowed})"
    if error.validator in {"minimum", "exclusiveMinimum", "maximum"}:
        return f"correct {column} in the table, or its unit (columns.{column}.unit)"
    if error.validator == "required":
        return "map the column under `columns:` or `constants:`"
    return f"correct {column} in the table or its mapping (columns.{column})"


def check_sheet(sheet: pd.DataFrame, schema_path: str | Path, source: str) -> None:
    """The sheet against its JSON schema, naming every patient, column and fix (one line)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    # Grouped by column and problem, so one line names every patient with it.
    problems: dict[tuple[str, str], list[str]] = {}
    fixes: dict[str, None] = {}
    for _, row in sheet.reset_index().iterrows():
        record = {k: json_ready(v if not pd.isna(v) else None) for k, v in row.items()}
        for error in sorted(validator.iter_errors(record), key=lambda e: list(e.path)):
            column = ".".join(map(str, error.path)) or "row"
            problems.setdefault((column, error.message), []).append(str(record[ID_COLUMN]))
            fixes[_schema_fix(error, column)] = None
    if problems:
        listed = "; ".join(
            f"{column}: {message} (patient{'s' if len(ids) > 1 else ''} {', '.join(ids)})"
            for (column, message), ids in problems.items()
        )
        raise SheetError(
            f"{source}: {listed}. Fix: {'; '.join(fixes)} (allowed values: {schema_path})."
        )


def with_required(
    column_map: Mapping[str, Any], required: Sequence[str] | None, source: str
) -> dict[str, Any]:
    """The column map with its ``required`` list replaced by a config's (None: as it is)."""
    if required is None:
        return dict(column_map)
    # One column map serves several configs: a cross-validated cohort keeps patients without
    # an endpoint for its survival analyses, where a train/test config requires the endpoint.
    replaced = {**column_map, "required": list(required)}
    check_column_map(replaced, source)
    return replaced


def planned_sheet(
    table_path: str | Path,
    column_map_path: str | Path,
    seed: int,
    required: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The sheet the import will write (its patients and files), known when the DAG is planned."""
    column_map = with_required(load_column_map(column_map_path), required, str(column_map_path))
    table = read_mapped_table(table_path, column_map)
    sheet, _ = import_sheet(table, column_map, seed, str(table_path))
    return sheet


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
    column_map = with_required(column_map, spec.get("required"), f"{source} (sheets required)")
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
    column_map = with_required(
        load_column_map(resolve(spec["column_map"])), spec.get("required"), f"{where}.required"
    )
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


def sheet_files(sheet: pd.DataFrame) -> dict[str, list[str]]:
    """Each patient's image and mask files as its table row names them (images: sheet).

    Known when the workflow is planned (planned_sheet), so that they are inputs of the
    patient's preparation: a file replaced at the same path reruns that patient. Files that do
    not exist are left out (preparation names them, or excludes the patient); empty cells name
    no file.
    """
    columns = [c for c in sheet.columns if c.startswith("image_") or c == "mask"]
    return {
        str(patient): [
            str(path)
            for path in row[columns]
            if isinstance(path, str) and path.strip() and Path(path).exists()
        ]
        for patient, row in sheet.iterrows()
    }
