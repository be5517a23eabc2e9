"""Figures of the response models: ROC, calibration, decision curves, Kaplan-Meier and forest plots.

Every function takes the tables that hccrad.reporting.evaluation.evaluate_predictions and
hccrad.reporting.survival.stratify_survival write, so a figure shows exactly the numbers of its
table. One panel per cohort (train, internal test, external pooled and per centre); colours per
model from hccrad.figures.style so a model looks the same in every figure.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

from hccrad.figures.style import MODEL_COLOURS, apply_style

FALLBACK_COLOURS = ("#44AA99", "#999933", "#882255", "#AA4499", "#117733", "#88CCEE")
GROUP_COLOURS: dict[str, str] = {"low": "#0072B2", "high": "#D55E00"}
PANEL_WIDTH_IN = 3.0
PANEL_HEIGHT_IN = 2.9
MAX_COLUMNS = 3


def model_colour(model: str, order: Sequence[str] = ()) -> str:
    """The colour of a model: the shared palette, else a fixed fallback by position."""
    palette = MODEL_COLOURS
    if model in palette:
        return palette[model]
    unknown = [m for m in order if m not in palette] or [model]
    position = unknown.index(model) if model in unknown else 0
    return FALLBACK_COLOURS[position % len(FALLBACK_COLOURS)]


def cohort_title(cohort: str, n: int | None = None) -> str:
    """Panel title of a cohort: readable split name and its size."""
    names = {"train": "Training", "internal_test": "Internal test", "external": "External (pooled)"}
    title = names.get(cohort, cohort.replace("external_", "External ").replace("_", " "))
    return f"{title} (n = {n})" if n is not None else title


def _panels(n_panels: int, height: float = PANEL_HEIGHT_IN) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure with ``n_panels`` axes on a grid of at most MAX_COLUMNS columns."""
    apply_style()
    n_columns = min(MAX_COLUMNS, max(n_panels, 1))
    n_rows = math.ceil(max(n_panels, 1) / n_columns)
    figure, axes = plt.subplots(
        n_rows,
        n_columns,
        figsize=(PANEL_WIDTH_IN * n_columns, height * n_rows),
        squeeze=False,
    )
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.axis("off")
    return figure, flat[:n_panels]


def _cohorts(table: pd.DataFrame, cohorts: Sequence[str] | None) -> list[str]:
    """Cohorts to draw: as given, else in the table's order."""
    return list(cohorts) if cohorts is not None else list(dict.fromkeys(table["cohort"]))


def _no_data(ax: plt.Axes, title: str, note: str) -> None:
    """A panel that says why it is empty."""
    ax.set_title(title)
    ax.text(
        0.5,
        0.5,
        textwrap.fill(note, 45),
        ha="center",
        va="center",
        fontsize=6,
        transform=ax.transAxes,
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _auc_label(model: str, row: pd.Series) -> str:
    """Legend entry: model AUC (95% CI)."""
    return f"{model} {row['auc']:.2f} ({row['ci_low']:.2f}-{row['ci_high']:.2f})"


def roc_figure(
    roc_curves: pd.DataFrame,
    auc: pd.DataFrame,
    *,
    title: str = "",
    cohorts: Sequence[str] | None = None,
) -> plt.Figure:
    """ROC curves of every model, one panel per cohort, AUC (95% DeLong CI) in the legend."""
    cohorts = _cohorts(auc, cohorts)
    figure, axes = _panels(len(cohorts))
    models = list(dict.fromkeys(auc["model"]))
    for ax, cohort in zip(axes, cohorts, strict=True):
        rows = auc[auc["cohort"] == cohort].set_index("model")
        n = int(rows["n"].iloc[0]) if len(rows) else None
        curves = roc_curves[roc_curves["cohort"] == cohort] if len(roc_curves) else roc_curves
        if curves.empty or rows["auc"].isna().all():
            _no_data(ax, cohort_title(cohort, n), "; ".join(rows["note"].dropna().unique())[:200])
            continue
        for model in models:
            curve = curves[curves["model"] == model]
            if curve.empty or pd.isna(rows.loc[model, "auc"]):
                continue
            label = _auc_label(model, rows.loc[model])
            # Straight segments between ROC points: tied scores give diagonal steps.
            ax.plot(
                curve["fpr"], curve["tpr"], color=model_colour(model, models), lw=1.2, label=label
            )
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.01),
            xlabel="1 - specificity",
            ylabel="Sensitivity",
            title=cohort_title(cohort, n),
            aspect="equal",
        )
        ax.legend(
            title="AUC (95% CI)", loc="lower right", fontsize=5.5, title_fontsize=6, framealpha=0.7
        )
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def calibration_figure(
    curves: pd.DataFrame,
    calibration: pd.DataFrame,
    *,
    title: str = "",
    cohorts: Sequence[str] | None = None,
) -> plt.Figure:
    """Observed vs predicted risk per bin for every model, one panel per cohort, Brier in legend."""
    cohorts = _cohorts(calibration, cohorts)
    figure, axes = _panels(len(cohorts))
    models = list(dict.fromkeys(calibration["model"]))
    for ax, cohort in zip(axes, cohorts, strict=True):
        summary = calibration[calibration["cohort"] == cohort].set_index("model")
        n = int(summary["n"].iloc[0]) if len(summary) else None
        bins = curves[curves["cohort"] == cohort] if len(curves) else curves
        if bins.empty:
            _no_data(ax, cohort_title(cohort, n), "; ".join(summary["note"].unique())[:200])
            continue
        for model in models:
            points = bins[bins["model"] == model]
            if points.empty:
                continue
            ax.plot(
                points["mean_predicted"],
                points["observed_fraction"],
                marker="o",
                ms=2.5,
                lw=1.0,
                color=model_colour(model, models),
                label=model,
            )
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="Predicted probability",
            ylabel="Observed fraction",
            title=cohort_title(cohort, n),
            aspect="equal",
        )
    _shared_legend(figure, axes)
    if title:
        figure.suptitle(title)
    return figure


def _shared_legend(figure: plt.Figure, axes: Sequence[plt.Axes]) -> None:
    """One legend for all panels, under them (panels share models and colours)."""
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    figure.tight_layout(rect=(0, 0.06, 1, 0.97))
    if labels:
        figure.legend(
            [handles[label] for label in labels],
            labels,
            loc="lower center",
            ncol=min(len(labels), 5),
            frameon=False,
            fontsize=7,
        )


def decision_curve_figure(
    curves: pd.DataFrame,
    *,
    title: str = "",
    cohorts: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
) -> plt.Figure:
    """Net benefit against threshold probability per model, treat-all and treat-none, per cohort."""
    cohorts = _cohorts(curves, cohorts)
    figure, axes = _panels(len(cohorts))
    drawn = list(models) if models is not None else list(dict.fromkeys(curves["model"]))
    for ax, cohort in zip(axes, cohorts, strict=True):
        cohort_curves = curves[curves["cohort"] == cohort] if len(curves) else curves
        if cohort_curves.empty:
            _no_data(ax, cohort_title(cohort), "decision curve not computable (see auc.tsv)")
            continue
        n = int(cohort_curves["n"].iloc[0])
        prevalence = float(cohort_curves["prevalence"].iloc[0])
        for model in [m for m in drawn if m not in ("treat_all", "treat_none")] + [
            "treat_all",
            "treat_none",
        ]:
            curve = cohort_curves[cohort_curves["model"] == model]
            if curve.empty:
                continue
            reference = model in ("treat_all", "treat_none")
            ax.plot(
                curve["threshold"],
                curve["net_benefit"],
                color=model_colour(model, drawn),
                lw=0.9 if reference else 1.1,
                ls=":" if reference else "-",
                label=model.replace("_", " ") if reference else model,
            )
        ax.set(
            xlim=(0, 1),
            ylim=(-0.05, max(prevalence, 0.05) + 0.05),
            xlabel="Threshold probability",
            ylabel="Net benefit",
            title=cohort_title(cohort, n),
        )
    _shared_legend(figure, axes)
    if title:
        figure.suptitle(title)
    return figure


def _censor_marks(curve: pd.DataFrame, censored_times: np.ndarray) -> np.ndarray:
    """KM survival just at each censored time, for the tick marks."""
    times, survival = curve["time"].to_numpy(), curve["survival"].to_numpy()
    positions = np.searchsorted(times, censored_times, side="right") - 1
    return survival[np.clip(positions, 0, len(survival) - 1)]


def km_figure(
    km_curves: pd.DataFrame,
    at_risk: pd.DataFrame,
    logrank: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    title: str = "",
    time_label: str = "Months",
    cohorts: Sequence[str] | None = None,
) -> plt.Figure:
    """Kaplan-Meier curves of the low and high risk groups per cohort, log-rank P and risk table.

    Inputs are one model's and one outcome's rows of stratify_survival's tables; ``patients``
    (risk_groups rows with a ``cohort`` column) gives the censoring marks.
    """
    cohorts = _cohorts(logrank, cohorts)
    figure, axes = _panels(len(cohorts), height=PANEL_HEIGHT_IN + 0.6)
    max_time = float(at_risk["time"].max()) if len(at_risk) else float(km_curves["time"].max())
    for ax, cohort in zip(axes, cohorts, strict=True):
        test = logrank[logrank["cohort"] == cohort].iloc[0]
        n = int(test["n_low"] + test["n_high"])
        for group in ("low", "high"):
            curve = km_curves[(km_curves["cohort"] == cohort) & (km_curves["group"] == group)]
            if curve.empty:
                continue
            colour = GROUP_COLOURS[group]
            ax.step(
                curve["time"],
                curve["survival"],
                where="post",
                color=colour,
                lw=1.2,
                label=f"{group} risk",
            )
            ax.fill_between(
                curve["time"],
                curve["ci_low"],
                curve["ci_high"],
                step="post",
                color=colour,
                alpha=0.12,
            )
            members = patients[(patients["cohort"] == cohort) & (patients["risk_group"] == group)]
            censored = np.sort(members.loc[members["event"] == 0, "time"].to_numpy(dtype=float))
            ax.plot(
                censored,
                _censor_marks(curve, censored),
                ls="none",
                marker="|",
                ms=4,
                color=colour,
            )
        p_text = (
            f"log-rank P = {test['p_value']:.3g}"
            if pd.notna(test.get("p_value"))
            else str(test.get("note", ""))[:60]
        )
        ax.text(0.97, 0.95, p_text, ha="right", va="top", transform=ax.transAxes, fontsize=6.5)
        ax.set(
            xlim=(0, max_time),
            ylim=(0, 1.02),
            xlabel=time_label,
            ylabel="Survival probability",
            title=cohort_title(cohort, n),
        )
        ax.legend(loc="lower left", fontsize=6, frameon=False)
        _risk_table(ax, at_risk[at_risk["cohort"] == cohort])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def _risk_table(ax: plt.Axes, at_risk: pd.DataFrame) -> None:
    """Numbers at risk per group under the x axis of a KM panel."""
    for row_index, group in enumerate(("low", "high")):
        rows = at_risk[at_risk["group"] == group]
        y = -0.32 - 0.09 * row_index
        ax.text(
            -0.1,
            y,
            group,
            transform=ax.transAxes,
            ha="right",
            va="center",
            fontsize=5.5,
            color=GROUP_COLOURS[group],
        )
        for _, row in rows.iterrows():
            ax.text(
                row["time"],
                y,
                str(int(row["at_risk"])),
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="center",
                fontsize=5.5,
                clip_on=False,
            )
    ax.text(-0.02, -0.23, "At risk", transform=ax.transAxes, ha="right", va="center", fontsize=5.5)


def forest_figure(cox: pd.DataFrame, *, title: str = "", models: Sequence[str] = ()) -> plt.Figure:
    """Hazard ratios with 95% CI of the multivariable Cox models, one panel per cohort.

    Rows are grouped by model: the high-risk group first, then the covariates it is adjusted for.
    """
    table = cox[cox["cox_model"] == "multivariable"] if "cox_model" in cox else cox
    if models:
        table = table[table["model"].isin(models)]
    cohorts = list(dict.fromkeys(table["cohort"]))
    order = list(models) or list(dict.fromkeys(table["model"]))
    n_rows = max(
        (len(table[(table["cohort"] == c)].dropna(subset=["hr"])) for c in cohorts), default=1
    )
    height = max(PANEL_HEIGHT_IN, 0.16 * (n_rows + len(order)) + 1.0)
    figure, axes = _panels(len(cohorts), height=height)
    for ax, cohort in zip(axes, cohorts, strict=True):
        rows = table[table["cohort"] == cohort]
        if rows["hr"].isna().all() if "hr" in rows else True:
            # Nothing estimable here (e.g. too few events): say why instead of empty axes.
            notes = rows["note"].astype(str).str.split(": ", n=1).str[-1].unique()
            _no_data(ax, cohort_title(cohort), "Not estimated: " + "; ".join(notes)[:300])
            continue
        labels, y = [], 0
        for model in order:
            model_rows = rows[rows["model"] == model]
            estimated = model_rows.dropna(subset=["hr"]) if "hr" in model_rows else model_rows[:0]
            if estimated.empty:
                note = str(model_rows["note"].iloc[0]) if len(model_rows) else "not estimated"
                labels.append((y, f"{model}: not estimated", "0.5"))
                ax.text(1.0, y, note[:50], fontsize=4.5, va="center", color="0.4")
                y += 1
                continue
            for _, row in estimated.iterrows():
                is_group = row["covariate"] == "high_risk"
                colour = model_colour(model, order) if is_group else "0.35"
                ax.errorbar(
                    row["hr"],
                    y,
                    xerr=[[row["hr"] - row["ci_low"]], [row["ci_high"] - row["hr"]]],
                    fmt="s" if is_group else "o",
                    ms=3,
                    color=colour,
                    elinewidth=0.9,
                    capsize=1.5,
                )
                name = f"{model}: high vs low risk" if is_group else f"   {row['covariate']}"
                estimate = f"{row['hr']:.2f} ({row['ci_low']:.2f}-{row['ci_high']:.2f})"
                labels.append((y, f"{name}  {estimate}", colour))
                y += 1
            y += 0.5
        ax.axvline(1.0, ls="--", color="0.6", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32]))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_yticks([pos for pos, _, _ in labels])
        ax.set_yticklabels([text for _, text, _ in labels], fontsize=5)
        for tick, (_, _, colour) in zip(ax.get_yticklabels(), labels, strict=True):
            tick.set_color(colour)
        ax.set_ylim(y, -1)
        events = rows["events"].dropna()
        n = rows["n"].dropna()
        subtitle = f" ({int(events.iloc[0])} events / {int(n.iloc[0])})" if len(n) else ""
        ax.set(xlabel="Hazard ratio (95% CI)", title=cohort_title(cohort) + subtitle)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
