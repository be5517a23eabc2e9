"""Column maps: the YAML that says how a table's columns become the cohort sheet's columns.

The column map (a YAML file, see config/README.md) names, for every sheet column, the table
column(s) it comes from, how values are recoded (``values``), converted (``unit``) and, for
several readers, combined (``combine: first``). An unmapped value stops with the patient,
column and fix.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hccrad.cohorts.sheet import SheetError
from hccrad.cohorts.tables import table_options
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
SPEC_KEYS = {"column", "columns", "combine", "values", "unit", "threshold"}
THRESHOLD_KEYS = {"time", "event", "at", "unit"}
# A threshold endpoint's sheet column of reasons for its missing values (the cohort flow's).
MISSING_SUFFIX = "_missing"
SPLIT_KEYS = {"column", "value", "internal_test_fraction", "stratify"}
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
        "ttp_response",
        "pfs_time",
        "pfs_event",
        "ttp_time",
        "ttp_event",
        "os_time",
        "os_event",
    }
)
TEXT_COLUMNS = frozenset({"centre", "split", "mask", "sex", "aetiology", "bclc", "child_pugh"})


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
        if isinstance(spec, dict) and "threshold" in spec:
            check_threshold(spec, column_map, f"{path}: columns.{target}")
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


def column_sources(spec: Any) -> list[str]:
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
    sources = column_sources(spec)
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


def is_threshold(spec: Any) -> bool:
    """Whether a column spec is a threshold rule on sheet columns (not on table columns)."""
    return isinstance(spec, dict) and "threshold" in spec


def check_threshold(spec: Mapping[str, Any], column_map: Mapping[str, Any], where: str) -> None:
    """A threshold rule: only ``threshold``, its keys known, its time and event mapped."""
    rule = spec["threshold"]
    if set(spec) != {"threshold"} or not isinstance(rule, dict):
        raise SheetError(
            f"{where}: a threshold rule stands alone: `threshold: {{time, event, at}}`"
        )
    if bad := sorted(set(rule) - THRESHOLD_KEYS) or sorted({"time", "event", "at"} - set(rule)):
        raise SheetError(
            f"{where}.threshold: needs time, event, at (unit optional), not {bad}; "
            f"keys: {sorted(THRESHOLD_KEYS)}"
        )
    columns = column_map.get("columns", {})
    for key in ("time", "event"):
        if rule[key] not in columns or is_threshold(columns[rule[key]]):
            raise SheetError(
                f"{where}.threshold.{key}: {rule[key]!r} is not a mapped column of the sheet; "
                "map it under `columns:` first"
            )
    if rule.get("unit", "months") not in UNITS or not float(rule["at"]) > 0:
        raise SheetError(f"{where}.threshold: at > 0 and unit one of {list(UNITS)}")


def threshold_column(
    sheet: pd.DataFrame, target: str, rule: Mapping[str, Any]
) -> tuple[pd.Series, pd.Series]:
    """A 0/1 endpoint from a time and its event: 1 = no event before ``at``, 0 = event before.

    Patients censored before ``at`` (event 0, time < at) cannot be labelled: their value is
    missing and the second Series says why (empty where a value was given). Times on the sheet
    are in months (UNITS); ``at`` is in ``unit``.
    """
    unit = rule.get("unit", "months")
    at = float(rule["at"])
    time = pd.to_numeric(sheet[rule["time"]], errors="coerce")
    event = pd.to_numeric(sheet[rule["event"]], errors="coerce")
    # Compared on the table's own scale: weeks -> months -> weeks is not exact in floats.
    shown = time / UNITS[unit]
    late = np.isclose(shown, at) | (shown > at)
    values = pd.Series(np.nan, index=sheet.index, name=target)
    values[late & time.notna()] = 1.0
    values[~late & (event == 1)] = 0.0
    reasons = pd.Series("", index=sheet.index, name=target + MISSING_SUFFIX, dtype=object)
    censored = ~late & (event == 0) & time.notna()
    # One text for all (the cohort flow counts patients per reason); the times are in the sheet.
    reasons[censored] = (
        f"censored before the {at:g}-{unit[:-1]} threshold of {target} "
        f"({rule['event']} 0 at {rule['time']} < {at:g} {unit})"
    )
    reasons[time.isna() | event.isna()] = f"no {rule['time']} or {rule['event']} for {target}"
    values[time.isna() | event.isna()] = np.nan
    return values, reasons
