"""Clinical tables as written: CSV, TSV or Excel, every cell as its text, rows as numbered.

How a bring-your-own table is read (sheet, encoding, delimiter, missing-value texts) comes from
its column map (hccrad.cohorts.column_map); mapping the columns to the sheet is
hccrad.cohorts.sheet_import's.
"""

from __future__ import annotations

import codecs
import difflib
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hccrad.cohorts.sheet import SheetError

EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls"}
# Default delimiter by suffix; `delimiter:` in the column map overrides it.
DELIMITERS = {".tsv": "\t", ".txt": "\t"}
DELIMITER_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
# The row index of a table from read_table: row numbers as a spreadsheet shows them (header 1).
TABLE_ROW = "table_row"


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
