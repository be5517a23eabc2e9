"""Agreement between readers of a binary outcome: Cohen's kappa per pair, Fleiss' kappa for all.

Cohen's kappa and its asymptotic standard error come from statsmodels (``cohens_kappa``),
Fleiss' kappa from statsmodels too, with a percentile CI from a seeded bootstrap over patients
because statsmodels gives it no variance.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

from hccrad.stats.checks import check_binary_outcome


def cohen_kappa_table(reads: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """Cohen's kappa with its CI for every pair of readers, on the patients both read."""
    rows = []
    for a, b in combinations(reads.columns, 2):
        both = reads[[a, b]].dropna()
        x = check_binary_outcome(both[a], context=f"reader {a}")
        y = check_binary_outcome(both[b], context=f"reader {b}")
        table = pd.crosstab(x, y).reindex(index=[0, 1], columns=[0, 1], fill_value=0)
        result = cohens_kappa(table.to_numpy())
        # statsmodels' kappa_low/upp are fixed at 95%; the same Wald interval at ``alpha``.
        half = float(stats.norm.ppf(1 - alpha / 2)) * float(result.std_kappa)
        rows.append(
            {
                "reader_a": a,
                "reader_b": b,
                "n": len(both),
                "agreement": float(np.mean(x == y)),
                "kappa": float(result.kappa),
                "ci_low": float(result.kappa) - half,
                "ci_high": float(result.kappa) + half,
                "method": "Cohen (statsmodels, asymptotic CI)",
            }
        )
    return pd.DataFrame(rows)


def _fleiss(reads: np.ndarray) -> float:
    """Fleiss' kappa of patients x readers 0/1 reads."""
    counts, _ = aggregate_raters(reads.astype(int), n_cat=2)
    return float(fleiss_kappa(counts, method="fleiss"))


def fleiss_kappa_row(
    reads: pd.DataFrame, *, seed: int, n_resamples: int = 2000, alpha: float = 0.05
) -> dict[str, object]:
    """Fleiss' kappa of every reader on the patients all read, with a bootstrap CI."""
    complete = reads.dropna()
    values = np.column_stack(
        [check_binary_outcome(complete[c], context=f"reader {c}") for c in complete.columns]
    )
    rng = np.random.default_rng(seed)
    samples = [
        _fleiss(values[rng.integers(0, len(values), len(values))]) for _ in range(n_resamples)
    ]
    low, high = np.nanquantile(samples, [alpha / 2, 1 - alpha / 2])
    return {
        "reader_a": "all",
        "reader_b": "all",
        "n": len(complete),
        "agreement": float(np.mean(values.min(axis=1) == values.max(axis=1))),
        "kappa": _fleiss(values),
        "ci_low": float(low),
        "ci_high": float(high),
        "method": f"Fleiss (statsmodels; bootstrap CI, {n_resamples} resamples)",
    }
