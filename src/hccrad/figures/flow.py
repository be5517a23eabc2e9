"""The cohort flow as a CONSORT-style diagram: patients in, each exclusion step, analysed.

Drawn from the cohort flow table of hccrad.reporting.crossval.flow_table (columns ``step``,
``n_before``, ``n_excluded``, ``n_after``, ``reasons``), so the figure shows exactly its counts:
one box per remaining cohort down the left, and beside each step with exclusions a box with how
many left and why. Rows after ``analysed`` (such as the survival analyses, which score patients
without the endpoint too) are written in the last box with their own counts and reasons.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes

from hccrad.figures.style import journal_figure

BOX_STYLE = {"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": "0.2", "lw": 0.7}
SIDE_STYLE = {**BOX_STYLE, "facecolor": "0.95"}
STEP_MM = 19.0
MAIN_X, SIDE_X = 0.27, 0.72
WRAP_MAIN, WRAP_SIDE = 30, 52


def _box(ax: Axes, x: float, y: float, text: str, style: dict, width: int) -> None:
    """A wrapped text box centred at (x, y) in axes coordinates."""
    wrapped = "\n".join(textwrap.fill(line, width) for line in text.split("\n"))
    ax.text(x, y, wrapped, ha="center", va="center", fontsize=7, bbox=style)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    """An arrow between two box centres' edges (axes coordinates)."""
    ax.annotate(
        "", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "lw": 0.7, "color": "0.2"}
    )


def _reasons(text: object) -> str:
    """The step's reasons, one a line (the table joins them with '; ')."""
    return "\n".join(r.strip() for r in str(text or "").split(";") if r.strip())


def cohort_flow_figure(flow: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """CONSORT-style flow of one endpoint: the source table down to the patients analysed."""
    flow = flow.reset_index(drop=True)
    end = flow.index[flow["step"] == "analysed"]
    after = flow.iloc[end[0] + 1 :] if len(end) else flow.iloc[:0]
    before = flow.iloc[: end[0]] if len(end) else flow
    shown = before[(before["n_excluded"] > 0) | (before.index == 0)].reset_index(drop=True)
    analysed = flow.iloc[end] if len(end) else flow.iloc[:0]
    # The cohort after the last exclusion is the analysed one: its box says so.
    levels = len(shown) + (1 if len(shown) == 1 else 0)
    # Rows after "analysed" get a level of their own under it (beside it they hid the last step).
    figure = journal_figure(2, STEP_MM * (levels + (len(after) > 0) + 0.6))
    ax = figure.add_subplot()
    ax.axis("off")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    total = levels + (len(after) > 0)
    y_of = [1 - (i + 0.5) / total for i in range(total)]
    for i, row in shown.iterrows():
        y = y_of[i]
        label = "Analysed" if i == levels - 1 and len(analysed) else f"after {row['step']}"
        if i == 0:
            label = row["step"]
        else:
            # Each step: an arrow down from the previous cohort, its side box, the one after it.
            side = f"Excluded at {row['step']} (n = {row['n_excluded']})\n"
            middle = (y_of[i - 1] + y) / 2
            _arrow(ax, (MAIN_X, y_of[i - 1] - 0.035), (MAIN_X, y + 0.035))
            _arrow(ax, (MAIN_X, middle), (SIDE_X - 0.22, middle))
            _box(ax, SIDE_X, middle, side + _reasons(row["reasons"]), SIDE_STYLE, WRAP_SIDE)
        _box(ax, MAIN_X, y, f"{label}\nn = {row['n_after']}", BOX_STYLE, WRAP_MAIN)
    if len(shown) == 1 and len(analysed):
        _arrow(ax, (MAIN_X, y_of[0] - 0.035), (MAIN_X, y_of[1] + 0.035))
        _box(ax, MAIN_X, y_of[1], f"Analysed\nn = {analysed['n_after'].iloc[0]}", BOX_STYLE, 30)
    notes = [
        f"{r['step']}: n = {int(r['n_after'])}\n{_reasons(r['reasons'])}"
        for _, r in after.iterrows()
    ]
    if notes:
        _arrow(ax, (MAIN_X, y_of[-2] - 0.035), (MAIN_X, y_of[-1] + 0.05))
        _box(ax, MAIN_X, y_of[-1], "\n".join(notes), SIDE_STYLE, WRAP_SIDE)
    if title:
        figure.suptitle(title)
    return figure
