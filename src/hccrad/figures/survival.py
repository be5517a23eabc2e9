"""Survival figures: Kaplan-Meier curves with numbers at risk, and Cox forest plots.

Both take the tables of hccrad.reporting.survival.stratify_survival. In the Kaplan-Meier panels
the x ticks are the risk table's times, so each number at risk stands under its tick; the
y axis names what the outcome's curve estimates (progression-free, overall survival...).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from hccrad.figures.panels import cohort_title, cohorts_of, grid_shape, panel_grid
from hccrad.figures.style import journal_figure, model_style, panel_letters

GROUP_COLOURS: dict[str, str] = {"low": "#0072B2", "high": "#D55E00"}
GROUP_LINESTYLES: dict[str, str] = {"low": "-", "high": "--"}
# What a KM curve of each outcome estimates; other outcomes read "Probability without <name>".
OUTCOME_LABELS: dict[str, str] = {
    "os": "Survival probability",
    "pfs": "Progression-free survival probability",
    "ttp": "Probability without progression",
    "dfs": "Disease-free survival probability",
    "rfs": "Recurrence-free survival probability",
}
KM_PANEL_MM = 68.0
AT_RISK_GID = "at_risk"
# Forest x axis: hazard ratios beyond these are drawn as arrows at the edge, with their
# value in the label, so one absurd estimate (a sparse level) cannot squash every other row.
HR_AXIS_LIMITS = (1 / 64, 64.0)
FOREST_ROW_MM = 3.2
FOREST_COLUMNS = ("covariate", "hr", "ci_low", "ci_high", "n", "events", "note")


def outcome_label(outcome: str) -> str:
    """Y-axis label of an outcome's KM curve."""
    return OUTCOME_LABELS.get(outcome.lower(), f"Probability without {outcome.replace('_', ' ')}")


def _censor_marks(curve: pd.DataFrame, censored_times: np.ndarray) -> np.ndarray:
    """KM survival just at each censored time, for the tick marks."""
    times, survival = curve["time"].to_numpy(), curve["survival"].to_numpy()
    positions = np.searchsorted(times, censored_times, side="right") - 1
    return survival[np.clip(positions, 0, len(survival) - 1)]


def _km_curves(
    ax: Axes, km_curves: pd.DataFrame, patients: pd.DataFrame, cohort: str, max_time: float
) -> None:
    """Step curves, pointwise CI bands and censoring marks of the low and high risk groups."""
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
            ls=GROUP_LINESTYLES[group],
            lw=1.1,
            label=f"{group} risk",
        )
        ax.fill_between(
            curve["time"], curve["ci_low"], curve["ci_high"], step="post", color=colour, alpha=0.12
        )
        members = patients[(patients["cohort"] == cohort) & (patients["risk_group"] == group)]
        censored = np.sort(members.loc[members["event"] == 0, "time"].to_numpy(dtype=float))
        censored = censored[censored <= max_time]
        ax.plot(censored, _censor_marks(curve, censored), ls="none", marker="|", ms=3, color=colour)


def km_figure(
    km_curves: pd.DataFrame,
    at_risk: pd.DataFrame,
    logrank: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    title: str = "",
    outcome: str = "os",
    time_label: str = "Months",
    cohorts: Sequence[str] | None = None,
) -> plt.Figure:
    """Kaplan-Meier curves of the low and high risk groups per cohort, log-rank P and risk table.

    Inputs are one model's and one outcome's rows of stratify_survival's tables; ``patients``
    (risk_groups rows with a ``cohort`` column) gives the censoring marks. The x ticks are the
    risk table's times (the numbers at risk stand under them) and the axis ends at the last.
    """
    cohorts = cohorts_of(logrank, cohorts)
    figure, cells = panel_grid(len(cohorts), KM_PANEL_MM)
    times = np.sort(at_risk["time"].unique()) if len(at_risk) else np.array([])
    max_time = float(times[-1]) if len(times) else float(km_curves["time"].max())
    axes = []
    for cell, cohort in zip(cells, cohorts, strict=True):
        inner = cell.subgridspec(2, 1, height_ratios=[4, 1], hspace=0.0)
        ax = figure.add_subplot(inner[0])
        table_ax = figure.add_subplot(inner[1], sharex=ax)
        axes.append(ax)
        test = logrank[logrank["cohort"] == cohort].iloc[0]
        n = int(test["n_low"] + test["n_high"])
        _km_curves(ax, km_curves, patients, cohort, max_time)
        p_text = (
            f"Log-rank P = {test['p_value']:.2g}"
            if pd.notna(test.get("p_value"))
            else str(test.get("note", ""))[:60]
        )
        ax.set_title(f"{cohort_title(cohort, n)}\n{p_text}")
        ax.set(xlim=(0, max_time), ylim=(0, 1.02), xlabel=time_label, ylabel=outcome_label(outcome))
        if len(times):
            ax.set_xticks(times, [f"{t:g}" for t in times])
        _risk_table(table_ax, at_risk[at_risk["cohort"] == cohort], times)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    if len(axes) > 1:
        panel_letters(axes)
    if title:
        figure.suptitle(title)
    return figure


def _risk_table(ax: Axes, at_risk: pd.DataFrame, times: np.ndarray) -> None:
    """Numbers at risk per group on their own axes under a KM panel, each under its x tick."""
    for row_index, group in enumerate(("low", "high")):
        rows = at_risk[at_risk["group"] == group]
        for _, row in rows.iterrows():
            ax.text(
                float(row["time"]),
                row_index,
                str(int(row["at_risk"])),
                ha="center",
                va="center",
                color=GROUP_COLOURS[group],
                gid=AT_RISK_GID,
                clip_on=False,
            )
    ax.set_ylim(1.6, -0.6)
    ax.set_yticks([0, 1], ["low", "high"])
    for tick, group in zip(ax.get_yticklabels(), ("low", "high"), strict=True):
        tick.set_color(GROUP_COLOURS[group])
    ax.tick_params(axis="x", bottom=False, labelbottom=False)
    ax.tick_params(axis="y", left=False)
    ax.set_xticks(times)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("Number at risk", loc="left", fontsize=plt.rcParams["font.size"])


def _forest_rows(table: pd.DataFrame, order: Sequence[str]) -> list[tuple[str, str]]:
    """(model, covariate) rows of every cohort in model order: the risk group, then covariates."""
    rows: list[tuple[str, str]] = []
    for model in order:
        covariates = list(dict.fromkeys(table.loc[table["model"] == model, "covariate"].dropna()))
        covariates = sorted(covariates, key=lambda c: c != "high_risk")
        rows += [(model, c) for c in covariates] or [(model, "high_risk")]
    return rows


def _hr_ticks(low: float, high: float) -> list[float]:
    """Powers of two between the limits, at most seven of them (every other if more)."""
    ticks = [2.0**k for k in range(-8, 9) if low <= 2.0**k <= high]
    while len(ticks) > 7:
        ticks = ticks[::2] if 1.0 in ticks[::2] else ticks[1::2]
    return ticks


def _hr_tick_label(value: float, _position: object = None) -> str:
    """A power-of-two hazard ratio as print reads it: 4, 1, 1/4 (not 0.25 or 0.015625)."""
    return f"{value:g}" if value >= 1 else f"1/{1 / value:g}"


def _hr_limits(estimated: pd.DataFrame) -> tuple[float, float]:
    """X limits covering the finite CIs, never beyond HR_AXIS_LIMITS, always around 1."""
    values = estimated[["ci_low", "ci_high", "hr"]].to_numpy(dtype=float).ravel()
    values = values[np.isfinite(values) & (values > 0)]
    low = min(values.min(initial=1.0), 0.5)
    high = max(values.max(initial=1.0), 2.0)
    return max(low / 1.3, HR_AXIS_LIMITS[0]), min(high * 1.3, HR_AXIS_LIMITS[1])


def _draw_hr(ax: Axes, y: float, row: pd.Series, colour: str, marker: str, lim: tuple) -> None:
    """One estimate and its CI, clipped to the axis: an arrow and the value where it runs beyond."""
    low, high = lim
    hr = float(np.clip(row["hr"], low, high))
    ci_low = float(np.clip(np.nan_to_num(row["ci_low"], nan=low), low, high))
    ci_high = float(np.clip(np.nan_to_num(row["ci_high"], nan=high, posinf=high), low, high))
    ax.plot([ci_low, ci_high], [y, y], color=colour, lw=0.9)
    ax.plot([hr], [y], marker=marker, ms=3.5, color=colour, ls="none")
    for end, value, arrow in ((ci_low, row["ci_low"], "<"), (ci_high, row["ci_high"], ">")):
        if not np.isfinite(value) or not low < value < high:
            ax.plot([end], [y], marker=arrow, ms=3.5, color=colour, ls="none")
    if not low < row["hr"] < high:
        # The estimate itself is off the axis (a sparse level, separation): print it.
        at_low = row["hr"] <= low
        ax.annotate(
            f"HR {row['hr']:.2g}",
            (low if at_low else high, y),
            xytext=(3 if at_low else -3, 0),
            textcoords="offset points",
            ha="left" if at_low else "right",
            va="center",
            color=colour,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
        )


def _forest_label(model: str, covariate: str, estimated: bool) -> str:
    """Row label: what the hazard ratio compares (and that it is missing, if so)."""
    name = f"{model}: high vs low risk" if covariate == "high_risk" else f"    {covariate}"
    return name if estimated else f"{name} (n.e.)"


def forest_figure(cox: pd.DataFrame, *, title: str = "", models: Sequence[str] = ()) -> plt.Figure:
    """Hazard ratios with 95% CI of the multivariable Cox models, one panel per cohort.

    Rows are grouped by model: the high-risk group first, then the covariates it is adjusted
    for; every panel has the same rows (labelled once per row of panels; n.e. = not estimated
    in any cohort). Estimates and CIs beyond HR_AXIS_LIMITS end in an arrow at the axis edge,
    with the value printed, so a degenerate estimate cannot squash the other rows.
    """
    table = cox[cox["cox_model"] == "multivariable"] if "cox_model" in cox else cox
    if models:
        table = table[table["model"].isin(models)]
    # A table of notes only (no model could be fitted) lacks the estimate columns.
    absent = [c for c in FOREST_COLUMNS if c not in table]
    table = table.assign(**dict.fromkeys(absent, np.nan))
    cohorts = list(dict.fromkeys(table["cohort"]))
    order = list(models) or list(dict.fromkeys(table["model"]))
    rows = _forest_rows(table, order)
    n_rows, n_columns = grid_shape(len(cohorts))
    height = (FOREST_ROW_MM * (len(rows) + len(order)) + 24.0) * n_rows + 8.0
    figure = journal_figure(1 if len(cohorts) == 1 else 2, height)
    grid = figure.add_gridspec(n_rows, n_columns)
    estimated = table.dropna(subset=["hr"])
    lim = _hr_limits(estimated)
    axes: list[Axes] = []
    for i, cohort in enumerate(cohorts):
        ax = figure.add_subplot(grid[divmod(i, n_columns)], sharey=axes[0] if axes else None)
        axes.append(ax)
        cohort_rows = table[table["cohort"] == cohort]
        _forest_panel(ax, cohort_rows, estimated, rows, order, lim)
        if i % n_columns:
            ax.tick_params(axis="y", labelleft=False)
        if cohort_rows["hr"].isna().all():
            _not_estimated(ax, cohort_rows["note"])
        events, n = cohort_rows["events"].dropna(), cohort_rows["n"].dropna()
        subtitle = f"\n{int(events.iloc[0])} events / {int(n.iloc[0])}" if len(n) else ""
        ax.set_title(cohort_title(cohort) + subtitle)
    if len(axes) > 1:
        panel_letters(axes)
    if title:
        figure.suptitle(title)
    return figure


def _not_estimated(ax: Axes, notes: pd.Series) -> None:
    """Say why a cohort's model was not fitted, in place of an empty forest (no HR axis)."""
    reasons = []
    for note in notes.dropna().astype(str).unique():
        # "<outcome> by <model> in <cohort>: why" - the panel title already names the cohort;
        # a merged-level remark (always last) explains fitted rows, not a missing fit.
        why = note.split(": ", 1)[-1].split("rare levels merged", 1)[0].strip("; ")
        if why and why not in reasons:
            reasons.append(why)
    text = textwrap.shorten("; ".join(reasons) or "no estimate", width=240, placeholder=" ...")
    ax.text(
        0.5,
        0.5,
        "Not estimated:\n" + textwrap.fill(text, 34),
        transform=ax.transAxes,
        ha="center",
        va="center",
        linespacing=1.3,
    )
    ax.set_xticks([])
    ax.set_xlabel("")
    ax.tick_params(axis="y", left=False)
    for line in ax.get_lines():
        line.set_visible(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _forest_panel(
    ax: Axes,
    cohort_rows: pd.DataFrame,
    estimated: pd.DataFrame,
    rows: Sequence[tuple[str, str]],
    order: Sequence[str],
    lim: tuple[float, float],
) -> None:
    """One cohort's forest: every (model, covariate) row at the same height in every panel."""
    indexed = cohort_rows.dropna(subset=["hr"]).set_index(["model", "covariate"])
    anywhere = set(zip(estimated["model"], estimated["covariate"], strict=True))
    positions, labels, colours, y, previous = [], [], [], 0.0, None
    for model, covariate in rows:
        if previous is not None and model != previous:
            y += 1.0  # a gap between models
        previous = model
        is_group = covariate == "high_risk"
        colour = model_style(model, order).colour if is_group else "0.3"
        if (model, covariate) in indexed.index:
            row = indexed.loc[(model, covariate)]
            row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
            _draw_hr(ax, y, row, colour, "s" if is_group else "o", lim)
        positions.append(y)
        labels.append(_forest_label(model, covariate, (model, covariate) in anywhere))
        colours.append(colour)
        y += 1.0
    ax.axvline(1.0, ls="--", color="0.6", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlim(*lim)
    ax.xaxis.set_major_locator(FixedLocator(_hr_ticks(*lim)))
    ax.xaxis.set_major_formatter(FuncFormatter(_hr_tick_label))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yticks(positions, labels)
    for tick, colour in zip(ax.get_yticklabels(), colours, strict=True):
        tick.set_color(colour)
    ax.set_ylim(y, -1)
    ax.set_xlabel("Hazard ratio (95% CI)")
