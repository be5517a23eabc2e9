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

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
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
    # Repeats of the permuted-label control (None: ``repeats``). With few patients in one
    # class the control's AUC varies widely between repeats (SD 0.14 with 9 of 73), so its
    # mean needs more repeats than the observed estimate to be read against 0.5.
    permuted_repeats: int | None = None
    n_jobs: int = 1
    readers: tuple[str, ...] = ()


def crossval_settings(cfg: Mapping[str, Any] | None) -> CrossvalSettings:
    """CrossvalSettings from the config's ``crossval`` section, rejecting unknown keys."""
    cfg = known_keys(CrossvalSettings, cfg or {}, "crossval")
    cfg["readers"] = tuple(cfg.get("readers", ()))
    settings = CrossvalSettings(**cfg)
    if settings.folds < 2 or settings.repeats < 1 or settings.prefilter_k < 1:
        raise ValueError(f"crossval config: folds >= 2, repeats >= 1, prefilter_k >= 1: {settings}")
    if settings.permuted_repeats is not None and settings.permuted_repeats < 1:
        raise ValueError(f"crossval config: permuted_repeats >= 1 (or null): {settings}")
    return settings


def labellings(settings: CrossvalSettings) -> list[tuple[str, int]]:
    """(labels, repeat) pairs to run: the observed repeats, then the control's."""
    pairs = [(OBSERVED, r) for r in range(1, settings.repeats + 1)]
    if settings.permuted:
        count = settings.permuted_repeats or settings.repeats
        pairs += [(PERMUTED, r) for r in range(1, count + 1)]
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


def prefiltered(estimator: Any, n_features: int, k: int) -> Pipeline:
    """Median imputation, zero-variance filter and top-k F-test before a radiomics model."""
    # Thousands of features on ~100 patients make the LASSO path slow and unstable; a
    # univariate pre-filter fitted on the training fold (never the test fold) is the usual fix.
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("variance", VarianceThreshold()),
            ("prefilter", SelectKBest(f_classif, k=min(k, n_features))),
            ("model", estimator),
        ]
    ).set_output(transform="pandas")


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
    for name, (estimator, used) in estimators.items():
        fitted = clone(estimator).fit(inputs.iloc[train][used], y[train])
        train_scores = _training_scores(fitted, inputs.iloc[train][used])
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
    for labels, repeat in labellings(settings):
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
