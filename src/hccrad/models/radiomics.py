"""The radiomics signature: LASSO selection on standardised features, then a classifier.

One L1-logistic selection (penalty by seeded stratified CV) feeds XGBoost (``radiomics``),
the L1-logistic itself (``radiomics_lasso``) or a ridge logistic (``radiomics_ridge``); the
DLTR model uses it too when the deep table has only ``deep_*`` features.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from hccrad.models.base import ProbabilityClassifier, cv_folds, neg_log_loss, plain
from hccrad.models.settings import ClassifierKind, ModelSettings
from hccrad.stats.checks import require_columns

# --------------------------------------------------------------------------- radiomics


def top_k_by_auc(Z: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k columns with the largest |AUC - 0.5| on training (ties by position)."""
    # The AUC of every column at once from its ranks (Mann-Whitney U, ties counted half, as
    # roc_auc_score counts them): one roc_auc_score call per column cost ~5 ms each, and this
    # runs whenever a training fold's LASSO keeps nothing (often, under permuted labels).
    # 2U and n1 * n0 are whole numbers, so |2U - n1 * n0| ranks columns exactly: columns
    # with the same AUC tie exactly and keep their order.
    positive = np.asarray(y) == 1
    n1, n0 = int(positive.sum()), int((~positive).sum())
    ranks = rankdata(Z, axis=0)
    twice_u = 2 * ranks[positive].sum(axis=0) - n1 * (n1 + 1)
    strength = np.abs(twice_u - n1 * n0)
    # Stable sort on -strength keeps the first column among ties: deterministic.
    return np.sort(np.argsort(-strength, kind="stable")[: min(k, Z.shape[1])])


class LassoSignature(ProbabilityClassifier):
    """Standardise, select by L1-logistic (penalty by stratified CV), classify the selection.

    ``classifier``: ``xgboost`` (seeded, shallow, n_jobs=1), ``ridge`` (L2-logistic with its
    penalty chosen by the same CV) or ``lasso`` (the L1-logistic itself). If the LASSO keeps no
    feature, the ``fallback_top_k`` features with the largest training |AUC - 0.5| are used
    (and ``lasso`` becomes an L2-logistic with C = 1 on them); describe() says so.
    """

    def __init__(
        self,
        classifier: ClassifierKind = "xgboost",
        cv_folds: int = 5,
        n_cs: int = 20,
        fallback_top_k: int = 5,
        xgboost_params: Mapping[str, Any] | None = None,
        random_state: int = 0,
    ) -> None:
        self.classifier = classifier
        self.cv_folds = cv_folds
        self.n_cs = n_cs
        self.fallback_top_k = fallback_top_k
        self.xgboost_params = xgboost_params
        self.random_state = random_state

    def _penalties(self) -> np.ndarray:
        """Grid of inverse penalties C searched by cross-validation."""
        return np.logspace(-2, 1, self.n_cs)

    def _logistic_cv(self, l1_ratio: float) -> LogisticRegressionCV:
        """Logistic regression with C chosen by seeded stratified CV on log loss."""
        return LogisticRegressionCV(
            Cs=self._penalties(),
            l1_ratios=(l1_ratio,),
            # liblinear is fast and deterministic on cohorts this size; a large
            # intercept_scaling keeps its (penalised) intercept nearly free.
            solver="liblinear",
            intercept_scaling=100.0,
            cv=cv_folds(self.cv_folds, self.random_state),
            scoring=neg_log_loss,
            max_iter=5000,
            random_state=self.random_state,
            use_legacy_attributes=False,
        )

    def _check_classifier(self) -> None:
        """ValueError unless ``classifier`` is one of the three kinds."""
        if self.classifier not in ("xgboost", "lasso", "ridge"):
            raise ValueError(f"classifier must be xgboost, lasso or ridge, got {self.classifier!r}")

    def fit(self, X: pd.DataFrame, y: Any) -> LassoSignature:
        """Scale, select and fit the classifier on the training rows."""
        self._check_classifier()
        y = np.asarray(y, dtype=int)
        self.classes_ = np.array([0, 1])
        self.feature_names_ = list(X.columns)
        self.scaler_ = StandardScaler().fit(X.to_numpy(dtype=float))
        Z = self.scaler_.transform(X.to_numpy(dtype=float))
        with warnings.catch_warnings():
            # Weak penalties on tiny folds may stop at max_iter; the CV then scores them low.
            warnings.simplefilter("ignore", category=UserWarning)
            self.lasso_ = self._logistic_cv(1.0).fit(Z, y)
        selected = np.flatnonzero(self.lasso_.coef_[0])
        self.selection_method_ = "lasso"
        if selected.size == 0:
            selected = top_k_by_auc(Z, y, self.fallback_top_k)
            self.selection_method_ = (
                f"LASSO kept no feature; top {selected.size} by training |AUC - 0.5|"
            )
        self.selected_index_ = selected
        self.selected_features_ = [self.feature_names_[j] for j in selected]
        self.classifier_ = self._fit_classifier(Z[:, selected], y)
        return self

    def with_classifier(self, X: pd.DataFrame, y: Any, **params: Any) -> LassoSignature:
        """A fitted copy with other classifier ``params`` on this fit's scaling and selection.

        ``params``: ``classifier`` and/or ``xgboost_params``, the only ones the scaling and the
        LASSO selection do not depend on. ``X`` and ``y`` must be the rows this signature was
        fitted on: the copy is then what ``fit`` gives with those parameters, without fitting
        the LASSO path again.
        """
        other = set(params) - {"classifier", "xgboost_params"}
        if other:
            raise ValueError(f"with_classifier: {sorted(other)} change the LASSO selection")
        copy = clone(self).set_params(**params)
        copy._check_classifier()
        # Everything `fit` learns before the classifier: the scaling and the LASSO selection.
        for name in (
            "classes_",
            "feature_names_",
            "scaler_",
            "lasso_",
            "selection_method_",
            "selected_index_",
            "selected_features_",
        ):
            setattr(copy, name, getattr(self, name))
        copy.classifier_ = copy._fit_classifier(copy._selected_scaled(X), np.asarray(y, dtype=int))
        return copy

    def _fit_classifier(self, Z: np.ndarray, y: np.ndarray) -> Any:
        """The final classifier on the selected, standardised features."""
        if self.classifier == "xgboost":
            params = {**ModelSettings().xgboost, **(self.xgboost_params or {})}
            return XGBClassifier(
                **params, random_state=self.random_state, n_jobs=1, eval_metric="logloss"
            ).fit(Z, y)
        if self.classifier == "ridge":
            return self._logistic_cv(0.0).fit(Z, y)
        if self.selection_method_ == "lasso":
            return None  # the L1-logistic itself predicts
        return LogisticRegression(C=1.0, l1_ratio=0.0).fit(Z, y)

    def _selected_scaled(self, X: pd.DataFrame) -> np.ndarray:
        """Standardised selected features of new patients."""
        require_columns(X, self.feature_names_, "features")
        Z = self.scaler_.transform(X[self.feature_names_].to_numpy(dtype=float))
        return Z[:, self.selected_index_]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities of outcome 0 and 1, one row per patient."""
        Z = self._selected_scaled(X)
        if self.classifier_ is None:
            coef = self.lasso_.coef_[0, self.selected_index_]
            p = expit(self.lasso_.intercept_[0] + Z @ coef)
            return np.column_stack([1 - p, p])
        return self.classifier_.predict_proba(Z)

    def describe(self) -> dict[str, Any]:
        """Selected features with LASSO coefficients, penalties and the classifier's parameters."""
        lasso_coef = self.lasso_.coef_[0, self.selected_index_]
        described: dict[str, Any] = {
            "model": f"StandardScaler -> L1-logistic selection -> {self.classifier}",
            "n_features_in": len(self.feature_names_),
            "selection": self.selection_method_,
            "n_selected": len(self.selected_features_),
            "selected_features": self.selected_features_,
            "lasso_C": float(self.lasso_.C_),
            "lasso_coefficients": dict(zip(self.selected_features_, lasso_coef, strict=True)),
            "lasso_intercept": float(self.lasso_.intercept_[0]),
            "cv": f"{self.cv_folds}-fold stratified, log loss, random_state={self.random_state}",
        }
        if isinstance(self.classifier_, XGBClassifier):
            described["xgboost_params"] = self.classifier_.get_xgb_params()
            described["xgboost_gain"] = dict(
                zip(self.selected_features_, self.classifier_.feature_importances_, strict=True)
            )
        elif self.classifier_ is not None:
            described["ridge_C"] = float(np.ravel(getattr(self.classifier_, "C_", 1.0))[0])
            described["coefficients"] = dict(
                zip(self.selected_features_, self.classifier_.coef_[0], strict=True)
            )
            described["intercept"] = float(self.classifier_.intercept_[0])
        return plain(described)
