"""Figures of the response models: ROC, calibration and decision curves, one panel per cohort.

Every function takes the tables that hccrad.reporting.evaluation.evaluate_predictions writes, so
a figure shows exactly the numbers of its table. One panel per cohort (train, internal test,
external pooled and per centre), lettered a, b, c; each model keeps its colour, line style and
marker (hccrad.figures.style) in every figure. Legends sit outside the data: per panel under
the axes where they carry the panel's own numbers (AUC), else one legend under all panels.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.gridspec import SubplotSpec

from hccrad.figures.panels import (
    cohort_title,
    cohorts_of,
    no_data,
    panel_grid,
    panels,
    shared_legend,
)
from hccrad.figures.style import model_style, panel_letters

# Square data area plus title, tick labels and axis label, in mm at print size.
SQUARE_PANEL_MM = 62.0
LEGEND_LINE_MM = 3.4


def _auc_label(model: str, row: pd.Series) -> str:
    """Legend entry: model AUC (95% CI)."""
    return f"{model} {row['auc']:.2f} ({row['ci_low']:.2f}-{row['ci_high']:.2f})"


def _plot_model(ax: Axes, x: object, y: object, model: str, order: Sequence[str], **kw) -> None:
    """One model's curve in its house style (colour, line style, a few markers)."""
    style = model_style(model, order)
    ax.plot(
        x,
        y,
        color=style.colour,
        ls=style.linestyle,
        marker=style.marker or None,
        markevery=kw.pop("markevery", 0.2),
        ms=3,
        lw=1.0,
        **kw,
    )


def _finish(figure: plt.Figure, axes: Sequence[Axes], title: str) -> plt.Figure:
    """Panel letters on multi-panel figures and the title."""
    if len(axes) > 1:
        panel_letters(axes)
    if title:
        figure.suptitle(title)
    return figure


def _panel_over_legend(
    figure: plt.Figure, cell: SubplotSpec, legend_mm: float
) -> tuple[Axes, Axes]:
    """A square data panel with its legend's own cell under it (no legend on the curves).

    Each panel has its own numbers (AUCs, calibration slopes); a legend on the curves hid half
    of them with seven models.
    """
    inner = cell.subgridspec(2, 1, height_ratios=[SQUARE_PANEL_MM - 14, legend_mm])
    ax, legend_ax = figure.add_subplot(inner[0]), figure.add_subplot(inner[1])
    legend_ax.axis("off")
    return ax, legend_ax


def roc_figure(
    roc_curves: pd.DataFrame,
    auc: pd.DataFrame,
    *,
    title: str = "",
    cohorts: Sequence[str] | None = None,
) -> plt.Figure:
    """ROC curves of every model, one panel per cohort, AUC (95% DeLong CI) in the legend."""
    cohorts = cohorts_of(auc, cohorts)
    models = list(dict.fromkeys(auc["model"]))
    legend_mm = LEGEND_LINE_MM * (len(models) + 1)
    figure, cells = panel_grid(len(cohorts), SQUARE_PANEL_MM + legend_mm)
    axes = []
    for cell, cohort in zip(cells, cohorts, strict=True):
        ax, legend_ax = _panel_over_legend(figure, cell, legend_mm)
        axes.append(ax)
        rows = auc[auc["cohort"] == cohort].set_index("model")
        n = int(rows["n"].iloc[0]) if len(rows) else None
        curves = roc_curves[roc_curves["cohort"] == cohort] if len(roc_curves) else roc_curves
        if curves.empty or rows["auc"].isna().all():
            no_data(ax, cohort_title(cohort, n), "; ".join(rows["note"].dropna().unique())[:200])
            continue
        for model in models:
            curve = curves[curves["model"] == model]
            if curve.empty or pd.isna(rows.loc[model, "auc"]):
                continue
            # Straight segments between ROC points: tied scores give diagonal steps.
            label = _auc_label(model, rows.loc[model])
            _plot_model(ax, curve["fpr"], curve["tpr"], model, models, label=label)
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.6)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.01),
            xlabel="1 - specificity",
            ylabel="Sensitivity",
            title=cohort_title(cohort, n),
            aspect="equal",
        )
        legend_ax.legend(
            *ax.get_legend_handles_labels(),
            title="AUC (95% CI)",
            loc="upper center",
            frameon=False,
            handlelength=2.8,
            borderaxespad=0,
        )
    return _finish(figure, axes, title)


def _number(value: float) -> str:
    """A calibration number with two decimals and a true minus sign; NaN as 'n/a'."""
    if pd.isna(value):
        return "n/a"
    # + 0.0 turns the -0.0 of a value that rounds to zero into 0.0: no "-0.00".
    return f"{round(float(value), 2) + 0.0:.2f}".replace("-", "\u2212")


def _calibration_label(model: str, row: pd.Series) -> str:
    """Legend entry: the model, then intercept (95% CI); slope (95% CI) on a second line."""
    intercept = (
        f"{_number(row['intercept'])} ({_number(row['intercept_ci_low'])}, "
        f"{_number(row['intercept_ci_high'])})"
    )
    if pd.isna(row["slope"]):
        return f"{model}\n{intercept}; slope n/a"
    slope = (
        f"{_number(row['slope'])} ({_number(row['slope_ci_low'])}, {_number(row['slope_ci_high'])})"
    )
    return f"{model}\n{intercept}; {slope}"


def _plot_loess(
    ax: Axes, curve: pd.DataFrame, model: str, order: Sequence[str], label: str
) -> None:
    """The smoothed curve in the model's style over its bootstrap band (where there is one)."""
    style = model_style(model, order)
    curve = curve.dropna(subset=["observed"])
    band = curve.dropna(subset=["ci_low", "ci_high"])
    if len(band):
        ax.fill_between(
            band["predicted"], band["ci_low"], band["ci_high"], color=style.colour, alpha=0.1, lw=0
        )
    ax.plot(curve["predicted"], curve["observed"], color=style.colour, ls=style.linestyle, lw=1.0)
    # The legend handle carries the marker of the binned points drawn with the curve.
    ax.plot([], [], color=style.colour, ls=style.linestyle, marker=style.marker, ms=3, label=label)


def calibration_figure(
    curves: pd.DataFrame,
    calibration: pd.DataFrame,
    *,
    loess: pd.DataFrame | None = None,
    title: str = "",
    cohorts: Sequence[str] | None = None,
) -> plt.Figure:
    """Loess calibration curve with its 95% band over the binned points, per cohort.

    Each panel's legend gives every model's calibration intercept and slope with their 95% CIs
    (calibration.tsv). Without ``loess`` the binned points are joined by lines instead.
    """
    cohorts = cohorts_of(calibration, cohorts)
    models = list(dict.fromkeys(calibration["model"]))
    # Two lines per model: a 61 mm panel cannot hold the name and four numbers on one.
    legend_mm = LEGEND_LINE_MM * (2 * len(models) + 1)
    figure, cells = panel_grid(len(cohorts), SQUARE_PANEL_MM + legend_mm)
    axes = []
    for cell, cohort in zip(cells, cohorts, strict=True):
        ax, legend_ax = _panel_over_legend(figure, cell, legend_mm)
        axes.append(ax)
        summary = calibration[calibration["cohort"] == cohort].set_index("model")
        n = int(summary["n"].iloc[0]) if len(summary) else None
        bins = curves[curves["cohort"] == cohort] if len(curves) else curves
        smooth = (
            loess[(loess["cohort"] == cohort) & loess["predicted"].notna()]
            if loess is not None and len(loess)
            else None
        )
        if bins.empty:
            no_data(ax, cohort_title(cohort, n), "; ".join(summary["note"].unique())[:200])
            continue
        for model in models:
            points = bins[bins["model"] == model]
            if points.empty:
                continue
            label = _calibration_label(model, summary.loc[model])
            curve = smooth[smooth["model"] == model] if smooth is not None else None
            if curve is None or curve.empty:
                _plot_model(
                    ax,
                    points["mean_predicted"],
                    points["observed_fraction"],
                    model,
                    models,
                    markevery=1,
                    label=label,
                )
                continue
            _plot_loess(ax, curve, model, models, label)
            style = model_style(model, models)
            ax.plot(
                points["mean_predicted"],
                points["observed_fraction"],
                ls="",
                marker=style.marker,
                ms=3,
                mfc="none",
                mew=0.7,
                color=style.colour,
            )
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.6)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="Predicted probability",
            ylabel="Observed fraction",
            title=cohort_title(cohort, n),
            aspect="equal",
        )
        legend_ax.legend(
            *ax.get_legend_handles_labels(),
            title="Intercept; slope (95% CI)",
            loc="upper center",
            frameon=False,
            handlelength=2.4,
            handletextpad=0.4,
            labelspacing=0.3,
            borderaxespad=0,
        )
    return _finish(figure, axes, title)


def decision_curve_figure(
    curves: pd.DataFrame,
    *,
    title: str = "",
    cohorts: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
) -> plt.Figure:
    """Net benefit against threshold probability per model, treat-all and treat-none, per cohort."""
    cohorts = cohorts_of(curves, cohorts)
    figure, axes = panels(len(cohorts), SQUARE_PANEL_MM - 8)
    drawn = list(models) if models is not None else list(dict.fromkeys(curves["model"]))
    references = ["treat_all", "treat_none"]
    for ax, cohort in zip(axes, cohorts, strict=True):
        cohort_curves = curves[curves["cohort"] == cohort] if len(curves) else curves
        if cohort_curves.empty:
            no_data(ax, cohort_title(cohort), "decision curve not computable (see auc.tsv)")
            continue
        n = int(cohort_curves["n"].iloc[0])
        prevalence = float(cohort_curves["prevalence"].iloc[0])
        for model in [m for m in drawn if m not in references] + references:
            curve = cohort_curves[cohort_curves["model"] == model]
            if curve.empty:
                continue
            reference = model in references
            _plot_model(
                ax,
                curve["threshold"],
                curve["net_benefit"],
                model,
                drawn,
                label=model.replace("_", " ") if reference else model,
            )
        ax.set(
            xlim=(0, 1),
            ylim=(-0.05, max(prevalence, 0.05) + 0.05),
            xlabel="Threshold probability",
            ylabel="Net benefit",
            title=cohort_title(cohort, n),
        )
    shared_legend(figure, axes, ncol=5)
    return _finish(figure, axes, title)
