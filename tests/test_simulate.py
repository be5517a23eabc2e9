"""The simulator: determinism, split design and the planted effects at their configured size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import CoxPHFitter

from hccrad.cohorts.simulate import (
    EFFECT_NAMES,
    TRAITS,
    simulate_cohort,
    trait_correlation_matrix,
)
from hccrad.core.plan import shard_members


def response_cfg(config: dict, n_development: int, n_external: int = 40) -> dict:
    """The default response cohort with other centre sizes."""
    cohort = config["simulate"]["response"]
    cohort["centres"][0]["n_patients"] = n_development
    for centre in cohort["centres"][1:]:
        centre["n_patients"] = n_external
    return cohort


def test_same_seed_same_cohort_other_seed_other(default_config):
    cohort = response_cfg(default_config, 60, 20)
    first, again = simulate_cohort(cohort, 11), simulate_cohort(cohort, 11)
    other = simulate_cohort(cohort, 12)
    pd.testing.assert_frame_equal(first["sheet"], again["sheet"])
    pd.testing.assert_frame_equal(first["latent"], again["latent"])
    assert first["truth"] == again["truth"]
    assert not first["latent"].equals(other["latent"])


def test_splits_are_stratified_and_external_centres_untouched(default_config):
    cohort = response_cfg(default_config, 100)
    sheet = simulate_cohort(cohort, 3)["sheet"]
    development = sheet[sheet["centre"] == "A"]
    assert set(development["split"]) == {"train", "internal_test"}
    assert (development["split"] == "internal_test").sum() == 30
    rates = development.groupby("split")["response"].mean()
    assert abs(rates["train"] - rates["internal_test"]) < 0.05  # stratified by response
    assert set(sheet.loc[sheet["centre"] == "B", "split"]) == {"external_B"}
    assert set(sheet.loc[sheet["centre"] == "C", "split"]) == {"external_C"}


def test_trait_correlation_is_a_valid_correlation_matrix():
    corr = trait_correlation_matrix()
    assert np.allclose(np.diag(corr), 1)
    assert np.all(np.linalg.eigvalsh(corr) > 0)


def test_planted_response_effects_are_recovered_at_their_size(default_config):
    """Refit the planted logistic model on the truth of a large draw: coefficients match."""
    cohort = response_cfg(default_config, 6000, 1)
    result = simulate_cohort(cohort, 5)
    latent, sheet = result["latent"], result["sheet"]
    effects = cohort["endpoints"]["response"]["effects"]
    names = [n for n in EFFECT_NAMES if n in effects]
    X = sm.add_constant(latent[[f"z_{n}" for n in names]].to_numpy())
    fit = sm.Logit(sheet["response"].to_numpy(), X).fit(disp=0)
    estimates = dict(zip(names, fit.params[1:], strict=True))
    errors = dict(zip(names, fit.bse[1:], strict=True))
    print(
        "planted vs estimated log-odds:", {n: (effects[n], round(estimates[n], 2)) for n in names}
    )
    for name in names:
        assert abs(estimates[name] - effects[name]) < 4 * errors[name] + 0.05, name
    assert abs(sheet["response"].mean() - cohort["endpoints"]["response"]["rate"]) < 0.03


def test_imaging_traits_carry_signal_that_clinical_covariates_miss(default_config):
    """The premise of the studies: the images know more than the clinical table."""
    cohort = response_cfg(default_config, 3000, 1)
    result = simulate_cohort(cohort, 9)
    latent, sheet = result["latent"], result["sheet"]
    y = sheet["response"].to_numpy()
    clinical = pd.get_dummies(
        sheet[["tumour_size_mm", "tumour_number", "bclc", "age"]], drop_first=True
    ).astype(float)
    imaging = latent[[f"z_{t}" for t in TRAITS]]
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    def auc(X):
        model = LogisticRegression(max_iter=2000).fit(X[:2000], y[:2000])
        return roc_auc_score(y[2000:], model.predict_proba(X[2000:])[:, 1])

    auc_clinical, auc_imaging = auc(clinical.to_numpy()), auc(imaging.to_numpy())
    print(f"held-out AUC clinical {auc_clinical:.3f} vs latent imaging traits {auc_imaging:.3f}")
    assert auc_imaging > auc_clinical + 0.1


def test_planted_survival_effects_are_recovered(default_config):
    cohort = response_cfg(default_config, 5000, 1)
    # Without censoring from drop-out, so the Cox estimate is sharp.
    cohort["survival"]["censoring"] = {"follow_up_months": [200.0, 400.0], "dropout_per_year": 0.0}
    result = simulate_cohort(cohort, 13)
    latent, sheet = result["latent"], result["sheet"]
    effects = cohort["survival"]["os"]["effects"]
    frame = latent[[f"z_{n}" for n in effects if n != "response"]].copy()
    frame["response"] = sheet["response"]
    frame["time"], frame["event"] = sheet["os_time"], sheet["os_event"]
    fit = CoxPHFitter().fit(frame, "time", "event")
    for name, beta in effects.items():
        column = name if name == "response" else f"z_{name}"
        # The Weibull-PH log hazard equals the Cox log hazard ratio.
        assert fit.params_[column] == pytest.approx(beta, abs=0.1), name


def test_shards_partition_the_patients():
    ids = [f"P{i}" for i in range(17)]
    shards = [shard_members(ids, 4, s) for s in range(1, 5)]
    assert sorted(p for shard in shards for p in shard) == sorted(ids)
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1


def test_missing_values_are_planted_at_the_configured_rate(default_config):
    cohort = response_cfg(default_config, 4000, 1)
    sheet = simulate_cohort(cohort, 2)["sheet"]
    assert sheet["afp"].isna().mean() == pytest.approx(cohort["missing_fraction"], abs=0.015)
    assert sheet["age"].notna().all()
