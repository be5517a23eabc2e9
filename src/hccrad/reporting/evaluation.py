"""The evaluation tables of one endpoint's predictions, per model and cohort.

Cohorts (train, internal test, external pooled and per centre), the ``evaluation`` config
section, and the tables that the workflow writes from hccrad.stats.discrimination and
hccrad.stats.calibration: a metric that cannot be computed on a cohort is a row with a note.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve
from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

from hccrad.core.config import known_keys
from hccrad.core.seeding import rng_for
from hccrad.core.splits import EXTERNAL, INTERNAL_TEST, TRAIN
from hccrad.stats.calibration import (
    brier_score,
    calibration_curve_table,
    calibration_intercept_slope,
    decision_curve,
    hosmer_lemeshow,
    integrated_calibration_index,
    loess_calibration_curve,
)
from hccrad.stats.checks import check_binary_outcome, error_note, name_patients
from hccrad.stats.discrimination import (
    bootstrap_auc_ci,
    delong_auc,
    delong_pairwise_table,
    threshold_metrics,
)

# --------------------------------------------------------------------------- cohorts and settings

# Errors that mean "this metric cannot be computed on this cohort" (one class, too few
# patients, separation), written as a note instead of stopping the other cohorts' results.
METRIC_ERRORS: tuple[type[Exception], ...] = (ValueError, np.linalg.LinAlgError)


def evaluation_cohorts(patients: pd.DataFrame) -> dict[str, pd.Index]:
    """Patients per reported cohort: train, internal test, other splits, external, by centre.

    ``patients`` has one row per patient with ``split`` and ``centre``. Splits named
    ``external*`` are pooled as ``external``; with more than one external centre each centre
    is also a cohort, ``external_<centre>``.
    """
    splits = patients["split"].astype(str)
    is_external = splits.str.startswith(EXTERNAL).to_numpy()
    others = sorted(set(splits[~is_external]) - {TRAIN, INTERNAL_TEST})
    cohorts: dict[str, pd.Index] = {}
    for name in [TRAIN, INTERNAL_TEST, *others]:
        members = patients.index[(splits == name).to_numpy()]
        if len(members):
            cohorts[name] = members
    if is_external.any():
        cohorts[EXTERNAL] = patients.index[is_external]
        centres = patients.loc[is_external, "centre"].astype(str)
        if centres.nunique() > 1:
            for centre in sorted(centres.unique()):
                cohorts[f"{EXTERNAL}_{centre}"] = centres.index[(centres == centre).to_numpy()]
    return cohorts


@dataclass(frozen=True)
class EvaluationSettings:
    """The ``evaluation`` section of the config; every key is optional."""

    alpha: float = 0.05
    logit_auc_ci: bool = False
    p_adjust: str = "holm"
    bootstrap: bool = False
    bootstrap_resamples: int = 2000
    calibration_bins: int = 5
    calibration_strategy: str = "quantile"
    hosmer_lemeshow_groups: int = 10
    # Loess-smoothed calibration curve: span, and bootstrap resamples of its band (0: no band).
    calibration_loess_frac: float = 0.75
    calibration_loess_resamples: int = 200
    decision_thresholds: tuple[float, float, float] = (0.01, 0.99, 0.01)

    def thresholds(self) -> np.ndarray:
        """Threshold probabilities of the decision curves (start, stop inclusive, step)."""
        start, stop, step = self.decision_thresholds
        return np.round(np.arange(start, stop + step / 2, step), 6)


def evaluation_settings(cfg: Mapping[str, object] | None) -> EvaluationSettings:
    """EvaluationSettings from the config's ``evaluation`` section, rejecting unknown keys."""
    cfg = known_keys(EvaluationSettings, cfg or {}, "evaluation")
    if "decision_thresholds" in cfg:
        cfg["decision_thresholds"] = tuple(cfg["decision_thresholds"])  # type: ignore[arg-type]
    settings = EvaluationSettings(**cfg)  # type: ignore[arg-type]
    start, stop, step = settings.decision_thresholds
    if not (0 < start <= stop < 1 and step > 0):
        raise ValueError(
            "evaluation config: decision_thresholds must be [start, stop, step] with "
            f"0 < start <= stop < 1 and step > 0, got {list(settings.decision_thresholds)}"
        )
    return settings


# --------------------------------------------------------------------------- predictions


def prediction_matrix(predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patients (split, centre, outcome) and their scores (patients x models) from a long table.

    ``predictions`` is hccrad.models.fit.predict_all's long table (one endpoint). Models keep the
    order of their first appearance; every model must score the same patients once.
    """
    required = ["patient_id", "split", "centre", "model", "score", "outcome"]
    missing = [c for c in required if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions: missing column(s) {missing}")
    if "endpoint" in predictions and predictions["endpoint"].nunique() > 1:
        raise ValueError(
            f"predictions: one endpoint expected, got {sorted(predictions['endpoint'].unique())}"
        )
    duplicated = predictions.duplicated(["patient_id", "model"])
    if duplicated.any():
        raise ValueError(
            "predictions: patient scored twice by one model: "
            f"{name_patients(predictions.loc[duplicated, 'patient_id'].unique())}"
        )
    models = list(dict.fromkeys(predictions["model"]))
    scores = predictions.pivot(index="patient_id", columns="model", values="score")
    incomplete = scores.isna().any(axis=1)
    if incomplete.any():
        raise ValueError(
            "predictions: not every model scores these patients: "
            f"{name_patients(scores.index[incomplete.to_numpy()])}"
        )
    patients = predictions.drop_duplicates("patient_id").set_index("patient_id")
    patients = patients[["split", "centre", "outcome"]]
    return patients, scores.loc[patients.index, models]


# --------------------------------------------------------------------------- evaluation tables


def _auc_rows(
    y: pd.Series,
    scores: pd.DataFrame,
    cohort: str,
    settings: EvaluationSettings,
    seed: int | None,
) -> list[dict[str, object]]:
    """AUC with DeLong CI (and optional bootstrap CI) per model on one cohort."""
    rows = []
    for model in scores.columns:
        context = f"model {model} in {cohort}"
        row: dict[str, object] = {"model": model, "cohort": cohort, "n": len(y)}
        try:
            result = delong_auc(
                y,
                scores[model],
                alpha=settings.alpha,
                logit_ci=settings.logit_auc_ci,
                context=context,
            )
            row |= asdict(result)
            row["ci_method"] = "DeLong, logit" if settings.logit_auc_ci else "DeLong, Wald"
            if settings.bootstrap:
                if seed is None:
                    raise ValueError("bootstrap CIs need a seed")
                low, high = bootstrap_auc_ci(
                    y,
                    scores[model],
                    n_resamples=settings.bootstrap_resamples,
                    seed=_stream_seed(seed, "bootstrap_auc", model, cohort),
                    alpha=settings.alpha,
                    context=context,
                )
                row |= {"bootstrap_ci_low": low, "bootstrap_ci_high": high}
            row["note"] = ""
        except METRIC_ERRORS as error:
            row["note"] = error_note(error)
        rows.append(row)
    return rows


def _stream_seed(seed: int, *labels: str) -> int:
    """An integer seed for one named purpose, derived from the config seed."""
    return int(rng_for(seed, *labels).integers(2**31 - 1))


def _threshold_rows(
    y: pd.Series,
    scores: pd.DataFrame,
    cohort: str,
    thresholds: Mapping[str, float],
    settings: EvaluationSettings,
) -> list[dict[str, object]]:
    """Accuracy, sensitivity, specificity, PPV and NPV at each model's training threshold."""
    rows: list[dict[str, object]] = []
    for model in scores.columns:
        if model not in thresholds:
            raise ValueError(f"thresholds: no training threshold for model {model!r}")
        try:
            table = threshold_metrics(
                y,
                scores[model],
                float(thresholds[model]),
                alpha=settings.alpha,
                context=f"model {model} in {cohort}",
            )
            rows += table.assign(model=model, cohort=cohort, note="").to_dict("records")
        except METRIC_ERRORS as error:
            rows.append(
                {
                    "model": model,
                    "cohort": cohort,
                    "threshold": float(thresholds[model]),
                    "note": error_note(error),
                }
            )
    return rows


def _loess_curve(
    y: pd.Series,
    score: pd.Series,
    labels: dict[str, object],
    settings: EvaluationSettings,
    seed: int | None,
) -> tuple[pd.DataFrame, float]:
    """The loess calibration curve with its band (a note where it is missing), and the ICI."""
    context = f"model {labels['model']} in {labels['cohort']}"
    model, cohort = str(labels["model"]), str(labels["cohort"])
    try:
        curve = loess_calibration_curve(
            y,
            score,
            frac=settings.calibration_loess_frac,
            n_resamples=settings.calibration_loess_resamples,
            seed=None if seed is None else _stream_seed(seed, "calibration_loess", model, cohort),
            alpha=settings.alpha,
            context=context,
        )
        ici = integrated_calibration_index(
            y, score, frac=settings.calibration_loess_frac, context=context
        )
    except METRIC_ERRORS as error:
        return pd.DataFrame([{**labels, "note": error_note(error)}]), np.nan
    note = ""
    if seed is None or settings.calibration_loess_resamples == 0:
        note = "no bootstrap band (needs a seed and evaluation.calibration_loess_resamples > 0)"
    curve["note"] = np.where(
        curve["ci_low"].isna() & (note == ""),
        "band left out: under half of the bootstrap resamples reach this prediction",
        note,
    )
    return curve.assign(**labels, n=len(y), events=int(y.sum())), ici


def _calibration_rows(
    y: pd.Series,
    scores: pd.DataFrame,
    cohort: str,
    settings: EvaluationSettings,
    seed: int | None = None,
) -> tuple[list[dict[str, object]], list[pd.DataFrame], list[pd.DataFrame]]:
    """Calibration summary rows, binned and loess calibration curves per model on one cohort."""
    rows, curves, smoothed = [], [], []
    for model in scores.columns:
        context = f"model {model} in {cohort}"
        row: dict[str, object] = {"model": model, "cohort": cohort, "n": len(y)}
        notes = []
        try:
            row["brier"] = brier_score(y, scores[model], context=context)
            curves.append(
                calibration_curve_table(
                    y,
                    scores[model],
                    n_bins=settings.calibration_bins,
                    strategy=settings.calibration_strategy,
                    alpha=settings.alpha,
                    context=context,
                ).assign(model=model, cohort=cohort)
            )
        except METRIC_ERRORS as error:
            notes.append(error_note(error))
        # Each statistic on its own: a separation in the slope fit leaves Brier and HL usable.
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PerfectSeparationWarning)
                row |= asdict(
                    calibration_intercept_slope(
                        y, scores[model], alpha=settings.alpha, context=context
                    )
                )
            if np.isnan(row["slope"]):
                notes.append("calibration slope: every score is the same, slope not defined")
            elif any(issubclass(w.category, PerfectSeparationWarning) for w in caught):
                # Scores that separate the classes (an overfitted model on training) make the
                # slope unidentifiable; its huge value and CI are kept but flagged.
                notes.append("calibration slope: perfect separation, slope not identified")
        except (*METRIC_ERRORS, PerfectSeparationError) as error:
            notes.append(f"calibration slope/intercept: {error_note(error)}")
        try:
            hl = hosmer_lemeshow(
                y, scores[model], n_groups=settings.hosmer_lemeshow_groups, context=context
            )
            row |= {
                "hosmer_lemeshow": hl.statistic,
                "hosmer_lemeshow_df": hl.df,
                "hosmer_lemeshow_p": hl.p_value,
            }
        except METRIC_ERRORS as error:
            notes.append(f"Hosmer-Lemeshow: {error_note(error)}")
        curve, row["ici"] = _loess_curve(
            y, scores[model], {"model": model, "cohort": cohort}, settings, seed
        )
        smoothed.append(curve)
        row["note"] = "; ".join(dict.fromkeys(notes))
        rows.append(row)
    return rows, curves, smoothed


def _roc_rows(y: pd.Series, scores: pd.DataFrame, cohort: str) -> list[pd.DataFrame]:
    """ROC curve points (false and true positive rate per threshold) per model on one cohort."""
    curves = []
    for model in scores.columns:
        try:
            y_int = check_binary_outcome(y, context=f"model {model} in {cohort}")
        except METRIC_ERRORS:
            return []  # the AUC table carries the note
        fpr, tpr, cut = roc_curve(y_int, scores[model].to_numpy(dtype=float))
        curves.append(
            pd.DataFrame(
                {"model": model, "cohort": cohort, "threshold": cut, "fpr": fpr, "tpr": tpr}
            )
        )
    return curves


def evaluate_predictions(
    predictions: pd.DataFrame,
    thresholds: Mapping[str, float],
    settings: EvaluationSettings | None = None,
    *,
    seed: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Every evaluation table of one endpoint's predictions, per model and cohort.

    Returns ``auc`` (DeLong CI, optional bootstrap CI), ``threshold_metrics`` (at each
    model's training Youden threshold), ``delong`` (pairwise tests), ``calibration``
    (Brier, intercept, slope, Hosmer-Lemeshow, ICI), ``calibration_curves`` (binned),
    ``calibration_loess`` (loess curve with a bootstrap band), ``decision_curves`` and
    ``roc_curves``. A metric that cannot be computed on a cohort (e.g. a single class)
    is a row whose ``note`` says why; the other cohorts are unaffected.
    """
    settings = settings or EvaluationSettings()
    patients, scores = prediction_matrix(predictions)
    auc_rows: list[dict[str, object]] = []
    threshold_rows: list[dict[str, object]] = []
    calibration_rows: list[dict[str, object]] = []
    calibration_curves: list[pd.DataFrame] = []
    loess_curves: list[pd.DataFrame] = []
    delong_tables: list[pd.DataFrame] = []
    decision_tables: list[pd.DataFrame] = []
    roc_tables: list[pd.DataFrame] = []
    for cohort, members in evaluation_cohorts(patients).items():
        y = patients.loc[members, "outcome"]
        cohort_scores = scores.loc[members]
        auc_rows += _auc_rows(y, cohort_scores, cohort, settings, seed)
        threshold_rows += _threshold_rows(y, cohort_scores, cohort, thresholds, settings)
        rows, curves, smoothed = _calibration_rows(y, cohort_scores, cohort, settings, seed)
        calibration_rows += rows
        calibration_curves += curves
        loess_curves += smoothed
        roc_tables += _roc_rows(y, cohort_scores, cohort)
        try:
            delong_tables.append(
                delong_pairwise_table(
                    y,
                    cohort_scores,
                    alpha=settings.alpha,
                    p_adjust=settings.p_adjust,
                    context=f"{cohort}",
                ).assign(cohort=cohort, note="")
            )
        except METRIC_ERRORS as error:
            delong_tables.append(pd.DataFrame([{"cohort": cohort, "note": error_note(error)}]))
        # Where a decision curve cannot be drawn, the AUC and calibration tables carry the note.
        with suppress(*METRIC_ERRORS):
            decision_tables.append(
                decision_curve(
                    y, cohort_scores, thresholds=settings.thresholds(), context=f"{cohort}"
                ).assign(cohort=cohort)
            )
    return {
        "auc": _first(pd.DataFrame(auc_rows), ["model", "cohort"]),
        "threshold_metrics": _first(pd.DataFrame(threshold_rows), ["model", "cohort", "metric"]),
        "delong": _first(pd.concat(delong_tables, ignore_index=True), ["cohort"]),
        "calibration": _first(pd.DataFrame(calibration_rows), ["model", "cohort"]),
        "calibration_curves": _first(_concat(calibration_curves), ["model", "cohort"]),
        "calibration_loess": _first(_concat(loess_curves), ["model", "cohort"]),
        "decision_curves": _first(_concat(decision_tables), ["cohort", "model"]),
        "roc_curves": _first(_concat(roc_tables), ["model", "cohort"]),
    }


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Frames stacked, or an empty frame when there are none."""
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _first(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``table`` with ``columns`` (those present) moved to the front."""
    front = [c for c in columns if c in table.columns]
    return table[front + [c for c in table.columns if c not in front]]
