"""ComBat harmonisation of the features, fitted on the training split only.

Centres with training rows: ComBat (Johnson et al. 2007, parametric empirical Bayes, no
covariates) is fitted on the training rows of those centres and applied, with the fitted location
and scale of each centre, to the same centres' internal-test rows. With a single training centre
there is no batch effect to estimate among training rows and those centres are left as they are.
Written here (tests/test_harmonise.py holds it to neuroCombat, the Python port of sva's ComBat,
within the empirical Bayes tolerance): neuroCombat itself fails on numpy 2 where it needs a
reference batch and cannot apply a fit to new rows; combatlearn's "johnson" puts its priors
across centres per feature, not across features per centre as Johnson et al. do, and pulls
0.3 GB of plotting dependencies; and the empirical Bayes step is needed here anyway for centres
ComBat never saw.

A centre without training rows (an external centre, any centre of another cohort) is a batch
that ComBat never saw: no library estimates a batch it was not fitted on (combatlearn refuses,
neuroHarmonize returns NaN). Here such a centre is harmonised as "ComBat with a new batch": its
location and scale per feature are estimated from its own rows' features (never outcomes) by
Johnson's parametric empirical Bayes, relative to the harmonised training rows, which act as the
reference batch and are not changed. The new centre's rows are thus mapped onto the training
distribution; no training or other centre's row changes when a new centre is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Iterations of the empirical Bayes fixed point and its relative tolerance (sva's ComBat: 1e-4).
EB_TOLERANCE = 1e-4
EB_MAX_ITERATIONS = 1000
# Floor of a centre's per-feature variance: a feature constant within the centre.
MIN_VARIANCE = 1e-12


@dataclass(frozen=True)
class CentreModel:
    """ComBat across training centres: the standardisation and each centre's gamma*, delta*."""

    grand_mean: pd.Series
    pooled_sd: pd.Series
    gamma: dict[str, np.ndarray]
    delta: dict[str, np.ndarray]


@dataclass(frozen=True)
class ComBatFit:
    """What ComBat learnt from the training rows: the rows, the per-centre model, the reference."""

    fit_rows: pd.Index
    training_centres: tuple[str, ...]
    model: CentreModel | None
    reference_mean: pd.Series
    reference_sd: pd.Series


def _centre_labels(features: pd.DataFrame, centre: pd.Series) -> pd.Series:
    """Each row's centre as a string, else ValueError naming the rows without one."""
    centre = centre.reindex(features.index)
    if centre.isna().any():
        raise ValueError(f"patients without a centre: {centre.index[centre.isna()].tolist()}")
    return centre.astype(str)


def fit_combat(features: pd.DataFrame, centre: pd.Series, fit_rows: pd.Series) -> ComBatFit:
    """ComBat fitted on the ``fit_rows`` (training) rows alone; the other rows are never read."""
    fit = fit_rows.reindex(features.index).fillna(False).astype(bool)
    train = features.loc[fit[fit].index].astype(float)
    if len(train) < 2:
        raise ValueError(f"ComBat needs at least 2 training rows to fit on, got {len(train)}")
    labels = _centre_labels(train, centre)
    counts = labels.value_counts()
    if (counts < 2).any():
        raise ValueError(
            f"ComBat: training centre(s) {counts[counts < 2].index.tolist()} have a single "
            "training patient; a centre's scale needs two. Fix: merge the centre with another "
            "in the sheet, or set radiomics.harmonisation to none or centre_zscore."
        )
    model = None
    reference = train
    if len(counts) > 1:
        model = fit_centres(train, labels)
        reference = _transformed(model, train, labels)
    return ComBatFit(
        fit_rows=train.index,
        training_centres=tuple(sorted(counts.index)),
        model=model,
        reference_mean=reference.mean(),
        reference_sd=reference.std(ddof=1),
    )


def fit_centres(train: pd.DataFrame, labels: pd.Series) -> CentreModel:
    """Johnson's ComBat without covariates on the training rows of several centres."""
    centre_means = train.groupby(labels).transform("mean")
    grand_mean = train.mean()
    # sva's pooled variance: squared residuals from each centre's mean, over all rows (1/n).
    pooled_sd = np.sqrt(((train - centre_means) ** 2).mean())
    # A feature constant within every training centre is only shifted, not scaled.
    pooled_sd = pooled_sd.where(pooled_sd > 0, 1.0)
    standardised = (train - grand_mean) / pooled_sd
    gamma, delta = {}, {}
    for name, rows in standardised.groupby(labels):
        gamma[str(name)], delta[str(name)] = new_batch_location_scale(rows.to_numpy(dtype=float))
    return CentreModel(grand_mean, pooled_sd, gamma, delta)


def _transformed(model: CentreModel, rows: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """Rows of training centres adjusted with their centre's fitted location and scale."""
    standardised = (rows - model.grand_mean) / model.pooled_sd
    adjusted = standardised.copy()
    for name, index in rows.groupby(labels.loc[rows.index]).groups.items():
        gamma, delta = model.gamma[str(name)], model.delta[str(name)]
        adjusted.loc[index] = (standardised.loc[index] - gamma) / np.sqrt(delta)
    return adjusted * model.pooled_sd + model.grand_mean


def new_batch_location_scale(
    standardised: np.ndarray, *, tolerance: float = EB_TOLERANCE
) -> tuple[np.ndarray, np.ndarray]:
    """Empirical Bayes location and scale (gamma*, delta*) of one batch (rows x features).

    Johnson et al. (2007), parametric: the batch's per-feature means have a normal prior and its
    variances an inverse-gamma prior, both fitted across that batch's features by moments.
    """
    # Written here because no maintained ComBat estimates a batch absent from its fit (combatlearn
    # raises; its reference-batch transform also misplaces the location when scales differ); the
    # training centres' fit (fit_centres) uses the same step per centre.
    n = standardised.shape[0]
    gamma_hat = standardised.mean(axis=0)
    delta_hat = np.maximum(standardised.var(axis=0, ddof=1), MIN_VARIANCE)
    gamma_bar, t2 = gamma_hat.mean(), max(gamma_hat.var(ddof=1), MIN_VARIANCE)
    m, s2 = delta_hat.mean(), max(delta_hat.var(ddof=1), MIN_VARIANCE)
    a_prior, b_prior = (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2
    gamma, delta = gamma_hat, delta_hat
    for _ in range(EB_MAX_ITERATIONS):
        gamma_new = (t2 * n * gamma_hat + delta * gamma_bar) / (t2 * n + delta)
        sum2 = ((standardised - gamma_new) ** 2).sum(axis=0)
        delta_new = (0.5 * sum2 + b_prior) / (n / 2.0 + a_prior - 1.0)
        change = max(
            np.max(np.abs(gamma_new - gamma) / (np.abs(gamma) + MIN_VARIANCE)),
            np.max(np.abs(delta_new - delta) / delta),
        )
        gamma, delta = gamma_new, delta_new
        if change < tolerance:
            break
    return gamma, delta


def harmonise_new_centre(rows: pd.DataFrame, fit: ComBatFit, name: str) -> pd.DataFrame:
    """A centre unseen in training mapped onto the training reference from its own features."""
    if len(rows) < 2:
        raise ValueError(
            f"ComBat: centre {name!r} has no training rows and {len(rows)} patient(s); its "
            "location and scale need at least two. Fix: merge it with another centre in the "
            "sheet, or set radiomics.harmonisation to none or centre_zscore."
        )
    mean = fit.reference_mean[rows.columns]
    # A feature constant over the training rows is only shifted, not scaled.
    sd = fit.reference_sd[rows.columns].where(lambda s: s > 0, 1.0).fillna(1.0)
    standardised = ((rows - mean) / sd).to_numpy(dtype=float)
    gamma, delta = new_batch_location_scale(standardised)
    adjusted = (standardised - gamma) / np.sqrt(delta)
    return pd.DataFrame(adjusted, index=rows.index, columns=rows.columns) * sd + mean


def apply_combat(
    features: pd.DataFrame, centre: pd.Series, fit: ComBatFit, *, same_cohort: bool = True
) -> pd.DataFrame:
    """Every row harmonised: training centres with the fitted model, new centres by their rows.

    ``same_cohort`` False (another cohort's table, e.g. the radiogenomics cohort) treats every
    centre as new even where a name matches a training centre.
    """
    labels = _centre_labels(features, centre)
    values = features.astype(float)
    harmonised = values.copy()
    seen = labels.isin(fit.training_centres) if same_cohort else pd.Series(False, labels.index)
    if fit.model is not None and seen.any():
        harmonised.loc[seen] = _transformed(fit.model, values.loc[seen], labels)
    for name, rows in values.loc[~seen].groupby(labels[~seen]):
        harmonised.loc[rows.index] = harmonise_new_centre(rows, fit, str(name))
    return harmonised
