"""Panel grids shared by the model and survival figures: one panel per cohort, journal widths."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.gridspec import SubplotSpec

from hccrad.figures.style import journal_figure

MAX_COLUMNS = 3


def cohort_title(cohort: str, n: int | None = None) -> str:
    """Panel title of a cohort: readable split name and its size."""
    names = {"train": "Training", "internal_test": "Internal test", "external": "External (pooled)"}
    title = names.get(cohort, cohort.replace("external_", "External ").replace("_", " "))
    return f"{title} (n = {n})" if n is not None else title


def cohorts_of(table: pd.DataFrame, cohorts: Sequence[str] | None) -> list[str]:
    """Cohorts to draw: as given, else in the table's order."""
    return list(cohorts) if cohorts is not None else list(dict.fromkeys(table["cohort"]))


def grid_shape(n_panels: int) -> tuple[int, int]:
    """Rows and columns of a grid of ``n_panels`` panels, at most MAX_COLUMNS wide."""
    n_columns = min(MAX_COLUMNS, max(n_panels, 1))
    return math.ceil(max(n_panels, 1) / n_columns), n_columns


def panel_grid(n_panels: int, panel_height_mm: float) -> tuple[plt.Figure, list[SubplotSpec]]:
    """A single-column figure for one panel, else double-column; the cells of its grid."""
    n_rows, n_columns = grid_shape(n_panels)
    figure = journal_figure(1 if n_columns == 1 else 2, panel_height_mm * n_rows)
    grid = figure.add_gridspec(n_rows, n_columns)
    return figure, [grid[divmod(i, n_columns)] for i in range(n_panels)]


def panels(n_panels: int, panel_height_mm: float) -> tuple[plt.Figure, list[Axes]]:
    """A figure with ``n_panels`` axes, one per grid cell."""
    figure, cells = panel_grid(n_panels, panel_height_mm)
    return figure, [figure.add_subplot(cell) for cell in cells]


def no_data(ax: Axes, title: str, note: str) -> None:
    """A panel that says why it is empty."""
    ax.set_title(title)
    ax.text(0.5, 0.5, textwrap.fill(note, 32), ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def shared_legend(figure: plt.Figure, axes: Sequence[Axes], ncol: int = 4) -> None:
    """One legend for all panels, under them (outside the data; panels share models)."""
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if labels:
        figure.legend(
            [handles[label] for label in labels],
            labels,
            loc="outside lower center",
            ncol=min(len(labels), ncol),
            frameon=False,
            handlelength=2.8,
        )
