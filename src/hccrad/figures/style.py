"""One journal style for every figure of the workflow: sizes, fonts, colours, letters, formats.

Figures are drawn at their final printed size, a single (89 mm) or double (183 mm) journal
column wide, so that a font size in points here is the size in print: every text is at least
MIN_FONT_PT. Files are saved without a tight bounding box, which would change the width.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")  # headless: Snakemake jobs and CI have no display
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.text import Text
from PIL import Image

MM_PER_INCH = 25.4
SINGLE_COLUMN_MM = 89.0
DOUBLE_COLUMN_MM = 183.0
MAX_HEIGHT_MM = 247.0  # a journal page's usable depth
MIN_FONT_PT = 7.0
PANEL_LETTER_PT = 8.0
DPI = 300
FIGURE_FORMATS = ("png", "pdf", "tiff")


@dataclass(frozen=True)
class LineStyle:
    """How one model is drawn: colour, line style and marker, each distinct across models."""

    colour: str
    linestyle: str
    marker: str


# Okabe-Ito colours (safe for colour blindness) without its yellow, which vanishes on white;
# a line style and a marker per model keep neighbouring hues apart in grey-scale print too.
MODEL_STYLES: dict[str, LineStyle] = {
    "clinical": LineStyle("#E69F00", "-", "o"),
    "radiomics": LineStyle("#56B4E9", "--", "s"),
    "radiomics_lasso": LineStyle("#0072B2", "-.", "^"),
    "radiomics_ridge": LineStyle("#000000", ":", "v"),
    "DLTR": LineStyle("#009E73", "-", "D"),
    "DLTR_MLP": LineStyle("#D55E00", "--", "P"),
    "DLR": LineStyle("#CC79A7", "-.", "X"),
    "treat_all": LineStyle("#7F7F7F", ":", ""),
    "treat_none": LineStyle("#7F7F7F", (0, (5, 1.5, 1, 1.5)), ""),  # type: ignore[arg-type]
}
# Models outside the palette, by their position among the unknown ones.
FALLBACK_STYLES: tuple[LineStyle, ...] = (
    LineStyle("#44AA99", "-", "h"),
    LineStyle("#882255", "--", "*"),
    LineStyle("#999933", "-.", "<"),
    LineStyle("#AA4499", ":", ">"),
    LineStyle("#117733", "-", "p"),
    LineStyle("#332288", "--", "d"),
)
MODEL_COLOURS: dict[str, str] = {model: style.colour for model, style in MODEL_STYLES.items()}
LABEL_COLOURS: dict[str, str] = {"liver": "#F0E442", "tumour": "#D55E00"}
RC_PARAMS: dict[str, object] = {
    "font.family": "sans-serif",
    # Arial or Helvetica where installed (journals ask for them), else a metric twin.
    "font.sans-serif": ["Arial", "Helvetica", "Liberation Sans", "DejaVu Sans"],
    "font.size": MIN_FONT_PT,
    "axes.titlesize": MIN_FONT_PT + 1,
    "axes.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "figure.titlesize": MIN_FONT_PT + 2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "lines.linewidth": 1.0,
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    # The figure is saved at its own size: a tight box would change the column width.
    "savefig.bbox": None,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    # Fixed metadata and hash salt make the vector files byte-reproducible.
    "svg.hashsalt": "hccrad",
    "pdf.fonttype": 42,
}


def apply_style() -> None:
    """Set the workflow's matplotlib style for the current process."""
    # Without Arial the other names are tried in turn; do not warn about each missing one.
    matplotlib.set_loglevel("error")
    plt.rcParams.update(RC_PARAMS)


def model_style(model: str, order: Sequence[str] = ()) -> LineStyle:
    """The style of a model: the shared palette, else a fixed fallback by position."""
    if model in MODEL_STYLES:
        return MODEL_STYLES[model]
    unknown = [m for m in order if m not in MODEL_STYLES] or [model]
    position = unknown.index(model) if model in unknown else 0
    return FALLBACK_STYLES[position % len(FALLBACK_STYLES)]


def column_width_mm(columns: Literal[1, 2]) -> float:
    """Width of a single- (1) or double-column (2) figure in millimetres."""
    return SINGLE_COLUMN_MM if columns == 1 else DOUBLE_COLUMN_MM


def figure_size(columns: Literal[1, 2], height_mm: float) -> tuple[float, float]:
    """Figure size in inches: a journal column wide, ``height_mm`` high (capped at a page)."""
    height = min(max(height_mm, 20.0), MAX_HEIGHT_MM)
    return column_width_mm(columns) / MM_PER_INCH, height / MM_PER_INCH


def journal_figure(columns: Literal[1, 2], height_mm: float, **kwargs: object) -> plt.Figure:
    """An empty figure in the house style, a column wide, with constrained layout."""
    apply_style()
    return plt.figure(figsize=figure_size(columns, height_mm), layout="constrained", **kwargs)


def journal_subplots(
    columns: Literal[1, 2], height_mm: float, n_rows: int = 1, n_cols: int = 1, **kwargs: object
) -> tuple[plt.Figure, object]:
    """plt.subplots in the house style, a column wide (axes array always 2-D)."""
    apply_style()
    return plt.subplots(
        n_rows,
        n_cols,
        figsize=figure_size(columns, height_mm),
        layout="constrained",
        squeeze=False,
        **kwargs,
    )


def panel_letters(axes: Iterable[Axes], start: int = 0) -> list[Text]:
    """Bold lower-case letters (a, b, c, ...) at the top left of each panel, outside the data."""
    letters = []
    for index, ax in enumerate(axes, start=start):
        letters.append(
            ax.annotate(
                chr(ord("a") + index),
                xy=(0, 1),
                xycoords="axes fraction",
                xytext=(-4, 6),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=PANEL_LETTER_PT,
                fontweight="bold",
                gid="panel_letter",
            )
        )
    return letters


def save_figure(figure: plt.Figure, png_path: str | Path) -> list[Path]:
    """Save a figure as 300 dpi PNG and TIFF and a vector PDF beside it, without timestamps."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    pdf_path, tiff_path = png_path.with_suffix(".pdf"), png_path.with_suffix(".tiff")
    figure.savefig(png_path, metadata={"Software": None})
    figure.savefig(pdf_path, metadata={"Creator": None, "Producer": None, "CreationDate": None})
    write_tiff_like_png(png_path, tiff_path, dpi=plt.rcParams["savefig.dpi"])
    plt.close(figure)
    return [png_path, pdf_path, tiff_path]


def write_tiff_like_png(png_path: Path, tiff_path: Path, *, dpi: float) -> None:
    """Write the PNG's pixels as an LZW TIFF, the bytes ``savefig`` would write for the figure.

    Matplotlib renders the figure again for every file (~0.5 s for a constrained-layout
    figure); the PNG is lossless RGBA, so its pixels are the TIFF's (issue 30). The image is
    built as ``matplotlib.image.imsave`` builds it (from a raw RGBA buffer, no metadata).
    """
    with Image.open(png_path) as png:
        pixels = png.convert("RGBA")
    image = Image.frombuffer("RGBA", pixels.size, pixels.tobytes(), "raw", "RGBA", 0, 1)
    # LZW keeps the TIFF small; journals accept it and it is lossless.
    image.save(tiff_path, format="tiff", dpi=(dpi, dpi), compression="tiff_lzw")
