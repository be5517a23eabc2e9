"""Discrimination, thresholds, calibration and decision curves of binary response models.

Scores are "higher = more likely responder" (outcome 1). Inputs may be numpy arrays or
pandas Series indexed by ``patient_id``; with a Series, error messages name the patients.
Every function that can fail on bad data takes ``context`` (e.g. ``"response in
external_A"``) so the message says which split and column are at fault.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from dcurves import dca
from scipy import stats
from scipy.special import expit, logit
from sklearn.metrics import roc_curve
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

from hccrad.core.config import known_keys

# Defined with the names the Snakefile's parse needs; imported from here by callers.
from hccrad.core.plan import EVALUATION_TABLES as EVALUATION_TABLES
from hccrad.core.seeding import rng_for
from hccrad.stats.checks import (
    ArrayLike,
    check_binary_outcome,
    check_probabilities,
    check_scores,
    error_note,
    name_patients,
)

ScoreTable = Mapping[str, ArrayLike] | pd.DataFrame

# Probabilities are clipped before logit so that a model predicting exactly 0 or 1
# does not produce infinite offsets in the calibration regressions.
PROBABILITY_EPS = 1e-8


def _score_matrix(
    scores: ScoreTable, y_true: ArrayLike, *, context: str
) -> tuple[list[str], np.ndarray]:
    """Model names and a (models x patients) score matrix, validated per model."""
    names = [str(name) for name in scores]
    if len(names) == 0:
        raise ValueError(f"{context}: no models given")
    matrix = np.vstack(
        [check_scores(scores[name], y_true, context=context, name=name) for name in scores]
    )
    return names, matrix


# --------------------------------------------------------------------------- DeLong AUC
# DeLong et al. (1988) variance of the AUC, computed with the fast algorithm of Sun & Xu
# (2014, IEEE Signal Process. Lett. 21:1389). Written here only because no maintained
# Python package provides DeLong's variance or paired test (sklearn, statsmodels and scipy
# give the AUC but not its DeLong covariance); tests check it against a bootstrap.


@dataclass(frozen=True)
class AUCResult:
    """AUC with its DeLong standard error and confidence interval."""

    auc: float
    se: float
    ci_low: float
    ci_high: float
    n_positive: int
    n_negative: int


@dataclass(frozen=True)
class PairedAUCTest:
    """Paired DeLong test of the difference in AUC between two models."""

    auc_a: float
    auc_b: float
    difference: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float


@dataclass(frozen=True)
class GlobalAUCTest:
    """DeLong chi-square test that several correlated AUCs are all equal."""

    aucs: dict[str, float]
    statistic: float
    df: int
    p_value: float


def delong_covariance(
    y_true: np.ndarray, score_matrix: np.ndarray, *, context: str = "outcome"
) -> tuple[np.ndarray, np.ndarray]:
    """AUC of each row of ``score_matrix`` and their DeLong covariance matrix (fast DeLong)."""
    positive = y_true == 1
    m = int(positive.sum())
    n = y_true.size - m
    if min(m, n) < 2:
        # The variance of the placement values needs two of each class.
        raise ValueError(
            f"{context}: DeLong variance needs at least 2 patients of each class, "
            f"got {m} with 1 and {n} with 0"
        )
    X = score_matrix[:, positive]
    Y = score_matrix[:, ~positive]
    # Midranks within positives, within negatives and in the pooled sample (Sun & Xu eq. 8-10);
    # "average" ranks give ties half credit, matching the Mann-Whitney AUC.
    rank_x = stats.rankdata(X, method="average", axis=1)
    rank_y = stats.rankdata(Y, method="average", axis=1)
    rank_z = stats.rankdata(np.hstack([X, Y]), method="average", axis=1)
    aucs = (rank_z[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    # Structural components: placement of each positive among negatives and vice versa.
    v10 = (rank_z[:, :m] - rank_x) / n
    v01 = 1.0 - (rank_z[:, m:] - rank_y) / m
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


def _normal_quantile(alpha: float) -> float:
    """Two-sided standard normal critical value for level ``alpha``."""
    return float(stats.norm.ppf(1 - alpha / 2))


def delong_auc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    alpha: float = 0.05,
    logit_ci: bool = False,
    context: str = "outcome",
) -> AUCResult:
    """AUC with DeLong standard error and a Wald CI (optionally on the logit scale)."""
    y = check_binary_outcome(y_true, context=context)
    scores = check_scores(y_score, y_true, context=context)
    aucs, covariance = delong_covariance(y, scores[np.newaxis, :], context=context)
    auc = float(aucs[0])
    se = float(np.sqrt(covariance[0, 0]))
    z = _normal_quantile(alpha)
    if logit_ci and 0.0 < auc < 1.0:
        # Delta method: se(logit AUC) = se / (AUC (1 - AUC)); keeps the CI inside (0, 1).
        half_width = z * se / (auc * (1 - auc))
        ci_low, ci_high = (
            float(expit(logit(auc) - half_width)),
            float(expit(logit(auc) + half_width)),
        )
    else:
        ci_low, ci_high = max(0.0, auc - z * se), min(1.0, auc + z * se)
    return AUCResult(auc, se, ci_low, ci_high, int(y.sum()), int(y.size - y.sum()))


def _paired_test(
    aucs: np.ndarray, covariance: np.ndarray, i: int, j: int, z_crit: float
) -> PairedAUCTest:
    """Paired DeLong z-test of AUC_i - AUC_j from a joint covariance matrix."""
    difference = float(aucs[i] - aucs[j])
    variance = covariance[i, i] + covariance[j, j] - 2 * covariance[i, j]
    se = float(np.sqrt(max(variance, 0.0)))
    if se == 0.0:
        # Identical rankings: no difference and nothing to test.
        z, p_value = 0.0, 1.0
    else:
        z = difference / se
        p_value = float(2 * stats.norm.sf(abs(z)))
    return PairedAUCTest(
        auc_a=float(aucs[i]),
        auc_b=float(aucs[j]),
        difference=difference,
        se=se,
        ci_low=difference - z_crit * se,
        ci_high=difference + z_crit * se,
        z=float(z),
        p_value=p_value,
    )


def delong_test(
    y_true: ArrayLike,
    score_a: ArrayLike,
    score_b: ArrayLike,
    *,
    alpha: float = 0.05,
    context: str = "outcome",
) -> PairedAUCTest:
    """Paired DeLong test of AUC(a) - AUC(b) for two models scored on the same patients."""
    y = check_binary_outcome(y_true, context=context)
    _, matrix = _score_matrix({"score_a": score_a, "score_b": score_b}, y_true, context=context)
    aucs, covariance = delong_covariance(y, matrix, context=context)
    return _paired_test(aucs, covariance, 0, 1, _normal_quantile(alpha))


def delong_global_test(
    y_true: ArrayLike, scores: ScoreTable, *, context: str = "outcome"
) -> GlobalAUCTest:
    """DeLong chi-square test of equal AUC across two or more models on the same patients."""
    y = check_binary_outcome(y_true, context=context)
    names, matrix = _score_matrix(scores, y_true, context=context)
    if len(names) < 2:
        raise ValueError(f"{context}: comparing AUCs needs at least two models, got {names}")
    aucs, covariance = delong_covariance(y, matrix, context=context)
    # Successive differences as contrasts (DeLong 1988, eq. 5); pinv and the rank as df
    # handle models with identical rankings, whose contrast covariance is singular.
    contrasts = np.eye(len(names))[:-1] - np.eye(len(names), k=1)[:-1]
    contrast_covariance = contrasts @ covariance @ contrasts.T
    differences = contrasts @ aucs
    statistic = float(differences @ np.linalg.pinv(contrast_covariance) @ differences)
    df = int(np.linalg.matrix_rank(contrast_covariance))
    p_value = float(stats.chi2.sf(statistic, df)) if df > 0 else 1.0
    return GlobalAUCTest(dict(zip(names, aucs.tolist(), strict=True)), statistic, df, p_value)


def delong_pairwise_table(
    y_true: ArrayLike,
    scores: ScoreTable,
    *,
    alpha: float = 0.05,
    p_adjust: str = "holm",
    context: str = "outcome",
) -> pd.DataFrame:
    """One row per pair of models: AUCs, difference with CI, DeLong z and P (raw and adjusted)."""
    y = check_binary_outcome(y_true, context=context)
    names, matrix = _score_matrix(scores, y_true, context=context)
    if len(names) < 2:
        raise ValueError(f"{context}: comparing AUCs needs at least two models, got {names}")
    aucs, covariance = delong_covariance(y, matrix, context=context)
    z_crit = _normal_quantile(alpha)
    rows = []
    for i, j in combinations(range(len(names)), 2):
        test = _paired_test(aucs, covariance, i, j, z_crit)
        rows.append({"model_a": names[i], "model_b": names[j], **asdict(test)})
    table = pd.DataFrame(rows)
    table["p_adjusted"] = multipletests(table["p_value"], method=p_adjust)[1]
    table["p_adjust_method"] = p_adjust
    return table


def bootstrap_auc_samples(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    n_resamples: int = 2000,
    seed: int,
    context: str = "outcome",
) -> np.ndarray:
    """AUCs of stratified bootstrap resamples (positives and negatives resampled separately)."""
    y = check_binary_outcome(y_true, context=context)
    scores = check_scores(y_score, y_true, context=context)
    rng = np.random.default_rng(seed)
    positives, negatives = scores[y == 1], scores[y == 0]
    m, n = positives.size, negatives.size
    # Stratified so each resample keeps the observed class counts and its AUC is defined.
    resampled = np.hstack(
        [
            positives[rng.integers(0, m, size=(n_resamples, m))],
            negatives[rng.integers(0, n, size=(n_resamples, n))],
        ]
    )
    ranks = stats.rankdata(resampled, method="average", axis=1)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)


def bootstrap_auc_ci(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    n_resamples: int = 2000,
    seed: int,
    alpha: float = 0.05,
    context: str = "outcome",
) -> tuple[float, float]:
    """Percentile CI of the AUC from a stratified, seeded bootstrap."""
    samples = bootstrap_auc_samples(
        y_true, y_score, n_resamples=n_resamples, seed=seed, context=context
    )
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


# --------------------------------------------------------------------------- thresholds


def youden_threshold(
    y_train: ArrayLike, score_train: ArrayLike, *, context: str = "train outcome"
) -> float:
    """Score threshold maximising sensitivity + specificity - 1 on training data.

    A patient is called positive when ``score >= threshold``. Ties in Youden's J go to
    the highest threshold (the most specific rule), as returned first by roc_curve.
    """
    y = check_binary_outcome(y_train, context=context)
    scores = check_scores(score_train, y_train, context=context)
    fpr, tpr, thresholds = roc_curve(y, scores, drop_intermediate=False)
    # roc_curve's first threshold is +inf (nobody positive); never the Youden optimum
    # unless J is 0 everywhere, in which case the highest finite score is used.
    youden = tpr[1:] - fpr[1:]
    return float(thresholds[1:][int(np.argmax(youden))])


def _proportion_row(
    metric: str, successes: int, trials: int, alpha: float, method: str
) -> dict[str, object]:
    """Estimate and CI of one proportion; NaN when its denominator is empty."""
    if trials == 0:
        return {
            "metric": metric,
            "estimate": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "numerator": successes,
            "denominator": trials,
        }
    low, high = proportion_confint(successes, trials, alpha=alpha, method=method)
    return {
        "metric": metric,
        "estimate": successes / trials,
        "ci_low": float(low),
        "ci_high": float(high),
        "numerator": successes,
        "denominator": trials,
    }


def threshold_metrics(
    y_true: ArrayLike,
    y_score: ArrayLike,
    threshold: float,
    *,
    alpha: float = 0.05,
    ci_method: str = "wilson",
    context: str = "outcome",
) -> pd.DataFrame:
    """Accuracy, sensitivity, specificity, PPV, NPV at ``score >= threshold`` with Wilson CIs."""
    y = check_binary_outcome(y_true, context=context)
    scores = check_scores(y_score, y_true, context=context)
    predicted = scores >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    tn = int(np.sum(~predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    rows = [
        _proportion_row("accuracy", tp + tn, y.size, alpha, ci_method),
        _proportion_row("sensitivity", tp, tp + fn, alpha, ci_method),
        _proportion_row("specificity", tn, tn + fp, alpha, ci_method),
        _proportion_row("ppv", tp, tp + fp, alpha, ci_method),
        _proportion_row("npv", tn, tn + fn, alpha, ci_method),
    ]
    table = pd.DataFrame(rows)
    table["threshold"] = float(threshold)
    return table


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
    return logit(np.clip(probabilities, PROBABILITY_EPS, 1 - PROBABILITY_EPS))


def calibration_intercept_slope(
    y_true: ArrayLike, y_prob: ArrayLike, *, alpha: float = 0.05, context: str = "outcome"
) -> CalibrationFit:
    """Calibration-in-the-large (logit(p) as offset) and calibration slope (GLM on logit(p)).

    The slope and its CI are NaN when every probability is the same (a model that predicts the
    prevalence): a slope needs spread in the predictions; the intercept is still defined.
    """
    y = check_binary_outcome(y_true, context=context)
    linear_predictor = _logit_clipped(check_probabilities(y_prob, y_true, context=context))
    binomial = sm.families.Binomial()
    # Intercept with the slope fixed at 1: is the average predicted risk right?
    in_the_large = sm.GLM(y, np.ones((y.size, 1)), family=binomial, offset=linear_predictor).fit()
    intercept_ci = in_the_large.conf_int(alpha=alpha)[0]
    slope, slope_ci = np.nan, (np.nan, np.nan)
    if np.ptp(linear_predictor) > 0:
        # Slope: < 1 means predictions too extreme (overfitting), > 1 too modest.
        slope_fit = sm.GLM(y, sm.add_constant(linear_predictor), family=binomial).fit()
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


# --------------------------------------------------------------------------- cohorts and settings

TRAIN = "train"
INTERNAL_TEST = "internal_test"
EXTERNAL = "external"
# Errors that mean "this metric cannot be computed on this cohort" (one class, too few
# patients, separation), written as a note instead of stopping the other cohorts' results.
METRIC_ERRORS: tuple[type[Exception], ...] = (ValueError, np.linalg.LinAlgError)


def evaluation_cohorts(patients: pd.DataFrame) -> dict[str, pd.Index]:
    """Patients per reported cohort: train, internal test, other splits, external, by centre.

    ``patients`` has one row per patient with ``split`` and ``centre``. Splits named
    ``external*`` are pooled as ``external``; with more than one external centre each centre
    is also a cohort, ``external_<centre>``.
    """
    splits = patients["split"].astype(str)
    is_external = splits.str.startswith(EXTERNAL).to_numpy()
    others = sorted(set(splits[~is_external]) - {TRAIN, INTERNAL_TEST})
    cohorts: dict[str, pd.Index] = {}
    for name in [TRAIN, INTERNAL_TEST, *others]:
        members = patients.index[(splits == name).to_numpy()]
        if len(members):
            cohorts[name] = members
    if is_external.any():
        cohorts[EXTERNAL] = patients.index[is_external]
        centres = patients.loc[is_external, "centre"].astype(str)
        if centres.nunique() > 1:
            for centre in sorted(centres.unique()):
                cohorts[f"{EXTERNAL}_{centre}"] = centres.index[(centres == centre).to_numpy()]
    return cohorts


@dataclass(frozen=True)
class EvaluationSettings:
    """The ``evaluation`` section of the config; every key is optional."""

    alpha: float = 0.05
    logit_auc_ci: bool = False
    p_adjust: str = "holm"
    bootstrap: bool = False
    bootstrap_resamples: int = 2000
    calibration_bins: int = 5
    calibration_strategy: str = "quantile"
    hosmer_lemeshow_groups: int = 10
    decision_thresholds: tuple[float, float, float] = (0.01, 0.99, 0.01)

    def thresholds(self) -> np.ndarray:
        """Threshold probabilities of the decision curves (start, stop inclusive, step)."""
        start, stop, step = self.decision_thresholds
        return np.round(np.arange(start, stop + step / 2, step), 6)


def evaluation_settings(cfg: Mapping[str, object] | None) -> EvaluationSettings:
    """EvaluationSettings from the config's ``evaluation`` section, rejecting unknown keys."""
    cfg = known_keys(EvaluationSettings, cfg or {}, "evaluation")
    if "decision_thresholds" in cfg:
        cfg["decision_thresholds"] = tuple(cfg["decision_thresholds"])  # type: ignore[arg-type]
    settings = EvaluationSettings(**cfg)  # type: ignore[arg-type]
    start, stop, step = settings.decision_thresholds
    if not (0 < start <= stop < 1 and step > 0):
        raise ValueError(
            "evaluation config: decision_thresholds must be [start, stop, step] with "
            f"0 < start <= stop < 1 and step > 0, got {list(settings.decision_thresholds)}"
        )
    return settings


# --------------------------------------------------------------------------- predictions


def prediction_matrix(predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patients (split, centre, outcome) and their scores (patients x models) from a long table.

    ``predictions`` is hccrad.models.fit.predict_all's long table (one endpoint). Models keep the
    order of their first appearance; every model must score the same patients once.
    """
    required = ["patient_id", "split", "centre", "model", "score", "outcome"]
    missing = [c for c in required if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions: missing column(s) {missing}")
    if "endpoint" in predictions and predictions["endpoint"].nunique() > 1:
        raise ValueError(
            f"predictions: one endpoint expected, got {sorted(predictions['endpoint'].unique())}"
        )
    duplicated = predictions.duplicated(["patient_id", "model"])
    if duplicated.any():
        raise ValueError(
            "predictions: patient scored twice by one model: "
            f"{name_patients(predictions.loc[duplicated, 'patient_id'].unique())}"
        )
    models = list(dict.fromkeys(predictions["model"]))
    scores = predictions.pivot(index="patient_id", columns="model", values="score")
    incomplete = scores.isna().any(axis=1)
    if incomplete.any():
        raise ValueError(
            "predictions: not every model scores these patients: "
            f"{name_patients(scores.index[incomplete.to_numpy()])}"
        )
    patients = predictions.drop_duplicates("patient_id").set_index("patient_id")
    patients = patients[["split", "centre", "outcome"]]
    return patients, scores.loc[patients.index, models]


# --------------------------------------------------------------------------- evaluation tables


def _auc_rows(
    y: pd.Series,
    scores: pd.DataFrame,
    cohort: str,
    settings: EvaluationSettings,
    seed: int | None,
) -> list[dict[str, object]]:
    """AUC with DeLong CI (and optional bootstrap CI) per model on one cohort."""
    rows = []
    for model in scores.columns:
        context = f"model {model} in {cohort}"
        row: dict[str, object] = {"model": model, "cohort": cohort, "n": len(y)}
        try:
            result = delong_auc(
                y,
                scores[model],
                alpha=settings.alpha,
                logit_ci=settings.logit_auc_ci,
                context=context,
            )
            row |= asdict(result)
            row["ci_method"] = "DeLong, logit" if settings.logit_auc_ci else "DeLong, Wald"
            if settings.bootstrap:
                if seed is None:
                    raise ValueError("bootstrap CIs need a seed")
                low, high = bootstrap_auc_ci(
                    y,
                    scores[model],
                    n_resamples=settings.bootstrap_resamples,
                    seed=_stream_seed(seed, "bootstrap_auc", model, cohort),
                    alpha=settings.alpha,
                    context=context,
                )
                row |= {"bootstrap_ci_low": low, "bootstrap_ci_high": high}
            row["note"] = ""
        except METRIC_ERRORS as error:
            row["note"] = error_note(error)
        rows.append(row)
    return rows


def _stream_seed(seed: int, *labels: str) -> int:
    """An integer seed for one named purpose, derived from the config seed."""
    return int(rng_for(seed, *labels).integers(2**31 - 1))


def _threshold_rows(
    y: pd.Series,
    scores: pd.DataFrame,
    cohort: str,
    thresholds: Mapping[str, float],
    settings: EvaluationSettings,
) -> list[dict[str, object]]:
    """Accuracy, sensitivity, specificity, PPV and NPV at each model's training threshold."""
    rows: list[dict[str, object]] = []
    for model in scores.columns:
        if model not in thresholds:
            raise ValueError(f"thresholds: no training threshold for model {model!r}")
        try:
            table = threshold_metrics(
                y,
                scores[model],
                float(thresholds[model]),
                alpha=settings.alpha,
                context=f"model {model} in {cohort}",
            )
            rows += table.assign(model=model, cohort=cohort, note="").to_dict("records")
        except METRIC_ERRORS as error:
            rows.append(
                {
                    "model": model,
                    "cohort": cohort,
                    "threshold": float(thresholds[model]),
                    "note": error_note(error),
                }
            )
    return rows


def _calibration_rows(
    y: pd.Series, scores: pd.DataFrame, cohort: str, settings: EvaluationSettings
) -> tuple[list[dict[str, object]], list[pd.DataFrame]]:
    """Calibration summary rows and calibration-curve bins per model on one cohort."""
    rows, curves = [], []
    for model in scores.columns:
        context = f"model {model} in {cohort}"
        row: dict[str, object] = {"model": model, "cohort": cohort, "n": len(y)}
        notes = []
        try:
            row["brier"] = brier_score(y, scores[model], context=context)
            curves.append(
                calibration_curve_table(
                    y,
                    scores[model],
                    n_bins=settings.calibration_bins,
                    strategy=settings.calibration_strategy,
                    alpha=settings.alpha,
                    context=context,
                ).assign(model=model, cohort=cohort)
            )
        except METRIC_ERRORS as error:
            notes.append(error_note(error))
        # Each statistic on its own: a separation in the slope fit leaves Brier and HL usable.
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PerfectSeparationWarning)
                row |= asdict(
                    calibration_intercept_slope(
                        y, scores[model], alpha=settings.alpha, context=context
                    )
                )
            if np.isnan(row["slope"]):
                notes.append("calibration slope: every score is the same, slope not defined")
            elif any(issubclass(w.category, PerfectSeparationWarning) for w in caught):
                # Scores that separate the classes (an overfitted model on training) make the
                # slope unidentifiable; its huge value and CI are kept but flagged.
                notes.append("calibration slope: perfect separation, slope not identified")
        except (*METRIC_ERRORS, PerfectSeparationError) as error:
            notes.append(f"calibration slope/intercept: {error_note(error)}")
        try:
            hl = hosmer_lemeshow(
                y, scores[model], n_groups=settings.hosmer_lemeshow_groups, context=context
            )
            row |= {
                "hosmer_lemeshow": hl.statistic,
                "hosmer_lemeshow_df": hl.df,
                "hosmer_lemeshow_p": hl.p_value,
            }
        except METRIC_ERRORS as error:
            notes.append(f"Hosmer-Lemeshow: {error_note(error)}")
        row["note"] = "; ".join(dict.fromkeys(notes))
        rows.append(row)
    return rows, curves


def _roc_rows(y: pd.Series, scores: pd.DataFrame, cohort: str) -> list[pd.DataFrame]:
    """ROC curve points (false and true positive rate per threshold) per model on one cohort."""
    curves = []
    for model in scores.columns:
        try:
            y_int = check_binary_outcome(y, context=f"model {model} in {cohort}")
        except METRIC_ERRORS:
            return []  # the AUC table carries the note
        fpr, tpr, cut = roc_curve(y_int, scores[model].to_numpy(dtype=float))
        curves.append(
            pd.DataFrame(
                {"model": model, "cohort": cohort, "threshold": cut, "fpr": fpr, "tpr": tpr}
            )
        )
    return curves


def evaluate_predictions(
    predictions: pd.DataFrame,
    thresholds: Mapping[str, float],
    settings: EvaluationSettings | None = None,
    *,
    seed: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Every evaluation table of one endpoint's predictions, per model and cohort.

    Returns ``auc`` (DeLong CI, optional bootstrap CI), ``threshold_metrics`` (at each
    model's training Youden threshold), ``delong`` (pairwise tests), ``calibration``
    (Brier, intercept, slope, Hosmer-Lemeshow), ``calibration_curves``, ``decision_curves``
    and ``roc_curves``. A metric that cannot be computed on a cohort (e.g. a single class)
    is a row whose ``note`` says why; the other cohorts are unaffected.
    """
    settings = settings or EvaluationSettings()
    patients, scores = prediction_matrix(predictions)
    auc_rows: list[dict[str, object]] = []
    threshold_rows: list[dict[str, object]] = []
    calibration_rows: list[dict[str, object]] = []
    calibration_curves: list[pd.DataFrame] = []
    delong_tables: list[pd.DataFrame] = []
    decision_tables: list[pd.DataFrame] = []
    roc_tables: list[pd.DataFrame] = []
    for cohort, members in evaluation_cohorts(patients).items():
        y = patients.loc[members, "outcome"]
        cohort_scores = scores.loc[members]
        auc_rows += _auc_rows(y, cohort_scores, cohort, settings, seed)
        threshold_rows += _threshold_rows(y, cohort_scores, cohort, thresholds, settings)
        rows, curves = _calibration_rows(y, cohort_scores, cohort, settings)
        calibration_rows += rows
        calibration_curves += curves
        roc_tables += _roc_rows(y, cohort_scores, cohort)
        try:
            delong_tables.append(
                delong_pairwise_table(
                    y,
                    cohort_scores,
                    alpha=settings.alpha,
                    p_adjust=settings.p_adjust,
                    context=f"{cohort}",
                ).assign(cohort=cohort, note="")
            )
        except METRIC_ERRORS as error:
            delong_tables.append(pd.DataFrame([{"cohort": cohort, "note": error_note(error)}]))
        # Where a decision curve cannot be drawn, the AUC and calibration tables carry the note.
        with suppress(*METRIC_ERRORS):
            decision_tables.append(
                decision_curve(
                    y, cohort_scores, thresholds=settings.thresholds(), context=f"{cohort}"
                ).assign(cohort=cohort)
            )
    return {
        "auc": _first(pd.DataFrame(auc_rows), ["model", "cohort"]),
        "threshold_metrics": _first(pd.DataFrame(threshold_rows), ["model", "cohort", "metric"]),
        "delong": _first(pd.concat(delong_tables, ignore_index=True), ["cohort"]),
        "calibration": _first(pd.DataFrame(calibration_rows), ["model", "cohort"]),
        "calibration_curves": _first(_concat(calibration_curves), ["model", "cohort"]),
        "decision_curves": _first(_concat(decision_tables), ["cohort", "model"]),
        "roc_curves": _first(_concat(roc_tables), ["model", "cohort"]),
    }


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Frames stacked, or an empty frame when there are none."""
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _first(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``table`` with ``columns`` (those present) moved to the front."""
    front = [c for c in columns if c in table.columns]
    return table[front + [c for c in table.columns if c not in front]]
