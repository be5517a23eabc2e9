"""Figures of the deep models: the architecture selection and the Grad-CAM panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt

from hccrad.deep.cam_panels import GradCamPanels
from hccrad.figures.style import DOUBLE_COLUMN_MM, MIN_FONT_PT, MODEL_COLOURS, journal_subplots

CAM_COLOURMAP = "inferno"


def grad_cam_figure(panels: GradCamPanels) -> plt.Figure:
    """The Grad-CAM figure: each patient's slice (tumour outlined) above its Grad-CAM overlay."""
    n = len(panels.patients)
    # A column of two images per patient across a double column, the colour bar at the right.
    cell_mm = min((DOUBLE_COLUMN_MM - 30.0) / n, 40.0)
    # One patient (hccrad predict's report) fits a single column.
    figure, axes = journal_subplots(1 if n == 1 else 2, 2 * cell_mm + 30.0, 2, n)
    shown = None
    for column in range(n):
        image, extent = panels.images[column], tuple(panels.extents_mm[column])
        low, high = np.percentile(image, [1, 99])
        for ax in axes[:, column]:
            ax.imshow(image, cmap="gray", vmin=low, vmax=high, extent=extent)
            if panels.tumour[column].any():
                ax.contour(
                    panels.tumour[column],
                    levels=[0.5],
                    colors="#56B4E9",
                    linewidths=0.7,
                    extent=extent,
                    origin="upper",
                )
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        shown = axes[1, column].imshow(
            panels.cams[column], cmap=CAM_COLOURMAP, vmin=0, vmax=1, alpha=0.55, extent=extent
        )
        axes[0, column].set_title(panels.titles[column], fontsize=MIN_FONT_PT)
    axes[0, 0].set_ylabel(f"{panels.phase.replace('_', ' ')} phase")
    axes[1, 0].set_ylabel("Grad-CAM overlay")
    if panels.has_spacing:
        _scale_bar(axes[0, 0])
    # One patient (hccrad predict): a bar beside the lower panel alone narrows it and the
    # constrained layout sets the two panels diagonally; beside both it keeps them in a column.
    beside = axes[1, :].tolist() if n > 1 else axes[:, 0].tolist()
    colorbar = figure.colorbar(shown, ax=beside, shrink=0.9)
    colorbar.set_label(f"Grad-CAM, {panels.architecture} {panels.layer}\n(0-1 per patient)")
    # On two lines in a single column, where one line would run off the page.
    breaking = "\n" if n == 1 else " "
    figure.suptitle(f"Where the network looks:{breaking}mid-tumour axial slice, tumour outlined")
    return figure


def _scale_bar(ax: plt.Axes) -> None:
    """A 10 mm bar in the lower left corner of a panel whose axes are in mm."""
    width = ax.get_xlim()[1]
    bottom = ax.get_ylim()[0]  # the image's last row: y grows downwards
    x0, y0 = 0.08 * width, 0.9 * bottom
    ax.plot([x0, x0 + 10.0], [y0, y0], color="white", linewidth=1.5)
    ax.text(x0 + 5.0, 0.86 * bottom, "10 mm", color="white", ha="center")


def selection_figure(table: pd.DataFrame, summary: pd.DataFrame, winner: str) -> plt.Figure:
    """Held-out-fold AUC of each architecture (points), mean and SD (bar), the winner marked."""
    order = list(summary["architecture"])
    figure, axes = journal_subplots(1, 11.0 * len(order) + 30.0)
    ax = axes[0, 0]
    rng = np.random.default_rng(0)  # fixed jitter: the figure is byte-reproducible
    for row, architecture in enumerate(order):
        aucs = table.loc[table["architecture"] == architecture, "auc"].to_numpy(dtype=float)
        stats = summary.set_index("architecture").loc[architecture]
        colour = MODEL_COLOURS["DLTR"] if architecture == winner else "#7F7F7F"
        ax.errorbar(
            stats["mean_auc"],
            row,
            xerr=0 if np.isnan(stats["sd_auc"]) else stats["sd_auc"],
            fmt="D",
            color=colour,
            capsize=3,
            markersize=5,
            zorder=3,
        )
        ax.scatter(aucs, row + rng.uniform(-0.18, 0.18, len(aucs)), s=10, color=colour, alpha=0.6)
    ax.axvline(0.5, color="black", linewidth=0.6, linestyle=":")
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([f"{a} (DLTR)" if a == winner else a for a in order])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    n_folds = int(table["fold"].max())
    ax.set_xlabel(f"Held-out fold AUC ({n_folds}-fold CV, training split only)")
    ax.set_title("Architecture selection:\nfolds (dots), mean ± SD (diamond)")
    return figure
