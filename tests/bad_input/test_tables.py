"""A user's clinical table (CSV, TSV, xlsx) through the column map: one reading path, no damage.

Each case writes a small table the way a hospital might, imports it as the import_sheet rule
does (load_column_map -> read_mapped_table -> import_sheet -> check_sheet -> write_table) and
checks what the user sees: the sheet and exclusions, or one SheetError naming the file, the
row or patient, and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
import yaml

from hccrad.cohorts.column_map import NUMBER_COLUMNS, TEXT_COLUMNS, UNITS, load_column_map
from hccrad.cohorts.sheet import ID_COLUMN, SheetError, read_sheet, write_table
from hccrad.cohorts.sheet_import import (
    ID_PATTERN,
    SPLIT_PATTERN,
    check_sheet,
    import_sheet,
    planned_sheet,
)
from hccrad.cohorts.tables import read_mapped_table

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "sheet.schema.yaml"
SEED = 20251123
HEADER = ["MRN", "Age", "AFP", "Response", "OS (weeks)", "Died"]
# A hospital's table: ids with a leading zero, a dash and digits only; Q-9 has no response.
ROWS = [
    ["001", "61", "12", "1", "52", "1"],
    ["A-7", "70", "350.5", "0", "26", "0"],
    ["12", "55", "4", "1", "104", "1"],
    ["Q-9", "66", "8", "", "13", "1"],
]
COLUMN_MAP: dict[str, Any] = {
    "patient_id": "MRN",
    "constants": {"centre": "H1"},
    "columns": {
        "age": "Age",
        "afp": "AFP",
        "response": "Response",
        "os_time": {"column": "OS (weeks)", "unit": "weeks"},
        "os_event": "Died",
    },
    "required": ["response"],
    "split": {"value": "train"},
}


def write_csv(
    path: Path, rows: list[list[str]], header: list[str] = HEADER, sep: str = ","
) -> Path:
    """A text table exactly as given (no quoting: the cells are what a user typed)."""
    path.write_text("".join(sep.join(row) + "\n" for row in [header, *rows]), encoding="utf-8")
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    """A workbook with openpyxl: str cells are text cells, int/float cells number cells."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def write_map(folder: Path, **changes: Any) -> Path:
    """The column map with top-level keys changed (None removes a key), as YAML."""
    column_map = {**COLUMN_MAP, **changes}
    column_map = {k: v for k, v in column_map.items() if v is not None}
    path = folder / "columns.yaml"
    path.write_text(yaml.safe_dump(column_map, sort_keys=False))
    return path


def run_import(table: Path, column_map: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The import_sheet rule's steps (workflow/scripts/import_sheet.py), images: none."""
    mapping = load_column_map(column_map)
    sheet, exclusions = import_sheet(read_mapped_table(table, mapping), mapping, SEED, str(table))
    check_sheet(sheet, SCHEMA, str(table))
    return sheet, exclusions


def fails(table: Path, column_map: Path) -> str:
    """The one-line message of the SheetError the import stops with."""
    with pytest.raises(SheetError) as caught:
        run_import(table, column_map)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_sheet_constants_match_the_sheet_schema() -> None:
    # The import converts NUMBER_COLUMNS and keeps TEXT_COLUMNS as written: the same split
    # as the schema's types, so the two cannot drift apart.
    properties = yaml.safe_load(SCHEMA.read_text())["properties"]
    numbers, texts = set(), set()
    for name, spec in properties.items():
        kinds = spec.get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        enum = [v for v in spec.get("enum", []) if v is not None]
        if {"number", "integer"} & set(kinds) or (enum and all(isinstance(v, int) for v in enum)):
            numbers.add(name)
        elif "string" in kinds or enum:
            texts.add(name)
    assert numbers == set(NUMBER_COLUMNS)
    assert texts - {ID_COLUMN} == set(TEXT_COLUMNS)
    assert properties[ID_COLUMN]["pattern"] == ID_PATTERN.pattern
    assert properties["split"]["pattern"] == SPLIT_PATTERN.pattern


def test_ids_from_csv_round_trip_unchanged_through_the_sheet(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "clinical.csv", ROWS)
    sheet, exclusions = run_import(table, write_map(tmp_path))
    assert (len(sheet), len(exclusions)) == (3, 1)
    assert list(exclusions[ID_COLUMN]) == ["Q-9"]
    write_table(sheet, tmp_path / "sheet.tsv")
    again = read_sheet(tmp_path / "sheet.tsv")
    assert sorted(again.index) == ["001", "12", "A-7"]
    assert all(isinstance(p, str) for p in again.index)
    assert again.loc["001", "afp"] == 12 and again.loc["A-7", "afp"] == pytest.approx(350.5)
    # Known when the workflow is planned: the same ids.
    assert list(planned_sheet(table, tmp_path / "columns.yaml", SEED).index) == list(sheet.index)


def test_ids_from_xlsx_round_trip_unchanged_text_and_number_cells(tmp_path: Path) -> None:
    # '001' and 'A-7' are text cells, 12 a number cell (as Excel stores a typed 12).
    rows: list[list[Any]] = [
        [ROWS[0][0], 61, 12, 1, 52, 1],
        [ROWS[1][0], 70, 350.5, 0, 26, 0],
        [12, 55, 4, 1, 104, 1],
        ["Q-9", 66, 8, None, 13, 1],
    ]
    table = write_xlsx(tmp_path / "clinical.xlsx", {"Patients": [HEADER, *rows]})
    sheet, exclusions = run_import(table, write_map(tmp_path))
    assert (len(sheet), len(exclusions)) == (3, 1)
    write_table(sheet, tmp_path / "sheet.tsv")
    again = read_sheet(tmp_path / "sheet.tsv")
    assert sorted(again.index) == ["001", "12", "A-7"]
    assert again.index.map(type).tolist() == [str, str, str]
    from_csv, _ = run_import(write_csv(tmp_path / "clinical.csv", ROWS), write_map(tmp_path))
    pd.testing.assert_frame_equal(sheet, from_csv)


def test_numeric_ids_with_an_empty_cell_elsewhere_stay_whole_numbers(tmp_path: Path) -> None:
    # A float column used to drag ids 1, 2, 3 to 1.0, 2.0, 3.0 once any cell was empty.
    rows = [["1", "61", "", "1", "52", "1"], ["2", "70", "3", "0", "26", "0"]]
    rows.append(["3", "", "5", "1", "104", "1"])
    sheet, exclusions = run_import(write_csv(tmp_path / "t.csv", rows), write_map(tmp_path))
    assert list(sheet.index) == ["1", "2", "3"]
    assert (len(sheet), len(exclusions)) == (3, 0)
    assert sheet["afp"].isna().tolist() == [True, False, False]


def test_empty_id_among_numeric_ids_stops_naming_the_row(tmp_path: Path) -> None:
    rows = [["1", "61", "12", "1", "52", "1"], ["", "70", "3", "0", "26", "0"]]
    rows.append(["3", "55", "5", "1", "104", "1"])
    table = write_csv(tmp_path / "clinical.csv", rows)
    message = fails(table, write_map(tmp_path))
    assert message.startswith(f"{table}: column 'MRN' (patient_id): row 3: the patient id is empty")
    assert "nan" not in message and "1.0" not in message
    assert "Fix: give every row an id" in message and "or delete the row" in message


def test_blank_line_is_skipped_and_rows_keep_their_numbers(tmp_path: Path) -> None:
    table = tmp_path / "clinical.csv"
    text = write_csv(table, ROWS[:2]).read_text()
    # An empty line and an all-empty row (a spreadsheet's ghost row), then a bad id on row 6.
    table.write_text(text + "\n" + ",,,,,\n" + "../x,50,1,1,10,1\n")
    message = fails(table, write_map(tmp_path))
    assert "row 6: patient id '../x' would be a path" in message
    table.write_text(text + "\n" + ",,,,,\n" + "B1,50,1,1,10,1\n")
    sheet, exclusions = run_import(table, write_map(tmp_path))
    assert list(sheet.index) == ["001", "A-7", "B1"] and exclusions.empty


def test_path_traversal_ids_stop_naming_every_row_and_the_fix(tmp_path: Path) -> None:
    rows = [["../x", *ROWS[0][1:]], ["a/b", *ROWS[1][1:]], [".hidden", *ROWS[2][1:]]]
    rows.append(["ok 1", *ROWS[2][1:]])
    table = write_csv(tmp_path / "clinical.csv", rows)
    message = fails(table, write_map(tmp_path))
    assert message.startswith(f"{table}: column 'MRN' (patient_id): ")
    for row, patient in ((2, "../x"), (3, "a/b"), (4, ".hidden")):
        assert f"row {row}: patient id '{patient}' would be a path" in message
    assert "row 5: patient id 'ok 1' has characters other than" in message
    assert "path traversal" in message and "Fix: give every row an id of letters" in message


def test_id_with_surrounding_spaces_stops_instead_of_being_stripped(tmp_path: Path) -> None:
    rows = [[" 001", *ROWS[0][1:]], ["A-7 ", *ROWS[1][1:]], ROWS[2]]
    table = write_csv(tmp_path / "clinical.csv", rows)
    message = fails(table, write_map(tmp_path))
    assert "row 2: patient id ' 001' has spaces around it" in message
    assert "row 3: patient id 'A-7 ' has spaces around it" in message
    assert str(table) in message and "(no spaces around it)" in message


def test_duplicate_ids_stop_naming_the_rows(tmp_path: Path) -> None:
    rows = [ROWS[0], ROWS[1], ["001", *ROWS[2][1:]], ["A-7", *ROWS[3][1:]]]
    table = write_csv(tmp_path / "clinical.csv", rows)
    message = fails(table, write_map(tmp_path))
    assert message.startswith(f"{table}: patient ids appear more than once: ")
    assert "patient 001 in rows [2, 4]" in message and "patient A-7 in rows [3, 5]" in message
    assert "Fix: keep one row per patient" in message


def test_latin1_table_read_as_utf8_names_line_and_encoding_option(tmp_path: Path) -> None:
    # A Windows export: 'Créteil' in latin-1 on the table's fourth line (patient 12).
    rows = [[*row, "Créteil" if row[0] == "12" else "Paris"] for row in ROWS]
    text = write_csv(tmp_path / "u.csv", rows, [*HEADER, "Hospital"]).read_text()
    table = tmp_path / "clinical.csv"
    table.write_bytes(text.encode("latin-1"))
    offset = len(text[: text.index("é")].encode("latin-1"))
    message = fails(table, write_map(tmp_path))
    assert message.startswith(f"{table}: line 4 (byte {offset}, b'\\xe9') is not utf-8 text.")
    assert "Fix: set `encoding:` in the column map" in message and "latin-1" in message
    columns = {**COLUMN_MAP["columns"], "hospital": "Hospital"}
    sheet, exclusions = run_import(table, write_map(tmp_path, encoding="latin-1", columns=columns))
    assert (len(sheet), len(exclusions)) == (3, 1)
    assert sheet.loc["12", "hospital"] == "Créteil"


def test_utf8_table_with_excel_byte_order_mark_finds_the_id_column(tmp_path: Path) -> None:
    # Excel's "CSV UTF-8" starts with a byte-order mark, which must not become part of 'MRN'.
    table = tmp_path / "clinical.csv"
    table.write_bytes(b"\xef\xbb\xbf" + write_csv(tmp_path / "u.csv", ROWS).read_bytes())
    sheet, exclusions = run_import(table, write_map(tmp_path))
    assert (len(sheet), len(exclusions)) == (3, 1)


def test_semicolon_table_read_as_csv_names_the_delimiter_option(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "clinical.csv", ROWS, sep=";")
    message = fails(table, write_map(tmp_path))
    assert message.startswith(f"{table}: the table has one column, 'MRN;Age;AFP;")
    assert "it looks ';'-delimited, not ','. Fix: set `delimiter: ';'`" in message
    sheet, exclusions = run_import(table, write_map(tmp_path, delimiter=";"))
    assert (len(sheet), len(exclusions)) == (3, 1)


def test_tsv_named_csv_reads_with_delimiter_tab(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "clinical.csv", ROWS, sep="\t")
    message = fails(table, write_map(tmp_path))
    assert "it looks '\\t'-delimited, not ','. Fix: set `delimiter: '\\t'`" in message
    sheet, exclusions = run_import(table, write_map(tmp_path, delimiter="tab"))
    assert (len(sheet), len(exclusions)) == (3, 1)


def test_row_with_an_extra_cell_names_the_line_and_quoting(tmp_path: Path) -> None:
    # An unquoted decimal comma: one cell too many on the third line.
    rows = [ROWS[0], ["A-7", "70", "350,5", "0", "26", "0"], ROWS[2]]
    table = write_csv(tmp_path / "clinical.csv", rows)
    message = fails(table, write_map(tmp_path))
    assert message.startswith(f"{table}: Error tokenizing data.")
    assert "line 3" in message and "Fix: quote cells that contain the delimiter" in message


def test_duplicated_header_stops_naming_the_column(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "clinical.csv", [[*r, "9"] for r in ROWS], [*HEADER, "AFP"])
    message = fails(table, write_map(tmp_path))
    assert message.startswith(
        f"{table}: the header repeats column name(s): 'AFP' in columns [3, 7]."
    )
    assert "Fix: rename them in the table" in message
    book = write_xlsx(tmp_path / "clinical.xlsx", {"S": [[*HEADER, "AFP"], *ROWS]})
    assert "'AFP' in columns [3, 7]" in fails(book, write_map(tmp_path))


def test_xlsx_whose_first_sheet_is_not_the_table_lists_the_sheets(tmp_path: Path) -> None:
    notes = [["Study notes"], ["exported 2025-11-01"]]
    book = write_xlsx(tmp_path / "clinical.xlsx", {"Notes": notes, "Patients": [HEADER, *ROWS]})
    message = fails(book, write_map(tmp_path))
    assert message.startswith(f"{book}: sheet 'Notes' has no column 'MRN'")
    assert "the workbook has sheets ['Notes', 'Patients']; sheet(s) ['Patients'] have it" in message
    assert "Fix: set `sheet_name:` in the column map" in message
    sheet, exclusions = run_import(book, write_map(tmp_path, sheet_name="Patients"))
    assert (len(sheet), len(exclusions)) == (3, 1)


def test_xlsx_sheet_name_that_does_not_exist_lists_the_sheets(tmp_path: Path) -> None:
    book = write_xlsx(tmp_path / "clinical.xlsx", {"Patients": [HEADER, *ROWS]})
    message = fails(book, write_map(tmp_path, sheet_name="Sheet1"))
    assert message == (
        f"{book}: there is no sheet 'Sheet1'; the workbook has sheets ['Patients']. "
        "Fix: set `sheet_name:` in the column map to one of them."
    )


def test_csv_saved_as_xlsx_says_it_is_not_a_workbook(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "clinical.xlsx", ROWS)
    message = fails(table, write_map(tmp_path))
    assert message.startswith(f"{table}: cannot be read as an Excel workbook")
    assert "Fix: save it as .xlsx (or as CSV)" in message


def test_id_column_with_a_trailing_space_in_the_header_names_the_close_name(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "clinical.csv", ROWS, ["MRN ", *HEADER[1:]])
    message = fails(table, write_map(tmp_path))
    assert message.startswith(f"{table}: no column 'MRN' (a close name: 'MRN ')")
    assert "Fix: set `patient_id:` in the column map" in message


def test_text_in_afp_lists_every_patient_row_and_value(tmp_path: Path) -> None:
    # The first patient has a valid AFP; the message must name the two with text, not it.
    rows = [
        ROWS[0],
        ["A-7", "70", "<5", "0", "26", "0"],
        ROWS[2],
        ["Q-9", "66", "n/a", "", "13", "1"],
    ]
    table = write_csv(tmp_path / "clinical.csv", rows)
    message = fails(table, write_map(tmp_path))
    assert message.startswith(
        f"{table}: column 'AFP' (columns.afp) needs numbers but has text: "
        "patient A-7 (row 3, '<5'), patient Q-9 (row 5, 'n/a'). Fix: write numbers"
    )
    assert "001" not in message and "list it under `missing:`" in message
    # n/a declared missing, <5 written as 5: the import runs; Q-9 still lacks a response.
    rows[1][2] = "5"
    table = write_csv(tmp_path / "clinical.csv", rows)
    sheet, exclusions = run_import(table, write_map(tmp_path, missing=["n/a"]))
    assert (len(sheet), len(exclusions)) == (3, 1)
    assert sheet.loc["A-7", "afp"] == 5


def test_na_text_is_kept_as_written_unless_listed_missing(tmp_path: Path) -> None:
    rows = [ROWS[0], ["NA", "70", "NA", "0", "26", "0"], ROWS[2]]
    table = write_csv(tmp_path / "clinical.csv", rows)
    assert "patient NA (row 3, 'NA')" in fails(table, write_map(tmp_path))
    # `missing: [NA]` empties the AFP cell but never the id: patient NA stays patient NA.
    sheet, exclusions = run_import(table, write_map(tmp_path, missing=["NA"]))
    assert (len(sheet), len(exclusions)) == (3, 0)
    assert "NA" in sheet.index and pd.isna(sheet.loc["NA", "afp"])
    write_table(sheet, tmp_path / "sheet.tsv")
    assert "NA" in read_sheet(tmp_path / "sheet.tsv").index


def test_yes_in_a_binary_response_lists_the_patients(tmp_path: Path) -> None:
    rows = [ROWS[0], ["A-7", "70", "3", "yes", "26", "0"], ["12", "55", "4", "no", "104", "1"]]
    table = write_csv(tmp_path / "clinical.csv", rows)
    message = fails(table, write_map(tmp_path))
    assert message.startswith(f"{table}: column 'Response' (columns.response) needs numbers")
    assert "patient 12 (row 4, 'no'), patient A-7 (row 3, 'yes')" in message
    assert "recode the text with columns.response.values" in message
    columns = {**COLUMN_MAP["columns"], "response": {"column": "Response"}}
    columns["response"]["values"] = {"yes": 1, "no": 0, "1": 1, "0": 0}
    sheet, exclusions = run_import(table, write_map(tmp_path, columns=columns))
    assert sheet["response"].tolist() == [1, 0, 1] and exclusions.empty


def test_event_coded_2_names_the_patients_column_and_values_fix(tmp_path: Path) -> None:
    rows = [ROWS[0], ["A-7", "70", "3", "0", "26", "2"], ["12", "55", "4", "1", "104", "2"]]
    table = write_csv(tmp_path / "clinical.csv", rows)
    message = fails(table, write_map(tmp_path))
    assert message.startswith(
        f"{table}: os_event: 2 is not one of [0, 1, None] (patients 12, A-7). Fix: recode the "
        "table's values with columns.os_event.values (to [0, 1])"
    )


def test_negative_time_names_the_patient_column_and_unit_fix(tmp_path: Path) -> None:
    rows = [ROWS[0], ["A-7", "70", "3", "0", "-26", "0"], ROWS[2]]
    table = write_csv(tmp_path / "clinical.csv", rows)
    message = fails(table, write_map(tmp_path))
    months = -26.0 * UNITS["weeks"]
    assert message.startswith(
        f"{table}: os_time: {months!r} is less than or equal to the minimum of 0 (patient A-7). "
        "Fix: correct os_time in the table, or its unit (columns.os_time.unit)"
    )


def test_required_column_the_map_does_not_map_names_it(tmp_path: Path) -> None:
    column_map = write_map(tmp_path, required=["response", "pfs_time"])
    with pytest.raises(SheetError) as caught:
        run_import(write_csv(tmp_path / "clinical.csv", ROWS), column_map)
    assert str(caught.value).startswith(
        f"{column_map}: required lists 'pfs_time', which the column map does not map"
    )
    assert "Fix: map it under `columns:` or drop it from `required:`." in str(caught.value)


def test_split_column_reads_the_table_column(tmp_path: Path) -> None:
    rows = [
        [*r, s]
        for r, s in zip(ROWS, ["train", "internal_test", "external_B", "train"], strict=True)
    ]
    table = write_csv(tmp_path / "clinical.csv", rows, [*HEADER, "Set"])
    sheet, exclusions = run_import(table, write_map(tmp_path, split={"column": "Set"}))
    assert sheet["split"].to_dict() == {"001": "train", "12": "external_B", "A-7": "internal_test"}
    assert (len(sheet), len(exclusions)) == (3, 1)
    assert list(sheet.columns[:2]) == ["centre", "split"]


def test_split_column_with_other_values_lists_the_patients(tmp_path: Path) -> None:
    rows = [[*r, s] for r, s in zip(ROWS, ["train", "test", "", "train"], strict=True)]
    table = write_csv(tmp_path / "clinical.csv", rows, [*HEADER, "Set"])
    message = fails(table, write_map(tmp_path, split={"column": "Set"}))
    assert message.startswith(
        f"{table}: column 'Set' has split value(s) that are not train, internal_test, "
        "external_<name> or radiogenomics: patient 12 (row 4, None), patient A-7 (row 3, 'test')."
    )
    assert "Fix: correct the table, or recode with columns.split.values." in message


def test_split_mapped_under_columns_is_recoded_and_checked(tmp_path: Path) -> None:
    rows = [[*r, s] for r, s in zip(ROWS, ["dev", "val", "dev", "dev"], strict=True)]
    table = write_csv(tmp_path / "clinical.csv", rows, [*HEADER, "Set"])
    split = {"column": "Set", "values": {"dev": "train", "val": "internal_test"}}
    columns = {**COLUMN_MAP["columns"], "split": split}
    sheet, exclusions = run_import(table, write_map(tmp_path, columns=columns, split=None))
    assert sheet["split"].to_dict() == {"001": "train", "12": "train", "A-7": "internal_test"}
    assert (len(sheet), len(exclusions)) == (3, 1)
    message = fails(table, write_map(tmp_path, columns=columns))
    assert message.startswith(f"{tmp_path / 'columns.yaml'}: the split is given twice")


def test_empty_csv_says_the_table_is_empty(tmp_path: Path) -> None:
    table = tmp_path / "clinical.csv"
    table.write_text("")
    assert fails(table, write_map(tmp_path)) == (
        f"{table}: the table is empty. Fix: point `table` at the clinical table."
    )


def test_unknown_encoding_name_names_the_option(tmp_path: Path) -> None:
    column_map = write_map(tmp_path, encoding="latin-9x")
    with pytest.raises(SheetError) as caught:
        run_import(write_csv(tmp_path / "clinical.csv", ROWS), column_map)
    assert str(caught.value) == (
        f"{column_map}: encoding 'latin-9x' is not a known text encoding. Fix: set "
        "`encoding:` to e.g. utf-8, latin-1 or cp1252."
    )
