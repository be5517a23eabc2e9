"""Single-centre evaluation: repeated stratified cross-validation with out-of-fold predictions.

When a cohort has no external split, every model is refitted in each training fold of
``repeats`` x ``folds`` stratified CV, and scores only its test fold. Everything learnt from
data happens inside the training fold: imputation, scaling and screening (inside the models),
the radiomics pre-filter (a scikit-learn Pipeline: median imputation, zero-variance filter,
top-k univariate F-test) and LASSO penalty, the Youden threshold and the survival cut-off
(the training fold's median score). A permuted-label control runs the same procedure on
shuffled outcomes (one shuffle per repeat, folds stratified on them) and should score AUC ~ 0.5.
Patients without the endpoint (no read, censored before a TTP threshold) never enter a fit, but
each observed repeat scores them by one fold's models (labels ``unlabelled``), so that the
survival of out-of-fold risk groups covers every patient with follow-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_classif
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from hccrad.core.config import known_keys
from hccrad.core.seeding import rng_for
from hccrad.models.clinical import ClinicalLogistic
from hccrad.models.fit import build_estimators
from hccrad.models.fusion import StackedScore
from hccrad.models.inputs import RADIOMICS
from hccrad.models.radiomics import LassoSignature
from hccrad.models.settings import ModelSettings, model_seed
from hccrad.stats.checks import check_binary_outcome
from hccrad.stats.discrimination import youden_threshold

OBSERVED = "observed"
PERMUTED = "permuted"
UNLABELLED = "unlabelled"
# The reasons a threshold endpoint's missing values have (hccrad.cohorts.column_map).
MISSING_SUFFIX = "_missing"
# The DLR-style combination: a logistic model on the clinical and radiomics scores.
COMBINED = "clinical_radiomics"
OOF_COLUMNS: tuple[str, ...] = (
    "labels",
    "repeat",
    "fold",
    "patient_id",
    "model",
    "score",
    "outcome",
    "youden_threshold",
    "risk_cutoff",
)


@dataclass(frozen=True)
class CrossvalSettings:
    """The ``crossval`` config section; every key is optional."""

    run: bool | str = "auto"
    repeats: int = 5
    folds: int = 5
    prefilter_k: int = 100
    permuted: bool = True
    # Repeats of the permuted-label control (None: ``repeats``), one count or one per endpoint
    # (an endpoint not named gets ``repeats``). With few patients in one class the control's
    # AUC varies widely between repeats (SD 0.14 with 9 of 73), so its mean needs more
    # repeats than the observed estimate to be read against 0.5; a balanced endpoint fewer.
    permuted_repeats: int | Mapping[str, int] | None = None
    n_jobs: int = 1
    readers: tuple[str, ...] = ()


def crossval_settings(cfg: Mapping[str, Any] | None) -> CrossvalSettings:
    """CrossvalSettings from the config's ``crossval`` section, rejecting unknown keys."""
    cfg = known_keys(CrossvalSettings, cfg or {}, "crossval")
    cfg["readers"] = tuple(cfg.get("readers", ()))
    settings = CrossvalSettings(**cfg)
    if settings.folds < 2 or settings.repeats < 1 or settings.prefilter_k < 1:
        raise ValueError(f"crossval config: folds >= 2, repeats >= 1, prefilter_k >= 1: {settings}")
    counts = settings.permuted_repeats
    if isinstance(counts, Mapping):
        counts = list(counts.values())
    elif counts is not None:
        counts = [counts]
    if counts is not None and not all(isinstance(n, int) and n >= 1 for n in counts):
        raise ValueError(f"crossval config: permuted_repeats >= 1 (or null): {settings}")
    return settings


def permuted_repeats(settings: CrossvalSettings, endpoint: str) -> int:
    """Repeats of one endpoint's permuted-label control."""
    count = settings.permuted_repeats
    if isinstance(count, Mapping):
        count = count.get(endpoint)
    return count or settings.repeats


def labellings(settings: CrossvalSettings, endpoint: str) -> list[tuple[str, int]]:
    """(labels, repeat) pairs to run for one endpoint: the observed repeats, the control's."""
    pairs = [(OBSERVED, r) for r in range(1, settings.repeats + 1)]
    if settings.permuted:
        pairs += [(PERMUTED, r) for r in range(1, permuted_repeats(settings, endpoint) + 1)]
    return sorted(pairs, key=lambda pair: (pair[1], pair[0]))


def repeat_folds(
    y: np.ndarray, folds: int, seed: int, endpoint: str, repeat: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) positions of one repeat: stratified folds from a named seed stream."""
    # One seeded StratifiedKFold per repeat (what RepeatedStratifiedKFold does with one random
    # state), so a repeat's folds can be rebuilt from its number alone, e.g. by a test.
    random_state = int(
        rng_for(seed, "crossval", endpoint, "folds", str(repeat)).integers(2**31 - 1)
    )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    return list(splitter.split(np.zeros((len(y), 1)), y))


def permuted_outcome(y: np.ndarray, seed: int, endpoint: str, repeat: int) -> np.ndarray:
    """The outcomes shuffled across patients: the permuted-label control of one repeat."""
    return rng_for(seed, "crossval", endpoint, "permuted", str(repeat)).permutation(y)


class Prefilter(TransformerMixin, BaseEstimator):
    """Median imputation, zero-variance filter and top-k F-test of a feature DataFrame."""

    def __init__(self, k: int = 100) -> None:
        self.k = k

    def fit(self, X: pd.DataFrame, y: Any) -> Prefilter:
        """Fit the three scikit-learn steps on the training rows' values."""
        # The steps run on the values, not the DataFrame: scikit-learn validates a DataFrame
        # column by column in every step, which on 2000 features and ~80 patients costs more
        # than the steps themselves. Same steps, same values, so the same selection.
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.pipeline_ = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median")),
                ("variance", VarianceThreshold()),
                ("select", SelectKBest(f_classif, k=min(self.k, X.shape[1]))),
            ]
        ).fit(X.to_numpy(dtype=float), y)
        self.selected_ = list(self.pipeline_.get_feature_names_out(self.feature_names_in_))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The selected features, training medians in place of missing values."""
        values = self.pipeline_.transform(X[self.feature_names_in_].to_numpy(dtype=float))
        return pd.DataFrame(values, index=X.index, columns=self.selected_)


def prefiltered(estimator: Any, n_features: int, k: int) -> Pipeline:
    """Median imputation, zero-variance filter and top-k F-test before a radiomics model."""
    # Thousands of features on ~100 patients make the LASSO path slow and unstable; a
    # univariate pre-filter fitted on the training fold (never the test fold) is the usual fix.
    return Pipeline([("prefilter", Prefilter(k=min(k, n_features))), ("model", estimator)])


def crossval_estimators(
    columns: Mapping[str, list[str]],
    models: ModelSettings,
    settings: CrossvalSettings,
    seed: int,
    endpoint: str,
) -> dict[str, tuple[Any, list[str]]]:
    """Unfitted models and their columns: clinical, radiomics variants, clinical + radiomics."""
    clinical = ClinicalLogistic(models.clinical_covariates, models.screening_p)
    estimators: dict[str, tuple[Any, list[str]]] = {
        "clinical": (clinical, list(models.clinical_covariates))
    }
    if RADIOMICS not in columns:
        return estimators
    # The radiomics models of the train/test workflow, unchanged, behind the pre-filter.
    for name, (estimator, used) in build_estimators(
        {RADIOMICS: columns[RADIOMICS]}, clinical, models, seed, endpoint
    ).items():
        estimators[name] = (prefiltered(estimator, len(used), settings.prefilter_k), used)
    radiomics, used = estimators[models.dlr_radiomics_model]
    estimators[COMBINED] = (
        StackedScore(
            bases=[
                ("clinical", clone(clinical), list(models.clinical_covariates)),
                (models.dlr_radiomics_model, clone(radiomics), used),
            ],
            cv_folds=models.cv_folds,
            random_state=model_seed(seed, endpoint, COMBINED),
        ),
        list(models.clinical_covariates) + used,
    )
    return estimators


class FoldFits:
    """Models fitted on one training fold, each fit that two models have in common done once.

    The three radiomics models share the pre-filter and the LASSO selection (the same seeded
    estimator on the same rows, only the classifier differs) and the clinical + radiomics
    stack refits, on all training rows, two models the fold already has. Fitting each of them
    again gives the same numbers at several times the cost; tests/test_crossval.py checks that
    the shared fits score as the separate ones.
    """

    def __init__(self, X: pd.DataFrame, y: np.ndarray) -> None:
        self.X = X
        self.y = y
        # (joblib.hash of the unfitted estimator, its columns): the fit, for models built alike.
        self.done: dict[tuple[str, tuple[str, ...]], Any] = {}
        # joblib.hash by id of each estimator seen in this fold, kept with the estimator so that
        # its id is not reused: hashing pickles an estimator, and a stack holds its bases'
        # thousands of column names (a tenth of a fold's time when hashed at every call).
        self.hashes: dict[int, tuple[Any, str]] = {}

    def _hash(self, estimator: Any) -> str:
        """joblib.hash of an unfitted estimator (its parameters), once per object."""
        if id(estimator) not in self.hashes:
            self.hashes[id(estimator)] = (estimator, joblib.hash(estimator))
        return self.hashes[id(estimator)][1]

    def fit(self, estimator: Any, used: Sequence[str]) -> Any:
        """``clone(estimator).fit`` on the fold's rows and ``used`` columns, or its earlier fit."""
        key = (self._hash(estimator), tuple(used))
        if key not in self.done:
            self.done[key] = self._fit(estimator, list(used))
        return self.done[key]

    def _fit(self, estimator: Any, used: list[str]) -> Any:
        """A new fit, reusing what it shares with earlier ones."""
        X = self.X[used]
        if isinstance(estimator, StackedScore):
            bases = [self.fit(base, columns) for _, base, columns in estimator.bases]
            return clone(estimator).fit(X, self.y, fitted_bases=bases)
        if isinstance(estimator, Pipeline) and isinstance(estimator[-1], LassoSignature):
            # Scaling and selection depend on neither the classifier nor its parameters.
            selection = clone(estimator).set_params(
                model__classifier="lasso", model__xgboost_params=None
            )
            if joblib.hash(selection) != self._hash(estimator):
                shared = self.fit(selection, used)
                prefilter, signature = shared[0], shared[-1]
                model = signature.with_classifier(
                    prefilter.transform(X),
                    self.y,
                    classifier=estimator[-1].classifier,
                    xgboost_params=estimator[-1].xgboost_params,
                )
                return Pipeline([("prefilter", prefilter), ("model", model)])
        return clone(estimator).fit(X, self.y)


def _training_scores(estimator: Any, X: pd.DataFrame) -> np.ndarray:
    """Scores of the training rows that a threshold is set on (the DLR combiner's out-of-fold)."""
    oof = getattr(estimator, "oof_training_scores_", None)
    return np.asarray(oof) if oof is not None else estimator.predict_proba(X)[:, 1]


def fold_predictions(
    inputs: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    estimators: Mapping[str, tuple[Any, list[str]]],
    unlabelled: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every model fitted on the training rows and scored on the test rows, with its cut-offs.

    ``unlabelled`` rows (patients without the endpoint) are scored too, outcome missing.
    """
    frames = []
    training = inputs.iloc[train]
    fits = FoldFits(training, y[train])
    for name, (estimator, used) in estimators.items():
        fitted = fits.fit(estimator, used)
        train_scores = _training_scores(fitted, training[used])
        cutoffs = {
            "youden_threshold": youden_threshold(
                y[train], train_scores, context=f"model {name}, training fold"
            ),
            # Survival risk groups: high above the training fold's median score.
            "risk_cutoff": float(np.median(train_scores)),
        }
        frames.append(
            pd.DataFrame(
                {
                    "patient_id": inputs.index[test],
                    "model": name,
                    "score": fitted.predict_proba(inputs.iloc[test][used])[:, 1],
                    "outcome": y[test],
                    **cutoffs,
                }
            )
        )
        if unlabelled is not None and len(unlabelled):
            frames.append(
                pd.DataFrame(
                    {
                        "patient_id": unlabelled.index,
                        "model": name,
                        "score": fitted.predict_proba(unlabelled[used])[:, 1],
                        "outcome": np.nan,
                        **cutoffs,
                        "unlabelled": True,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def unlabelled_folds(
    patients: Sequence[str], folds: int, seed: int, endpoint: str, repeat: int
) -> np.ndarray:
    """The fold whose models score each patient without the endpoint, in one repeat."""
    # Balanced and seeded: fold sizes differ by at most one, the order from a named stream.
    order = np.arange(len(patients)) % folds + 1
    return rng_for(seed, "crossval", endpoint, UNLABELLED, str(repeat)).permutation(order)


def crossval_predictions(
    inputs: pd.DataFrame,
    outcome: pd.Series,
    estimators: Mapping[str, tuple[Any, list[str]]],
    settings: CrossvalSettings,
    seed: int,
    endpoint: str,
    unlabelled: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Out-of-fold predictions of every model, repeat and fold, observed and permuted labels.

    ``unlabelled`` patients (no endpoint) are scored in each observed repeat by the models of
    one fold (``unlabelled_folds``) and get labels UNLABELLED; they never enter a fit.
    """
    y = check_binary_outcome(outcome, context=f"endpoint {endpoint!r}")
    inputs = inputs.loc[outcome.index]
    if unlabelled is None:
        unlabelled = inputs.iloc[:0]
    tasks = []
    for labels, repeat in labellings(settings, endpoint):
        y_used = y if labels == OBSERVED else permuted_outcome(y, seed, endpoint, repeat)
        # The control's folds are stratified on its own (shuffled) outcomes, as the
        # procedure does: folds stratified on the observed ones would give the shuffled
        # outcomes unequal fold prevalences, which the models' intercepts follow in the
        # training folds and the test folds mirror, pulling the pooled AUC below 0.5.
        folds = repeat_folds(y_used, settings.folds, seed, endpoint, repeat)
        scored = unlabelled_folds(unlabelled.index, settings.folds, seed, endpoint, repeat)
        for fold, (train, test) in enumerate(folds, start=1):
            extra = unlabelled[scored == fold] if labels == OBSERVED else None
            tasks.append(((labels, repeat, fold), y_used, train, test, extra))
    results = Parallel(n_jobs=settings.n_jobs)(
        delayed(fold_predictions)(inputs, y_used, train, test, estimators, extra)
        for _, y_used, train, test, extra in tasks
    )
    frames = []
    for ((labels, repeat, fold), *_), table in zip(tasks, results, strict=True):
        table = table.assign(labels=labels, repeat=repeat, fold=fold)
        if "unlabelled" in table:
            table.loc[table.pop("unlabelled").eq(True), "labels"] = UNLABELLED
        frames.append(table)
    return pd.concat(frames, ignore_index=True)[list(OOF_COLUMNS)]


def fold_table(
    outcome: pd.Series, settings: CrossvalSettings, seed: int, endpoint: str
) -> pd.DataFrame:
    """Which test fold each patient is in, per repeat (to recompute any model on the same folds)."""
    y = check_binary_outcome(outcome, context=f"endpoint {endpoint!r}")
    rows = []
    for repeat in range(1, settings.repeats + 1):
        for fold, (_, test) in enumerate(
            repeat_folds(y, settings.folds, seed, endpoint, repeat), 1
        ):
            rows += [{"repeat": repeat, "fold": fold, "patient_id": p} for p in outcome.index[test]]
    return pd.DataFrame(rows)


def crossval_inputs(
    sheet: pd.DataFrame, features: pd.DataFrame | None, endpoint: str
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """Sheet joined with the features, the 0/1 outcome, and the patients left out for lacking it.

    ``sheet`` is already without the excluded patients and ``features`` covers exactly those
    (hccrad.cohorts.feature_table.check_features); every split of the sheet takes part. The
    first table holds every patient (unlabelled ones too: see ``crossval_predictions``); a
    reason the sheet gives (``<endpoint>_missing``, a threshold endpoint's) is the exclusion's.
    """
    inputs = sheet
    if features is not None:
        clash = sorted(set(sheet.columns) & set(features.columns))
        if clash:
            raise ValueError(f"feature table: column(s) {clash[:10]} are also sheet columns")
        absent = sheet.index.difference(features.index, sort=False)
        if len(absent):
            raise ValueError(
                f"feature table lacks {len(absent)} patient(s) of the sheet: {list(absent[:10])}"
            )
        inputs = sheet.join(features, how="inner")
    values = pd.to_numeric(inputs[endpoint], errors="coerce")
    lacking = values.isna()
    reasons = pd.Series(f"no {endpoint} (the endpoint) in the cohort sheet", index=inputs.index)
    if endpoint + MISSING_SUFFIX in inputs:
        given = inputs[endpoint + MISSING_SUFFIX]
        reasons = reasons.where(given.isna() | given.eq(""), given.astype(str))
    exclusions = pd.DataFrame(
        {"patient_id": inputs.index[lacking.to_numpy()], "reason": reasons[lacking].to_numpy()},
        columns=["patient_id", "reason"],
    )
    outcome = values[~lacking].astype(int).rename(endpoint)
    return inputs, outcome, exclusions
