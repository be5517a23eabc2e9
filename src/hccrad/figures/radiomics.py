"""The radiomics robustness figure: every feature's ICC(3,1) by PyRadiomics class."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hccrad.figures.style import journal_subplots


def icc_figure(icc: pd.DataFrame, threshold: float) -> Figure:
    """Strip plot of every feature's ICC(3,1) by PyRadiomics class, with the threshold."""
    table = icc.assign(
        feature_class=icc["feature"].map(lambda f: f.split("_")[-2] if "_" in f else f)
    )
    classes = sorted(table["feature_class"].unique())
    figure, axes = journal_subplots(2, 80.0)
    axis = axes[0, 0]
    rng = np.random.default_rng(0)  # jitter for display only
    for position, name in enumerate(classes):
        values = table.loc[table["feature_class"] == name]
        x = position + rng.uniform(-0.3, 0.3, len(values))
        colours = np.where(values["robust"].astype(bool), "#009E73", "#D55E00")
        axis.scatter(x, values["icc"].clip(lower=-0.2), s=5, c=colours, alpha=0.7, linewidths=0)
        kept = int(values["robust"].astype(bool).sum())
        axis.text(position, 1.04, f"{kept}/{len(values)}", ha="center")
    axis.axhline(threshold, color="black", linestyle="--", linewidth=0.8)
    axis.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    axis.set_ylim(-0.22, 1.1)
    axis.set_ylabel("ICC(3,1), original vs perturbed masks")
    axis.set_xlabel("PyRadiomics feature class (all phases and regions)")
    axis.set_title(
        f"Robustness to the contour: {int(icc['robust'].sum())} of {len(icc)} features "
        f"with ICC >= {threshold}\n(green kept, vermilion excluded; n robust/n above)",
        pad=12,
    )
    return figure
