"""Figures of gene-set enrichment: pathway dot plots, GSEA running scores, rho heatmaps."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib import colors
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from scipy.cluster import hierarchy

from hccrad.figures.style import journal_figure, journal_subplots, panel_letters
from hccrad.radiogenomics.enrich import (
    PrerankResult,
    running_enrichment_score,
    top_genes_by_rho,
    top_pathways,
)

# Words of Hallmark names kept upper case in figure labels.
ACRONYMS: frozenset[str] = frozenset(
    [
        "AKT",
        "DN",
        "DNA",
        "E2F",
        "G2M",
        "IL2",
        "IL6",
        "JAK",
        "KRAS",
        "MTOR",
        "MTORC1",
        "MYC",
        "NFKB",
        "P53",
        "PI3K",
        "STAT3",
        "STAT5",
        "TGF",
        "TNFA",
        "UP",
        "UV",
        "V1",
        "V2",
        "WNT",
    ]
)
UNDERFLOW_FLOOR = 1e-300  # an ORA P of 0 is a floating-point underflow


def pathway_label(pathway: str) -> str:
    """Readable pathway name: 'HALLMARK_TGF_BETA_SIGNALING' -> 'TGF beta signaling'."""
    words = re.sub(r"^HALLMARK_", "", pathway).split("_")
    words = [w if w in ACRONYMS else w.lower() for w in words]
    label = " ".join(words)
    return label[:1].upper() + label[1:]


def fdr_floor(table: pd.DataFrame) -> float:
    """Smallest FDR a table can resolve: 1/permutations for GSEA, the underflow limit for ORA."""
    if "permutations" in table:
        return 1.0 / float(table["permutations"].max())
    return UNDERFLOW_FLOOR


def format_fdr(fdr: float, floor: float) -> str:
    """FDR for a figure label; a permutation FDR of 0 reads '< 1/permutations'."""
    if np.isnan(fdr):
        # A set whose sign-matched null is too small has no FDR (its table row says why).
        return "not judged"
    return f"< {floor:.2g}" if fdr < floor else f"{fdr:.2g}"


def _size_column(table: pd.DataFrame) -> str:
    """The dot-size column: list overlap (ORA) or leading-edge size (GSEA)."""
    return "overlap" if "overlap" in table else "leading_edge_size"


def plot_enrichment_dots(
    table: pd.DataFrame,
    x: Literal["fdr", "nes"] = "fdr",
    n_pathways: int = 20,
    fdr_threshold: float = 0.05,
    title: str | None = None,
) -> Figure:
    """Dot plot of the top pathways: x = -log10 FDR or NES, size = overlap, colour = FDR."""
    if x == "nes" and "nes" not in table:
        raise ValueError("x='nes' needs a GSEA table (no 'nes' column)")
    top = top_pathways(table, n_pathways).iloc[::-1]  # best at the top of the axis
    fdr = top["fdr"].clip(lower=fdr_floor(table)).to_numpy()
    x_values = -np.log10(fdr) if x == "fdr" else top["nes"].to_numpy()
    sizes = top[_size_column(table)].to_numpy(dtype=float)
    area = 12 + 180 * sizes / max(sizes.max(), 1.0)
    figure, axes = journal_subplots(2, 30.0 + 5.0 * len(top))
    ax = axes[0, 0]
    norm = colors.LogNorm(vmin=min(fdr.min(), fdr_threshold / 10), vmax=1.0)
    dots = ax.scatter(
        x_values,
        np.arange(len(top)),
        s=area,
        c=fdr,
        cmap="viridis",
        norm=norm,
        edgecolors="black",
        linewidths=0.4,
        zorder=3,
    )
    ax.set_yticks(np.arange(len(top)), [pathway_label(p) for p in top["pathway"]])
    ax.set_ylim(-0.7, len(top) - 0.3)
    if x == "fdr":
        ax.axvline(-np.log10(fdr_threshold), color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlabel(r"$-\log_{10}$ FDR")
        ax.set_xlim(left=0)
    else:
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("Normalised enrichment score (NES)")
    colour_bar = figure.colorbar(dots, ax=ax, pad=0.02, fraction=0.04, shrink=0.6, aspect=15)
    colour_bar.set_label("FDR")
    legend_sizes = np.unique(np.linspace(max(sizes.min(), 1), max(sizes.max(), 1), 3).round())
    handles = [
        ax.scatter([], [], s=12 + 180 * s / max(sizes.max(), 1.0), c="white", edgecolors="black")
        for s in legend_sizes
    ]
    figure.legend(
        handles,
        [f"{int(s)}" for s in legend_sizes],
        title="Leading edge" if _size_column(table) == "leading_edge_size" else "Overlap",
        loc="outside right lower",
        frameon=False,
    )
    collection = f"{table['collection'].iat[0]} {table['collection_version'].iat[0]}"
    ax.set_title(title or collection)
    ax.grid(axis="x", linewidth=0.4, alpha=0.5, zorder=0)
    return figure


def plot_running_scores(
    result: PrerankResult, pathways: Sequence[str], weight: float = 1.0, n_columns: int = 2
) -> Figure:
    """GSEA running-score curves with hit ticks, one panel per pathway, NES and FDR in each."""
    pathways = [p for p in pathways if p in result.gene_sets]
    if not pathways:
        raise ValueError("none of the requested pathways was tested")
    rows_of_panels = int(np.ceil(len(pathways) / n_columns))
    figure = journal_figure(1 if n_columns == 1 else 2, 55.0 * rows_of_panels)
    panels = figure.add_gridspec(rows_of_panels, n_columns)
    rows = result.table.set_index("pathway")
    floor = fdr_floor(result.table)
    positions = np.arange(1, len(result.ranking) + 1)
    score_axes: list[plt.Axes] = []
    for i, pathway in enumerate(pathways):
        # Curve and hit ticks share a panel without a gap, as in the GSEA desktop plot.
        cell = panels[divmod(i, n_columns)].subgridspec(2, 1, height_ratios=[4, 1], hspace=0)
        score_ax = figure.add_subplot(cell[0])
        hits_ax = figure.add_subplot(cell[1], sharex=score_ax)
        score, hits = running_enrichment_score(result.ranking, result.gene_sets[pathway], weight)
        nes, fdr = rows.at[pathway, "nes"], rows.at[pathway, "fdr"]
        score_ax.plot(positions, score, color="#D55E00" if nes >= 0 else "#0072B2", linewidth=1.0)
        score_ax.axhline(0, color="grey", linewidth=0.6)
        score_ax.set_ylabel("Running ES")
        # NES and FDR in the title, not on the curve.
        score_ax.set_title(f"{pathway_label(pathway)}\nNES {nes:.2f}, FDR {format_fdr(fdr, floor)}")
        score_axes.append(score_ax)
        score_ax.tick_params(bottom=False, labelbottom=False)
        score_ax.spines["bottom"].set_visible(False)
        hits_ax.vlines(hits + 1, 0, 1, color="black", linewidth=0.4)
        hits_ax.set_yticks([])
        hits_ax.set_ylim(0, 1)
        hits_ax.spines["left"].set_visible(False)
        hits_ax.set_xlim(1, len(result.ranking))
        hits_ax.set_xlabel("Gene rank")
    if len(score_axes) > 1:
        panel_letters(score_axes)
    return figure


def _clustered_order(matrix: np.ndarray) -> np.ndarray:
    """Row order from average-linkage clustering (Euclidean), or as given for < 3 rows."""
    if len(matrix) < 3:
        return np.arange(len(matrix))
    return hierarchy.leaves_list(hierarchy.linkage(matrix, method="average", optimal_ordering=True))


def plot_rho_heatmap(
    rho: pd.DataFrame,
    n_genes: int = 40,
    gene_labels: Mapping[str, str] | None = None,
    cluster: bool = True,
    value_label: str = r"Spearman $\rho$",
    value_symbol: str = r"$\rho$",
    max_tick_labels: int = 60,
) -> Figure:
    """Heatmap of features (rows) x top genes (columns) of rho, symmetric colour bar."""
    genes = top_genes_by_rho(rho, n_genes)
    matrix = rho.loc[:, genes].fillna(0.0)
    if cluster:
        matrix = matrix.iloc[_clustered_order(matrix.to_numpy()), :]
        matrix = matrix.iloc[:, _clustered_order(matrix.to_numpy().T)]
    limit = float(np.nanmax(np.abs(matrix.to_numpy()))) or 1.0
    # A double column wide; a row per feature tall enough for its 7 pt label (capped at a page).
    height_mm = 60.0 + 3.0 * min(matrix.shape[0], max_tick_labels)
    figure, axes = journal_subplots(2, height_mm)
    ax = axes[0, 0]
    image = ax.imshow(
        matrix.to_numpy(),
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        aspect="auto",
        interpolation="nearest",
    )
    labels = [gene_labels.get(g, g) if gene_labels else g for g in matrix.columns]
    if matrix.shape[1] <= max_tick_labels:
        ax.set_xticks(np.arange(matrix.shape[1]), labels, rotation=90)
    else:
        ax.set_xticks([])
    if matrix.shape[0] <= max_tick_labels:
        ax.set_yticks(np.arange(matrix.shape[0]), [str(f) for f in matrix.index])
    else:
        ax.set_yticks([])
    ax.set_xlabel(f"Gene (top {matrix.shape[1]} by max |{value_symbol}|)")
    ax.set_ylabel("Imaging feature")
    for spine in ax.spines.values():
        spine.set_visible(False)
    colour_bar = figure.colorbar(image, ax=ax, pad=0.02, fraction=0.05)
    colour_bar.set_label(value_label)
    return figure
