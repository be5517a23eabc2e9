"""Cox models a reviewer can trust: rare levels merged, separation and non-convergence in words.

``merge_rare_levels`` decides, from training counts, which levels of a categorical covariate
join a neighbour before one-hot coding. ``fit_cox_checked`` wraps hccrad.stats.survival.fit_cox
(lifelines), turning lifelines' warnings and errors (some of which are only a URL away from
useless) into notes that name the covariate; ``cox_table`` blanks hazard ratios that cannot be
trusted and says why in each row.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning

from hccrad.stats.survival import DEFAULT_MIN_EVENTS_PER_VARIABLE, fit_cox, hazard_ratio_table

DEFAULT_MIN_LEVEL_COUNT = 5
OTHER_LEVEL = "other"
# Levels in sorted order are ordered categories (BCLC 0 < A < ... < D, Child-Pugh A < B < C,
# ALBI grade 1 < 2 < 3): a rare level joins an adjacent one. Other covariates are nominal.
ORDINAL_COVARIATES: frozenset[str] = frozenset({"bclc", "child_pugh", "albi_grade"})
# A hazard ratio beyond 1e-3..1e3, or a log-HR standard error above 5 (a 95% CI spanning a
# factor of e^20), is what separation or a near-empty level produces, not a clinical effect.
MAX_ABS_LOG_HR = math.log(1e3)
MAX_LOG_HR_SE = 5.0
PENALIZER_KEY = "survival.cox_penalizer"
_LOW_VARIANCE = re.compile(r"Column (.+?) have very low variance")
_NORM_DELTA = re.compile(r"norm\(delta\) is still high, (\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)")


# --------------------------------------------------------------------------- rare levels


def _joined(labels: Sequence[str]) -> str:
    """Label of merged adjacent levels, e.g. 'B/C'."""
    return "/".join(labels)


def merge_rare_levels(
    counts: pd.Series, min_count: int, *, ordinal: bool, covariate: str
) -> tuple[dict[str, str], str]:
    """Level -> merged level so that every level has >= ``min_count`` training patients; a note.

    ``counts`` holds the training patients per level, levels in sorted order. An ordinal
    covariate's rarest level joins its smaller adjacent group (repeatedly); a nominal one's rare
    levels pool into 'other', which joins the most frequent level if still too rare.
    """
    levels = [str(level) for level in counts.index]
    n = dict(zip(levels, (int(c) for c in counts), strict=True))
    if ordinal:
        groups = [[level] for level in levels]
        while len(groups) > 1:
            sizes = [sum(n[level] for level in group) for group in groups]
            rarest = int(np.argmin(sizes))
            if sizes[rarest] >= min_count:
                break
            neighbours = [i for i in (rarest - 1, rarest + 1) if 0 <= i < len(groups)]
            # The smaller neighbour, so that merged groups stay balanced (ties: the lower one).
            target = min(neighbours, key=lambda i: (sizes[i], i))
            low, high = sorted((rarest, target))
            groups[low : high + 1] = [groups[low] + groups[high]]
        mapping = {level: _joined(group) for group in groups for level in group}
    else:
        rare = [level for level in levels if n[level] < min_count]
        mapping = {level: level for level in levels}
        if rare and len(rare) < len(levels):
            pooled = OTHER_LEVEL if len(rare) > 1 else rare[0]
            if sum(n[level] for level in rare) < min_count:
                pooled = max((level for level in levels if level not in rare), key=n.__getitem__)
            mapping |= dict.fromkeys(rare, pooled)
    return mapping, _merge_note(mapping, n, min_count, covariate)


def _merge_note(mapping: dict[str, str], n: dict[str, int], min_count: int, covariate: str) -> str:
    """Words for the rare levels merged in ``mapping`` (empty when nothing was merged)."""
    merged = [
        level for level, target in mapping.items() if target != level and n[level] < min_count
    ]
    if not merged:
        return ""
    parts = [
        f"{level} ({n[level]} training patient{'s' if n[level] != 1 else ''}) -> {mapping[level]}"
        for level in merged
    ]
    single = len(set(mapping.values())) == 1
    tail = " (a single level remains: covariate left out)" if single else ""
    return f"{covariate} {', '.join(parts)}{tail}"


# --------------------------------------------------------------------------- checked fit


@dataclass(frozen=True)
class CoxFit:
    """A fitted Cox model with notes: per covariate, and for the model as a whole."""

    model: CoxPHFitter
    covariate_notes: dict[str, str] = field(default_factory=dict)
    model_note: str = ""


def without_urls(text: str) -> str:
    """``text`` without URLs and the 'Please see ...' that leads to them (lifelines' errors)."""
    text = re.sub(r"\s*(?:Please\s+)?\b[Ss]ee\b[^.]*?https?://\S+", "", " ".join(text.split()))
    return re.sub(r"\s*https?://\S+", "", text).strip().rstrip(":").strip()


def _warning_notes(caught: Sequence[warnings.WarningMessage]) -> tuple[dict[str, str], list[str]]:
    """Covariate and model notes in words from lifelines' convergence warnings."""
    covariate_notes: dict[str, str] = {}
    model_notes: list[str] = []
    for item in caught:
        if not issubclass(item.category, ConvergenceWarning):
            continue
        message = str(item.message)
        low_variance = _LOW_VARIANCE.search(message)
        norm = _NORM_DELTA.search(message)
        if low_variance:
            covariate_notes[low_variance.group(1)] = (
                "possible separation: this covariate hardly varies between patients with and "
                "without an event"
            )
        elif norm:
            model_notes.append(
                f"Newton-Raphson did not settle (last step {float(norm.group(1)):.3g}): the "
                "estimates may not be unique (separation or collinearity)"
            )
        else:
            model_notes.append(f"convergence warning: {without_urls(message)}")
    return covariate_notes, model_notes


def _not_converged(
    context: str, error: Exception, suspects: Sequence[str], penalizer: float
) -> str:
    """Message in words for a Cox fit that lifelines could not finish."""
    reason = without_urls(str(error)) or type(error).__name__
    suspect = f"; covariate(s) {list(suspects)} hardly vary with the event" if suspects else ""
    fix = (
        f"set {PENALIZER_KEY} (e.g. 0.1), raise survival.min_level_count or use fewer covariates"
        if penalizer == 0
        else f"raise {PENALIZER_KEY} (now {penalizer:g}) or use fewer covariates"
    )
    return (
        f"{context}: the Cox model did not converge (lifelines: {reason}){suspect}; usually "
        f"separation or collinearity. Fix: {fix}"
    )


def fit_cox_checked(
    frame: pd.DataFrame,
    time_col: str,
    event_col: str,
    covariates: Sequence[str],
    *,
    min_events_per_variable: float = DEFAULT_MIN_EVENTS_PER_VARIABLE,
    penalizer: float = 0.0,
    alpha: float = 0.05,
    context: str = "cohort",
) -> CoxFit:
    """fit_cox with lifelines' warnings as notes and its convergence errors as a ValueError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = fit_cox(
                frame,
                time_col,
                event_col,
                covariates,
                min_events_per_variable=min_events_per_variable,
                penalizer=penalizer,
                alpha=alpha,
                context=context,
            )
        except (ConvergenceError, np.linalg.LinAlgError) as error:
            suspects = list(_warning_notes(caught)[0])
            raise ValueError(_not_converged(context, error, suspects, penalizer)) from error
    covariate_notes, model_notes = _warning_notes(caught)
    if penalizer > 0:
        model_notes.append(
            f"ridge penalty {penalizer:g} ({PENALIZER_KEY}): hazard ratios shrunk toward 1, "
            "CIs and P values approximate"
        )
    return CoxFit(model, covariate_notes, "; ".join(model_notes))


def cox_table(fit: CoxFit) -> pd.DataFrame:
    """hazard_ratio_table with a note per covariate; untrustworthy HRs, CIs and P values blanked.

    An HR beyond 1e-3..1e3 or a log-HR SE above 5 is not reported as a number (separation or
    a near-empty level); its coefficient and SE are kept so the note can be checked.
    """
    with np.errstate(over="ignore"):
        table = hazard_ratio_table(fit.model)
    # NaN coefficients or SEs (a failed Hessian) count as untrustworthy too.
    extreme = ~((table["coef"].abs() <= MAX_ABS_LOG_HR) & (table["se"] <= MAX_LOG_HR_SE))
    notes = []
    for row, is_extreme in zip(table.itertuples(), extreme, strict=True):
        parts = [fit.covariate_notes.get(row.covariate, "")]
        if is_extreme:
            parts.insert(
                0,
                f"hazard ratio not estimable (HR {math.exp(min(row.coef, 700)):.3g}, log-HR SE "
                f"{row.se:.3g}): separation or too few patients in a level; merge levels "
                f"(survival.min_level_count), drop the covariate or set {PENALIZER_KEY}",
            )
        notes.append("; ".join(filter(None, parts)))
    table["note"] = notes
    table.loc[extreme.to_numpy(), ["hr", "ci_low", "ci_high", "p_value"]] = np.nan
    return table
