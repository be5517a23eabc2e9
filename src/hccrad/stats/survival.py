"""Risk groups, Kaplan-Meier and log-rank, Cox models, C-index and time-dependent AUC.

Functions take a cohort frame indexed by ``patient_id`` with a survival time column
(e.g. ``pfs_time``, > 0), an event column (0/1) and score or covariate columns, so that
error messages can name the column and the patients at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import concordance_index, median_survival_times
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from scipy import stats
from sksurv.metrics import cumulative_dynamic_auc
from sksurv.util import Surv

from hccrad.core.splits import SPLIT_COLUMN, TRAIN
from hccrad.stats.checks import name_patients, require_columns

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
    split_col: str = SPLIT_COLUMN,
    train_split: str = TRAIN,
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
    if n_events == 0:
        raise ValueError(
            f"{context}: no event ({event_col} = 1) among {len(data)} patient(s), so no "
            "hazard ratio can be estimated"
        )
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
