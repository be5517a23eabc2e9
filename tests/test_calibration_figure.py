"""Tests of the calibration figure (hccrad.figures.models.calibration_figure): the loess curve with
its bootstrap band over the binned points, and each model's intercept and slope with CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection

from hccrad.core.seeding import rng_for
from hccrad.figures.models import calibration_figure
from hccrad.stats.calibration import (
    calibration_curve_table,
    calibration_intercept_slope,
    loess_calibration_curve,
)

MODELS = ("clinical", "DLTR")


def evaluation_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Binned curves, calibration summary and loess curves of two models on two cohorts."""
    rng = rng_for(5, "test", "calibration_figure")
    curves, summary, loess = [], [], []
    for cohort, n in (("train", 120), ("internal_test", 60)):
        for shrink, model in zip((1.0, 0.5), MODELS, strict=True):
            p = rng.uniform(0.05, 0.95, n)
            y = (rng.uniform(size=n) < p).astype(int)
            # The second model is overconfident in logit: slope below one.
            logit = np.log(p / (1 - p)) / shrink
            score = 1 / (1 + np.exp(-logit))
            labels = {"model": model, "cohort": cohort}
            binned = calibration_curve_table(y, score, n_bins=5, strategy="quantile")
            curves.append(binned.assign(**labels))
            fit = calibration_intercept_slope(y, score)
            summary.append({**labels, "n": n, **fit.__dict__, "note": ""})
            curve = loess_calibration_curve(y, score, n_resamples=50, seed=3)
            loess.append(curve.assign(**labels))
    return pd.concat(curves), pd.DataFrame(summary), pd.concat(loess)


def test_loess_band_and_binned_points_are_drawn_per_model() -> None:
    curves, summary, loess = evaluation_tables()
    figure = calibration_figure(curves, summary, loess=loess, cohorts=["train", "internal_test"])
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["Training (n = 120)", "Internal test (n = 60)"]
    for ax, cohort in zip(panels, ["train", "internal_test"], strict=True):
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == len(MODELS)  # one bootstrap band per model
        lines = {id(line): line for line in ax.get_lines()}
        for model in MODELS:
            smooth = loess[(loess["cohort"] == cohort) & (loess["model"] == model)].dropna(
                subset=["observed"]
            )
            drawn = [
                line
                for line in lines.values()
                if len(line.get_xdata()) == len(smooth)
                and np.allclose(line.get_ydata(), smooth["observed"])
            ]
            assert drawn, f"loess curve of {model} in {cohort} not drawn"
            points = curves[(curves["cohort"] == cohort) & (curves["model"] == model)]
            assert any(
                line.get_linestyle() == "None"
                and np.allclose(line.get_ydata(), points["observed_fraction"])
                for line in lines.values()
                if len(line.get_ydata()) == len(points)
            ), f"binned points of {model} in {cohort} not drawn"


def test_legend_gives_intercept_and_slope_with_their_cis() -> None:
    curves, summary, loess = evaluation_tables()
    figure = calibration_figure(curves, summary, loess=loess, cohorts=["train", "internal_test"])
    legends = [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None]
    assert len(legends) == 2
    texts = [t.get_text() for t in legends[0].get_texts()]
    row = summary[(summary["cohort"] == "train") & (summary["model"] == "DLTR")].iloc[0]
    expected = (
        f"DLTR\n{row['intercept']:.2f} ({row['intercept_ci_low']:.2f}, "
        f"{row['intercept_ci_high']:.2f}); {row['slope']:.2f} ({row['slope_ci_low']:.2f}, "
        f"{row['slope_ci_high']:.2f})"
    ).replace("-", "\u2212")
    assert expected in texts
    assert legends[0].get_title().get_text() == "Intercept; slope (95% CI)"
    assert row["slope"] < 1  # the overconfident model's slope, shown as computed


def test_without_a_loess_table_the_binned_curve_is_drawn() -> None:
    curves, summary, _ = evaluation_tables()
    figure = calibration_figure(curves, summary, cohorts=["train"])
    ax = next(ax for ax in figure.axes if ax.get_title())
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert sum(line.get_linestyle() != "None" for line in ax.get_lines()) >= len(MODELS)
