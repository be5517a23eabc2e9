"""Risk groups, Kaplan-Meier and log-rank, Cox models, C-index and time-dependent AUC.

Functions take a cohort frame indexed by ``patient_id`` with a survival time column
(e.g. ``pfs_time``, > 0), an event column (0/1) and score or covariate columns, so that
error messages can name the column and the patients at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import concordance_index, median_survival_times
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from scipy import stats
from sksurv.metrics import cumulative_dynamic_auc
from sksurv.util import Surv

from hccrad.core.config import known_keys

# Defined with the names the Snakefile's parse needs; imported from here by callers.
from hccrad.core.plan import SURVIVAL_TABLES as SURVIVAL_TABLES
from hccrad.core.splits import TRAIN
from hccrad.models.clinical import ClinicalPreprocessor
from hccrad.reporting.evaluation import evaluation_cohorts, prediction_matrix
from hccrad.stats.checks import error_note, name_patients, require_columns

HIGH = "high"
LOW = "low"
DEFAULT_MIN_EVENTS_PER_VARIABLE = 5


# --------------------------------------------------------------------------- validation


def check_survival(
    frame: pd.DataFrame, time_col: str, event_col: str, *, context: str = "cohort"
) -> pd.DataFrame:
    """Copy of ``frame`` with a positive float time and a 0/1 int event, else ValueError."""
    require_columns(frame, [time_col, event_col], context)
    time = pd.to_numeric(frame[time_col], errors="coerce")
    bad_time = time.isna() | (time <= 0)
    if bad_time.any():
        raise ValueError(
            f"{context}: {time_col} must be a number > 0; missing or <= 0 for "
            f"{int(bad_time.sum())} patient(s): {name_patients(frame.index[bad_time.to_numpy()])}"
        )
    event = pd.to_numeric(frame[event_col], errors="coerce")
    bad_event = ~event.isin([0, 1])
    if bad_event.any():
        raise ValueError(
            f"{context}: {event_col} must be 0 (censored) or 1 (event); got "
            f"{sorted(map(str, frame.loc[bad_event.to_numpy(), event_col].unique()))} for "
            f"{int(bad_event.sum())} patient(s): {name_patients(frame.index[bad_event.to_numpy()])}"
        )
    return frame.assign(**{time_col: time.astype(float), event_col: event.astype(int)})


def _check_numeric_column(frame: pd.DataFrame, column: str, context: str) -> pd.Series:
    """A numeric, non-missing column of ``frame``, else ValueError naming the patients."""
    require_columns(frame, [column], context)
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{context}: {column} is missing or not a finite number for {int(bad.sum())} "
            f"patient(s): {name_patients(frame.index[bad.to_numpy()])}"
        )
    return values.astype(float)


# --------------------------------------------------------------------------- risk groups


@dataclass(frozen=True)
class RiskCutoff:
    """A score cutoff fitted on training data: score > value is the high group."""

    method: str
    value: float
    statistic: float | None = None  # maximal log-rank chi-square on training ("maxstat")


def _two_group_logrank_statistics(
    time: np.ndarray, event: np.ndarray, in_group: np.ndarray
) -> np.ndarray:
    """Log-rank chi-square for each row of the (splits x patients) membership matrix."""
    # One matrix product per split instead of a lifelines call each (~30 ms apiece), so a
    # scan over hundreds of cutoffs stays fast; tests check it against logrank_test.
    event_times = np.unique(time[event == 1])
    at_risk = (time[:, np.newaxis] >= event_times).astype(float)
    failed = ((time[:, np.newaxis] == event_times) & (event[:, np.newaxis] == 1)).astype(float)
    n_total, d_total = at_risk.sum(axis=0), failed.sum(axis=0)
    n_group = in_group.astype(float) @ at_risk
    d_group = in_group.astype(float) @ failed
    expected = (n_group * d_total / n_total).sum(axis=1)
    # Hypergeometric variance with ties; a time with one patient at risk adds nothing.
    with np.errstate(invalid="ignore", divide="ignore"):
        variance_terms = (
            n_group
            * (n_total - n_group)
            * d_total
            * (n_total - d_total)
            / (n_total**2 * (n_total - 1))
        )
    variance = np.nan_to_num(variance_terms).sum(axis=1)
    observed_minus_expected = d_group.sum(axis=1) - expected
    # No information (e.g. nobody of the group at risk at any event time): statistic 0.
    safe_variance = np.where(variance > 0, variance, 1.0)
    return np.where(variance > 0, observed_minus_expected**2 / safe_variance, 0.0)


def maxstat_scan(
    train: pd.DataFrame,
    score_col: str,
    time_col: str,
    event_col: str,
    *,
    min_prop: float = 0.1,
    max_prop: float = 0.9,
    context: str = "train",
) -> pd.DataFrame:
    """Log-rank chi-square of low (<= c) vs high (> c) for every candidate cutoff c on training."""
    data = check_survival(train, time_col, event_col, context=context)
    score = _check_numeric_column(data, score_col, context).to_numpy()
    time, event = data[time_col].to_numpy(), data[event_col].to_numpy()
    # Candidates as in maxstat (Lausen & Schumacher 1992): observed scores leaving at least
    # min_prop and at most max_prop of the patients in the low group.
    candidates = np.unique(score)
    fraction_low = np.searchsorted(np.sort(score), candidates, side="right") / score.size
    candidates = candidates[(fraction_low >= min_prop) & (fraction_low <= max_prop)]
    if candidates.size == 0:
        raise ValueError(
            f"{context}: no cutoff of {score_col} puts between {min_prop:.0%} and "
            f"{max_prop:.0%} of patients in the low group ({np.unique(score).size} distinct scores)"
        )
    high = score[np.newaxis, :] > candidates[:, np.newaxis]
    statistic = _two_group_logrank_statistics(time, event, high)
    return pd.DataFrame(
        {
            "cutoff": candidates,
            "n_low": (~high).sum(axis=1),
            "n_high": high.sum(axis=1),
            "statistic": statistic,
            # Unadjusted: the maximum over cutoffs is not a valid log-rank P on training.
            "p_value_unadjusted": stats.chi2.sf(statistic, 1),
        }
    )


def fit_cutoff(
    train: pd.DataFrame,
    score_col: str,
    *,
    method: str = "median",
    time_col: str | None = None,
    event_col: str | None = None,
    min_prop: float = 0.1,
    max_prop: float = 0.9,
    context: str = "train",
) -> RiskCutoff:
    """Cutoff of ``score_col`` from training patients only: the median or the maxstat optimum."""
    if method == "median":
        score = _check_numeric_column(train, score_col, context)
        return RiskCutoff(method="median", value=float(score.median()))
    if method == "maxstat":
        if time_col is None or event_col is None:
            raise ValueError("method='maxstat' needs time_col and event_col")
        scan = maxstat_scan(
            train,
            score_col,
            time_col,
            event_col,
            min_prop=min_prop,
            max_prop=max_prop,
            context=context,
        )
        best = scan.loc[scan["statistic"].idxmax()]
        return RiskCutoff("maxstat", float(best["cutoff"]), float(best["statistic"]))
    raise ValueError(f"method must be 'median' or 'maxstat', got {method!r}")


def assign_risk_groups(
    frame: pd.DataFrame, score_col: str, cutoff: RiskCutoff | float, *, context: str = "cohort"
) -> pd.Series:
    """'high' where score > cutoff, else 'low', as an ordered categorical indexed like ``frame``."""
    value = cutoff.value if isinstance(cutoff, RiskCutoff) else float(cutoff)
    score = _check_numeric_column(frame, score_col, context)
    groups = np.where(score.to_numpy() > value, HIGH, LOW)
    return pd.Series(
        pd.Categorical(groups, categories=[LOW, HIGH], ordered=True),
        index=frame.index,
        name="risk_group",
    )


def risk_groups_from_training(
    cohort: pd.DataFrame,
    score_col: str,
    *,
    split_col: str = "split",
    train_split: str = "train",
    method: str = "median",
    time_col: str | None = None,
    event_col: str | None = None,
    min_prop: float = 0.1,
    max_prop: float = 0.9,
) -> tuple[RiskCutoff, pd.Series]:
    """Fit the cutoff on the training split of ``cohort`` and assign every patient a group."""
    require_columns(cohort, [split_col], "cohort")
    train = cohort[cohort[split_col] == train_split]
    if train.empty:
        raise ValueError(f"cohort: no patients with {split_col} == {train_split!r}")
    cutoff = fit_cutoff(
        train,
        score_col,
        method=method,
        time_col=time_col,
        event_col=event_col,
        min_prop=min_prop,
        max_prop=max_prop,
        context=f"{split_col}={train_split}",
    )
    return cutoff, assign_risk_groups(cohort, score_col, cutoff)


# --------------------------------------------------------------------------- Kaplan-Meier


@dataclass(frozen=True)
class LogRankResult:
    """Log-rank test across groups."""

    statistic: float
    df: int
    p_value: float
    n_groups: int


def _group_order(groups: pd.Series) -> list[object]:
    """Groups in categorical order when present, else sorted, dropping empty ones."""
    present = set(groups.dropna().unique())
    if isinstance(groups.dtype, pd.CategoricalDtype):
        return [g for g in groups.cat.categories if g in present]
    return sorted(present, key=str)


def _grouped_survival(
    frame: pd.DataFrame, group_col: str, time_col: str, event_col: str, context: str
) -> tuple[pd.DataFrame, list[object]]:
    """Validated frame and its groups; ValueError on missing group labels."""
    data = check_survival(frame, time_col, event_col, context=context)
    require_columns(data, [group_col], context)
    missing = data[group_col].isna()
    if missing.any():
        raise ValueError(
            f"{context}: {group_col} missing for {int(missing.sum())} patient(s): "
            f"{name_patients(data.index[missing.to_numpy()])}"
        )
    return data, _group_order(data[group_col])


def _fit_km(
    data: pd.DataFrame, time_col: str, event_col: str, label: str, alpha: float
) -> KaplanMeierFitter:
    """Kaplan-Meier fit of one group."""
    return KaplanMeierFitter(alpha=alpha).fit(data[time_col], data[event_col], label=label)


def kaplan_meier_table(
    frame: pd.DataFrame,
    group_col: str,
    time_col: str,
    event_col: str,
    *,
    alpha: float = 0.05,
    context: str = "cohort",
) -> pd.DataFrame:
    """Kaplan-Meier survival and pointwise CI (lifelines) per group at each event time, tidy."""
    data, groups = _grouped_survival(frame, group_col, time_col, event_col, context)
    tables = []
    for group in groups:
        km = _fit_km(data[data[group_col] == group], time_col, event_col, str(group), alpha)
        ci = km.confidence_interval_survival_function_
        tables.append(
            pd.DataFrame(
                {
                    "group": group,
                    "time": km.survival_function_.index.to_numpy(dtype=float),
                    "survival": km.survival_function_.iloc[:, 0].to_numpy(),
                    "ci_low": ci.iloc[:, 0].to_numpy(),
                    "ci_high": ci.iloc[:, 1].to_numpy(),
                }
            )
        )
    return pd.concat(tables, ignore_index=True)


def median_survival_table(
    frame: pd.DataFrame,
    group_col: str,
    time_col: str,
    event_col: str,
    *,
    alpha: float = 0.05,
    context: str = "cohort",
) -> pd.DataFrame:
    """Patients, events and median survival with CI per group (inf when not reached)."""
    data, groups = _grouped_survival(frame, group_col, time_col, event_col, context)
    rows = []
    for group in groups:
        subset = data[data[group_col] == group]
        km = _fit_km(subset, time_col, event_col, str(group), alpha)
        # lifelines reads the median's CI off the pointwise CI of the curve (Brookmeyer-Crowley).
        ci = median_survival_times(km.confidence_interval_)
        rows.append(
            {
                "group": group,
                "n": len(subset),
                "events": int(subset[event_col].sum()),
                "median": float(km.median_survival_time_),
                "ci_low": float(ci.iloc[0, 0]),
                "ci_high": float(ci.iloc[0, 1]),
            }
        )
    return pd.DataFrame(rows)


def numbers_at_risk(
    frame: pd.DataFrame,
    group_col: str,
    time_col: str,
    event_col: str,
    times: Sequence[float],
    *,
    context: str = "cohort",
) -> pd.DataFrame:
    """Per group and time t: at risk (time >= t), events and censored up to t (risk table)."""
    data, groups = _grouped_survival(frame, group_col, time_col, event_col, context)
    rows = []
    for group in groups:
        subset = data[data[group_col] == group]
        time, event = subset[time_col].to_numpy(), subset[event_col].to_numpy()
        for t in times:
            # "At risk at t" as in R's summary.survfit: still followed just before t.
            rows.append(
                {
                    "group": group,
                    "time": float(t),
                    "at_risk": int(np.sum(time >= t)),
                    "events": int(np.sum((time <= t) & (event == 1))),
                    "censored": int(np.sum((time <= t) & (event == 0))),
                }
            )
    return pd.DataFrame(rows)


def logrank(
    frame: pd.DataFrame, group_col: str, time_col: str, event_col: str, *, context: str = "cohort"
) -> LogRankResult:
    """Log-rank test of equal survival across the groups of ``group_col`` (lifelines)."""
    data, groups = _grouped_survival(frame, group_col, time_col, event_col, context)
    if len(groups) < 2:
        raise ValueError(
            f"{context}: log-rank needs at least two groups in {group_col}, got {groups}"
        )
    # With two groups this equals lifelines.statistics.logrank_test.
    test = multivariate_logrank_test(data[time_col], data[group_col].astype(str), data[event_col])
    return LogRankResult(
        statistic=float(test.test_statistic),
        df=int(test.degrees_of_freedom),
        p_value=float(test.p_value),
        n_groups=len(groups),
    )


# --------------------------------------------------------------------------- Cox, C-index, AUC(t)


def fit_cox(
    frame: pd.DataFrame,
    time_col: str,
    event_col: str,
    covariates: Sequence[str],
    *,
    min_events_per_variable: float = DEFAULT_MIN_EVENTS_PER_VARIABLE,
    penalizer: float = 0.0,
    alpha: float = 0.05,
    context: str = "cohort",
) -> CoxPHFitter:
    """Multivariable Cox model (lifelines, Efron ties) after checking data and events per variable.

    Covariates must be numeric (one-hot encode categorical ones first).
    """
    data = check_survival(frame, time_col, event_col, context=context)
    covariates = list(covariates)
    if not covariates:
        raise ValueError(f"{context}: a Cox model needs at least one covariate")
    require_columns(data, covariates, context)
    duplicated = sorted({c for c in covariates if covariates.count(c) > 1})
    if duplicated:
        raise ValueError(f"{context}: covariate(s) {duplicated} listed more than once")
    categorical = [
        c for c in covariates if not (is_numeric_dtype(data[c]) or is_bool_dtype(data[c]))
    ]
    if categorical:
        raise ValueError(
            f"{context}: covariate(s) {categorical} are not numeric; one-hot encode them first"
        )
    values = pd.DataFrame({c: _check_numeric_column(data, c, context) for c in covariates})
    constant = [c for c in covariates if values[c].nunique() < 2]
    if constant:
        raise ValueError(f"{context}: covariate(s) {constant} take a single value; drop them")
    n_events = int(data[event_col].sum())
    events_per_variable = n_events / len(covariates)
    # Few events per variable give biased, unstable hazard ratios (Peduzzi et al. 1995).
    if events_per_variable < min_events_per_variable:
        raise ValueError(
            f"{context}: {n_events} events in {event_col} for {len(covariates)} covariate(s) "
            f"= {events_per_variable:.1f} events per variable, below the minimum of "
            f"{min_events_per_variable:g}; use fewer covariates or lower the minimum"
        )
    model_data = values.assign(**{time_col: data[time_col], event_col: data[event_col]})
    return CoxPHFitter(alpha=alpha, penalizer=penalizer).fit(
        model_data, duration_col=time_col, event_col=event_col
    )


def hazard_ratio_table(cox: CoxPHFitter) -> pd.DataFrame:
    """HR, CI, P, coefficient and SE per covariate of a fitted Cox model, tidy."""
    summary = cox.summary
    # confidence_intervals_ holds (lower, upper) of the coefficient at the fitter's alpha.
    ci = np.exp(cox.confidence_intervals_.to_numpy())
    return pd.DataFrame(
        {
            "covariate": summary.index.astype(str),
            "hr": summary["exp(coef)"].to_numpy(),
            "ci_low": ci[:, 0],
            "ci_high": ci[:, 1],
            "p_value": summary["p"].to_numpy(),
            "coef": summary["coef"].to_numpy(),
            "se": summary["se(coef)"].to_numpy(),
        }
    )


def harrell_c_index(
    frame: pd.DataFrame,
    time_col: str,
    event_col: str,
    score_col: str,
    *,
    higher_is_riskier: bool,
    context: str = "cohort",
) -> float:
    """Harrell's C-index (lifelines) of a score against survival."""
    data = check_survival(frame, time_col, event_col, context=context)
    score = _check_numeric_column(data, score_col, context)
    # lifelines expects "higher = longer survival"; a risk score is negated.
    predicted = -score if higher_is_riskier else score
    try:
        return float(concordance_index(data[time_col], predicted, data[event_col]))
    except ZeroDivisionError as error:  # lifelines: "No admissable pairs in the dataset."
        raise ValueError(
            f"{context}: no comparable pair for the C-index ({int(data[event_col].sum())} "
            f"event(s) in {event_col} among {len(data)} patient(s); a pair needs an event "
            "before another patient's time)"
        ) from error


@dataclass(frozen=True)
class TimeDependentAUC:
    """Cumulative/dynamic AUC at each time and its survival-weighted mean over those times."""

    table: pd.DataFrame
    mean_auc: float


def time_dependent_auc(
    train: pd.DataFrame,
    test: pd.DataFrame,
    time_col: str,
    event_col: str,
    score_col: str,
    times: Sequence[float],
    *,
    higher_is_riskier: bool,
    context: str = "test",
) -> TimeDependentAUC:
    """Cumulative/dynamic AUC(t) on ``test`` (sksurv), censoring estimated on ``train``."""
    train_data = check_survival(train, time_col, event_col, context="train")
    test_data = check_survival(test, time_col, event_col, context=context)
    score = _check_numeric_column(test_data, score_col, context).to_numpy()
    times = np.unique(np.asarray(times, dtype=float))
    test_time = test_data[time_col].to_numpy()
    if times.size == 0 or times.min() < test_time.min() or times.max() >= test_time.max():
        raise ValueError(
            f"{context}: times must lie in [{test_time.min():g}, {test_time.max():g}), the "
            f"follow-up of {time_col} in this cohort; got {times.tolist()}"
        )
    survival_train = Surv.from_arrays(train_data[event_col] == 1, train_data[time_col])
    survival_test = Surv.from_arrays(test_data[event_col] == 1, test_time)
    try:
        auc, mean_auc = cumulative_dynamic_auc(
            survival_train, survival_test, score if higher_is_riskier else -score, times
        )
    except ValueError as error:
        beyond = test_time > train_data[time_col].max()
        raise ValueError(
            f"{context}: {error}. The censoring distribution comes from training, so test "
            f"{time_col} beyond training follow-up ({train_data[time_col].max():g}) cannot be "
            f"weighted; patients: {name_patients(test_data.index[beyond])}"
        ) from error
    return TimeDependentAUC(pd.DataFrame({"time": times, "auc": auc}), float(mean_auc))


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
        cox = fit_cox(
            frame,
            *columns,
            used,
            min_events_per_variable=settings.min_events_per_variable,
            alpha=settings.alpha,
            context=context,
        )
    except ESTIMATION_ERRORS as error:
        return [], "; ".join(filter(None, [note, error_note(error)]))
    table = hazard_ratio_table(cox)
    table["n"] = len(frame)
    table["events"] = int(frame[columns[1]].sum())
    table["concordance"] = float(cox.concordance_index_)
    return table.to_dict("records"), note


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
    design = pd.DataFrame(index=patients.index)
    if settings.cox_covariates:
        preprocessor = ClinicalPreprocessor(settings.cox_covariates).fit(sheet.loc[train])
        design = preprocessor.transform(sheet.loc[patients.index])
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
                    tables["cox"] += [
                        {**keys, "cox_model": kind, **row, "note": note} for row in rows
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
