"""The deep and combined models: the DLTR score column, the DLTR_MLP fusion and the DLR score.

``FusionMLP`` fuses the DLTR score (or the deep features) with the clinical covariates that
the clinical model kept. ``StackedScore`` (DLR) is a logistic model on the radiomics and DLTR
scores, fitted on out-of-fold training scores (cross_val_predict), because in-sample scores of
flexible models are optimistic and would teach the combiner to trust them too much.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from hccrad.models.base import SCORE_CLIP, ProbabilityClassifier, cv_folds, neg_log_loss, plain
from hccrad.models.clinical import ClinicalPreprocessor
from hccrad.stats.checks import name_patients, require_columns

# L-BFGS iterations of the DLTR_MLP network; fits on ~100 patients converge in a few hundred.
MLP_MAX_ITER = 5000


# --------------------------------------------------------------------------- deep models


class ScoreColumn(ProbabilityClassifier):
    """A precomputed probability column (the DLTR CNN's output) used as a model's score."""

    def __init__(self, column: str = "dltr_score") -> None:
        self.column = column

    def fit(self, X: pd.DataFrame, y: Any = None) -> ScoreColumn:
        """Nothing to learn; checks that the column holds probabilities."""
        self.classes_ = np.array([0, 1])
        self._scores(X)
        return self

    def _scores(self, X: pd.DataFrame) -> np.ndarray:
        """The column as floats in [0, 1], else ValueError naming the patients."""
        require_columns(X, [self.column], "deep features")
        scores = X[self.column].to_numpy(dtype=float)
        outside = (scores < 0) | (scores > 1)
        if outside.any():
            raise ValueError(
                f"{self.column} must be a probability in [0, 1]; it is not for "
                f"{name_patients(X.index[outside])}"
            )
        return scores

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """The column as probabilities of outcome 0 and 1."""
        p = self._scores(X)
        return np.column_stack([1 - p, p])

    def describe(self) -> dict[str, Any]:
        """Which column is the score."""
        return {"model": "precomputed deep-learning score, used as is", "score_column": self.column}


class FusionMLP(ProbabilityClassifier):
    """MLP on standardised imaging inputs plus clinical covariates (DLTR_MLP).

    Clinical covariates are imputed and coded by a ClinicalPreprocessor fitted on the same
    training rows. The network is trained to convergence by L-BFGS, its L2 penalty chosen from
    ``alphas`` by inner cross-validated log loss on those rows. Early stopping on a held-out part
    was the first design; with ~70 training patients it kept the iteration with the best
    accuracy on ~14 of them, a barely trained network near chance externally
    (config/README.md, `models.mlp_alphas`).
    """

    def __init__(
        self,
        imaging_columns: Sequence[str] = ("dltr_score",),
        clinical_covariates: Sequence[str] = (),
        hidden_layer_sizes: Sequence[int] = (16,),
        alphas: Sequence[float] = (0.1, 1.0, 10.0),
        cv_folds: int = 5,
        random_state: int = 0,
    ) -> None:
        self.imaging_columns = imaging_columns
        self.clinical_covariates = clinical_covariates
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alphas = alphas
        self.cv_folds = cv_folds
        self.random_state = random_state

    def _inputs(self, X: pd.DataFrame) -> pd.DataFrame:
        """Imaging columns and coded clinical covariates side by side."""
        require_columns(X, self.imaging_columns, "DLTR_MLP inputs")
        parts = [X[list(self.imaging_columns)].astype(float)]
        if self.clinical_covariates:
            parts.append(self.preprocessor_.transform(X))
        return pd.concat(parts, axis=1)

    def fit(self, X: pd.DataFrame, y: Any) -> FusionMLP:
        """Fit imputation, scaling, the penalty search and the MLP on the training rows."""
        y = np.asarray(y, dtype=int)
        self.classes_ = np.array([0, 1])
        self.preprocessor_ = ClinicalPreprocessor(self.clinical_covariates)
        if self.clinical_covariates:
            self.preprocessor_.fit(X)
        inputs = self._inputs(X)
        self.input_names_ = list(inputs.columns)
        self.pipeline_: Pipeline = self._fit_network(inputs.to_numpy(), y)
        return self

    def _fit_network(self, inputs: np.ndarray, y: np.ndarray) -> Pipeline:
        """Scaler and MLP with the L2 penalty of the best inner-CV log loss, refitted on all."""
        mlp = MLPClassifier(
            hidden_layer_sizes=tuple(self.hidden_layer_sizes),
            solver="lbfgs",
            max_iter=MLP_MAX_ITER,
            random_state=self.random_state,
        )
        search = GridSearchCV(
            make_pipeline(StandardScaler(), mlp),
            {"mlpclassifier__alpha": list(self.alphas)},
            scoring=neg_log_loss,
            cv=cv_folds(self.cv_folds, self.random_state),
        )
        # describe() reports the iterations, so a fit that hit MLP_MAX_ITER stays visible.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SklearnConvergenceWarning)
            search.fit(inputs, y)
        self.cv_log_loss_ = {
            float(alpha): float(-score)
            for alpha, score in zip(
                search.cv_results_["param_mlpclassifier__alpha"],
                search.cv_results_["mean_test_score"],
                strict=True,
            )
        }
        return search.best_estimator_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities of outcome 0 and 1, one row per patient."""
        return self.pipeline_.predict_proba(self._inputs(X).to_numpy())

    def describe(self) -> dict[str, Any]:
        """Inputs, architecture, the penalty search and the training outcome of the MLP."""
        mlp: MLPClassifier = self.pipeline_[-1]
        return plain(
            {
                "model": (
                    "StandardScaler -> MLPClassifier (L-BFGS to convergence, "
                    "L2 penalty by inner-CV log loss)"
                ),
                "inputs": self.input_names_,
                "clinical_covariates": list(self.clinical_covariates),
                "clinical_preprocessing": (
                    self.preprocessor_.describe() if self.clinical_covariates else None
                ),
                "hidden_layer_sizes": list(self.hidden_layer_sizes),
                "alphas": list(self.alphas),
                "cv": f"{self.cv_folds}-fold stratified, log loss",
                "cv_log_loss": self.cv_log_loss_,
                "alpha": mlp.alpha,
                "n_iter": mlp.n_iter_,
                "converged": mlp.n_iter_ < MLP_MAX_ITER,
                "random_state": self.random_state,
            }
        )


class StackedScore(ProbabilityClassifier):
    """Logistic model on the logits of base models' scores (the DLR score).

    The combiner is fitted on out-of-fold training scores (cross_val_predict over seeded
    stratified folds, each base refitted with all its selection inside the fold); new
    patients are scored by the bases refitted on all training rows. ``bases`` is a list of
    (name, estimator, columns), like ColumnTransformer's.
    """

    def __init__(
        self,
        bases: Sequence[tuple[str, Any, Sequence[str]]] = (),
        cv_folds: int = 5,
        random_state: int = 0,
    ) -> None:
        self.bases = bases
        self.cv_folds = cv_folds
        self.random_state = random_state

    def fit(
        self, X: pd.DataFrame, y: Any, fitted_bases: Sequence[Any] | None = None
    ) -> StackedScore:
        """Out-of-fold base scores, the combiner on them, then the bases on all rows.

        ``fitted_bases``: the bases already fitted on these rows (``X``, ``y``), in the order of
        ``bases``; they are used as they are instead of fitted again (the cross-validation has
        fitted them as models of their own).
        """
        y = np.asarray(y, dtype=int)
        if fitted_bases is not None and len(fitted_bases) != len(self.bases):
            raise ValueError(f"{len(fitted_bases)} fitted bases for {len(self.bases)} bases")
        self.classes_ = np.array([0, 1])
        folds = cv_folds(self.cv_folds, self.random_state)
        oof = np.column_stack(
            [
                cross_val_predict(clone(est), X[list(cols)], y, cv=folds, method="predict_proba")[
                    :, 1
                ]
                for _, est, cols in self.bases
            ]
        )
        self.base_names_ = [name for name, _, _ in self.bases]
        if fitted_bases is None:
            fitted_bases = [clone(est).fit(X[list(cols)], y) for _, est, cols in self.bases]
        self.bases_ = [
            (name, fitted, list(cols))
            for (name, _, cols), fitted in zip(self.bases, fitted_bases, strict=True)
        ]
        # C = inf: an unpenalised logistic model, as in the studies' score combination.
        self.combiner_: Pipeline = make_pipeline(
            StandardScaler(), LogisticRegression(C=np.inf)
        ).fit(_logits(oof), y)
        self.oof_training_scores_ = self.combiner_.predict_proba(_logits(oof))[:, 1]
        return self

    def base_scores(self, X: pd.DataFrame) -> np.ndarray:
        """Each base model's probability for new patients, one column per base."""
        return np.column_stack([est.predict_proba(X[cols])[:, 1] for _, est, cols in self.bases_])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities of outcome 0 and 1, one row per patient."""
        return self.combiner_.predict_proba(_logits(self.base_scores(X)))

    def describe(self) -> dict[str, Any]:
        """Combiner coefficients (per SD of each base's logit) and the bases' own descriptions."""
        scaler, logistic = self.combiner_
        return plain(
            {
                "model": "logistic regression on logit(base scores), fitted on out-of-fold "
                "training scores",
                "cv": f"{self.cv_folds}-fold stratified, random_state={self.random_state}",
                "inputs": self.base_names_,
                "input_means": dict(zip(self.base_names_, scaler.mean_, strict=True)),
                "input_sds": dict(zip(self.base_names_, scaler.scale_, strict=True)),
                "coefficients_per_sd": dict(zip(self.base_names_, logistic.coef_[0], strict=True)),
                "intercept": float(logistic.intercept_[0]),
                "bases": {name: est.describe() for name, est, _ in self.bases_},
            }
        )


def _logits(probabilities: np.ndarray) -> np.ndarray:
    """Logit of probabilities clipped away from 0 and 1."""
    return logit(np.clip(probabilities, SCORE_CLIP, 1 - SCORE_CLIP))
