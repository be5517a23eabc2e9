"""Figures of differential expression: the volcano plot."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from hccrad.figures.style import journal_subplots

UP_COLOUR, DOWN_COLOUR, OTHER_COLOUR = "#D55E00", "#0072B2", "#BBBBBB"


def _spread_down(heights: np.ndarray, gap: float) -> np.ndarray:
    """Label heights from highest to lowest, pushed down so neighbours are >= gap apart."""
    spread = heights.astype(float).copy()
    for i in range(1, len(spread)):
        spread[i] = min(spread[i], spread[i - 1] - gap)
    return spread


def _widen_to_fit(ax: plt.Axes, texts: list[plt.Text]) -> None:
    """Widen the x axis symmetrically until every label lies inside it."""
    for _ in range(4):  # the text extents move in data units as the limits change
        ax.figure.canvas.draw()
        to_data = ax.transData.inverted()
        extents = [to_data.transform(t.get_window_extent())[:, 0] for t in texts]
        needed = max([abs(x) for extent in extents for x in extent], default=0.0)
        limit = max(abs(x) for x in ax.get_xlim())
        if needed <= limit:
            return
        ax.set_xlim(-1.05 * needed, 1.05 * needed)


def plot_volcano(
    results: pd.DataFrame,
    padj_threshold: float = 0.05,
    lfc_threshold: float = 1.0,
    n_labels: int = 10,
    gene_labels: Mapping[str, str] | None = None,
    shrunk: bool = True,
    title: str | None = None,
) -> Figure:
    """Volcano plot: log2 fold change vs -log10 padj, thresholds drawn, top genes labelled."""
    lfc_column = "log2FoldChange_shrunk" if shrunk else "log2FoldChange"
    if results[lfc_column].isna().all():
        lfc_column = "log2FoldChange"  # fitted without shrinkage
    shown = results.dropna(subset=[lfc_column, "padj"])
    lfc = shown[lfc_column].to_numpy()
    # padj of 0 (underflow) sits at the top of the axis rather than at infinity.
    padj = shown["padj"].clip(lower=np.finfo(float).tiny).to_numpy()
    height = -np.log10(padj)
    significant = padj < padj_threshold
    up = significant & (lfc >= lfc_threshold)
    down = significant & (lfc <= -lfc_threshold)
    other = ~(up | down)
    figure, axes = journal_subplots(1, 85.0)
    ax = axes[0, 0]
    for mask, colour, label in (
        (other, OTHER_COLOUR, "other"),
        (up, UP_COLOUR, f"up ({up.sum()})"),
        (down, DOWN_COLOUR, f"down ({down.sum()})"),
    ):
        ax.scatter(lfc[mask], height[mask], s=6, c=colour, linewidths=0, label=label, zorder=2)
    ax.axhline(-np.log10(padj_threshold), color="black", linestyle="--", linewidth=0.6)
    for x in (-lfc_threshold, lfc_threshold):
        ax.axvline(x, color="black", linestyle="--", linewidth=0.6)
    # Label the most significant genes beyond both thresholds, ties broken by gene id.
    labelled = shown.assign(_height=height)[up | down]
    labelled = labelled.sort_values(["padj", "gene"], kind="stable").head(n_labels)
    x_extent = max(np.abs(lfc).max(), lfc_threshold)
    labels = []
    y_gap = 0.07 * max(height.max(), 1.0)  # 7 pt labels on an 89 mm figure need the room
    for direction in (1, -1):
        side = labelled[np.sign(labelled[lfc_column]) == direction]
        side = side.sort_values(["_height", "gene"], ascending=[False, True], kind="stable")
        for (_, row), text_y in zip(
            side.iterrows(), _spread_down(side["_height"].to_numpy(), y_gap), strict=True
        ):
            name = gene_labels.get(row["gene"], row["gene"]) if gene_labels else row["gene"]
            text = ax.annotate(
                name,
                (row[lfc_column], row["_height"]),
                xytext=(row[lfc_column] + direction * 0.15 * x_extent, text_y),
                ha="left" if direction > 0 else "right",
                va="center",
                arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.4},
            )
            labels.append(text)
    _widen_to_fit(ax, labels)
    shrink_note = " (apeglm)" if lfc_column.endswith("shrunk") else ""
    ax.set_xlabel(rf"$\log_2$ fold change{shrink_note}")
    ax.set_ylabel(r"$-\log_{10}$ adjusted P")
    figure.legend(frameon=False, loc="outside lower center", ncol=3, markerscale=2)
    if title:
        ax.set_title(title)
    return figure
