"""What every response model shares: the classifier base, seeded CV folds, the CV scorer, JSON.

Kept apart from the models themselves so that each model module imports only these helpers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

# The models' probabilities are clipped this far from 0 and 1 before a log or logit (the CV log
# loss, the DLR combiner's inputs), so neither ever sees an infinite value. Wider than the
# calibration clip (hccrad.stats.calibration.CALIBRATION_CLIP), which should change the
# probabilities under evaluation as little as possible.
SCORE_CLIP = 1e-6


def neg_log_loss(estimator: Any, X: np.ndarray, y: np.ndarray) -> float:
    """Mean log-likelihood of held-out outcomes: a CV scorer, as sklearn's neg_log_loss."""
    # sklearn's scorer validates its inputs on every call, which dominates the CV time on
    # cohorts this small; the value is the same.
    p = np.clip(_probability(estimator, X), SCORE_CLIP, 1 - SCORE_CLIP)
    return float(np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _probability(estimator: Any, X: np.ndarray) -> np.ndarray:
    """Probability of outcome 1: a binary logistic model's computed as its predict_proba does."""
    # LogisticRegressionCV scores each of its ~100 fits per search with this; predict_proba's
    # checks of X cost more than the product itself. expit(X @ coef.T + intercept) is what
    # predict_proba computes for two classes (tests/test_models.py checks the two agree).
    if (
        type(estimator) is LogisticRegression
        and isinstance(X, np.ndarray)
        and X.dtype == np.float64
        and estimator.coef_.shape[0] == 1
    ):
        return expit(X @ estimator.coef_.T + estimator.intercept_).ravel()
    return estimator.predict_proba(X)[:, 1]


def cv_folds(n_splits: int, random_state: int) -> StratifiedKFold:
    """Seeded, shuffled stratified folds (shuffled so centre/order effects do not make folds)."""
    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)


def plain(value: Any) -> Any:
    """numpy scalars and arrays as plain Python values, for JSON."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray | pd.Index):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class ProbabilityClassifier(ClassifierMixin, BaseEstimator):
    """Base of the response models: predict() thresholds predict_proba at 0.5 for sklearn."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class 1 where the probability of outcome 1 is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
