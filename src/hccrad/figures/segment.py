"""Figures of the segmentation evaluation: predicted vs reference contours, and the mask ICC."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from hccrad.core.labels import TUMOUR_LABEL
from hccrad.figures.radiomics import icc_figure
from hccrad.figures.style import DOUBLE_COLUMN_MM, journal_subplots, panel_letters
from hccrad.segment.baseline import METHOD_BASELINE
from hccrad.segment.config import METHOD_NETWORK
from hccrad.segment.evaluate import read_predicted
from hccrad.segment.volumes import read_volume


def overlay_figure(
    patients: Sequence[str],
    folders: Mapping[str, str | Path],
    mask_dir: str | Path,
    metrics: pd.DataFrame,
    phase: str,
) -> Any:
    """Predicted vs reference contours on each patient's largest tumour slice (one panel each)."""
    columns = min(4, max(1, len(patients)))
    rows = int(np.ceil(len(patients) / columns))
    cell_mm = DOUBLE_COLUMN_MM / columns
    figure, axes = journal_subplots(2, (cell_mm + 8.0) * rows + 18.0, rows, columns)
    for axis in axes.flat:
        axis.set_axis_off()
    tumour = metrics[(metrics["structure"] == "tumour")].set_index(["patient_id", "method"])
    for axis, patient in zip(axes.flat, patients, strict=False):
        volume = read_volume(folders[patient], patient, [phase])
        assert volume.mask is not None
        predicted = read_predicted(mask_dir, patient, volume)
        z = int(np.argmax((volume.mask == TUMOUR_LABEL).sum(axis=(1, 2))))
        spacing = volume.spacing_zyx
        height, width = volume.mask.shape[1:]
        extent = (0, width * spacing[2], height * spacing[1], 0)
        axis.imshow(volume.image[0, z], cmap="gray", extent=extent, vmin=-4, vmax=4)
        for labels, colour, style in (
            (volume.mask[z], "#56B4E9", "solid"),
            (predicted[z], "#E69F00", "dashed"),
        ):
            axis.contour(
                (labels == TUMOUR_LABEL).astype(float),
                levels=[0.5],
                colors=colour,
                linestyles=style,
                linewidths=0.9,
                extent=(0, width * spacing[2], 0, height * spacing[1]),
                origin="upper",
            )
        network = tumour.loc[(patient, METHOD_NETWORK)]
        baseline = tumour.loc[(patient, METHOD_BASELINE)]
        axis.set_title(
            f"{patient} ({network['centre']}, {network['split']})\n"
            f"Dice U-Net++ {network['dice']:.2f}, Otsu {baseline['dice']:.2f}",
            fontsize=plt.rcParams["font.size"],
        )
        axis.plot([5, 55], [height * spacing[1] - 6] * 2, color="white", linewidth=1.5)
        axis.text(30, height * spacing[1] - 9, "50 mm", color="white", ha="center")
    handles = [
        Line2D([], [], color="#56B4E9", label="reference tumour"),
        Line2D([], [], color="#E69F00", linestyle="dashed", label="predicted tumour (U-Net++)"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    figure.suptitle(
        f"Predicted vs reference tumour contours, largest tumour slice ({phase} phase, z-score)"
    )
    shown = [axis for axis, _ in zip(axes.flat, patients, strict=False)]
    if len(shown) > 1:
        panel_letters(shown)
    return figure


def auto_icc_figure(icc: pd.DataFrame, threshold: float) -> Any:
    """The radiomics ICC strip plot, labelled for reference vs predicted masks."""
    figure = icc_figure(icc.rename(columns={"agrees": "robust"}), threshold)
    axis = figure.axes[0]
    axis.set_ylabel("ICC(3,1), reference vs predicted masks")
    axis.set_title(
        f"Radiomics from predicted masks: {int(icc['agrees'].sum())} of {len(icc)} features with "
        f"ICC >= {threshold}\n(n = {int(icc['n_patients'].iloc[0])} patients; green: agree)",
        pad=12,
    )
    return figure
