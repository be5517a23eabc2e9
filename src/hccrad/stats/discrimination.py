"""Discrimination of binary response models: DeLong AUC and tests, bootstrap CIs, thresholds.

Scores are "higher = more likely responder" (outcome 1). Inputs may be numpy arrays or
pandas Series indexed by ``patient_id``; with a Series, error messages name the patients.
Every function that can fail on bad data takes ``context`` (e.g. ``"response in
external_A"``) so the message says which split and column are at fault.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit, logit
from sklearn.metrics import roc_curve
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from hccrad.stats.checks import ArrayLike, ScoreTable, check_binary_outcome, check_scores


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
