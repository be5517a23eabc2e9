"""Bring-your-own cohort sheets: a table (CSV, TSV, xlsx) and a column map -> the cohort sheet.

The column map (a YAML file, see config/README.md) names, for every sheet column, the table
column(s) it comes from, how values are recoded (``values``), converted (``unit``) and, for
several readers, combined (``combine: first``). Patients lacking a required value go to an
exclusions table with the reason; an unmapped value stops with the patient, column and fix.
"""

from __future__ import annotations

import codecs
import difflib
import io
import math
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import yaml
from sklearn.model_selection import train_test_split

from hccrad.cohorts.sheet import ID_COLUMN, SheetError, json_ready
from hccrad.core.config import yaml_error_message

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
MAP_KEYS = {
    "patient_id",
    "constants",
    "columns",
    "required",
    "split",
    "sheet_name",
    "encoding",
    "delimiter",
    "missing",
}
SPEC_KEYS = {"column", "columns", "combine", "values", "unit"}
SPLIT_KEYS = {"column", "value", "internal_test_fraction", "stratify"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls"}
# Default delimiter by suffix; `delimiter:` in the column map overrides it.
DELIMITERS = {".tsv": "\t", ".txt": "\t"}
DELIMITER_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
# The row index of a table from read_table: row numbers as a spreadsheet shows them (header 1).
TABLE_ROW = "table_row"
# Sheet columns of the contract (workflow/schemas/sheet.schema.yaml; tests/bad_input checks
# these against it): numbers are converted deliberately, text is kept exactly as written.
NUMBER_COLUMNS = frozenset(
    {
        "age",
        "tumour_number",
        "tumour_size_mm",
        "afp",
        "albi_score",
        "albi_grade",
        "response",
        "proliferative",
        "pfs_time",
        "pfs_event",
        "ttp_time",
        "ttp_event",
        "os_time",
        "os_event",
    }
)
TEXT_COLUMNS = frozenset({"centre", "split", "mask", "sex", "aetiology", "bclc", "child_pugh"})
# The schema's patient_id and split patterns: an id names files and folders
# (results/<cohort>/prepared/<patient>), so it may not hold '/', '..' or spaces.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SPLIT_PATTERN = re.compile(r"^(train|internal_test|external_[A-Za-z0-9]+|radiogenomics)$")
ID_FIX = (
    "give every row an id of letters, digits, '.', '_' or '-' that starts with a letter or "
    "digit, as written in the table (no spaces around it)"
)


def load_column_map(path: str | Path) -> dict[str, Any]:
    """A column map from YAML, checked for unknown keys and for what it refers to."""
    text = Path(path).read_text()
    try:
        column_map = yaml.safe_load(text)
    except yaml.YAMLError as error:  # PyYAML's own message spans lines; one line names where
        raise SheetError(yaml_error_message(path, text, error, "column map")) from error
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
    check_column_map(column_map, str(path))
    return column_map


def check_column_map(column_map: Mapping[str, Any], source: str) -> None:
    """Cross-checks of a column map: `required` is mapped, one split source, valid options."""
    mapped = set(column_map.get("columns", {})) | set(column_map.get("constants", {}))
    for target in column_map.get("required", []):
        if target not in mapped:
            raise SheetError(
                f"{source}: required lists {target!r}, which the column map does not map "
                f"(it maps {sorted(mapped)}). Fix: map it under `columns:` or drop it from "
                "`required:`."
            )
    if "split" in column_map.get("columns", {}) and column_map.get("split"):
        raise SheetError(
            f"{source}: the split is given twice, as columns.split and as a `split:` section. "
            "Fix: keep one (`split: {column: <table column>}` or columns.split)."
        )
    table_options(column_map, source)


def table_options(column_map: Mapping[str, Any], source: str = "column map") -> dict[str, Any]:
    """read_table's options from a column map: sheet_name, encoding, delimiter, missing."""
    encoding = column_map.get("encoding", "utf-8")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise SheetError(
            f"{source}: encoding {encoding!r} is not a known text encoding. Fix: set "
            "`encoding:` to e.g. utf-8, latin-1 or cp1252."
        ) from None
    delimiter = column_map.get("delimiter")
    delimiter = DELIMITER_NAMES.get(delimiter, delimiter)
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise SheetError(
            f"{source}: delimiter {column_map.get('delimiter')!r} must be one character "
            f"or one of {sorted(DELIMITER_NAMES)}. Fix: set e.g. `delimiter: ';'`."
        )
    missing = column_map.get("missing", [])
    if not isinstance(missing, list):
        raise SheetError(f"{source}: missing must be a list of cell texts, e.g. [NA, unknown]")
    return {
        "sheet_name": column_map.get("sheet_name", 0),
        "encoding": encoding,
        "delimiter": delimiter,
        "missing": [str(m) for m in missing],
        "id_column": column_map["patient_id"],
    }


def read_mapped_table(path: str | Path, column_map: Mapping[str, Any]) -> pd.DataFrame:
    """The table a column map reads, with its options (sheet, encoding, delimiter, missing)."""
    return read_table(path, **table_options(column_map, str(path)))


def read_table(
    path: str | Path,
    sheet_name: str | int = 0,
    *,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    missing: Sequence[str] = (),
    id_column: str | None = None,
) -> pd.DataFrame:
    """A clinical table from CSV, TSV or Excel, every cell as the text written (empty: NaN).

    Ids and codes stay as written (``001`` stays ``001``); numbers are converted later, column
    by column, where the sheet needs them. The index holds the row numbers a spreadsheet shows
    (header = row 1); rows with no cell at all are left out. ``missing`` lists further cell
    texts read as missing (not in ``id_column``).
    """
    path = Path(path)
    if not path.is_file():
        raise SheetError(f"{path}: the cohort table does not exist; fix `table` in the config")
    if path.suffix.lower() in EXCEL_SUFFIXES:
        cells = _excel_cells(path, sheet_name)
    else:
        cells = _text_cells(path, encoding, delimiter or DELIMITERS.get(path.suffix.lower(), ","))
    # The header is read as a row (not by pandas), so a repeated name is seen, not mangled.
    header = [
        f"Unnamed: {i}" if pd.isna(name) else str(name).strip("\ufeff")
        for i, name in enumerate(cells.iloc[0] if len(cells) else [])
    ]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        where = "; ".join(
            f"{name!r} in columns {[i + 1 for i, h in enumerate(header) if h == name]}"
            for name in repeated
        )
        raise SheetError(
            f"{path}: the header repeats column name(s): {where}. Fix: rename them in the "
            "table so each column has its own name (the column map refers to columns by name)."
        )
    table = cells.iloc[1:].set_axis(header, axis=1)
    table.index = pd.RangeIndex(2, len(table) + 2, name=TABLE_ROW)
    # Whitespace-only cells are empty cells; `missing` texts are missing values (ids excepted).
    table = table.mask(table.map(lambda v: isinstance(v, str) and not v.strip()))
    if missing:
        others = [c for c in table.columns if c != id_column]
        stripped = table[others].map(lambda v: v.strip() if isinstance(v, str) else v)
        table[others] = table[others].mask(stripped.isin(list(missing)))
    if id_column is not None and id_column not in table.columns:
        _lacks_id(path, table, id_column, sheet_name)
    return table.dropna(how="all")


def _text_cells(path: Path, encoding: str, delimiter: str) -> pd.DataFrame:
    """A CSV/TSV as a frame of strings, header included as row 0."""
    raw = path.read_bytes()
    # Decoded here, not by pandas, so an error names the byte offset and line in the file
    # (pandas' C parser reports offsets within its read buffer); utf-8 drops an Excel BOM.
    codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise SheetError(
            f"{path}: line {line} (byte {error.start}, {raw[error.start : error.end]!r}) is not "
            f"{encoding} text. Fix: set `encoding:` in the column map to the table's encoding "
            "(e.g. `encoding: latin-1`, or cp1252 for a table saved by Excel on Windows)."
        ) from None
    try:
        cells = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError:
        raise SheetError(
            f"{path}: the table is empty. Fix: point `table` at the clinical table."
        ) from None
    except pd.errors.ParserError as error:
        raise SheetError(
            f"{path}: {str(error).strip()} (read with delimiter {delimiter!r}). Fix: quote "
            "cells that contain the delimiter, or set `delimiter:` in the column map."
        ) from None
    if cells.shape[1] == 1 and len(cells):
        # One column whose header holds another delimiter: the table uses that one.
        first = str(cells.iat[0, 0])
        other = [d for d in ("\t", ";", ",", "|") if d != delimiter and d in first]
        if other:
            raise SheetError(
                f"{path}: the table has one column, {first[:60]!r}, whose header contains "
                f"{other[0]!r}: it looks {other[0]!r}-delimited, not {delimiter!r}. Fix: set "
                f"`delimiter: {other[0]!r}` in the column map."
            )
    return cells


def _excel_cells(path: Path, sheet_name: str | int) -> pd.DataFrame:
    """One sheet of a workbook as a frame of strings, header included as row 0."""
    try:
        book = pd.ExcelFile(path)
    except (ImportError, ValueError, zipfile.BadZipFile, OSError) as error:
        raise SheetError(
            f"{path}: cannot be read as an Excel workbook ({error}). Fix: save it as .xlsx "
            "(or as CSV) and point `table` at it."
        ) from None
    with book:
        sheets = list(book.sheet_names)
        if (isinstance(sheet_name, int) and not 0 <= sheet_name < len(sheets)) or (
            isinstance(sheet_name, str) and sheet_name not in sheets
        ):
            raise SheetError(
                f"{path}: there is no sheet {sheet_name!r}; the workbook has sheets {sheets}. "
                "Fix: set `sheet_name:` in the column map to one of them."
            )
        return book.parse(sheet_name, header=None, dtype=str, keep_default_na=False, na_values=[""])


def _lacks_id(path: Path, table: pd.DataFrame, id_column: str, sheet_name: str | int) -> None:
    """Stop: the id column is not in the table; say where it is or what the table has."""
    header = list(table.columns)
    close = difflib.get_close_matches(id_column, header, n=1)
    hint = f" (a close name: {close[0]!r})" if close else ""
    if path.suffix.lower() in EXCEL_SUFFIXES:
        with pd.ExcelFile(path) as book:
            sheets = list(book.sheet_names)
            name = sheets[sheet_name] if isinstance(sheet_name, int) else sheet_name
            holding = [
                s
                for s in sheets
                if s != name and id_column in book.parse(s, nrows=0).columns.astype(str)
            ]
        found = f"; sheet(s) {holding} have it" if holding else ""
        raise SheetError(
            f"{path}: sheet {name!r} has no column {id_column!r}{hint} (patient_id of the "
            f"column map); the workbook has sheets {sheets}{found}. Fix: set `sheet_name:` in "
            "the column map to the sheet with the table, or `patient_id:` to its id column."
        )
    raise SheetError(
        f"{path}: no column {id_column!r}{hint} (patient_id of the column map); the header "
        f"has {header[:12]}{'...' if len(header) > 12 else ''}. Fix: set `patient_id:` in the "
        "column map to the table's id column."
    )


def _key(value: Any) -> str | None:
    """A cell as the string a ``values`` map is keyed by, as written; None when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _lookup(key: str, lookup: Mapping[str, Any]) -> tuple[bool, Any]:
    """A cell's recoded value: its text, else its number (``1.0`` or ``01`` -> key ``1``)."""
    if key in lookup:
        return True, lookup[key]
    number = pd.to_numeric(key, errors="coerce")
    if pd.notna(number) and float(number).is_integer() and str(int(number)) in lookup:
        return True, lookup[str(int(number))]
    return False, None


def _recode(
    values: pd.Series, mapping: Mapping[Any, Any], target: str, column: str, source: str
) -> pd.Series:
    """Values recoded through ``mapping``; an unmapped value stops naming patient and fix."""
    lookup = {str(k): v for k, v in mapping.items()}
    out = []
    for patient, value in values.items():
        key = _key(value)
        found, recoded = (True, None) if key is None else _lookup(key, lookup)
        if not found:
            raise SheetError(
                f"{source}: patient {patient}: column {column!r} has value {key!r}, which "
                f"columns.{target}.values does not map (it maps {sorted(lookup)}); add it to "
                "the column map (null for missing)."
            )
        out.append(recoded)
    return pd.Series(out, index=values.index, dtype=object)


def _sources(spec: Any) -> list[str]:
    """The table column(s) a sheet column comes from."""
    spec = {"column": spec} if isinstance(spec, str) else dict(spec)
    return list(spec.get("columns") or [spec.get("column")])


def map_column(
    table: pd.DataFrame,
    target: str,
    spec: Any,
    source: str,
    rows: Mapping[str, int] | None = None,
) -> pd.Series:
    """One sheet column from the table: a column name or a spec (see the module docstring).

    Sheet columns that hold numbers (NUMBER_COLUMNS, or with a ``unit``) are converted here;
    a text cell among them stops the import naming every such patient and value.
    """
    spec = {"column": spec} if isinstance(spec, str) else dict(spec)
    sources = _sources(spec)
    missing = [c for c in sources if c not in table.columns]
    if missing:
        close = {
            c: difflib.get_close_matches(str(c), table.columns.astype(str), n=1) for c in missing
        }
        hint = "".join(f" ({c!r} is close to {m[0]!r})" for c, m in close.items() if m)
        raise SheetError(
            f"{source}: columns.{target} names column(s) {missing} that the table lacks{hint} "
            f"(it has {list(table.columns)[:12]}...); fix the column map"
        )
    if "unit" in spec and spec["unit"] not in UNITS:
        raise SheetError(f"{source}: columns.{target}.unit must be one of {list(UNITS)}")
    parts = []
    for column in sources:
        values = table[column]
        if "values" in spec:
            values = _recode(values, spec["values"], target, column, source)
        if "unit" in spec or target in NUMBER_COLUMNS:
            values = _numbers(values, target, column, source, rows)
        if "unit" in spec:
            values = values * UNITS[spec["unit"]]
        parts.append(values)
    if len(parts) > 1 and spec.get("combine", "first") != "first":
        raise SheetError(f"{source}: columns.{target}.combine must be 'first'")
    # combine: first -> the first column with a value, in the listed order (reader 1, 2, ...).
    combined = parts[0].astype(object)
    for part in parts[1:]:
        combined = combined.where(combined.notna(), part.astype(object))
    return combined.rename(target)


def _numbers(
    values: pd.Series, target: str, column: str, source: str, rows: Mapping[str, int] | None
) -> pd.Series:
    """A column as numbers; text in it stops naming every patient, row and value."""
    text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    numbers = pd.to_numeric(text, errors="coerce")
    bad = values.notna() & numbers.isna()
    if bad.any():
        where = ", ".join(
            f"patient {p} ({'row ' + str(rows[p]) + ', ' if rows and p in rows else ''}"
            f"{values[p]!r})"
            for p in values.index[bad]
        )
        raise SheetError(
            f"{source}: column {column!r} (columns.{target}) needs numbers but has text: "
            f"{where}. Fix: write numbers in the table (e.g. 5 for '<5'), recode the text with "
            f"columns.{target}.values, or list it under `missing:` in the column map to read "
            "it as missing."
        )
    return numbers.astype(float)


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
    for target, spec in column_map.get("columns", {}).items():
        sheet[target] = map_column(indexed, target, spec, source, rows)
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
        column = split.get("column") or _sources(column_map["columns"]["split"])[0]
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
    return "missing in " + ", ".join(map(str, _sources(column_map["columns"].get(target, target))))


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


def planned_sheet(table_path: str | Path, column_map_path: str | Path, seed: int) -> pd.DataFrame:
    """The sheet the import will write (its patients and files), known when the DAG is planned."""
    column_map = load_column_map(column_map_path)
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
