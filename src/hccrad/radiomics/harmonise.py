"""Per-centre harmonisation of the features: z-scores with each centre's training statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd


@dataclass(frozen=True)
class CentreScaler:
    """Per-centre feature means and SDs (centres x features) for per-centre z-scoring."""

    means: pd.DataFrame
    sds: pd.DataFrame


def fit_centre_scaler(
    features: pd.DataFrame, centre: pd.Series, fit_rows: pd.Series
) -> CentreScaler:
    """Per-centre mean and SD of each feature from the fitting (training) rows of each centre."""
    centre = centre.reindex(features.index)
    fit = fit_rows.reindex(features.index).fillna(False).astype(bool)
    grouped = features[fit].groupby(centre[fit])
    return CentreScaler(means=grouped.mean(), sds=grouped.std(ddof=1))


def apply_centre_scaler(
    features: pd.DataFrame,
    centre: pd.Series,
    scaler: CentreScaler,
    *,
    unseen_centre: Literal["own_rows", "error"] = "own_rows",
) -> pd.DataFrame:
    """Z-score each row with its centre's statistics; a centre unseen in fitting uses its own rows.

    An external centre has no training rows; 'own_rows' standardises it with the statistics of
    all its own rows (uses features only, never outcomes), 'error' refuses.
    """
    centre = centre.reindex(features.index)
    if centre.isna().any():
        raise ValueError(f"patients without a centre: {centre.index[centre.isna()].tolist()}")
    harmonised = features.astype(float).copy()
    for name, rows in features.groupby(centre).groups.items():
        if name in scaler.means.index:
            mean, sd = scaler.means.loc[name], scaler.sds.loc[name]
        elif unseen_centre == "own_rows":
            mean, sd = features.loc[rows].mean(), features.loc[rows].std(ddof=1)
        else:
            raise ValueError(f"centre {name!r} has no fitting rows to standardise with")
        # A feature constant within a centre (SD 0 or one row) is only centred, not scaled.
        sd = sd.where(sd > 0, 1.0).fillna(1.0)
        harmonised.loc[rows] = (features.loc[rows] - mean) / sd
    return harmonised


def harmonise_per_centre(
    features: pd.DataFrame,
    centre: pd.Series,
    fit_rows: pd.Series,
    *,
    method: Literal["none", "centre_zscore"] = "none",
) -> pd.DataFrame:
    """Per-centre z-scoring fitted on `fit_rows` (training); 'none' (default) is a copy."""
    if method == "none":
        return features.copy()
    if method != "centre_zscore":
        raise ValueError(f"unknown harmonisation {method!r}; choose 'none' or 'centre_zscore'")
    return apply_centre_scaler(features, centre, fit_centre_scaler(features, centre, fit_rows))
