"""The patient report's pictures: the probability chart and the report as one A4 PDF page.

The words and numbers come from `hccrad.reporting.patient_report`; this module draws them in
the house style (`hccrad.figures.style`) and passes itself to it as the drawer.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.axes import Axes

from hccrad.figures.style import MIN_FONT_PT, apply_style, journal_figure, model_style
from hccrad.reporting.patient_report import (
    OUT_OF_DOMAIN_WARNING,
    RESEARCH_STATEMENT,
    RISK_GROUP_NOTE,
    PatientReport,
    probability_text,
)
from hccrad.reporting.patient_report import render_patient_report as _render

A4_MM = (210.0, 297.0)
MARGIN_MM = 14.0
LINE_MM = 4.2  # one line of 8-9 pt text with its leading
WRAP_CHARS = 118  # characters per line of 8 pt Arial across the text width
MAX_FLAG_ROWS = 10  # the page's flag table: set checks first, then the others, then a count
WARNING_RED = "#B00020"
METADATA = {"Creator": None, "Producer": None, "CreationDate": None}


def draw_probability_chart(ax: Axes, report: PatientReport) -> None:
    """Each model's probability (marker), conformal interval (bar) and threshold (|)."""
    models = [row.model for row in report.models]
    for position, row in enumerate(report.models):
        style = model_style(row.model, models)
        y = len(models) - 1 - position
        ax.plot(
            [row.interval_low, row.interval_high],
            [y, y],
            color=style.colour,
            lw=2.2,
            solid_capstyle="butt",
            alpha=0.55,
        )
        ax.plot([row.probability], [y], marker=style.marker or "o", color=style.colour, ms=5)
        ax.plot([row.threshold], [y], marker="|", color="#333333", ms=9, mew=1.2)
    ax.set_yticks(range(len(models)), models[::-1])
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.7, len(models) - 0.3)
    ax.set_xlabel(f"Probability of {report.endpoint}")
    ax.grid(axis="x", color="#DDDDDD", lw=0.5)
    ax.set_axisbelow(True)


def chart_figure(report: PatientReport) -> plt.Figure:
    """The probability chart alone, a single column wide."""
    figure = journal_figure(1, 16.0 + 7.0 * len(report.models))
    draw_probability_chart(figure.add_subplot(), report)
    return figure


def chart_png(report: PatientReport) -> bytes:
    """The probability chart as 300 dpi PNG bytes (for the HTML)."""
    figure = chart_figure(report)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


class _Page:
    """A top-down cursor on an A4 figure, in millimetres from the top-left corner."""

    def __init__(self) -> None:
        apply_style()
        self.figure = plt.figure(figsize=(A4_MM[0] / 25.4, A4_MM[1] / 25.4))
        self.y_mm = MARGIN_MM
        self.width_mm = A4_MM[0] - 2 * MARGIN_MM

    def _xy(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        return x_mm / A4_MM[0], 1 - y_mm / A4_MM[1]

    def text(
        self,
        text: str,
        size: float = 8.0,
        gap_mm: float = 0.8,
        narrow: float = 1.0,
        **kwargs: object,
    ) -> None:
        """Wrapped text at the cursor (``narrow`` of the width), which moves below it."""
        lines = textwrap.wrap(text, int(narrow * WRAP_CHARS * 8.0 / size)) or [""]
        self.figure.text(
            *self._xy(MARGIN_MM, self.y_mm),
            "\n".join(lines),
            fontsize=size,
            va="top",
            ha="left",
            linespacing=1.3,
            **kwargs,
        )
        self.y_mm += len(lines) * LINE_MM * size / 8.0 + gap_mm

    def heading(self, text: str) -> None:
        """A section heading with a rule under it."""
        self.y_mm += 1.5
        self.text(text, size=10.0, gap_mm=0.3, fontweight="bold")
        y = 1 - self.y_mm / A4_MM[1]
        self.figure.add_artist(
            plt.Line2D(
                [MARGIN_MM / A4_MM[0], 1 - MARGIN_MM / A4_MM[0]], [y, y], color="#777777", lw=0.4
            )
        )
        self.y_mm += 1.2

    def axes(self, height_mm: float, x_mm: float = 0.0, width_mm: float | None = None) -> Axes:
        """Axes below the cursor (the cursor does not move)."""
        width_mm = self.width_mm - x_mm if width_mm is None else width_mm
        left, top = self._xy(MARGIN_MM + x_mm, self.y_mm)
        return self.figure.add_axes(
            (left, top - height_mm / A4_MM[1], width_mm / A4_MM[0], height_mm / A4_MM[1])
        )

    def table(self, frame: pd.DataFrame, widths: list[float], flagged: list[bool]) -> None:
        """A plain table at the cursor, set rows in red."""
        height = LINE_MM * 1.15 * (len(frame) + 1)
        ax = self.axes(height)
        ax.axis("off")
        table = ax.table(
            cellText=frame.to_numpy().tolist(),
            colLabels=list(frame.columns),
            colWidths=widths,
            cellLoc="left",
            colLoc="left",
            loc="upper left",
            bbox=(0, 0, 1, 1),
        )
        table.auto_set_font_size(False)
        table.set_fontsize(MIN_FONT_PT)
        for (row, _), cell in table.get_celld().items():
            cell.set_edgecolor("#BBBBBB")
            cell.set_linewidth(0.3)
            cell.visible_edges = "B"
            if row == 0:
                cell.set_text_props(fontweight="bold")
            elif flagged[row - 1]:
                cell.set_text_props(color=WARNING_RED, fontweight="bold")
        self.y_mm += height + 1.5


def _score_frame(report: PatientReport) -> pd.DataFrame:
    """The model table as the page prints it."""
    return pd.DataFrame(
        {
            "Model": [r.model for r in report.models],
            "Probability": [probability_text(r.probability) for r in report.models],
            "Interval": [
                f"{probability_text(r.interval_low)}-{probability_text(r.interval_high)}"
                for r in report.models
            ],
            "Prediction set": [textwrap.shorten(r.set_words, 50) for r in report.models],
            "Threshold": [probability_text(r.threshold) for r in report.models],
            "Risk group": [r.risk_group for r in report.models],
        }
    )


def _flag_frame(report: PatientReport) -> tuple[pd.DataFrame, list[bool]]:
    """The page's flag table: set checks first, at most MAX_FLAG_ROWS rows and a count."""
    ordered = sorted(report.flags, key=lambda f: not f.out_of_domain)
    shown = ordered[:MAX_FLAG_ROWS]
    rows = [
        (f.check, f.value, f.range, textwrap.shorten(f.reason or "within training data", 56))
        for f in shown
    ]
    flagged = [f.out_of_domain for f in shown]
    if len(ordered) > len(shown):
        rows.append(
            (
                f"{len(ordered) - len(shown)} more",
                "",
                "",
                "within training data (all in the HTML report)",
            )
        )
        flagged.append(False)
    frame = pd.DataFrame(rows, columns=["Check", "Value", "Training range", "Finding"])
    return frame, flagged


def page_figure(report: PatientReport, gradcam_png: Path | None) -> plt.Figure:
    """The report drawn on one A4 page."""
    page = _Page()
    page.text(f"TACE response prediction: {report.patient_id}", size=14.0, fontweight="bold")
    meta = f"Endpoint {report.endpoint} · hccrad {report.hccrad_version} bundle"
    page.text(meta + (f", created {report.created}" if report.created else ""), size=8.0)
    if report.out_of_domain:
        reasons = "; ".join(f"{f.check}: {f.reason}" for f in report.flagged)
        page.y_mm += 1.5
        page.text(
            f"{OUT_OF_DOMAIN_WARNING} {reasons}",
            size=9.5,
            narrow=0.9,
            color=WARNING_RED,
            fontweight="bold",
            bbox={"facecolor": "#FDECEA", "edgecolor": WARNING_RED, "boxstyle": "square,pad=0.5"},
        )
        page.y_mm += 2.0
    elif not report.flags:
        page.text(
            "No out-of-domain checks were run for this patient: whether the patient "
            "resembles the training data is unknown.",
            size=9.0,
            color=WARNING_RED,
            fontweight="bold",
        )
    else:
        page.text("Every out-of-domain check is within the training data.", size=8.5)
    page.heading("Model outputs")
    page.table(
        _score_frame(report), [0.14, 0.12, 0.14, 0.34, 0.11, 0.15], [False] * len(report.models)
    )
    page.text(f"{report.coverage} {RISK_GROUP_NOTE}", size=7.5)
    page.y_mm += 5.0  # room for the Grad-CAM title above the panels
    chart_mm = 16.0 + 7.0 * len(report.models)
    height = max(chart_mm, 55.0 if gradcam_png is not None else 0.0)
    draw_probability_chart(page.axes(chart_mm - 8.0, x_mm=22.0, width_mm=95.0), report)
    if gradcam_png is not None:
        ax = page.axes(height, x_mm=125.0, width_mm=page.width_mm - 125.0)
        ax.imshow(mpimg.imread(gradcam_png))
        ax.set_axis_off()
        ax.set_title("Grad-CAM (DLTR)", fontsize=MIN_FONT_PT + 1)
    page.y_mm += height + 2.0
    page.heading("Out-of-domain checks")
    if report.flags:
        frame, flagged = _flag_frame(report)
        page.table(frame, [0.22, 0.12, 0.2, 0.46], flagged)
    else:
        page.text("None available.")
    page.heading("The bundle")
    page.text(f"Intended use. {report.intended_use}")
    for limit in report.limits:
        page.text(f"Limit: {limit}", gap_mm=0.2)
    page.y_mm += 2.0
    page.text(RESEARCH_STATEMENT, size=8.0, fontweight="bold")
    return page.figure


def page_pdf(report: PatientReport, gradcam_png: Path | None, path: Path) -> None:
    """The report as one A4 PDF page."""
    figure = page_figure(report, gradcam_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="pdf", metadata=METADATA)
    plt.close(figure)


class _Drawer:
    """hccrad.reporting.patient_report.ReportDrawer, drawn by this module."""

    def chart_png(self, report: PatientReport) -> bytes:
        return chart_png(report)

    def page_pdf(self, report: PatientReport, gradcam_png: Path | None, path: Path) -> None:
        page_pdf(report, gradcam_png, path)


DRAWER = _Drawer()


def render_patient_report(
    patient_id: str,
    scores: pd.DataFrame,
    flags: pd.DataFrame,
    manifest: dict,
    out_dir: Path,
    gradcam_png: Path | None = None,
) -> Path:
    """Write out_dir/report.html and out_dir/report.pdf, drawn by this module."""
    return _render(patient_id, scores, flags, manifest, out_dir, gradcam_png, drawer=DRAWER)
