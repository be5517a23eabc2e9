"""Survival stratification of one endpoint's predictions: the ``survival`` config, the tables.

Per outcome and model, a risk-group cutoff, the direction of the score and the covariates'
imputation are learnt on the train split; Kaplan-Meier, log-rank, Cox, C-index and AUC(t)
(hccrad.stats.survival) follow per cohort. A statistic that cannot be estimated on a cohort is
a row with a note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lifelines.exceptions import ConvergenceError

from hccrad.core.config import known_keys
from hccrad.core.plan import SURVIVAL_TABLES
from hccrad.core.splits import TRAIN
from hccrad.models.clinical import ClinicalPreprocessor
from hccrad.reporting.evaluation import evaluation_cohorts, prediction_matrix
from hccrad.stats.checks import error_note, name_patients
from hccrad.stats.cox import (
    DEFAULT_MIN_LEVEL_COUNT,
    ORDINAL_COVARIATES,
    cox_table,
    fit_cox_checked,
    merge_rare_levels,
)
from hccrad.stats.survival import (
    DEFAULT_MIN_EVENTS_PER_VARIABLE,
    HIGH,
    LOW,
    check_survival,
    harrell_c_index,
    kaplan_meier_table,
    logrank,
    median_survival_table,
    numbers_at_risk,
    risk_groups_from_training,
    time_dependent_auc,
)

# --------------------------------------------------------------------------- workflow: settings


HIGH_RISK = "high_risk"
DEFAULT_OUTCOMES: dict[str, dict[str, str]] = {
    "pfs": {"time": "pfs_time", "event": "pfs_event"},
    "os": {"time": "os_time", "event": "os_event"},
}


@dataclass(frozen=True)
class SurvivalSettings:
    """The ``survival`` section of the config; every key is optional."""

    cutoff: str = "median"
    maxstat_min_prop: float = 0.1
    maxstat_max_prop: float = 0.9
    outcomes: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_OUTCOMES.items()}
    )
    # Endpoint -> outcomes its scores stratify; an endpoint not listed stratifies every outcome.
    stratify: Mapping[str, Sequence[str]] = field(default_factory=dict)
    cox_covariates: tuple[str, ...] = ("bclc", "child_pugh")
    min_events_per_variable: float = DEFAULT_MIN_EVENTS_PER_VARIABLE
    # Levels of a categorical Cox covariate with fewer training patients join a neighbour.
    min_level_count: int = DEFAULT_MIN_LEVEL_COUNT
    # Ridge penalty of the Cox models (lifelines' penalizer); 0: none.
    cox_penalizer: float = 0.0
    time_points: tuple[float, ...] = (6.0, 12.0, 24.0)
    risk_table_times: tuple[float, ...] = (0.0, 6.0, 12.0, 18.0, 24.0, 36.0, 48.0)
    figure_models: tuple[str, ...] = ("clinical", "radiomics", "DLTR", "DLTR_MLP", "DLR")
    alpha: float = 0.05

    def outcomes_for(self, endpoint: str) -> list[str]:
        """Names of the time-to-event outcomes that ``endpoint``'s scores stratify."""
        return list(self.stratify.get(endpoint, list(self.outcomes)))


def survival_settings(cfg: Mapping[str, Any] | None) -> SurvivalSettings:
    """SurvivalSettings from the config's ``survival`` section, rejecting unknown keys."""
    cfg = known_keys(SurvivalSettings, cfg or {}, "survival")
    for key in ("cox_covariates", "time_points", "risk_table_times", "figure_models"):
        if key in cfg:
            cfg[key] = tuple(cfg[key])
    settings = SurvivalSettings(**cfg)
    if settings.cutoff not in ("median", "maxstat"):
        raise ValueError(
            f"survival config: cutoff must be median or maxstat, got {settings.cutoff!r}"
        )
    if settings.min_level_count < 1 or settings.cox_penalizer < 0:
        raise ValueError(
            "survival config: min_level_count must be >= 1 and cox_penalizer >= 0, got "
            f"{settings.min_level_count} and {settings.cox_penalizer}"
        )
    for name, spec in settings.outcomes.items():
        if set(spec) != {"time", "event"}:
            raise ValueError(
                f"survival config: outcomes.{name} needs exactly the keys time and event, "
                f"got {sorted(spec)}"
            )
    for endpoint, names in settings.stratify.items():
        undefined = sorted(set(names) - set(settings.outcomes))
        if undefined:
            raise ValueError(
                f"survival config: stratify.{endpoint} names outcome(s) {undefined} that "
                f"survival.outcomes does not define ({sorted(settings.outcomes)})"
            )
    return settings


# --------------------------------------------------------------------------- workflow: analysis

# Errors that mean "not estimable on this cohort" (too few events, one group, separation):
# written as a note so the other cohorts' results still appear.
ESTIMATION_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    np.linalg.LinAlgError,
    ConvergenceError,
    ZeroDivisionError,
)


def outcome_data(
    sheet: pd.DataFrame, outcome: str, settings: SurvivalSettings, patients: pd.Index
) -> pd.DataFrame:
    """Time and event of one outcome for ``patients``, validated (names columns and patients)."""
    spec = settings.outcomes[outcome]
    absent = [column for column in (spec["time"], spec["event"]) if column not in sheet.columns]
    if absent:
        raise ValueError(
            f"survival outcome {outcome!r}: the cohort sheet has no column(s) {absent}; add "
            f"them or drop {outcome!r} from survival.outcomes/survival.stratify"
        )
    data = check_survival(
        sheet.loc[patients, [spec["time"], spec["event"]]],
        spec["time"],
        spec["event"],
        context=f"survival outcome {outcome!r}",
    )
    return data


def _cox_rows(
    frame: pd.DataFrame,
    columns: tuple[str, str],
    terms: Sequence[str],
    settings: SurvivalSettings,
    context: str,
) -> tuple[list[dict[str, Any]], str]:
    """HR rows of a Cox model of the high-risk group (and covariates), or a note why none."""
    # A dummy that is constant in a small cohort (no BCLC C patient) carries no information;
    # drop it here and say so, rather than losing the whole model.
    constant = [t for t in terms if frame[t].nunique() < 2 and t != HIGH_RISK]
    used = [t for t in terms if t not in constant]
    note = f"dropped constant covariate(s) {constant}" if constant else ""
    try:
        fit = fit_cox_checked(
            frame,
            *columns,
            used,
            min_events_per_variable=settings.min_events_per_variable,
            penalizer=settings.cox_penalizer,
            alpha=settings.alpha,
            context=context,
        )
    except ESTIMATION_ERRORS as error:
        return [], "; ".join(filter(None, [note, error_note(error)]))
    table = cox_table(fit)
    # Model-wide notes (dropped covariates, convergence, penalty) follow each row's own.
    model_note = "; ".join(filter(None, [note, fit.model_note]))
    table["note"] = ["; ".join(filter(None, [row, model_note])) for row in table["note"]]
    table["n"] = len(frame)
    table["events"] = int(frame[columns[1]].sum())
    table["concordance"] = float(fit.model.concordance_index_)
    return table.to_dict("records"), ""


def _join(*notes: str | None) -> str:
    """Non-empty notes joined by '; '."""
    return "; ".join(note for note in notes if note)


def cox_design(
    sheet: pd.DataFrame, train: pd.Index, settings: SurvivalSettings
) -> tuple[pd.DataFrame, str]:
    """Cox covariates coded on training, rare categorical levels merged first; a note of merges.

    A level with one or two training patients gives an HR of 1e-7 or 1e7 with a CI from 0 to
    infinity; merged with a neighbour (by training counts only) it gives a usable estimate.
    """
    covariates = list(settings.cox_covariates)
    if not covariates:
        return pd.DataFrame(index=sheet.index), ""
    first = ClinicalPreprocessor(covariates).fit(sheet.loc[train])
    coded = first.transform(sheet)
    recoded = sheet[covariates].copy()
    notes = []
    for covariate, levels in first.levels_.items():
        # Each patient's level back from the dummies: imputed and coded as on training.
        level = pd.Series(levels[0], index=sheet.index, dtype=object)
        for term, name in zip(first.terms(covariate), levels[1:], strict=True):
            level[coded[term].to_numpy() == 1] = name
        counts = level.loc[train].value_counts().reindex(levels, fill_value=0)
        mapping, note = merge_rare_levels(
            counts,
            settings.min_level_count,
            ordinal=covariate in ORDINAL_COVARIATES,
            covariate=covariate,
        )
        recoded[covariate] = level.map(mapping)
        notes.append(note)
    design = ClinicalPreprocessor(covariates).fit(recoded.loc[train]).transform(recoded)
    merged = _join(*notes)
    if merged:
        merged = (
            f"rare levels merged before fitting (< {settings.min_level_count} training "
            f"patients, survival.min_level_count): {merged}"
        )
    return design, merged


def _td_auc_rows(
    train: pd.DataFrame,
    test: pd.DataFrame,
    columns: tuple[str, str],
    settings: SurvivalSettings,
    context: str,
) -> tuple[list[dict[str, Any]], str]:
    """Cumulative/dynamic AUC at the configured times within this cohort's follow-up."""
    time = test[columns[0]]
    times = [t for t in settings.time_points if time.min() <= t < time.max()]
    if not times:
        return [], (
            f"no time point of {list(settings.time_points)} inside follow-up "
            f"[{time.min():g}, {time.max():g})"
        )
    try:
        result = time_dependent_auc(
            train, test, *columns, "risk", times, higher_is_riskier=True, context=context
        )
    except ESTIMATION_ERRORS as error:
        return [], error_note(error)
    skipped = sorted(set(settings.time_points) - set(times))
    note = f"time point(s) {skipped} outside follow-up" if skipped else ""
    rows = result.table.assign(mean_auc=result.mean_auc).to_dict("records")
    return rows, note


def _require_training_events(
    train: pd.DataFrame, outcome: str, event_col: str, predictions: pd.DataFrame
) -> None:
    """ValueError naming the outcome when its training split has no event to fit on."""
    # The cutoff's direction, maxstat and the censoring weights are all learnt on training:
    # without an event there, no risk group, figure or statistic of this outcome can exist.
    if int(train[event_col].sum()) > 0:
        return
    key = "survival.stratify"
    if "endpoint" in predictions and len(predictions):
        key += f".{predictions['endpoint'].iloc[0]}"
    raise ValueError(
        f"survival outcome {outcome!r}: no event ({event_col} = 1) among the {len(train)} "
        f"patient(s) of split 'train', so no risk-group cutoff can be learnt. Fix: check "
        f"{event_col} in the cohort sheet, or drop {outcome!r} from {key}."
    )


def stratify_survival(
    predictions: pd.DataFrame,
    sheet: pd.DataFrame,
    outcomes: Sequence[str],
    settings: SurvivalSettings | None = None,
) -> dict[str, pd.DataFrame]:
    """Risk groups, KM, log-rank, Cox, C-index and AUC(t) of every model's score, per cohort.

    ``predictions`` is one endpoint's long table (hccrad.models.fit.predict_all); ``sheet`` the
    cohort sheet (survival columns, covariates). Per outcome and model, the cutoff (median or
    maxstat), the direction of the score (whether higher scores mean shorter survival, by
    Harrell's C) and the covariates' imputation are all learnt on the train split only.
    Statistics that cannot be estimated on a cohort are rows with a ``note``.
    """
    settings = settings or SurvivalSettings()
    patients, scores = prediction_matrix(predictions)
    absent = patients.index.difference(sheet.index, sort=False)
    if len(absent):
        raise ValueError(f"cohort sheet lacks predicted patient(s): {name_patients(absent)}")
    cohorts = evaluation_cohorts(patients)
    train = patients.index[patients["split"] == TRAIN]
    if len(train) == 0:
        raise ValueError("predictions: no patient in split 'train' to fit cutoffs on")
    design, design_note = cox_design(sheet.loc[patients.index], train, settings)
    tables: dict[str, list[Any]] = {name: [] for name in SURVIVAL_TABLES}
    for outcome in outcomes:
        data = outcome_data(sheet, outcome, settings, patients.index)
        # The sheet's own column names, so that every message names the column at fault.
        columns = (settings.outcomes[outcome]["time"], settings.outcomes[outcome]["event"])
        time_col, event_col = columns
        _require_training_events(data.loc[train], outcome, event_col, predictions)
        for model in scores.columns:
            frame = data.assign(split=patients["split"], score=scores[model])
            labels = {"outcome": outcome, "model": model}
            cutoff, score_group = risk_groups_from_training(
                frame,
                "score",
                method=settings.cutoff,
                time_col=time_col,
                event_col=event_col,
                min_prop=settings.maxstat_min_prop,
                max_prop=settings.maxstat_max_prop,
            )
            # Direction learnt on training: does a higher score mean shorter survival?
            riskier = (
                harrell_c_index(
                    frame.loc[train],
                    *columns,
                    "score",
                    higher_is_riskier=True,
                    context=f"survival outcome {outcome!r}, {model} in split 'train'",
                )
                >= 0.5
            )
            high = (score_group == HIGH) if riskier else (score_group == LOW)
            frame = frame.assign(
                risk=frame["score"] if riskier else -frame["score"],
                risk_group=pd.Categorical(
                    np.where(high, HIGH, LOW), categories=[LOW, HIGH], ordered=True
                ),
                **{HIGH_RISK: high.astype(float).to_numpy()},
            )
            tables["cutoffs"].append(
                {
                    **labels,
                    "method": cutoff.method,
                    "cutoff": cutoff.value,
                    "maxstat_statistic": cutoff.statistic,
                    "higher_score_riskier": bool(riskier),
                    "high_risk_group": "score > cutoff" if riskier else "score <= cutoff",
                    "n_train": len(train),
                }
            )
            tables["risk_groups"].append(
                frame[["split", "score", "risk_group", *columns]]
                .rename(columns={time_col: "time", event_col: "event"})
                .rename_axis("patient_id")
                .reset_index()
                .assign(**labels, centre=patients["centre"].to_numpy())
            )
            for cohort, members in cohorts.items():
                sub = frame.loc[members].join(design.loc[members])
                keys = {**labels, "cohort": cohort}
                context = f"{outcome} by {model} in {cohort}"
                _describe_groups(sub, columns, keys, settings, context, tables)
                try:
                    c_index = harrell_c_index(
                        sub, *columns, "risk", higher_is_riskier=True, context=context
                    )
                    c_note = ""
                except ESTIMATION_ERRORS as error:
                    c_index, c_note = np.nan, error_note(error)
                tables["concordance"].append(
                    {
                        **keys,
                        "n": len(sub),
                        "events": int(sub[event_col].sum()),
                        "c_index": c_index,
                        "note": c_note,
                    }
                )
                rows, note = _td_auc_rows(frame.loc[train], sub, columns, settings, context)
                tables["td_auc"] += [{**keys, **row, "note": note} for row in rows] or [
                    {**keys, "note": note}
                ]
                for kind, terms in (
                    ("univariable", [HIGH_RISK]),
                    ("multivariable", [HIGH_RISK, *design.columns]),
                ):
                    if kind == "multivariable" and not len(design.columns):
                        continue
                    rows, note = _cox_rows(sub, columns, terms, settings, context)
                    if kind == "multivariable":
                        note = "; ".join(filter(None, [note, design_note]))
                    tables["cox"] += [
                        {**keys, "cox_model": kind, **row, "note": _join(row.get("note"), note)}
                        for row in rows
                    ] or [{**keys, "cox_model": kind, "note": note}]
    frames = {
        name: (pd.concat(rows, ignore_index=True) if name == "risk_groups" else pd.DataFrame(rows))
        for name, rows in tables.items()
    }
    frames["risk_groups"] = frames["risk_groups"][
        [
            "patient_id",
            "split",
            "centre",
            "outcome",
            "model",
            "score",
            "risk_group",
            "time",
            "event",
        ]
    ]
    return frames


def _describe_groups(
    sub: pd.DataFrame,
    columns: tuple[str, str],
    keys: Mapping[str, Any],
    settings: SurvivalSettings,
    context: str,
    tables: dict[str, list[Any]],
) -> None:
    """KM curves, medians, numbers at risk and the log-rank test of one cohort's risk groups."""
    tables["km_curves"] += (
        kaplan_meier_table(sub, "risk_group", *columns, alpha=settings.alpha, context=context)
        .assign(**keys)
        .to_dict("records")
    )
    tables["median_survival"] += (
        median_survival_table(sub, "risk_group", *columns, alpha=settings.alpha, context=context)
        .assign(**keys)
        .to_dict("records")
    )
    tables["numbers_at_risk"] += (
        numbers_at_risk(sub, "risk_group", *columns, settings.risk_table_times)
        .assign(**keys)
        .to_dict("records")
    )
    counts = sub.groupby("risk_group", observed=False)[columns[1]].agg(["size", "sum"])
    row = {
        **keys,
        "n_low": int(counts.loc[LOW, "size"]),
        "n_high": int(counts.loc[HIGH, "size"]),
        "events_low": int(counts.loc[LOW, "sum"]),
        "events_high": int(counts.loc[HIGH, "sum"]),
    }
    try:
        result = logrank(sub, "risk_group", *columns, context=context)
        row |= {"statistic": result.statistic, "df": result.df, "p_value": result.p_value}
        row["note"] = ""
    except ESTIMATION_ERRORS as error:
        row["note"] = error_note(error)
    tables["logrank"].append(row)
