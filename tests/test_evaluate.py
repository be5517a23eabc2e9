"""Tests of hccrad.stats.discrimination and hccrad.stats.calibration (with decision curves)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from hccrad.reporting.evaluation import EvaluationSettings, evaluate_predictions
from hccrad.stats.calibration import (
    TREAT_ALL,
    TREAT_NONE,
    brier_score,
    calibration_curve_table,
    calibration_intercept_slope,
    calibration_summary,
    decision_curve,
    hosmer_lemeshow,
    integrated_calibration_index,
    loess_calibration_curve,
)
from hccrad.stats.discrimination import (
    bootstrap_auc_ci,
    bootstrap_auc_samples,
    delong_auc,
    delong_covariance,
    delong_global_test,
    delong_pairwise_table,
    delong_test,
    threshold_metrics,
    youden_threshold,
)

SEED = 20240611


@pytest.fixture(scope="module")
def two_models() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcome and two correlated scores on the same 220 patients; model b has ties."""
    rng = np.random.default_rng(SEED)
    y = np.r_[np.ones(100, dtype=int), np.zeros(120, dtype=int)]
    shared = rng.normal(size=y.size)
    score_a = 1.0 * y + shared + 0.6 * rng.normal(size=y.size)
    score_b = np.round(0.6 * y + shared + 0.9 * rng.normal(size=y.size), 1)
    return y, score_a, score_b


def _pairwise_auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """AUC per row by comparing every positive with every negative (Mann-Whitney kernel)."""
    greater = (positives[:, :, None] > negatives[:, None, :]).mean(axis=(1, 2))
    ties = (positives[:, :, None] == negatives[:, None, :]).mean(axis=(1, 2))
    return greater + 0.5 * ties


def _bootstrap_reference(
    y: np.ndarray, scores: np.ndarray, n_resamples: int, seed: int
) -> np.ndarray:
    """Stratified bootstrap AUCs (resamples x models), written independently of evaluate."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    aucs = np.empty((n_resamples, scores.shape[0]))
    for start in range(0, n_resamples, 250):
        size = min(250, n_resamples - start)
        pos_idx = rng.choice(pos, size=(size, pos.size))
        neg_idx = rng.choice(neg, size=(size, neg.size))
        for model, score in enumerate(scores):
            aucs[start : start + size, model] = _pairwise_auc(score[pos_idx], score[neg_idx])
    return aucs


# --------------------------------------------------------------------------- DeLong


def test_delong_auc_equals_sklearn(two_models):
    y, score_a, score_b = two_models
    for score in (score_a, score_b):
        assert delong_auc(y, score).auc == pytest.approx(roc_auc_score(y, score))


def test_delong_variance_matches_the_1988_definition(two_models):
    """Fast (rank-based) covariance equals DeLong's placement-value definition computed directly."""
    y, score_a, score_b = two_models
    aucs, covariance = delong_covariance(y, np.vstack([score_a, score_b]))
    m, n = int(y.sum()), int((y == 0).sum())
    v10, v01 = [], []
    for score in (score_a, score_b):
        x, z = score[y == 1], score[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    expected = np.cov(np.array(v10)) / m + np.cov(np.array(v01)) / n
    np.testing.assert_allclose(covariance, expected, rtol=1e-12)
    np.testing.assert_allclose(aucs, [roc_auc_score(y, score_a), roc_auc_score(y, score_b)])


def test_delong_variance_and_paired_difference_agree_with_bootstrap(two_models):
    y, score_a, score_b = two_models
    boot = _bootstrap_reference(y, np.vstack([score_a, score_b]), n_resamples=4000, seed=SEED)
    result_a = delong_auc(y, score_a)
    result_b = delong_auc(y, score_b)
    paired = delong_test(y, score_a, score_b)
    # Monte Carlo SD of a variance from 4000 resamples is ~2%; 10% leaves room for the
    # O(1/n) difference between the bootstrap and DeLong's estimator.
    assert result_a.se**2 == pytest.approx(boot[:, 0].var(ddof=1), rel=0.10)
    assert result_b.se**2 == pytest.approx(boot[:, 1].var(ddof=1), rel=0.10)
    assert paired.se**2 == pytest.approx((boot[:, 0] - boot[:, 1]).var(ddof=1), rel=0.10)
    assert paired.difference == pytest.approx(result_a.auc - result_b.auc)


def test_paired_test_p_value_and_ci_are_consistent(two_models):
    y, score_a, score_b = two_models
    paired = delong_test(y, score_a, score_b)
    assert paired.z == pytest.approx(paired.difference / paired.se)
    assert paired.p_value == pytest.approx(2 * stats.norm.sf(abs(paired.z)))
    assert (paired.ci_low > 0) == (paired.p_value < 0.05 and paired.difference > 0)


def test_identical_models_give_p_one(two_models):
    y, score_a, _ = two_models
    paired = delong_test(y, score_a, 3 * score_a + 1)  # same ranking
    assert paired.difference == 0 and paired.p_value == 1.0


def test_hanley_mcneil_1982_ct_ratings_auc():
    """Hanley & McNeil (Radiology 1982;143:29-36), Table 1: 5-point CT ratings, AUC 0.893."""
    normal_counts, abnormal_counts = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    ratings = np.arange(1, 6)
    score = np.r_[np.repeat(ratings, normal_counts), np.repeat(ratings, abnormal_counts)]
    y = np.r_[np.zeros(58, dtype=int), np.ones(51, dtype=int)]
    assert delong_auc(y, score).auc == pytest.approx(0.893, abs=5e-4)


def test_logit_ci_is_asymmetric_and_inside_unit_interval(two_models):
    y, score_a, _ = two_models
    wald = delong_auc(y, score_a)
    logit_ci = delong_auc(y, score_a, logit_ci=True)
    assert 0 < logit_ci.ci_low < logit_ci.auc < logit_ci.ci_high < 1
    # On the logit scale the interval leans towards 0.5 for an AUC above 0.5.
    assert logit_ci.auc - logit_ci.ci_low > logit_ci.ci_high - logit_ci.auc
    assert wald.ci_high - wald.auc == pytest.approx(wald.auc - wald.ci_low)


def test_perfect_separation_has_zero_width_ci():
    y = np.array([0, 0, 0, 1, 1, 1])
    result = delong_auc(y, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], logit_ci=True)
    assert (result.auc, result.se, result.ci_low, result.ci_high) == (1.0, 0.0, 1.0, 1.0)


def test_global_test_with_two_models_equals_squared_z(two_models):
    y, score_a, score_b = two_models
    global_test = delong_global_test(y, {"a": score_a, "b": score_b})
    paired = delong_test(y, score_a, score_b)
    assert global_test.df == 1
    assert global_test.statistic == pytest.approx(paired.z**2)
    assert global_test.p_value == pytest.approx(paired.p_value)


def test_pairwise_table_has_one_row_per_pair(two_models):
    y, score_a, score_b = two_models
    scores = pd.DataFrame({"dltr": score_a, "clinical": score_b, "combined": score_a + score_b})
    table = delong_pairwise_table(y, scores)
    assert list(zip(table["model_a"], table["model_b"], strict=True)) == [
        ("dltr", "clinical"),
        ("dltr", "combined"),
        ("clinical", "combined"),
    ]
    first = delong_test(y, score_a, score_b)
    assert table.loc[0, "p_value"] == pytest.approx(first.p_value)
    assert table.loc[0, "auc_a"] == pytest.approx(first.auc_a)
    assert (table["p_adjusted"] >= table["p_value"]).all()
    assert delong_global_test(y, scores).df == 2


def test_bootstrap_ci_is_seeded_and_close_to_delong(two_models):
    y, score_a, _ = two_models
    first = bootstrap_auc_ci(y, score_a, n_resamples=2000, seed=1)
    again = bootstrap_auc_ci(y, score_a, n_resamples=2000, seed=1)
    delong = delong_auc(y, score_a)
    assert first == again
    assert first[0] < delong.auc < first[1]
    assert first[1] - first[0] == pytest.approx(delong.ci_high - delong.ci_low, rel=0.15)
    samples = bootstrap_auc_samples(y, score_a, n_resamples=50, seed=1)
    assert samples.shape == (50,)


# --------------------------------------------------------------------------- thresholds

Y_SMALL = np.array([0, 0, 1, 0, 1, 1, 1, 1])
SCORE_SMALL = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])


def test_youden_threshold_hand_example():
    # >= 0.5: sensitivity 4/5, specificity 3/3, J = 0.8; >= 0.3: 5/5 and 2/3, J = 0.67.
    assert youden_threshold(Y_SMALL, SCORE_SMALL) == 0.5


def test_youden_ties_go_to_the_most_specific_threshold():
    # >= 0.4 (J = 1 - 1/4) and >= 0.6 (J = 3/4 - 0) tie; the higher threshold wins.
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    assert youden_threshold(y, SCORE_SMALL) == 0.6


def _wilson(successes: int, trials: int) -> tuple[float, float]:
    """Wilson score interval written out (Wilson 1927)."""
    z = stats.norm.ppf(0.975)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z / (1 + z**2 / trials) * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2))
    return centre - half, centre + half


def test_threshold_metrics_hand_example():
    table = threshold_metrics(Y_SMALL, SCORE_SMALL, 0.5).set_index("metric")
    # TP 4 (0.5-0.8), FN 1 (0.3), TN 3 (0.1, 0.2, 0.4), FP 0.
    expected = {
        "accuracy": (7, 8),
        "sensitivity": (4, 5),
        "specificity": (3, 3),
        "ppv": (4, 4),
        "npv": (3, 4),
    }
    for metric, (numerator, denominator) in expected.items():
        row = table.loc[metric]
        assert (row["numerator"], row["denominator"]) == (numerator, denominator)
        assert row["estimate"] == pytest.approx(numerator / denominator)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(_wilson(numerator, denominator))


def test_threshold_metrics_score_equal_to_threshold_is_positive():
    table = threshold_metrics([0, 1], [0.2, 0.5], 0.5).set_index("metric")
    assert table.loc["sensitivity", "estimate"] == 1.0
    assert table.loc["specificity", "estimate"] == 1.0


def test_ppv_is_nan_when_nobody_is_called_positive():
    table = threshold_metrics([0, 1, 1], [0.1, 0.2, 0.3], 0.9).set_index("metric")
    assert np.isnan(table.loc["ppv", "estimate"])
    assert table.loc["ppv", "denominator"] == 0


# --------------------------------------------------------------------------- calibration


@pytest.fixture(scope="module")
def calibrated() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcome drawn from known probabilities, and the linear predictor behind them."""
    rng = np.random.default_rng(SEED)
    linear_predictor = rng.normal(-0.3, 1.2, size=8000)
    probability = expit(linear_predictor)
    y = rng.binomial(1, probability)
    return y, probability, linear_predictor


def test_calibrated_probabilities_have_slope_one_intercept_zero(calibrated):
    y, probability, _ = calibrated
    fit = calibration_intercept_slope(y, probability)
    assert fit.slope_ci_low < 1 < fit.slope_ci_high
    assert fit.intercept_ci_low < 0 < fit.intercept_ci_high
    assert fit.slope == pytest.approx(1, abs=0.1)
    assert fit.intercept == pytest.approx(0, abs=0.1)


def test_overfitted_probabilities_have_slope_below_one(calibrated):
    y, _, linear_predictor = calibrated
    too_extreme = expit(2 * linear_predictor)
    fit = calibration_intercept_slope(y, too_extreme)
    assert fit.slope == pytest.approx(0.5, abs=0.05)
    assert fit.slope_ci_high < 1


def test_overestimated_risk_has_negative_intercept(calibrated):
    y, _, linear_predictor = calibrated
    fit = calibration_intercept_slope(y, expit(linear_predictor + 1))
    assert fit.intercept == pytest.approx(-1, abs=0.1)


def test_constant_probabilities_have_an_intercept_and_no_slope():
    y = np.r_[np.ones(12, dtype=int), np.zeros(18, dtype=int)]
    fit = calibration_intercept_slope(y, np.full(y.size, 0.3))
    assert fit.intercept == pytest.approx(np.log(12 / 18) - np.log(0.3 / 0.7))
    assert np.isnan([fit.slope, fit.slope_ci_low, fit.slope_ci_high]).all()


def test_hosmer_lemeshow_not_small_for_calibrated_and_small_for_shifted(calibrated):
    y, probability, linear_predictor = calibrated
    good = hosmer_lemeshow(y, probability)
    bad = hosmer_lemeshow(y, expit(linear_predictor + 0.5))
    assert good.df == 8 and good.n_groups == 10
    assert good.p_value > 0.05
    assert bad.p_value < 1e-6


def test_hosmer_lemeshow_statistic_by_hand():
    y = np.array([0, 0, 1, 0, 1, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    # Three groups of three: expected 0.6, 1.5, 2.4; observed 1, 2, 2.
    expected_statistic = sum(
        (o - e) ** 2 / e + ((3 - o) - (3 - e)) ** 2 / (3 - e)
        for o, e in [(1, 0.6), (2, 1.5), (2, 2.4)]
    )
    result = hosmer_lemeshow(y, p, n_groups=3)
    assert result.statistic == pytest.approx(expected_statistic)
    assert result.df == 1
    assert result.p_value == pytest.approx(stats.chi2.sf(expected_statistic, 1))


def test_brier_equals_sklearn(calibrated):
    y, probability, _ = calibrated
    assert brier_score(y, probability) == pytest.approx(brier_score_loss(y, probability))


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_calibration_curve_matches_sklearn_with_ci(calibrated, strategy):
    y, probability, _ = calibrated
    table = calibration_curve_table(y, probability, n_bins=10, strategy=strategy)
    prob_true, prob_pred = calibration_curve(y, probability, n_bins=10, strategy=strategy)
    np.testing.assert_allclose(table["observed_fraction"], prob_true)
    np.testing.assert_allclose(table["mean_predicted"], prob_pred)
    assert table["n"].sum() == y.size
    assert (table["ci_low"] <= table["observed_fraction"]).all()
    assert (table["observed_fraction"] <= table["ci_high"]).all()


def test_calibration_summary_collects_all(calibrated):
    y, probability, _ = calibrated
    summary = calibration_summary(y, probability)
    assert {"brier", "intercept", "slope", "hosmer_lemeshow_p"} <= set(summary)


# --------------------------------------------------------------------------- decision curves


def test_decision_curve_net_benefit_by_hand():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1, 0])
    p = np.array([0.9, 0.7, 0.6, 0.1, 0.4, 0.3, 0.2, 0.05, 0.8, 0.35])
    curves = decision_curve(y, {"dltr": p}, thresholds=[0.1, 0.5])
    assert set(curves["model"]) == {"dltr", TREAT_ALL, TREAT_NONE}
    by_model = curves.set_index(["model", "threshold"])["net_benefit"]
    # At 0.5: treated = {0.9, 0.7, 0.6, 0.8}: TP 3, FP 1 -> 3/10 - 1/10 * 1.
    assert by_model[("dltr", 0.5)] == pytest.approx(0.3 - 0.1)
    # At 0.1: all but 0.05 treated: TP 4, FP 5 -> 4/10 - 5/10 * (0.1 / 0.9).
    assert by_model[("dltr", 0.1)] == pytest.approx(0.4 - 0.5 / 9)
    assert by_model[(TREAT_ALL, 0.1)] == pytest.approx(0.4 - 0.6 / 9)
    assert by_model[(TREAT_NONE, 0.5)] == 0


def test_decision_curve_rejects_reserved_names_and_non_probabilities():
    with pytest.raises(ValueError, match="reserved"):
        decision_curve([0, 1], {"all": [0.2, 0.8]})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        decision_curve([0, 1], {"score": [-2.0, 3.0]})


# --------------------------------------------------------------------------- errors


def test_single_class_outcome_names_context_and_counts():
    with pytest.raises(ValueError, match=r"response in external_A.*0 with 1, 4 with 0"):
        delong_auc([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], context="response in external_A")


def test_nan_score_names_patients():
    scores = pd.Series([0.1, np.nan, 0.3, 0.4], index=["P1", "P2", "P3", "P4"])
    with pytest.raises(ValueError, match=r"NaN.*P2"):
        delong_auc([0, 1, 0, 1], scores)


def test_lengths_that_differ_are_rejected():
    with pytest.raises(ValueError, match="3 values but the outcome has 4"):
        threshold_metrics([0, 1, 0, 1], [0.1, 0.2, 0.3], 0.5)
    with pytest.raises(ValueError, match="score_b has 2 values but the outcome has 4"):
        delong_test([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2])
    with pytest.raises(ValueError, match="clinical has 2 values"):
        delong_pairwise_table([0, 1, 0, 1], {"dltr": [1, 2, 3, 4], "clinical": [1, 2]})


def test_non_binary_or_missing_outcome_is_rejected():
    with pytest.raises(ValueError, match="must be 0/1"):
        delong_auc([0, 1, 2], [0.1, 0.2, 0.3])
    outcome = pd.Series([0, np.nan, 1], index=["P1", "P2", "P3"])
    with pytest.raises(ValueError, match=r"missing.*P2"):
        brier_score(outcome, [0.1, 0.2, 0.3])


def test_probabilities_outside_unit_interval_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_intercept_slope([0, 1, 0, 1], [0.1, 1.2, 0.3, 0.4])


def test_outcome_and_scores_for_different_patients_are_rejected():
    outcome = pd.Series([0, 1, 0], index=["P1", "P2", "P3"])
    with pytest.raises(ValueError, match=r"indexed differently.*P3, P4"):
        delong_auc(outcome, pd.Series([0.1, 0.2, 0.3], index=["P1", "P2", "P4"]))
    with pytest.raises(ValueError, match="different order"):
        delong_auc(outcome, pd.Series([0.1, 0.2, 0.3], index=["P3", "P2", "P1"]))


def test_delong_needs_two_patients_of_each_class():
    with pytest.raises(ValueError, match="1 with 1 and 3 with 0"):
        delong_auc([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4])


# --------------------------------------------------------------------------- loess calibration


def test_loess_curve_of_calibrated_risk_follows_the_diagonal(calibrated):
    y, probability, _ = calibrated
    curve = loess_calibration_curve(y[:2000], probability[:2000], seed=SEED)
    central = curve[curve["predicted"].between(0.1, 0.9)]
    assert (central["observed"] - central["predicted"]).abs().max() < 0.06
    inside = (central["ci_low"] <= central["predicted"]) & (
        central["predicted"] <= central["ci_high"]
    )
    assert inside.mean() > 0.9  # the band is pointwise 95%: a few misses are allowed
    assert (curve["ci_low"] <= curve["observed"]).all() and (
        curve["observed"] <= curve["ci_high"]
    ).all()
    assert integrated_calibration_index(y, probability) < 0.02


def test_loess_curve_shows_overfitted_risk_as_too_extreme(calibrated):
    y, _, linear_predictor = calibrated
    too_extreme = expit(2 * linear_predictor)  # true risk is expit(linear_predictor)
    curve = loess_calibration_curve(y, too_extreme, n_resamples=0).set_index("predicted")
    high = curve[curve.index > 0.9]
    low = curve[curve.index < 0.1]
    assert (high["observed"] < high.index - 0.05).all()  # predicted 0.95 happens ~80% of times
    assert (low["observed"] > low.index + 0.02).all()
    assert curve["ci_low"].isna().all()  # no resamples, no band
    # The ICI tells the overfitted model from the calibrated one.
    assert integrated_calibration_index(y, too_extreme) > 0.05


def test_loess_band_is_seeded_and_reproducible(calibrated):
    y, probability, _ = calibrated
    first = loess_calibration_curve(y[:500], probability[:500], n_resamples=50, seed=1)
    again = loess_calibration_curve(y[:500], probability[:500], n_resamples=50, seed=1)
    other = loess_calibration_curve(y[:500], probability[:500], n_resamples=50, seed=2)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["ci_low"], other["ci_low"], equal_nan=True)
    assert (first["observed"] == other["observed"]).all()  # the curve itself is not random


def test_loess_curve_rejects_constant_predictions():
    with pytest.raises(ValueError, match="every predicted probability is the same"):
        loess_calibration_curve(np.array([0, 1, 0, 1]), np.full(4, 0.4), context="m in test")


def loess_predictions() -> pd.DataFrame:
    """One endpoint's predictions: 150 patients in two splits, a calibrated and a shifted model."""
    rng = np.random.default_rng(SEED)
    n = 150
    linear_predictor = rng.normal(-0.2, 1.0, n)
    outcome = rng.binomial(1, expit(linear_predictor))
    base = pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "endpoint": "response",
            "split": ["train"] * 100 + ["internal_test"] * 50,
            "centre": "A",
            "outcome": outcome,
        }
    )
    return pd.concat(
        [
            base.assign(model="calibrated", score=expit(linear_predictor)),
            base.assign(model="shifted", score=expit(linear_predictor + 1.5)),
        ],
        ignore_index=True,
    )


def test_evaluation_tables_hold_the_loess_curve_and_ici():
    predictions = loess_predictions()
    settings = EvaluationSettings(calibration_loess_resamples=50)
    thresholds = {"calibrated": 0.5, "shifted": 0.5}
    tables = evaluate_predictions(predictions, thresholds, settings, seed=SEED)
    loess = tables["calibration_loess"]
    assert set(zip(loess["model"], loess["cohort"], strict=True)) == {
        (m, c) for m in ("calibrated", "shifted") for c in ("train", "internal_test")
    }
    assert len(loess) == 4 * 50 and loess["ci_high"].notna().mean() > 0.8
    ici = tables["calibration"].set_index(["model", "cohort"])["ici"]
    assert ici["shifted", "train"] > ici["calibrated", "train"] + 0.1
    # The binned curve is unchanged by the new table; a run without a seed says why no band.
    again = evaluate_predictions(predictions, thresholds, settings, seed=SEED)
    pd.testing.assert_frame_equal(tables["calibration_loess"], again["calibration_loess"])
    unseeded = evaluate_predictions(predictions, thresholds, settings)["calibration_loess"]
    assert unseeded["ci_low"].isna().all()
    assert unseeded["note"].str.startswith("no bootstrap band").all()
    pd.testing.assert_frame_equal(
        unseeded.drop(columns=["ci_low", "ci_high", "n_resamples_used", "note"]),
        loess.drop(columns=["ci_low", "ci_high", "n_resamples_used", "note"]),
    )
