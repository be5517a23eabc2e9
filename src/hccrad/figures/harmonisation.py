"""The harmonisation diagnostic: features before and after, coloured by centre, and how much of
each feature's variance lies between centres (tables of hccrad.radiomics.harmonise)."""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hccrad.figures.style import journal_subplots, panel_letters

# Okabe-Ito, the palette of the model styles, for up to eight centres; then repeated.
CENTRE_COLOURS = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#7F7F7F",
)
STAGE_TITLES = {"before": "Before harmonisation", "after": "After harmonisation"}


def _centre_colours(centres: list[str]) -> dict[str, str]:
    """A fixed colour per centre, in the order the centres are listed."""
    return {c: CENTRE_COLOURS[i % len(CENTRE_COLOURS)] for i, c in enumerate(centres)}


def _scatter_stage(ax: Axes, rows: pd.DataFrame, colours: dict[str, str]) -> None:
    """One stage's patients on PC1/PC2: filled if training, hollow otherwise."""
    for centre, colour in colours.items():
        for training, group in rows[rows["centre"] == centre].groupby(rows["split"] == "train"):
            ax.scatter(
                group["pc1"],
                group["pc2"],
                s=9,
                marker="o",
                facecolors=colour if training else "none",
                edgecolors=colour,
                linewidths=0.6,
                alpha=0.8,
            )


def harmonisation_figure(
    pca: pd.DataFrame, per_feature: pd.DataFrame, summary: pd.DataFrame, *, title: str = ""
) -> Figure:
    """PC1/PC2 before and after (one projection), and each feature's between-centre share."""
    figure, axes = journal_subplots(2, 70.0, 1, 3)
    before_ax, after_ax, share_ax = axes[0]
    colours = _centre_colours(list(dict.fromkeys(pca["centre"])))
    variance = pca[["pc1_variance", "pc2_variance"]].iloc[0]
    limits = [(pca[c].min(), pca[c].max()) for c in ("pc1", "pc2")]
    pads = [0.05 * (high - low or 1.0) for low, high in limits]
    for ax, stage in ((before_ax, "before"), (after_ax, "after")):
        _scatter_stage(ax, pca[pca["stage"] == stage], colours)
        ax.set(
            xlim=(limits[0][0] - pads[0], limits[0][1] + pads[0]),
            ylim=(limits[1][0] - pads[1], limits[1][1] + pads[1]),
            xlabel=f"PC1 ({variance['pc1_variance']:.0%} of training variance)",
            ylabel=f"PC2 ({variance['pc2_variance']:.0%})",
            title=STAGE_TITLES[stage],
        )
    means = summary.set_index("stage")["mean_between_centre_share"]
    share_ax.scatter(per_feature["before"], per_feature["after"], s=6, color="0.3", linewidths=0)
    top = max(float(per_feature[["before", "after"]].max().max()), 0.05) * 1.05
    share_ax.plot([0, top], [0, top], ls="--", color="0.6", lw=0.6)
    share_ax.set(
        xlim=(0, top),
        ylim=(0, top),
        aspect="equal",
        xlabel="Between-centre share, before",
        ylabel="Between-centre share, after",
        title=f"Mean share {means['before']:.3f} to {means['after']:.3f}",
    )
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, color=colour, label=f"centre {centre}")
        for centre, colour in colours.items()
    ] + [
        Line2D([], [], ls="", marker="o", ms=4, color="0.3", label="training"),
        Line2D([], [], ls="", marker="o", ms=4, mfc="none", color="0.3", label="test"),
    ]
    figure.legend(
        handles=handles,
        loc="outside lower center",
        ncol=len(handles),
        frameon=False,
        handletextpad=0.2,
    )
    panel_letters(axes[0])
    if title:
        figure.suptitle(title)
    return figure
