"""Response models: clinical logistic, radiomics signature, DLTR_MLP fusion and the DLR score.

Every model is fitted on the ``train`` split only, and every data-driven step (imputation,
screening, scaling, penalty choice, feature selection) happens inside its
``fit``; scoring the other splits only applies what training learnt. Models, by name:

- ``clinical``: univariable logistic screening (statsmodels; likelihood-ratio P per covariate,
  so a categorical covariate is one test), then a multivariable logistic model on the
  covariates with P < ``screening_p``: the studies' "independent clinical predictors".
- ``radiomics`` (LASSO -> XGBoost), ``radiomics_lasso`` (the L1-logistic itself) and
  ``radiomics_ridge`` (ridge logistic on the LASSO selection), on the radiomics table.
- ``DLTR``: the deep model's score column (``dltr_score``, a probability) as given, or, when the
  deep table only has ``deep_*`` features, an L1-logistic signature of them.
- ``DLTR_MLP``: an MLP fusing the DLTR score (or the deep features) with the clinical
  covariates that the clinical model kept, its L2 penalty chosen by inner CV.
- ``DLR``: a logistic model on the radiomics and DLTR scores. It is fitted on out-of-fold
  training scores (cross_val_predict), because in-sample scores of flexible models are
  optimistic and would teach the combiner to trust them too much.

Scores are probabilities of outcome 1; each model's Youden threshold comes from training data.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    HessianInversionWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
)
from xgboost import XGBClassifier

from hccrad.cohorts.sheet import CLINICAL_COVARIATES
from hccrad.core.config import known_keys
from hccrad.core.seeding import rng_for
from hccrad.stats.checks import check_binary_outcome, name_patients, require_columns
from hccrad.stats.discrimination import youden_threshold

TRAIN = "train"
RADIOMICS = "radiomics"
DEEP = "deep"
FEATURE_SOURCES: tuple[str, ...] = (RADIOMICS, DEEP)
DEEP_PREFIX = "deep_"

CATEGORICAL_COVARIATES: frozenset[str] = frozenset(
    {"sex", "aetiology", "bclc", "child_pugh", "albi_grade"}
)
# AFP spans orders of magnitude (ng/mL); log10(afp + 1) keeps 0 finite and makes the OR per decade.
LOG10_COVARIATES: frozenset[str] = frozenset({"afp"})
PREDICTION_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "split",
    "centre",
    "endpoint",
    "model",
    "score",
    "outcome",
)
# Probabilities are clipped before logit so the DLR combiner never sees infinite inputs.
PROBABILITY_EPS = 1e-6
# L-BFGS iterations of the DLTR_MLP network; fits on ~100 patients converge in a few hundred.
MLP_MAX_ITER = 5000

ClassifierKind = Literal["xgboost", "lasso", "ridge"]
# The radiomics models: one LASSO selection, three classifiers on it.
RADIOMICS_VARIANTS: dict[str, ClassifierKind] = {
    "radiomics": "xgboost",
    "radiomics_lasso": "lasso",
    "radiomics_ridge": "ridge",
}


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ModelSettings:
    """The ``models`` section of the config; every key is optional."""

    clinical_covariates: tuple[str, ...] = CLINICAL_COVARIATES
    screening_p: float = 0.1
    cv_folds: int = 5
    n_cs: int = 20
    fallback_top_k: int = 5
    xgboost: Mapping[str, Any] = field(
        default_factory=lambda: {
            "n_estimators": 200,
            "max_depth": 2,
            "learning_rate": 0.05,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
        }
    )
    mlp_hidden_layers: tuple[int, ...] = (16,)
    mlp_alphas: tuple[float, ...] = (0.1, 1.0, 10.0)
    dltr_score_column: str = "dltr_score"
    dlr_radiomics_model: str = "radiomics"


def model_settings(cfg: Mapping[str, Any] | None) -> ModelSettings:
    """ModelSettings from the config's ``models`` section, rejecting unknown keys."""
    cfg = known_keys(ModelSettings, cfg or {}, "models")
    for key in ("clinical_covariates", "mlp_hidden_layers", "mlp_alphas"):
        if key in cfg:
            cfg[key] = tuple(cfg[key])
    if "xgboost" in cfg:
        cfg["xgboost"] = {**ModelSettings().xgboost, **cfg["xgboost"]}
    settings = ModelSettings(**cfg)
    if settings.dlr_radiomics_model not in RADIOMICS_VARIANTS:
        raise ValueError(
            f"models config: dlr_radiomics_model must be one of {sorted(RADIOMICS_VARIANTS)}, "
            f"got {settings.dlr_radiomics_model!r}"
        )
    return settings


def model_seed(seed: int, endpoint: str, model: str) -> int:
    """A random_state for one model of one endpoint, derived from the config seed."""
    return int(rng_for(seed, "models", endpoint, model).integers(2**31 - 1))


def neg_log_loss(estimator: Any, X: np.ndarray, y: np.ndarray) -> float:
    """Mean log-likelihood of held-out outcomes: a CV scorer, as sklearn's neg_log_loss."""
    # sklearn's scorer validates its inputs on every call, which dominates the CV time on
    # cohorts this small; the value is the same.
    p = np.clip(estimator.predict_proba(X)[:, 1], PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    return float(np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def cv_folds(n_splits: int, random_state: int) -> StratifiedKFold:
    """Seeded, shuffled stratified folds (shuffled so centre/order effects do not make folds)."""
    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain Python values, for JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray | pd.Index):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class ProbabilityClassifier(ClassifierMixin, BaseEstimator):
    """Base of the response models: predict() thresholds predict_proba at 0.5 for sklearn."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class 1 where the probability of outcome 1 is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


# --------------------------------------------------------------------------- clinical


def _as_category(values: pd.Series) -> pd.Series:
    """Categorical levels as strings; whole floats (1.0 read back from a TSV) become '1'."""

    def level(value: Any) -> Any:
        if pd.isna(value):
            return np.nan
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return values.map(level).astype(object)


def _is_categorical(values: pd.Series, covariate: str) -> bool:
    """Whether a covariate is coded as levels: known categorical, or not all numbers."""
    if covariate in CATEGORICAL_COVARIATES:
        return True
    present = values.dropna()
    return bool(pd.to_numeric(present, errors="coerce").isna().any())


def _as_numeric(values: pd.Series, covariate: str) -> pd.Series:
    """A numeric covariate as float, ValueError naming patients with non-numeric entries."""
    numeric = pd.to_numeric(values, errors="coerce").astype(float)
    bad = numeric.isna() & values.notna()
    if bad.any():
        raise ValueError(
            f"clinical covariate {covariate}: not a number for {int(bad.sum())} patient(s): "
            f"{name_patients(values.index[bad.to_numpy()])}"
        )
    if covariate in LOG10_COVARIATES:
        negative = numeric < 0
        if negative.any():
            raise ValueError(
                f"clinical covariate {covariate}: must be >= 0 for log10({covariate} + 1); "
                f"negative for {name_patients(values.index[negative.to_numpy()])}"
            )
        numeric = np.log10(numeric + 1.0)
    return numeric


class ClinicalPreprocessor(TransformerMixin, BaseEstimator):
    """Training-median/mode imputation, log10(afp + 1) and one-hot coding against a reference.

    A covariate is categorical if named in CATEGORICAL_COVARIATES or if its training values
    are not all numbers (a bring-your-own column such as ``vascular_invasion`` = yes/no).
    The reference level of a categorical covariate is the first of its training levels in
    sorted order (BCLC A, Child-Pugh A, ALBI grade 1). A level never seen in training is
    coded as the reference (all dummies 0), as OneHotEncoder(handle_unknown="ignore") does.
    """

    def __init__(self, covariates: Sequence[str] = CLINICAL_COVARIATES) -> None:
        self.covariates = covariates

    def fit(self, X: pd.DataFrame, y: Any = None) -> ClinicalPreprocessor:
        """Learn imputation values and levels from the training rows in ``X``."""
        require_columns(
            X, self.covariates, "clinical covariates (choose them with models.clinical_covariates)"
        )
        self.imputation_: dict[str, Any] = {}
        self.levels_: dict[str, list[str]] = {}
        for covariate in self.covariates:
            if _is_categorical(X[covariate], covariate):
                values = _as_category(X[covariate])
                if values.isna().all():
                    raise ValueError(f"clinical covariate {covariate}: missing for every patient")
                # pandas' mode is sorted, so ties go to the first level: deterministic.
                self.imputation_[covariate] = values.mode(dropna=True).iloc[0]
                self.levels_[covariate] = sorted(values.dropna().unique())
            else:
                values = _as_numeric(X[covariate], covariate)
                if values.isna().all():
                    raise ValueError(f"clinical covariate {covariate}: missing for every patient")
                self.imputation_[covariate] = float(values.median())
        return self

    def terms(self, covariate: str) -> list[str]:
        """Design columns of one covariate (a dummy per non-reference level, or itself)."""
        if covariate in self.levels_:
            return [f"{covariate}[{level}]" for level in self.levels_[covariate][1:]]
        return [f"log10_{covariate}" if covariate in LOG10_COVARIATES else covariate]

    def reference(self, covariate: str) -> str | None:
        """The reference level of a categorical covariate, None for a numeric one."""
        return self.levels_[covariate][0] if covariate in self.levels_ else None

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Design matrix (float) with training imputation applied, indexed like ``X``."""
        require_columns(X, self.covariates, "clinical covariates")
        columns: dict[str, pd.Series] = {}
        for covariate in self.covariates:
            fill = self.imputation_[covariate]
            if covariate in self.levels_:
                values = _as_category(X[covariate]).fillna(fill)
                for level, term in zip(
                    self.levels_[covariate][1:], self.terms(covariate), strict=True
                ):
                    columns[term] = (values == level).astype(float)
            else:
                columns[self.terms(covariate)[0]] = _as_numeric(X[covariate], covariate).fillna(
                    fill
                )
        return pd.DataFrame(columns, index=X.index)

    def describe(self) -> dict[str, Any]:
        """Imputation values, reference levels and transforms learnt on training."""
        return _plain(
            {
                "imputation": {
                    c: {
                        "value": v,
                        "statistic": "mode" if c in self.levels_ else "median",
                    }
                    for c, v in self.imputation_.items()
                },
                "reference_levels": {c: levels[0] for c, levels in self.levels_.items() if levels},
                "transforms": {
                    c: f"log10({c} + 1)" for c in self.covariates if c in LOG10_COVARIATES
                },
                "unseen_levels": "scored as the reference level",
            }
        )


@dataclass(frozen=True)
class LogitFit:
    """A statsmodels Logit result, or why the fit failed."""

    result: Any | None
    problem: str | None


def fit_logit(y: np.ndarray, design: pd.DataFrame) -> LogitFit:
    """Maximum-likelihood logistic fit with an intercept; separation/non-convergence reported."""
    exog = sm.add_constant(design, has_constant="add")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = sm.Logit(y, exog).fit(disp=0, method="newton", maxiter=100)
        except (np.linalg.LinAlgError, PerfectSeparationError) as error:
            return LogitFit(None, f"fit failed: {error}")
    problems = [
        str(w.message)
        for w in caught
        if issubclass(
            w.category, PerfectSeparationWarning | ConvergenceWarning | HessianInversionWarning
        )
    ]
    if problems or not np.all(np.isfinite(result.bse)):
        return LogitFit(None, "fit failed: " + ("; ".join(problems) or "infinite standard errors"))
    return LogitFit(result, None)


def odds_ratio_table(result: Any, alpha: float = 0.05) -> pd.DataFrame:
    """Odds ratio, Wald CI and P per term of a Logit result (intercept left out)."""
    ci = np.exp(result.conf_int(alpha=alpha))
    table = pd.DataFrame(
        {
            "term": result.params.index,
            "coefficient": result.params.to_numpy(),
            "odds_ratio": np.exp(result.params.to_numpy()),
            "ci_low": ci.iloc[:, 0].to_numpy(),
            "ci_high": ci.iloc[:, 1].to_numpy(),
            "p_value": result.pvalues.to_numpy(),
        }
    )
    return table[table["term"] != "const"].reset_index(drop=True)


class ClinicalLogistic(ProbabilityClassifier):
    """Univariable screening at P < screening_p, then a multivariable logistic model.

    Screening uses each covariate's likelihood-ratio P against the null model (one test per
    covariate, however many dummies). If the multivariable fit fails (separation,
    collinearity) the least significant covariate is dropped and the fit retried; if nothing
    passes, the single covariate with the smallest P is used. describe() says which happened.
    """

    def __init__(
        self, covariates: Sequence[str] = CLINICAL_COVARIATES, screening_p: float = 0.1
    ) -> None:
        self.covariates = covariates
        self.screening_p = screening_p

    def fit(self, X: pd.DataFrame, y: Any) -> ClinicalLogistic:
        """Impute, screen, and fit the multivariable model on the training rows."""
        y = np.asarray(y, dtype=int)
        self.classes_ = np.array([0, 1])
        self.preprocessor_ = ClinicalPreprocessor(self.covariates).fit(X)
        design = self.preprocessor_.transform(X)
        self.univariable_ = self._screen(y, design)
        per_covariate = self.univariable_.drop_duplicates("covariate").set_index("covariate")
        p_by_covariate = per_covariate["p_covariate"].dropna().sort_values(kind="stable")
        if p_by_covariate.empty:
            raise ValueError("clinical model: no covariate could be fitted on the training split")
        candidates = [c for c, p in p_by_covariate.items() if p < self.screening_p]
        self.fallback_ = None
        if not candidates:
            best = str(p_by_covariate.index[0])
            self.fallback_ = (
                f"no covariate had univariable P < {self.screening_p}; "
                f"kept the one with the smallest P ({best}, P = {p_by_covariate.iloc[0]:.3g})"
            )
            candidates = [best]
        self.dropped_: dict[str, str] = {}
        while True:
            terms = [t for c in candidates for t in self.preprocessor_.terms(c)]
            fit = fit_logit(y, design[terms])
            if fit.result is not None or len(candidates) == 1:
                break
            # Drop the least significant candidate (they are ordered by P) and retry.
            self.dropped_[candidates[-1]] = fit.problem or ""
            candidates = candidates[:-1]
        if fit.result is None:
            raise ValueError(f"clinical model: multivariable fit of {candidates} {fit.problem}")
        self.selected_ = list(candidates)
        self.terms_ = terms
        self.result_ = fit.result
        self.params_ = fit.result.params.copy()
        self.multivariable_ = odds_ratio_table(fit.result)
        self.multivariable_.insert(0, "covariate", self._covariate_of(self.multivariable_["term"]))
        return self

    def _covariate_of(self, terms: pd.Series) -> list[str]:
        """The covariate each design term belongs to."""
        owner = {t: c for c in self.covariates for t in self.preprocessor_.terms(c)}
        return [owner[t] for t in terms]

    def _screen(self, y: np.ndarray, design: pd.DataFrame) -> pd.DataFrame:
        """One row per term: univariable OR, CI, Wald P, covariate LR P and whether it passed."""
        rows = []
        for covariate in self.covariates:
            terms = self.preprocessor_.terms(covariate)
            reference = self.preprocessor_.reference(covariate)
            if not terms:
                rows.append({"covariate": covariate, "note": "a single level in training"})
                continue
            fit = fit_logit(y, design[terms])
            if fit.result is None:
                rows.append({"covariate": covariate, "term": terms[0], "note": fit.problem})
                continue
            table = odds_ratio_table(fit.result)
            table.insert(0, "covariate", covariate)
            table["reference"] = reference
            table["p_covariate"] = float(fit.result.llr_pvalue)
            rows.extend(table.to_dict("records"))
        table = pd.DataFrame(rows)
        for column in ("term", "reference", "odds_ratio", "p_covariate", "note"):
            if column not in table:
                table[column] = np.nan
        table["passed"] = table["p_covariate"] < self.screening_p
        return table

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Linear predictor (log odds) from the multivariable model."""
        design = self.preprocessor_.transform(X)[self.terms_]
        return self.params_["const"] + design.to_numpy() @ self.params_[self.terms_].to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities of outcome 0 and 1, one row per patient."""
        p = expit(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def describe(self) -> dict[str, Any]:
        """Screening and multivariable tables, selection, fallback and preprocessing."""
        return _plain(
            {
                "model": "statsmodels Logit: univariable screening, then multivariable",
                "screening_p": self.screening_p,
                "screening_test": "likelihood-ratio test of each covariate against the null",
                "selected": self.selected_,
                "fallback": self.fallback_,
                "dropped_from_multivariable": self.dropped_,
                "preprocessing": self.preprocessor_.describe(),
                "univariable": _records(self.univariable_),
                "multivariable": _records(self.multivariable_),
                "intercept": float(self.params_["const"]),
            }
        )


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-ready records, NaN as None."""
    return _plain(table.astype(object).where(table.notna(), None).to_dict("records"))


# --------------------------------------------------------------------------- radiomics


def top_k_by_auc(Z: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k columns with the largest |AUC - 0.5| on training (ties by position)."""
    strength = np.array([abs(roc_auc_score(y, Z[:, j]) - 0.5) for j in range(Z.shape[1])])
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

    def fit(self, X: pd.DataFrame, y: Any) -> LassoSignature:
        """Scale, select and fit the classifier on the training rows."""
        if self.classifier not in ("xgboost", "lasso", "ridge"):
            raise ValueError(f"classifier must be xgboost, lasso or ridge, got {self.classifier!r}")
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
        return _plain(described)


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
        return _plain(
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

    def fit(self, X: pd.DataFrame, y: Any) -> StackedScore:
        """Out-of-fold base scores, the combiner on them, then the bases on all rows."""
        y = np.asarray(y, dtype=int)
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
        self.bases_ = [
            (name, clone(est).fit(X[list(cols)], y), list(cols)) for name, est, cols in self.bases
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
        return _plain(
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
    return logit(np.clip(probabilities, PROBABILITY_EPS, 1 - PROBABILITY_EPS))


# --------------------------------------------------------------------------- inputs


def check_feature_table(table: pd.DataFrame, name: str, patients: pd.Index) -> pd.DataFrame:
    """The table's rows for ``patients`` as floats, else ValueError naming patients/columns."""
    if table.index.has_duplicates:
        duplicated = table.index[table.index.duplicated()].unique()
        raise ValueError(
            f"feature table {name!r}: duplicated patient(s) {name_patients(duplicated)}"
        )
    absent = patients.difference(table.index, sort=False)
    if len(absent):
        raise ValueError(
            f"feature table {name!r} lacks {len(absent)} patient(s) of the cohort sheet: "
            f"{name_patients(absent)}"
        )
    rows = table.loc[patients]
    non_numeric = [c for c in rows.columns if not pd.api.types.is_numeric_dtype(rows[c])]
    if non_numeric:
        raise ValueError(f"feature table {name!r}: non-numeric column(s) {non_numeric[:10]}")
    values = rows.astype(float)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        bad_rows, bad_columns = bad.any(axis=1), bad.any(axis=0)
        raise ValueError(
            f"feature table {name!r}: NaN or infinite values for {int(bad_rows.sum())} "
            f"patient(s): {name_patients(values.index[bad_rows])}; in column(s) "
            f"{list(values.columns[bad_columns][:10])}"
        )
    return values


def assemble_inputs(
    sheet: pd.DataFrame, features: Mapping[str, pd.DataFrame]
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Sheet and feature tables joined on patient_id, and each table's column names."""
    unknown = sorted(set(features) - set(FEATURE_SOURCES))
    if unknown:
        raise ValueError(f"feature tables {unknown} unknown; expected some of {FEATURE_SOURCES}")
    require_columns(sheet, ["split", "centre"], "cohort sheet")
    parts, columns = [sheet], {}
    for name, table in features.items():
        values = check_feature_table(table, name, sheet.index)
        clash = sorted(set(values.columns) & set().union(*(p.columns for p in parts)))
        if clash:
            raise ValueError(f"feature table {name!r}: column(s) {clash[:10]} also elsewhere")
        parts.append(values)
        columns[name] = list(values.columns)
    return pd.concat(parts, axis=1), columns


def training_outcome(sheet: pd.DataFrame, endpoint: str) -> pd.Series:
    """The endpoint on the train split as 0/1, else ValueError naming endpoint and patients."""
    require_columns(sheet, [endpoint, "split"], "cohort sheet")
    train = sheet.index[sheet["split"] == TRAIN]
    if len(train) == 0:
        raise ValueError(f"endpoint {endpoint!r}: the cohort sheet has no patient in split 'train'")
    outcome = sheet.loc[train, endpoint]
    values = pd.to_numeric(outcome, errors="coerce")
    if values.notna().all() and values.nunique() == 1 and values.iloc[0] in (0, 1):
        raise ValueError(
            f"endpoint {endpoint!r} in split 'train': all {len(train)} training patient(s) have "
            f"{endpoint} = {values.iloc[0]:g} (a single class); a model needs both to learn. Fix: "
            f"check the {endpoint!r} column of the cohort sheet (or its column map), or drop "
            f"{endpoint!r} from endpoints."
        )
    # check_binary_outcome names the patients (missing or not 0/1).
    y = check_binary_outcome(outcome, context=f"endpoint {endpoint!r} in split 'train'")
    return pd.Series(y, index=train, name=endpoint)


# --------------------------------------------------------------------------- fit and predict


@dataclass
class ResponseModel:
    """A fitted model with the columns it reads and its training Youden threshold."""

    name: str
    endpoint: str
    estimator: Any
    columns: list[str]
    youden_threshold: float = np.nan
    train_patients: list[str] = field(default_factory=list)

    def score(self, inputs: pd.DataFrame) -> pd.Series:
        """Probability of outcome 1 per patient."""
        return pd.Series(
            self.estimator.predict_proba(inputs[self.columns])[:, 1],
            index=inputs.index,
            name=self.name,
        )

    def describe(self) -> dict[str, Any]:
        """What the estimator selected and learnt, with the threshold and training size."""
        return _plain(
            {
                "name": self.name,
                "endpoint": self.endpoint,
                "n_train": len(self.train_patients),
                "youden_threshold": self.youden_threshold,
                **self.estimator.describe(),
            }
        )


def build_estimators(
    columns: Mapping[str, list[str]],
    clinical: ClinicalLogistic,
    settings: ModelSettings,
    seed: int,
    endpoint: str,
) -> dict[str, tuple[Any, list[str]]]:
    """Unfitted imaging estimators and their input columns, for the tables available."""
    estimators: dict[str, tuple[Any, list[str]]] = {}
    if RADIOMICS in columns:
        for name, kind in RADIOMICS_VARIANTS.items():
            estimators[name] = (
                LassoSignature(
                    classifier=kind,
                    cv_folds=settings.cv_folds,
                    n_cs=settings.n_cs,
                    fallback_top_k=settings.fallback_top_k,
                    xgboost_params=dict(settings.xgboost),
                    # One LASSO fold split shared by the variants: same selection in all three.
                    random_state=model_seed(seed, endpoint, RADIOMICS),
                ),
                columns[RADIOMICS],
            )
    if DEEP in columns:
        score_column = settings.dltr_score_column
        has_score = score_column in columns[DEEP]
        deep_columns = [c for c in columns[DEEP] if c.startswith(DEEP_PREFIX)]
        if not has_score and not deep_columns:
            raise ValueError(
                f"feature table 'deep' has neither {score_column!r} nor {DEEP_PREFIX}* columns"
            )
        dltr_columns = [score_column] if has_score else deep_columns
        dltr = (
            ScoreColumn(score_column)
            if has_score
            else LassoSignature(
                classifier="lasso",
                cv_folds=settings.cv_folds,
                n_cs=settings.n_cs,
                fallback_top_k=settings.fallback_top_k,
                random_state=model_seed(seed, endpoint, "DLTR"),
            )
        )
        estimators["DLTR"] = (dltr, dltr_columns)
        estimators["DLTR_MLP"] = (
            FusionMLP(
                imaging_columns=dltr_columns,
                clinical_covariates=clinical.selected_,
                hidden_layer_sizes=settings.mlp_hidden_layers,
                alphas=settings.mlp_alphas,
                cv_folds=settings.cv_folds,
                random_state=model_seed(seed, endpoint, "DLTR_MLP"),
            ),
            dltr_columns + list(clinical.selected_),
        )
    if RADIOMICS in columns and DEEP in columns:
        radiomics, radiomics_columns = estimators[settings.dlr_radiomics_model]
        dltr, dltr_columns = estimators["DLTR"]
        estimators["DLR"] = (
            StackedScore(
                bases=[
                    (settings.dlr_radiomics_model, clone(radiomics), radiomics_columns),
                    ("DLTR", clone(dltr), dltr_columns),
                ],
                cv_folds=settings.cv_folds,
                random_state=model_seed(seed, endpoint, "DLR"),
            ),
            radiomics_columns + dltr_columns,
        )
    return estimators


def _require_cv_classes(y: pd.Series, endpoint: str, cv_folds: int) -> None:
    """ValueError when the rarer training class has fewer patients than CV folds."""
    # Stratified CV (LASSO penalty, MLP penalty, DLR stacking) gives every fold one patient of
    # each class at least; with fewer, a fold trains on a single class and scikit-learn stops
    # with a message that names neither the endpoint nor the fix.
    n_positive = int(y.sum())
    counts = {1: n_positive, 0: len(y) - n_positive}
    rare = min(counts, key=lambda label: (counts[label], label))
    if counts[rare] >= cv_folds:
        return
    fix = (
        f"lower models.cv_folds to {counts[rare]} or add training patients with {endpoint} = {rare}"
        if counts[rare] >= 2
        else f"add training patients with {endpoint} = {rare}"
    )
    raise ValueError(
        f"endpoint {endpoint!r} in split 'train': {counts[1]} patient(s) with {endpoint} = 1 "
        f"and {counts[0]} with 0; models.cv_folds = {cv_folds} needs at least {cv_folds} of "
        f"each class. Fix: {fix}."
    )


def fit_all(
    sheet: pd.DataFrame,
    features: Mapping[str, pd.DataFrame],
    endpoint: str,
    seed: int,
    cfg: Mapping[str, Any] | None = None,
) -> dict[str, ResponseModel]:
    """Fit every model that the available tables allow on the train split, with thresholds.

    ``features`` maps ``radiomics`` and/or ``deep`` to patients x features tables covering
    every patient of ``sheet``; ``cfg`` is the config's ``models`` section (or None).
    """
    settings = model_settings(cfg)
    inputs, columns = assemble_inputs(sheet, features)
    y = training_outcome(sheet, endpoint)
    if columns:  # every imaging model tunes or stacks by CV; the clinical model alone does not
        _require_cv_classes(y, endpoint, settings.cv_folds)
    train = inputs.loc[y.index]
    clinical = ClinicalLogistic(settings.clinical_covariates, settings.screening_p).fit(train, y)
    fitted = {"clinical": (clinical, list(settings.clinical_covariates))}
    for name, (estimator, used) in build_estimators(
        columns, clinical, settings, seed, endpoint
    ).items():
        fitted[name] = (estimator.fit(train[used], y.to_numpy()), used)
    models = {}
    for name, (estimator, used) in fitted.items():
        model = ResponseModel(name, endpoint, estimator, used, train_patients=list(y.index))
        # The DLR combiner's in-sample inputs come from bases fitted on the same rows; its
        # threshold is set on the out-of-fold scores it was fitted on, as new patients get.
        oof = getattr(estimator, "oof_training_scores_", None)
        train_scores = pd.Series(oof, index=y.index) if oof is not None else model.score(train)
        model.youden_threshold = youden_threshold(
            y, train_scores, context=f"endpoint {endpoint!r} model {name} in split 'train'"
        )
        models[name] = model
    return models


def predict_all(
    models: Mapping[str, ResponseModel],
    sheet: pd.DataFrame,
    features: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """Long table of scores: one row per patient and model, every split of the sheet."""
    inputs, _ = assemble_inputs(sheet, features)
    frames = []
    for name, model in models.items():
        outcome = (
            pd.to_numeric(sheet[model.endpoint], errors="coerce").to_numpy(dtype=float)
            if model.endpoint in sheet
            else np.full(len(sheet), np.nan)
        )
        frames.append(
            pd.DataFrame(
                {
                    "patient_id": sheet.index,
                    "split": sheet["split"].to_numpy(),
                    "centre": sheet["centre"].to_numpy(),
                    "endpoint": model.endpoint,
                    "model": name,
                    "score": model.score(inputs).to_numpy(),
                    "outcome": outcome,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[list(PREDICTION_COLUMNS)]


def thresholds_table(models: Mapping[str, ResponseModel]) -> pd.DataFrame:
    """Training Youden threshold per model (a patient is called a responder at score >= it)."""
    return pd.DataFrame(
        [
            {"endpoint": m.endpoint, "model": name, "youden_threshold": m.youden_threshold}
            for name, m in models.items()
        ]
    )


def odds_ratio_tables(model: ResponseModel) -> pd.DataFrame:
    """The clinical model's univariable and multivariable OR tables, stacked with a step column."""
    estimator = model.estimator
    if not isinstance(estimator, ClinicalLogistic):
        raise ValueError(f"model {model.name!r} is not the clinical logistic model")
    return pd.concat(
        [
            estimator.univariable_.assign(step="univariable"),
            estimator.multivariable_.assign(step="multivariable", selected=True),
        ],
        ignore_index=True,
    ).assign(endpoint=model.endpoint)


def describe_all(models: Mapping[str, ResponseModel]) -> dict[str, Any]:
    """Every model's describe(), JSON-ready."""
    return {name: model.describe() for name, model in models.items()}


# --------------------------------------------------------------------------- workflow tables


def without_exclusions(sheet: pd.DataFrame, exclusions: pd.DataFrame) -> pd.DataFrame:
    """The sheet without the patients that image preparation excluded (exclusions.tsv)."""
    excluded = sheet.index.intersection(exclusions.index)
    return sheet.drop(index=excluded)


def deep_score_table(
    scores: pd.DataFrame, sheet: pd.DataFrame, column: str = "dltr_score"
) -> pd.DataFrame:
    """The deep model's score column per patient, checked against the sheet's splits.

    ``scores`` is the deep rule's scores.tsv indexed by patient_id (split, centre, the score
    and score_source: out-of-fold for training rows, the refitted network for the others).
    """
    require_columns(scores, [column], "deep scores table")
    if "split" in scores.columns:
        shared = sheet.index.intersection(scores.index)
        differs = shared[
            scores.loc[shared, "split"].astype(str).to_numpy()
            != sheet.loc[shared, "split"].astype(str).to_numpy()
        ]
        if len(differs):
            raise ValueError(
                f"deep scores table: split differs from the cohort sheet for "
                f"{name_patients(differs)}; rerun the deep-learning rules on this sheet"
            )
    return scores[[column]].astype(float)


def selected_features_table(models: Mapping[str, ResponseModel]) -> pd.DataFrame:
    """The predictors each model selected on training: clinical covariates and LASSO features."""
    rows = []
    for name, model in models.items():
        estimator = model.estimator
        if isinstance(estimator, ClinicalLogistic):
            table = estimator.multivariable_
            for covariate in estimator.selected_:
                terms = table[table["covariate"] == covariate]
                rows.append(
                    {
                        "model": name,
                        "feature": covariate,
                        "selection": "univariable screening + multivariable logistic",
                        "coefficient": float(terms["coefficient"].iloc[0])
                        if len(terms) == 1
                        else np.nan,
                    }
                )
        elif isinstance(estimator, LassoSignature):
            coefficients = estimator.lasso_.coef_[0, estimator.selected_index_]
            for feature, coefficient in zip(
                estimator.selected_features_, coefficients, strict=True
            ):
                rows.append(
                    {
                        "model": name,
                        "feature": feature,
                        "selection": estimator.selection_method_,
                        "coefficient": float(coefficient),
                    }
                )
    table = pd.DataFrame(rows, columns=["model", "feature", "selection", "coefficient"])
    counts = table.groupby("model", sort=False)["feature"].transform("size")
    return table.assign(n_selected=counts)
