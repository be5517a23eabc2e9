"""Per-centre harmonisation of the features (z-scores or ComBat) and how far centres separate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from hccrad.radiomics.combat import apply_combat, fit_combat

Harmonisation = Literal["none", "centre_zscore", "combat"]
HARMONISATIONS: tuple[str, ...] = ("none", "centre_zscore", "combat")


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
    method: Harmonisation = "none",
    reference: tuple[pd.DataFrame, pd.Series, pd.Series] | None = None,
) -> pd.DataFrame:
    """Harmonisation fitted on `fit_rows` (training); 'none' (default) is a copy.

    ``reference`` (features, centre, fit_rows of the response cohort) fits ComBat on another
    cohort's training rows; every centre of ``features`` is then a new batch.
    """
    if method not in HARMONISATIONS:
        raise ValueError(f"unknown harmonisation {method!r}; choose one of {HARMONISATIONS}")
    if method == "none":
        return features.copy()
    if method == "centre_zscore":
        return apply_centre_scaler(features, centre, fit_centre_scaler(features, centre, fit_rows))
    if reference is not None:
        ref_features, ref_centre, ref_rows = reference
        fit = fit_combat(ref_features[features.columns], ref_centre, ref_rows)
        return apply_combat(features, centre, fit, same_cohort=False)
    return apply_combat(features, centre, fit_combat(features, centre, fit_rows))


# --------------------------------------------------------------------------- diagnostics


def centre_separation(features: pd.DataFrame, centre: pd.Series) -> pd.Series:
    """Per feature, the share of its variance between centres (eta squared, one-way ANOVA)."""
    values = features.astype(float)
    labels = centre.reindex(values.index).astype(str)
    deviation = values - values.mean()
    between = (values.groupby(labels).transform("mean") - values.mean()) ** 2
    total = (deviation**2).sum()
    # A feature constant over every patient has no variance to share out.
    return (between.sum() / total).where(total > 0).rename("between_centre_share")


def separation_table(
    before: pd.DataFrame, after: pd.DataFrame, centre: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-feature between-centre shares before/after, and their mean and median per stage."""
    per_feature = pd.DataFrame(
        {"before": centre_separation(before, centre), "after": centre_separation(after, centre)}
    ).rename_axis("feature")
    labels = centre.reindex(before.index).astype(str)
    summary = pd.DataFrame(
        {
            "stage": ["before", "after"],
            "n_patients": len(before),
            "n_centres": labels.nunique(),
            "n_features": int(per_feature["before"].notna().sum()),
            "mean_between_centre_share": per_feature[["before", "after"]].mean().to_numpy(),
            "median_between_centre_share": per_feature[["before", "after"]].median().to_numpy(),
        }
    )
    return per_feature.reset_index(), summary


def harmonisation_pca(
    before: pd.DataFrame, after: pd.DataFrame, sheet: pd.DataFrame, fit_rows: pd.Series
) -> pd.DataFrame:
    """Both stages on the first two principal components of the training rows before harmonising.

    One projection for both stages (standardised with the training rows' mean and SD before
    harmonisation) so that a centre's shift between the panels is the harmonisation's doing.
    """
    train = before.loc[fit_rows.reindex(before.index).fillna(False).astype(bool)]
    mean, sd = train.mean(), train.std(ddof=1).replace(0.0, 1.0).fillna(1.0)
    pca = PCA(n_components=2).fit(((train - mean) / sd).to_numpy())
    parts = []
    for stage, table in (("before", before), ("after", after)):
        scores = pca.transform(((table - mean) / sd).to_numpy())
        parts.append(
            pd.DataFrame(
                {
                    "patient_id": table.index,
                    "centre": sheet.loc[table.index, "centre"].astype(str).to_numpy(),
                    "split": sheet.loc[table.index, "split"].astype(str).to_numpy(),
                    "stage": stage,
                    "pc1": scores[:, 0],
                    "pc2": scores[:, 1],
                }
            )
        )
    explained = np.round(pca.explained_variance_ratio_, 6)
    return pd.concat(parts, ignore_index=True).assign(
        pc1_variance=explained[0], pc2_variance=explained[1]
    )
