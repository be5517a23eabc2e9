"""The clinical model: covariate coding and imputation, logistic fits, odds ratios, screening.

``ClinicalLogistic`` screens each covariate by a univariable logistic model (likelihood-ratio
P, so a categorical covariate is one test), then fits a multivariable logistic model
(statsmodels) on the covariates with P < ``screening_p``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, TransformerMixin
from statsmodels.discrete.discrete_model import Logit
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    HessianInversionWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
)
from statsmodels.tools.tools import add_constant

from hccrad.cohorts.sheet import CLINICAL_COVARIATES
from hccrad.models.base import ProbabilityClassifier, plain
from hccrad.stats.checks import name_patients, require_columns

CATEGORICAL_COVARIATES: frozenset[str] = frozenset(
    {"sex", "aetiology", "bclc", "child_pugh", "albi_grade"}
)
# AFP spans orders of magnitude (ng/mL); log10(afp + 1) keeps 0 finite and makes the OR per decade.
LOG10_COVARIATES: frozenset[str] = frozenset({"afp"})


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
        return plain(
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
    exog = add_constant(design, has_constant="add")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = Logit(y, exog).fit(disp=0, method="newton", maxiter=100)
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
        # Every covariate's likelihood-ratio test is against the same constant-only model (same
        # outcomes, no missing rows after imputation): statsmodels would fit it again for each
        # (a quarter of this model's fit time), so its log-likelihood is fitted once and given.
        llnull = None
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
            if llnull is None:
                llnull = fit.result.llnull
            else:
                fit.result.set_null_options(llnull=llnull)
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
        return plain(
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
    return plain(table.astype(object).where(table.notna(), None).to_dict("records"))
