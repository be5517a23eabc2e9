"""Conformal prediction sets and Venn-Abers probability intervals for every response model.

Calibrated on held-out predictions of the training split only: the training patients are cut
into ``folds`` stratified folds, every model of ``hccrad.models.fit`` is fitted on the other
folds exactly as ``fit_models`` fits it (screening, selection, penalties, the DLR combiner's
inner out-of-fold stacking, all inside the fold) and scores the held-out fold. Those
out-of-fold scores and the training outcomes are the calibration set; no internal-test or
external patient is read. DLTR's score of a training patient is already out of fold
(``deep_select``'s ``out_of_fold.tsv``, carried into ``deep/<endpoint>/scores.tsv``).

For a new patient with score p, MAPIE (scikit-learn-contrib) gives

- a split-conformal prediction set (LAC score 1 - p(true class)): the outcomes not rejected at
  level ``alpha``, so that the set holds the true outcome with probability >= 1 - alpha for a
  patient exchangeable with the training patients (marginal, finite-sample coverage);
- an inductive Venn-Abers interval [p0, p1] for the probability of outcome 1 (isotonic
  calibration of the score with the new patient taken as 0, then as 1).

The calibration is stored as JSON (the held-out scores and outcomes per model) and the MAPIE
objects are rebuilt from it when scoring: both are deterministic functions of that set.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from mapie.calibration import VennAbersCalibrator
from mapie.classification import SplitConformalClassifier
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold

from hccrad.core.seeding import rng_for
from hccrad.core.splits import SPLIT_COLUMN, TRAIN
from hccrad.models.base import plain
from hccrad.models.fit import fit_all, predict_all
from hccrad.models.inputs import training_outcome
from hccrad.stats.checks import require_columns

HELD_OUT_COLUMNS: tuple[str, ...] = ("patient_id", "model", "score", "outcome", "fold")
INTERVAL_COLUMNS: tuple[str, ...] = (
    "interval_low",
    "interval_high",
    "prediction_set",
    "coverage_nominal",
)
# The fold split's name, outside every other named stream of the run.
FOLD_STREAM = "conformal"
METHOD = (
    "split-conformal prediction sets (LAC score) and inductive Venn-Abers intervals (MAPIE), "
    "calibrated on out-of-fold scores of the training split"
)


# --------------------------------------------------------------------------- held-out scores


def conformal_folds(y: pd.Series, folds: int, seed: int, endpoint: str) -> list[np.ndarray]:
    """The held-out positions of each stratified fold of the training outcomes (seeded)."""
    random_state = int(rng_for(seed, FOLD_STREAM, endpoint, "folds").integers(2**31 - 1))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    return [held for _, held in splitter.split(np.zeros((len(y), 1)), y.to_numpy())]


def held_out_scores(
    sheet: pd.DataFrame,
    features: Mapping[str, pd.DataFrame],
    endpoint: str,
    seed: int,
    cfg: Mapping[str, Any] | None = None,
    folds: int = 5,
) -> pd.DataFrame:
    """Out-of-fold scores of every model on the training split (never another split).

    Each fold's models are fitted by ``fit_all`` on the training patients outside the fold,
    with the fit_models settings (``cfg``: the config's ``models`` section) and seed.
    """
    y = training_outcome(sheet, endpoint)
    # Only training rows go further, feature tables included: no other split can enter.
    train_sheet = sheet.loc[y.index]
    train_features = {name: table.loc[y.index] for name, table in features.items()}
    frames = []
    for fold, held in enumerate(conformal_folds(y, folds, seed, endpoint), start=1):
        is_held = np.zeros(len(y), dtype=bool)
        is_held[held] = True
        fold_sheet = train_sheet.assign(
            **{SPLIT_COLUMN: np.where(is_held, f"held_out_{fold}", TRAIN)}
        )
        try:
            models = fit_all(fold_sheet, train_features, endpoint, seed, cfg)
        except ValueError as error:
            raise ValueError(
                f"conformal calibration, fold {fold} of {folds} (the other folds' "
                f"{len(y) - len(held)} training patients): {error} Or lower conformal.folds."
            ) from error
        scored = predict_all(models, fold_sheet.iloc[held], train_features)
        frames.append(scored.assign(fold=fold))
    table = pd.concat(frames, ignore_index=True)
    return table[list(HELD_OUT_COLUMNS)]


# --------------------------------------------------------------------------- calibration


class _ScoreAsProbability(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose probability of outcome 1 is its one input column (a score)."""

    def fit(self, X: Any = None, y: Any = None) -> _ScoreAsProbability:
        """Nothing to learn: the scores are already probabilities."""
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = 1
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of outcome 0 and 1 from the score column."""
        p = np.asarray(X, dtype=float)[:, 0]
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """Outcome 1 where the score is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def min_calibration_size(alpha: float) -> int:
    """Fewest calibration patients for which a split-conformal set can exclude an outcome."""
    # The LAC threshold is the ceil((n + 1)(1 - alpha))-th smallest calibration score; with
    # fewer patients that rank exceeds n and every set is {0, 1} whatever the model says.
    return math.ceil((1 - alpha) / alpha - 1e-9)


def fit_conformal(held_out: pd.DataFrame, alpha: float) -> dict[str, Any]:
    """Per model: the calibration set (held-out scores, outcomes and patients), JSON-ready."""
    require_columns(held_out, ["patient_id", "model", "score", "outcome"], "held-out scores")
    if not 0 < alpha < 1:
        raise ValueError(f"conformal alpha must be in (0, 1), got {alpha}")
    models = {}
    for name, rows in held_out.groupby("model", sort=False):
        outcome = pd.to_numeric(rows["outcome"], errors="coerce")
        if outcome.isna().any() or not outcome.isin([0, 1]).all():
            raise ValueError(f"held-out scores of {name}: outcomes must be 0/1")
        needed = min_calibration_size(alpha)
        if len(rows) < needed:
            raise ValueError(
                f"conformal calibration of {name}: {len(rows)} held-out training patients, "
                f"alpha = {alpha} needs at least {needed}; raise conformal.alpha or add "
                "training patients"
            )
        models[str(name)] = {
            "n": len(rows),
            "events": int(outcome.sum()),
            "patients": rows["patient_id"].astype(str).tolist(),
            "scores": rows["score"].astype(float).tolist(),
            "outcomes": outcome.astype(int).tolist(),
        }
    return plain(
        {
            "method": METHOD,
            "alpha": float(alpha),
            "coverage_nominal": 1.0 - float(alpha),
            "models": models,
        }
    )


def _split_conformal(scores: Any, outcomes: Any, alpha: float) -> SplitConformalClassifier:
    """MAPIE's split-conformal classifier on the calibration scores (a prefit passthrough)."""
    return SplitConformalClassifier(
        estimator=_ScoreAsProbability().fit(),
        confidence_level=1.0 - alpha,
        conformity_score="lac",
        prefit=True,
    ).conformalize(np.asarray(scores, dtype=float)[:, None], np.asarray(outcomes, dtype=int))


def _venn_abers(scores: Any, outcomes: Any) -> VennAbersCalibrator:
    """MAPIE's Venn-Abers calibrator of the scores (a prefit passthrough)."""
    return VennAbersCalibrator(estimator=_ScoreAsProbability().fit(), cv="prefit").fit(
        np.asarray(scores, dtype=float)[:, None], np.asarray(outcomes, dtype=int)
    )


def _set_text(members: np.ndarray) -> str:
    """A prediction set as text: "0", "1", "0,1" or "" (empty)."""
    return ",".join(str(label) for label, kept in zip((0, 1), members, strict=True) if kept)


def conformal_intervals(calibration: Mapping[str, Any], scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` (patient_id, model, score) with each patient's interval and prediction set."""
    require_columns(scores, ["patient_id", "model", "score"], "scores")
    known = calibration["models"]
    unknown = sorted(set(scores["model"]) - set(known))
    if unknown:
        raise ValueError(
            f"no conformal calibration for model(s) {unknown}; calibrated: {sorted(known)}"
        )
    alpha = float(calibration["alpha"])
    # Rows are matched by position below: a caller's index (repeated ids, say) must not matter.
    out = scores.reset_index(drop=True)
    for column in INTERVAL_COLUMNS:
        out[column] = np.nan
    out["prediction_set"] = ""
    for name, rows in out.groupby("model", sort=False):
        entry = known[name]
        p = rows["score"].to_numpy(dtype=float)[:, None]
        _, sets = _split_conformal(entry["scores"], entry["outcomes"], alpha).predict_set(p)
        with warnings.catch_warnings():
            # MAPIE's Venn-Abers divides by zero on tied calibration scores (a vertical step
            # of the isotonic fit) and handles the NaN itself.
            warnings.simplefilter("ignore", RuntimeWarning)
            _, p0_p1 = _venn_abers(entry["scores"], entry["outcomes"]).predict_proba(
                p, p0_p1_output=True
            )
        out.loc[rows.index, "interval_low"] = np.asarray(p0_p1)[:, 0]
        out.loc[rows.index, "interval_high"] = np.asarray(p0_p1)[:, 1]
        out.loc[rows.index, "prediction_set"] = [_set_text(s) for s in sets[:, :, 0]]
    out["coverage_nominal"] = float(calibration["coverage_nominal"])
    return out
