"""Calibration (Brier, intercept and slope, Hosmer-Lemeshow, curves) and decision curves.

Predicted probabilities of outcome 1 are checked to lie in [0, 1]. Inputs may be numpy arrays
or pandas Series indexed by ``patient_id``; with a Series, error messages name the patients.
Every function that can fail on bad data takes ``context`` (e.g. ``"response in
external_A"``) so the message says which split and column are at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import logit
from statsmodels.genmod.families import Binomial
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.nonparametric.smoothers_lowess import lowess
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.tools import add_constant

from hccrad.core.seeding import rng_for
from hccrad.stats.checks import (
    ArrayLike,
    ScoreTable,
    check_binary_outcome,
    check_probabilities,
)

# Evaluated probabilities are clipped before logit so that a model predicting exactly 0 or 1
# does not produce infinite offsets in the calibration regressions. Far closer to 0 and 1 than
# the models' own clip (hccrad.models.base.SCORE_CLIP): here the clip should change the
# probabilities under evaluation as little as possible.
CALIBRATION_CLIP = 1e-8


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class CalibrationFit:
    """Calibration intercept (in the large) and slope with Wald CIs."""

    intercept: float
    intercept_ci_low: float
    intercept_ci_high: float
    slope: float
    slope_ci_low: float
    slope_ci_high: float


@dataclass(frozen=True)
class HosmerLemeshow:
    """Hosmer-Lemeshow goodness-of-fit statistic over risk groups."""

    statistic: float
    df: int
    p_value: float
    n_groups: int


def brier_score(y_true: ArrayLike, y_prob: ArrayLike, *, context: str = "outcome") -> float:
    """Mean squared difference between predicted probability and outcome."""
    y = check_binary_outcome(y_true, context=context)
    probabilities = check_probabilities(y_prob, y_true, context=context)
    return float(np.mean((probabilities - y) ** 2))


def _logit_clipped(probabilities: np.ndarray) -> np.ndarray:
    """Logit of probabilities clipped away from 0 and 1."""
    return logit(np.clip(probabilities, CALIBRATION_CLIP, 1 - CALIBRATION_CLIP))


def calibration_intercept_slope(
    y_true: ArrayLike, y_prob: ArrayLike, *, alpha: float = 0.05, context: str = "outcome"
) -> CalibrationFit:
    """Calibration-in-the-large (logit(p) as offset) and calibration slope (GLM on logit(p)).

    The slope and its CI are NaN when every probability is the same (a model that predicts the
    prevalence): a slope needs spread in the predictions; the intercept is still defined.
    """
    y = check_binary_outcome(y_true, context=context)
    linear_predictor = _logit_clipped(check_probabilities(y_prob, y_true, context=context))
    binomial = Binomial()
    # Intercept with the slope fixed at 1: is the average predicted risk right?
    in_the_large = GLM(y, np.ones((y.size, 1)), family=binomial, offset=linear_predictor).fit()
    intercept_ci = in_the_large.conf_int(alpha=alpha)[0]
    slope, slope_ci = np.nan, (np.nan, np.nan)
    if np.ptp(linear_predictor) > 0:
        # Slope: < 1 means predictions too extreme (overfitting), > 1 too modest.
        slope_fit = GLM(y, add_constant(linear_predictor), family=binomial).fit()
        slope, slope_ci = slope_fit.params[1], slope_fit.conf_int(alpha=alpha)[1]
    return CalibrationFit(
        intercept=float(in_the_large.params[0]),
        intercept_ci_low=float(intercept_ci[0]),
        intercept_ci_high=float(intercept_ci[1]),
        slope=float(slope),
        slope_ci_low=float(slope_ci[0]),
        slope_ci_high=float(slope_ci[1]),
    )


def _quantile_groups(probabilities: np.ndarray, n_groups: int) -> np.ndarray:
    """Group index per patient from quantiles of the predicted probability (ties kept together)."""
    edges = np.unique(np.quantile(probabilities, np.linspace(0, 1, n_groups + 1)))
    # Right-closed bins with the minimum in the first bin, like R's cut(include.lowest=TRUE).
    return np.clip(np.searchsorted(edges, probabilities, side="left") - 1, 0, edges.size - 2)


def hosmer_lemeshow(
    y_true: ArrayLike, y_prob: ArrayLike, *, n_groups: int = 10, context: str = "outcome"
) -> HosmerLemeshow:
    """Hosmer-Lemeshow test over quantile groups of predicted risk, with g - 2 df."""
    y = check_binary_outcome(y_true, context=context)
    probabilities = check_probabilities(y_prob, y_true, context=context)
    groups = _quantile_groups(probabilities, n_groups)
    frame = pd.DataFrame({"group": groups, "y": y, "p": probabilities})
    per_group = frame.groupby("group").agg(
        observed=("y", "sum"), expected=("p", "sum"), n=("y", "size")
    )
    groups_used = len(per_group)
    if groups_used < 3:
        # Ties in predicted risk can merge deciles; g - 2 df must stay positive.
        raise ValueError(
            f"{context}: Hosmer-Lemeshow needs at least 3 distinct risk groups, got {groups_used}"
        )
    expected_negative = per_group["n"] - per_group["expected"]
    statistic = float(
        ((per_group["observed"] - per_group["expected"]) ** 2 / per_group["expected"]).sum()
        + (
            ((per_group["n"] - per_group["observed"]) - expected_negative) ** 2 / expected_negative
        ).sum()
    )
    df = groups_used - 2
    return HosmerLemeshow(statistic, df, float(stats.chi2.sf(statistic, df)), groups_used)


def calibration_curve_table(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    *,
    n_bins: int = 10,
    strategy: str = "quantile",
    alpha: float = 0.05,
    context: str = "outcome",
) -> pd.DataFrame:
    """Observed fraction vs mean predicted probability per bin, with Wilson CIs per bin.

    Bins follow sklearn.calibration.calibration_curve ("uniform" or "quantile" edges);
    empty bins are dropped, as there.
    """
    y = check_binary_outcome(y_true, context=context)
    probabilities = check_probabilities(y_prob, y_true, context=context)
    if strategy == "quantile":
        edges = np.percentile(probabilities, np.linspace(0, 100, n_bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    # Same binning rule as sklearn: inner edges, right=True.
    bin_ids = np.searchsorted(edges[1:-1], probabilities, side="right")
    rows = []
    for bin_id in np.unique(bin_ids):
        in_bin = bin_ids == bin_id
        n, events = int(in_bin.sum()), int(y[in_bin].sum())
        low, high = proportion_confint(events, n, alpha=alpha, method="wilson")
        rows.append(
            {
                "bin": int(bin_id),
                "n": n,
                "events": events,
                "mean_predicted": float(probabilities[in_bin].mean()),
                "observed_fraction": events / n,
                "ci_low": float(low),
                "ci_high": float(high),
            }
        )
    return pd.DataFrame(rows)


def calibration_summary(
    y_true: ArrayLike, y_prob: ArrayLike, *, n_groups: int = 10, context: str = "outcome"
) -> dict[str, float]:
    """Brier score, calibration intercept and slope (with CIs) and Hosmer-Lemeshow in one record."""
    fit = calibration_intercept_slope(y_true, y_prob, context=context)
    hl = hosmer_lemeshow(y_true, y_prob, n_groups=n_groups, context=context)
    return {
        "brier": brier_score(y_true, y_prob, context=context),
        **asdict(fit),
        "hosmer_lemeshow": hl.statistic,
        "hosmer_lemeshow_df": hl.df,
        "hosmer_lemeshow_p": hl.p_value,
    }


# --------------------------------------------------------------------------- smoothed curve

# Span of the smoother: R's loess default, as in Austin & Steyerberg (Stat Med 2014) for
# calibration curves.
DEFAULT_LOESS_FRAC = 0.75
LOESS_POINTS = 50


def _smoothed(
    y: np.ndarray, probabilities: np.ndarray, grid: np.ndarray, frac: float
) -> np.ndarray:
    """Observed risk at ``grid`` by lowess of the outcome on the prediction, clipped to [0, 1]."""
    # it=0: robustness iterations would down-weight the 0/1 outcomes far from the fit, i.e. the
    # events among low predictions, which is the miscalibration to be shown (R's val.prob too).
    smooth = lowess(y.astype(float), probabilities, frac=frac, it=0, xvals=grid)
    # No extrapolation: a grid point outside this sample's predictions has no estimate.
    outside = (grid < probabilities.min()) | (grid > probabilities.max())
    return np.where(outside, np.nan, np.clip(smooth, 0.0, 1.0))


def loess_calibration_curve(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    *,
    frac: float = DEFAULT_LOESS_FRAC,
    n_resamples: int = 200,
    seed: int | None = None,
    alpha: float = 0.05,
    n_points: int = LOESS_POINTS,
    context: str = "outcome",
) -> pd.DataFrame:
    """Lowess-smoothed observed risk at ``n_points`` predictions, with a bootstrap band.

    The band is the percentile interval over ``n_resamples`` patient resamples (drawn from
    rng_for(seed)); without a seed, or where under half of the resamples reach a point, it is
    NaN. Columns: predicted, observed, ci_low, ci_high, n_resamples_used.
    """
    y = check_binary_outcome(y_true, context=context)
    probabilities = check_probabilities(y_prob, y_true, context=context)
    if not 0 < frac <= 1:
        raise ValueError(f"{context}: the loess span must be in (0, 1], got {frac}")
    if np.ptp(probabilities) == 0:
        raise ValueError(f"{context}: every predicted probability is the same; no curve to smooth")
    grid = np.linspace(probabilities.min(), probabilities.max(), n_points)
    table = pd.DataFrame({"predicted": grid, "observed": _smoothed(y, probabilities, grid, frac)})
    band = np.full((n_points, 2), np.nan)
    used = np.zeros(n_points, dtype=int)
    if seed is not None and n_resamples > 0:
        rng = rng_for(seed, "loess_calibration_bootstrap")
        curves = np.empty((n_resamples, n_points))
        for i in range(n_resamples):
            rows = rng.integers(0, y.size, y.size)
            curves[i] = _smoothed(y[rows], probabilities[rows], grid, frac)
        used = np.isfinite(curves).sum(axis=0)
        enough = used >= n_resamples / 2
        if enough.any():
            band[enough] = np.nanquantile(curves[:, enough], [alpha / 2, 1 - alpha / 2], axis=0).T
    return table.assign(ci_low=band[:, 0], ci_high=band[:, 1], n_resamples_used=used)


def integrated_calibration_index(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    *,
    frac: float = DEFAULT_LOESS_FRAC,
    context: str = "outcome",
) -> float:
    """Mean |smoothed observed - predicted risk| over patients (ICI, Austin & Steyerberg 2019)."""
    y = check_binary_outcome(y_true, context=context)
    probabilities = check_probabilities(y_prob, y_true, context=context)
    smooth = _smoothed(y, probabilities, probabilities, frac)
    return float(np.mean(np.abs(smooth - probabilities)))


# --------------------------------------------------------------------------- decision curves

TREAT_ALL = "treat_all"
TREAT_NONE = "treat_none"


def decision_curve(
    y_true: ArrayLike,
    probabilities: ScoreTable,
    *,
    thresholds: Sequence[float] | np.ndarray | None = None,
    context: str = "outcome",
) -> pd.DataFrame:
    """Net benefit per threshold for each model, treat-all and treat-none (dcurves), tidy."""
    y = check_binary_outcome(y_true, context=context)
    names = [str(name) for name in probabilities]
    reserved = {"all", "none", TREAT_ALL, TREAT_NONE, "_outcome"}
    clash = reserved.intersection(names)
    if clash:
        raise ValueError(f"{context}: model names {sorted(clash)} are reserved in decision curves")
    if thresholds is None:
        thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
    data = pd.DataFrame(
        {
            str(name): check_probabilities(
                probabilities[name], y_true, context=context, name=str(name)
            )
            for name in probabilities
        }
    )
    data["_outcome"] = y
    # Imported here: dcurves imports pyplot (~0.4 s), which most jobs of this module never use.
    from dcurves import dca

    curves = dca(data=data, outcome="_outcome", modelnames=names, thresholds=list(thresholds))
    curves["model"] = curves["model"].replace({"all": TREAT_ALL, "none": TREAT_NONE})
    columns = [
        "model",
        "threshold",
        "net_benefit",
        "net_intervention_avoided",
        "tp_rate",
        "fp_rate",
        "test_pos_rate",
        "n",
        "prevalence",
    ]
    return curves[columns].reset_index(drop=True)
