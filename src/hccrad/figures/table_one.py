"""Table 1 drawn as a figure, for the report and for a reviewer's eyes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from hccrad.figures.style import apply_style


def render_table(table: pd.DataFrame, title: str) -> plt.Figure:
    """Draw a table as a figure (for the report and for a reviewer's eyes)."""
    apply_style()
    n_rows, n_cols = table.shape
    figure, axis = plt.subplots(figsize=(1.6 + 1.25 * n_cols, 0.5 + 0.19 * n_rows))
    axis.axis("off")
    drawn = axis.table(
        cellText=table.fillna("").astype(str).to_numpy(),
        rowLabels=list(table.index),
        colLabels=list(table.columns),
        loc="upper left",
        cellLoc="center",
    )
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(6)
    drawn.scale(1.0, 1.1)
    axis.set_title(title, loc="left")
    return figure
