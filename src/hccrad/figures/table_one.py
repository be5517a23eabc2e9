"""Table 1 drawn as a figure (for the report) and written as an editable .xlsx (for a journal)."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from openpyxl.styles import Alignment, Font

from hccrad.figures.style import journal_subplots

SHEET_NAME = "Table 1"
# A fixed date for the workbook's metadata and zip entries: the file is byte-reproducible.
FIXED_TIMESTAMP = "2000-01-01T00:00:00Z"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def render_table(table: pd.DataFrame, title: str) -> plt.Figure:
    """Draw a table as a double-column figure with 7 pt text (for the report)."""
    n_rows, n_cols = table.shape
    figure, axes = journal_subplots(2, 20.0 + 4.2 * (n_rows + 1))
    axis = axes[0, 0]
    axis.axis("off")
    drawn = axis.table(
        cellText=table.fillna("").astype(str).to_numpy(),
        rowLabels=list(table.index),
        colLabels=list(table.columns),
        loc="upper left",
        cellLoc="center",
    )
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(plt.rcParams["font.size"])
    # Columns as wide as their text: equal widths cut the long summaries off.
    drawn.auto_set_column_width(list(range(-1, n_cols)))
    axis.set_title(title, loc="left")
    return figure


def write_table_xlsx(table: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Table 1 as an .xlsx workbook: a title row, bold header, columns sized to their text."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        table.to_excel(writer, sheet_name=SHEET_NAME, startrow=2)
        sheet = writer.sheets[SHEET_NAME]
        sheet["A1"] = title
        sheet["A1"].font = Font(bold=True)
        for column in sheet.columns:
            width = max(len(str(cell.value or "")) for cell in column[2:]) + 2
            sheet.column_dimensions[column[0].column_letter].width = min(width, 60)
            for cell in column[2:]:
                cell.alignment = Alignment(horizontal="left" if cell.column == 1 else "center")
        sheet.freeze_panes = "B4"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_without_timestamps(buffer.getvalue()))
    return path


def _without_timestamps(xlsx: bytes) -> bytes:
    """The workbook with fixed creation/modification dates in its metadata and zip entries."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                # openpyxl stamps the time of saving, whatever the workbook's properties say.
                data = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(<)",
                    rb"\g<1>" + FIXED_TIMESTAMP.encode() + rb"\g<2>",
                    data,
                )
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            target.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()
