"""Tests of hccrad.radiomics.combat and the harmonisation diagnostics in hccrad.radiomics.harmonise:
ComBat fitted on training rows only, new centres mapped from their own features, and the
between-centre share of variance dropping on a planted centre effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccrad.core.seeding import rng_for
from hccrad.radiomics.combat import apply_combat, fit_combat, new_batch_location_scale
from hccrad.radiomics.harmonise import (
    centre_separation,
    harmonisation_pca,
    harmonise_per_centre,
    separation_table,
)

N_FEATURES = 25
# Planted acquisition effect per centre: an offset (in patient SDs) and a gain on the spread.
CENTRES = {"A": (0.0, 1.0, 80), "B": (1.5, 1.8, 40), "C": (-1.0, 0.6, 40)}


def simulated_cohort(
    seed: int = 7, development: tuple[str, ...] = ("A",), planted: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features with a planted per-centre offset and gain, and a sheet with centre and split."""
    rng = rng_for(seed, "test", "harmonise")
    parts, sheets = [], []
    for name, (offset, gain, n) in CENTRES.items():
        biology = rng.standard_normal((n, N_FEATURES))
        # Each feature carries the centre effect with its own weight, as scanner effects do.
        weights = rng.uniform(0.5, 1.5, N_FEATURES)
        values = biology * gain**weights + offset * weights if planted else biology
        ids = [f"{name}{i:03d}" for i in range(n)]
        parts.append(pd.DataFrame(values, index=ids, columns=[f"f{j}" for j in range(N_FEATURES)]))
        n_train = int(0.7 * n) if name in development else 0
        split = ["train"] * n_train + (
            ["internal_test"] * (n - n_train) if name in development else [f"external_{name}"] * n
        )
        sheets.append(pd.DataFrame({"centre": name, "split": split}, index=ids))
    return pd.concat(parts).rename_axis("patient_id"), pd.concat(sheets).rename_axis("patient_id")


def test_fit_reads_training_rows_only() -> None:
    """No internal-test or external row enters the fit: changing them all changes nothing."""
    for development in (("A",), ("A", "B")):
        features, sheet = simulated_cohort(development=development)
        train = sheet["split"] == "train"
        fit = fit_combat(features, sheet["centre"], train)
        assert list(fit.fit_rows) == list(sheet.index[train])
        assert fit.training_centres == development
        scrambled = features.copy()
        scrambled.loc[~train] = rng_for(1, "scramble").normal(50, 9, (int((~train).sum()), 25))
        again = fit_combat(scrambled, sheet["centre"], train)
        pd.testing.assert_series_equal(fit.reference_mean, again.reference_mean)
        pd.testing.assert_series_equal(fit.reference_sd, again.reference_sd)
        if len(development) > 1:
            for name in development:
                np.testing.assert_array_equal(fit.model.gamma[name], again.model.gamma[name])
                np.testing.assert_array_equal(fit.model.delta[name], again.model.delta[name])
        else:
            assert fit.model is None  # one training centre: no batch effect to estimate


def test_internal_test_rows_use_the_fitted_model_row_by_row() -> None:
    """Two training centres: a test row's harmonised value depends on that row alone."""
    features, sheet = simulated_cohort(development=("A", "B"))
    train = sheet["split"] == "train"
    fit = fit_combat(features, sheet["centre"], train)
    harmonised = apply_combat(features, sheet["centre"], fit)
    internal = sheet.index[sheet["split"] == "internal_test"]
    changed = features.copy()
    changed.loc[internal[0]] += 10.0
    again = apply_combat(changed, sheet["centre"], fit)
    others = features.index.drop(internal[0])
    pd.testing.assert_frame_equal(harmonised.loc[others], again.loc[others])
    assert not np.allclose(harmonised.loc[internal[0]], again.loc[internal[0]])
    # Training centres are brought together: the between-centre share of A and B collapses.
    a_b = sheet.index[sheet["centre"].isin(["A", "B"])]
    before = centre_separation(features.loc[a_b], sheet["centre"]).mean()
    after = centre_separation(harmonised.loc[a_b], sheet["centre"]).mean()
    assert before > 0.15 and after < 0.1 * before


def test_a_new_centre_is_mapped_onto_training_from_its_own_rows() -> None:
    features, sheet = simulated_cohort()
    train = sheet["split"] == "train"
    harmonised = harmonise_per_centre(features, sheet["centre"], train, method="combat")
    # The single training centre is the reference: its rows (train and internal test) unchanged.
    a_rows = sheet.index[sheet["centre"] == "A"]
    pd.testing.assert_frame_equal(harmonised.loc[a_rows], features.loc[a_rows].astype(float))
    reference = features.loc[train]
    for name in ("B", "C"):
        rows = harmonised.loc[sheet["centre"] == name]
        # Mapped onto the training mean and SD (up to the empirical Bayes shrinkage).
        assert np.abs(rows.mean() - reference.mean()).max() < 0.2
        assert np.abs(rows.std() / reference.std() - 1).max() < 0.25
    # Another external centre's rows never change B's result, nor the training rows.
    changed = features.copy()
    c_rows = sheet.index[sheet["centre"] == "C"]
    changed.loc[c_rows] *= 3.0
    again = harmonise_per_centre(changed, sheet["centre"], train, method="combat")
    kept = sheet.index[sheet["centre"] != "C"]
    pd.testing.assert_frame_equal(harmonised.loc[kept], again.loc[kept])


def test_another_cohort_is_harmonised_against_the_response_training_rows() -> None:
    """With a reference cohort every centre is new, even one named like a training centre."""
    features, sheet = simulated_cohort()
    train = sheet["split"] == "train"
    other = features.loc[sheet["centre"] == "B"] * 2.0 + 4.0
    other_centre = pd.Series("A", index=other.index)  # same name as the training centre
    harmonised = harmonise_per_centre(
        other,
        other_centre,
        pd.Series(False, index=other.index),
        method="combat",
        reference=(features, sheet["centre"], train),
    )
    assert np.abs(harmonised.mean() - features.loc[train].mean()).max() < 0.2


def test_empirical_bayes_location_scale() -> None:
    """Many patients: gamma* and delta* reach the batch's own mean and variance."""
    rng = rng_for(3, "test", "eb")
    shift, spread = rng.normal(1.0, 0.5, 30), rng.uniform(0.5, 2.0, 30)
    batch = rng.standard_normal((5000, 30)) * np.sqrt(spread) + shift
    gamma, delta = new_batch_location_scale(batch)
    np.testing.assert_allclose(gamma, batch.mean(axis=0), atol=0.01)
    np.testing.assert_allclose(delta, batch.var(axis=0, ddof=1), rtol=0.03)
    # Few patients: the location is pulled towards the mean over features (the prior).
    small = batch[:4]
    gamma_small, _ = new_batch_location_scale(small)
    distance_raw = np.abs(small.mean(axis=0) - small.mean()).mean()
    assert np.abs(gamma_small - small.mean()).mean() < distance_raw


def test_between_centre_share_drops_on_a_planted_centre_effect() -> None:
    features, sheet = simulated_cohort()
    train = sheet["split"] == "train"
    harmonised = harmonise_per_centre(features, sheet["centre"], train, method="combat")
    per_feature, summary = separation_table(features, harmonised, sheet["centre"])
    before, after = summary.set_index("stage")["mean_between_centre_share"]
    assert before > 0.3
    assert after < 0.05
    assert (per_feature["after"] < per_feature["before"]).all()
    # Without a planted effect there is little to remove: the share is near its chance level.
    null_features, null_sheet = simulated_cohort(planted=False)
    assert centre_separation(null_features, null_sheet["centre"]).mean() < 0.03


def test_between_centre_share_by_hand() -> None:
    """Two centres, values 0, 2 | 4, 6: between SS 16 of total SS 20."""
    features = pd.DataFrame({"f": [0.0, 2.0, 4.0, 6.0], "g": [1.0, 1.0, 1.0, 1.0]})
    share = centre_separation(features, pd.Series(["X", "X", "Y", "Y"]))
    assert share["f"] == pytest.approx(0.8)
    assert np.isnan(share["g"])  # constant: no variance to share out


def test_pca_projection_is_shared_by_both_stages() -> None:
    features, sheet = simulated_cohort()
    train = sheet["split"] == "train"
    harmonised = harmonise_per_centre(features, sheet["centre"], train, method="combat")
    table = harmonisation_pca(features, harmonised, sheet, train)
    assert len(table) == 2 * len(features)
    before = table[table["stage"] == "before"].set_index("patient_id")
    after = table[table["stage"] == "after"].set_index("patient_id")
    a_rows = sheet.index[sheet["centre"] == "A"]
    # Unchanged reference rows sit at the same coordinates in both panels.
    np.testing.assert_allclose(before.loc[a_rows, "pc1"], after.loc[a_rows, "pc1"])
    assert 0 < table["pc1_variance"].iloc[0] < 1


def test_too_few_rows_stop_with_the_centre_and_a_fix() -> None:
    features, sheet = simulated_cohort(development=("A", "B"))
    train = sheet["split"] == "train"
    lonely = train & ((sheet["centre"] != "B") | (sheet.index == "B000"))
    with pytest.raises(ValueError, match=r"\['B'\] have a single training patient"):
        fit_combat(features, sheet["centre"], lonely)
    fit = fit_combat(features, sheet["centre"], train)
    one = sheet.index[:1].append(sheet.index[sheet["centre"] == "C"][:1])
    with pytest.raises(ValueError, match="centre 'C' has no training rows and 1 patient"):
        apply_combat(features.loc[one], sheet.loc[one, "centre"], fit)


def test_diagnostic_figure_shows_the_table_numbers() -> None:
    from hccrad.figures.harmonisation import harmonisation_figure

    features, sheet = simulated_cohort()
    train = sheet["split"] == "train"
    harmonised = harmonise_per_centre(features, sheet["centre"], train, method="combat")
    per_feature, summary = separation_table(features, harmonised, sheet["centre"])
    figure = harmonisation_figure(
        harmonisation_pca(features, harmonised, sheet, train), per_feature, summary
    )
    axes = figure.axes
    assert len(axes) == 3
    means = summary.set_index("stage")["mean_between_centre_share"]
    assert axes[2].get_title() == f"Mean share {means['before']:.3f} to {means['after']:.3f}"
    # Every patient in both PCA panels, and every feature in the share panel.
    assert sum(len(c.get_offsets()) for c in axes[0].collections) == len(features)
    assert sum(len(c.get_offsets()) for c in axes[1].collections) == len(features)
    assert len(axes[2].collections[0].get_offsets()) == len(per_feature)
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["centre A", "centre B", "centre C", "training", "test"]


def test_combat_across_training_centres_equals_svas_combat():
    # neuroCombat, the Python port of sva's ComBat (Johnson et al. 2007, parametric), on the
    # same training rows: our fit applied to them agrees within the empirical Bayes tolerance.
    from neuroCombat import neuroCombat

    features, sheet = simulated_cohort(development=("A", "B", "C"))
    train = sheet["split"] == "train"
    fit = fit_combat(features, sheet["centre"], train)
    ours = apply_combat(features.loc[train], sheet.loc[train, "centre"], fit)
    codes = sheet.loc[train, "centre"].map({"A": 1, "B": 2, "C": 3})
    reference = neuroCombat(
        dat=features.loc[train].T.to_numpy(dtype=float),
        covars=pd.DataFrame({"centre": codes.to_numpy()}),
        batch_col="centre",
    )["data"].T
    scale = features.loc[train].std().to_numpy()
    assert np.max(np.abs(ours.to_numpy() - reference) / scale) < 1e-3
    # Not a tautology: the raw features are far from the harmonised ones.
    assert np.max(np.abs(features.loc[train].to_numpy() - reference) / scale) > 0.5
