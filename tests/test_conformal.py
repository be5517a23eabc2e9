"""hccrad.models.conformal: held-out training scores, conformal sets, Venn-Abers, coverage."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from test_models import ENDPOINT, SEED, corrupt_non_training_rows, simulated_cohort

from hccrad.models.conformal import (
    conformal_intervals,
    fit_conformal,
    held_out_scores,
    min_calibration_size,
)
from hccrad.models.fit import fit_all, predict_all
from hccrad.reporting.conformal import coverage_table

# Fewer penalties and inner folds than the default: the folds' refits are what is tested.
SMALL_MODELS = {"cv_folds": 3, "n_cs": 5, "mlp_alphas": [1.0]}
FOLDS = 3
ALPHA = 0.2


@pytest.fixture(scope="module")
def cohort() -> dict[str, Any]:
    """The default simulated response cohort with synthetic feature tables."""
    return simulated_cohort()


@pytest.fixture(scope="module")
def held_out(cohort) -> pd.DataFrame:
    """Out-of-fold training scores of every model."""
    return held_out_scores(
        cohort["sheet"], cohort["features"], ENDPOINT, SEED, SMALL_MODELS, folds=FOLDS
    )


def random_calibration(n: int, seed: int) -> pd.DataFrame:
    """A calibration set of one model: scores, outcomes drawn from them."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(0.02, 0.98, n)
    outcome = (rng.uniform(size=n) < score).astype(int)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(n)],
            "model": "m",
            "score": score,
            "outcome": outcome,
        }
    )


def test_held_out_scores_are_training_patients_each_once_per_model(cohort, held_out):
    train = cohort["sheet"].index[cohort["sheet"]["split"] == "train"]
    for _, rows in held_out.groupby("model"):
        assert sorted(rows["patient_id"]) == sorted(train)
    assert set(held_out["fold"]) == set(range(1, FOLDS + 1))
    truth = cohort["sheet"].loc[held_out["patient_id"], ENDPOINT].to_numpy(dtype=float)
    assert np.array_equal(held_out["outcome"].to_numpy(dtype=float), truth)


def test_held_out_scores_come_from_models_fitted_without_the_fold(cohort, held_out):
    # A patient's held-out score is the fold's model, not the model fitted on all training rows.
    full = fit_all(cohort["sheet"], cohort["features"], ENDPOINT, SEED, SMALL_MODELS)
    in_sample = predict_all(full, cohort["sheet"], cohort["features"])
    merged = held_out.merge(in_sample, on=["patient_id", "model"], suffixes=("", "_full"))
    fitted = merged[merged["model"] == "radiomics_lasso"]
    assert not np.allclose(fitted["score"], fitted["score_full"])


def test_no_test_or_external_row_enters_the_calibration(cohort, held_out):
    # Rescale, shuffle and flip every non-training row: the calibration must not move at all.
    sheet, features = corrupt_non_training_rows(cohort)
    corrupted = held_out_scores(sheet, features, ENDPOINT, SEED, SMALL_MODELS, folds=FOLDS)
    pd.testing.assert_frame_equal(held_out, corrupted)
    calibration = fit_conformal(held_out, ALPHA)
    train = set(cohort["sheet"].index[cohort["sheet"]["split"] == "train"])
    for entry in calibration["models"].values():
        assert set(entry["patients"]) <= train
    assert json.dumps(calibration) == json.dumps(fit_conformal(corrupted, ALPHA))


def lac_sets(calibration: pd.DataFrame, scores: np.ndarray, alpha: float) -> list[str]:
    """Split-conformal LAC sets computed by hand: the conformal quantile of 1 - p(true)."""
    cal = calibration["score"].to_numpy()
    y = calibration["outcome"].to_numpy()
    nonconformity = np.sort(np.where(y == 1, 1 - cal, cal))
    n = len(nonconformity)
    threshold = nonconformity[math.ceil((n + 1) * (1 - alpha)) - 1]
    return [
        ",".join(
            label for label, kept in (("0", s <= threshold), ("1", 1 - s <= threshold)) if kept
        )
        for s in scores
    ]


def test_prediction_sets_and_coverage_match_an_independent_count():
    calibration = random_calibration(200, seed=1)
    rng = np.random.default_rng(2)
    score = rng.uniform(0.02, 0.98, 500)
    outcome = (rng.uniform(size=500) < score).astype(int)
    centres = np.where(np.arange(500) < 250, "B", "C")
    new = pd.DataFrame(
        {
            "patient_id": [f"N{i}" for i in range(500)],
            "split": [f"external_{c}" for c in centres],
            "centre": centres,
            "model": "m",
            "score": score,
            "outcome": outcome,
        }
    )
    out = conformal_intervals(fit_conformal(calibration, 0.1), new)
    expected = lac_sets(calibration, score, 0.1)
    assert out["prediction_set"].tolist() == expected
    hits = [str(y) in s.split(",") for s, y in zip(expected, outcome, strict=True)]
    table = coverage_table(out).set_index("cohort")
    assert table.loc["external", "covered"] == sum(hits)
    assert table.loc["external", "coverage"] == pytest.approx(np.mean(hits))
    assert table.loc["external_B", "covered"] == sum(hits[:250])
    assert table.loc["external", "coverage_nominal"] == pytest.approx(0.9)
    # Exchangeable draws: the marginal guarantee holds (within sampling error of 500).
    assert table.loc["external", "coverage"] >= 0.9 - 3 * math.sqrt(0.09 / 500)
    counts = table.loc["external", ["set_0", "set_1", "set_both", "set_empty"]]
    assert counts.sum() == 500


def test_venn_abers_interval_is_the_two_isotonic_fits():
    calibration = random_calibration(60, seed=3)
    new = pd.DataFrame({"patient_id": ["a", "b", "c"], "model": "m", "score": [0.1, 0.5, 0.9]})
    out = conformal_intervals(fit_conformal(calibration, 0.1), new)
    for row in out.itertuples():
        ends = []
        for label in (0, 1):
            x = np.append(calibration["score"].to_numpy(), row.score)
            y = np.append(calibration["outcome"].to_numpy(), label)
            ends.append(IsotonicRegression(out_of_bounds="clip").fit(x, y).predict([row.score])[0])
        assert (row.interval_low, row.interval_high) == pytest.approx(tuple(ends))
        assert 0 <= row.interval_low <= row.interval_high <= 1


def test_calibration_too_small_for_alpha_is_refused():
    needed = min_calibration_size(0.1)
    assert needed == 9
    with pytest.raises(ValueError, match="needs at least 9"):
        fit_conformal(random_calibration(needed - 1, seed=4), 0.1)
    fit_conformal(random_calibration(needed, seed=4), 0.1)


def test_scores_of_an_uncalibrated_model_are_refused():
    calibration = fit_conformal(random_calibration(30, seed=5), 0.1)
    with pytest.raises(ValueError, match="no conformal calibration for model"):
        conformal_intervals(
            calibration, pd.DataFrame({"patient_id": ["a"], "model": ["x"], "score": [0.3]})
        )


def test_a_fold_too_small_to_fit_names_the_conformal_folds(cohort):
    sheet = cohort["sheet"]
    train = sheet.index[sheet["split"] == "train"]
    # Three responders in training: a fold's other folds hold two, below models.cv_folds = 3.
    responders = train[sheet.loc[train, ENDPOINT] == 1]
    kept = sheet.drop(index=responders[3:])
    with pytest.raises(ValueError, match=r"conformal calibration, fold .* lower conformal\.folds"):
        held_out_scores(kept, cohort["features"], ENDPOINT, SEED, SMALL_MODELS, folds=3)
