"""Checks shared by every stage: outcomes, scores and probabilities, required columns, notes.

Error messages name the patients at fault (a few, then a count) and the ``context`` the caller
gives (e.g. ``"response in external_A"``), so a user knows which split and column to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

ArrayLike = np.ndarray | pd.Series | Sequence[float]
# Scores of several models on the same patients: model name -> scores, or a column per model.
ScoreTable = Mapping[str, ArrayLike] | pd.DataFrame
MAX_PATIENTS_NAMED = 10


def require_columns(frame: pd.DataFrame, columns: Sequence[str], context: str) -> None:
    """ValueError naming the columns that ``frame`` lacks."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{context}: missing column(s) {missing}; have {list(frame.columns)}")


def error_note(error: Exception) -> str:
    """One-line note for a statistic that could not be computed or estimated."""
    return " ".join(str(error).split())


def name_patients(labels: Sequence[object]) -> str:
    """Comma-separated patient ids, truncated after a few, for error messages."""
    labels = list(labels)
    shown = ", ".join(str(label) for label in labels[:MAX_PATIENTS_NAMED])
    more = len(labels) - MAX_PATIENTS_NAMED
    return f"{shown} (+{more} more)" if more > 0 else shown


def _patient_labels(values: ArrayLike, mask: np.ndarray) -> list[object]:
    """Index labels (Series) or positions (arrays) where ``mask`` is true."""
    if isinstance(values, pd.Series):
        return list(values.index[mask])
    return [f"row {i}" for i in np.flatnonzero(mask)]


def check_binary_outcome(y_true: ArrayLike, *, context: str = "outcome") -> np.ndarray:
    """Outcome as an int array of 0/1 with both classes present, else ValueError."""
    values = y_true if isinstance(y_true, pd.Series) else pd.Series(np.asarray(y_true))
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    missing = np.isnan(numeric)
    if missing.any():
        raise ValueError(
            f"{context}: outcome missing for {missing.sum()} patient(s): "
            f"{name_patients(_patient_labels(y_true, missing))}"
        )
    not_binary = ~np.isin(numeric, (0.0, 1.0))
    if not_binary.any():
        raise ValueError(
            f"{context}: outcome must be 0/1, got {sorted(set(numeric[not_binary]))} for "
            f"{name_patients(_patient_labels(y_true, not_binary))}"
        )
    n_positive = int(numeric.sum())
    n_negative = numeric.size - n_positive
    if n_positive == 0 or n_negative == 0:
        patients = (
            f"; patients: {name_patients(list(y_true.index))}"
            if isinstance(y_true, pd.Series)
            else ""
        )
        raise ValueError(
            f"{context}: outcome has a single class ({n_positive} with 1, {n_negative} with 0); "
            f"discrimination and calibration need both responders and non-responders{patients}"
        )
    return numeric.astype(int)


def _check_same_patients(y_true: ArrayLike, values: ArrayLike, *, context: str, name: str) -> None:
    """ValueError when outcome and scores are both Series indexed by different patients."""
    if not (isinstance(y_true, pd.Series) and isinstance(values, pd.Series)):
        return
    if y_true.index.equals(values.index):
        return
    # Positional arithmetic on misaligned Series would silently pair the wrong patients.
    differing = y_true.index.symmetric_difference(values.index)
    detail = (
        f"patients only in one of them: {name_patients(differing)}"
        if len(differing)
        else "same patients in a different order; align them first"
    )
    raise ValueError(f"{context}: {name} and outcome are indexed differently; {detail}")


def check_scores(
    y_score: ArrayLike, y_true: ArrayLike, *, context: str = "outcome", name: str = "score"
) -> np.ndarray:
    """Scores as a finite float array matching the outcome's length (and index), else ValueError."""
    scores = np.asarray(y_score, dtype="float64")
    if scores.ndim != 1:
        raise ValueError(f"{context}: {name} must be one-dimensional, got shape {scores.shape}")
    n_expected = len(y_true)
    if scores.size != n_expected:
        raise ValueError(
            f"{context}: {name} has {scores.size} values but the outcome has {n_expected}"
        )
    _check_same_patients(y_true, y_score, context=context, name=name)
    not_finite = ~np.isfinite(scores)
    if not_finite.any():
        raise ValueError(
            f"{context}: {name} is NaN or infinite for {not_finite.sum()} patient(s): "
            f"{name_patients(_patient_labels(y_score, not_finite))}"
        )
    return scores


def check_probabilities(
    y_prob: ArrayLike, y_true: ArrayLike, *, context: str = "outcome", name: str = "probability"
) -> np.ndarray:
    """Predicted probabilities as a float array within [0, 1], else ValueError."""
    probabilities = check_scores(y_prob, y_true, context=context, name=name)
    outside = (probabilities < 0) | (probabilities > 1)
    if outside.any():
        raise ValueError(
            f"{context}: {name} must lie in [0, 1]; {outside.sum()} value(s) do not: "
            f"{name_patients(_patient_labels(y_prob, outside))}"
        )
    return probabilities
