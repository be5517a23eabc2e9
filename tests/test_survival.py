"""Tests of hccrad.stats.survival: risk groups, KM/log-rank, Cox, C-index and time-dependent AUC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_rossi, load_waltons
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index, median_survival_times
from sksurv.metrics import cumulative_dynamic_auc
from sksurv.util import Surv

from hccrad.stats import survival

SEED = 20240611
ROSSI_COVARIATES = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    """Simulated cohort: 160 train and 100 test patients, hazard rising with the score."""
    rng = np.random.default_rng(SEED)
    n = 260
    score = rng.normal(size=n)
    event_time = rng.exponential(12 * np.exp(-0.8 * score))
    censor_time = rng.uniform(6, 40, size=n)
    return pd.DataFrame(
        {
            "split": ["train"] * 160 + ["external_A"] * 100,
            "score": score,
            "pfs_time": np.minimum(event_time, censor_time),
            "pfs_event": (event_time <= censor_time).astype(int),
        },
        index=pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id"),
    )


@pytest.fixture(scope="module")
def waltons() -> pd.DataFrame:
    """lifelines' Waltons data (two groups of flies) indexed by a patient-like id."""
    data = load_waltons()
    data.index = pd.Index([f"W{i}" for i in range(len(data))], name="patient_id")
    return data


# --------------------------------------------------------------------------- validation


def test_non_positive_or_missing_time_names_column_and_patients():
    frame = pd.DataFrame(
        {"pfs_time": [5.0, 0.0, np.nan, 3.0], "pfs_event": [1, 0, 1, 0]},
        index=pd.Index(["P1", "P2", "P3", "P4"], name="patient_id"),
    )
    with pytest.raises(ValueError, match=r"external_A: pfs_time .* 2 patient\(s\): P2, P3"):
        survival.check_survival(frame, "pfs_time", "pfs_event", context="external_A")


def test_event_not_zero_one_names_column_and_patients():
    frame = pd.DataFrame(
        {"os_time": [5.0, 2.0, 3.0], "os_event": [1, 2, "yes"]},
        index=pd.Index(["P1", "P2", "P3"], name="patient_id"),
    )
    with pytest.raises(ValueError, match=r"os_event must be 0 .* P2, P3"):
        survival.check_survival(frame, "os_time", "os_event")


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['pfs_event'\]"):
        survival.check_survival(pd.DataFrame({"pfs_time": [1.0]}), "pfs_time", "pfs_event")


def test_too_few_events_per_variable_for_cox():
    rossi = load_rossi()  # 114 events, 7 covariates: 16.3 per variable
    with pytest.raises(ValueError, match=r"114 events .* 16\.3 events per variable.*20"):
        survival.fit_cox(rossi, "week", "arrest", ROSSI_COVARIATES, min_events_per_variable=20)
    few = pd.concat([rossi[rossi["arrest"] == 1].head(20), rossi[rossi["arrest"] == 0]])
    with pytest.raises(ValueError, match=r"20 events .* 2\.9 events per variable.*minimum of 5"):
        survival.fit_cox(few, "week", "arrest", ROSSI_COVARIATES)


def test_cox_rejects_missing_covariate_values_and_constant_covariates():
    rossi = load_rossi()
    rossi.loc[[3, 7], "age"] = np.nan
    with pytest.raises(ValueError, match=r"age is missing .* 3, 7"):
        survival.fit_cox(rossi, "week", "arrest", ["age", "prio"])
    with pytest.raises(ValueError, match="single value"):
        survival.fit_cox(load_rossi().assign(one=1), "week", "arrest", ["one", "prio"])
    with pytest.raises(ValueError, match=r"\['bclc'\] are not numeric"):
        survival.fit_cox(load_rossi().assign(bclc="B"), "week", "arrest", ["bclc", "prio"])


# --------------------------------------------------------------------------- cutoffs


def test_cutoff_uses_training_rows_only(cohort):
    """Changing every non-training row leaves the cutoff, and training groups, unchanged."""
    changed = cohort.copy()
    test_rows = changed["split"] != "train"
    rng = np.random.default_rng(1)
    changed.loc[test_rows, "score"] = rng.normal(5, 3, size=test_rows.sum())
    changed.loc[test_rows, "pfs_time"] = rng.uniform(1, 2, size=test_rows.sum())
    changed.loc[test_rows, "pfs_event"] = 1
    for method in ("median", "maxstat"):
        kwargs = {"method": method, "time_col": "pfs_time", "event_col": "pfs_event"}
        cutoff, groups = survival.risk_groups_from_training(cohort, "score", **kwargs)
        cutoff_changed, groups_changed = survival.risk_groups_from_training(
            changed, "score", **kwargs
        )
        assert cutoff == cutoff_changed
        train = ~test_rows
        pd.testing.assert_series_equal(groups[train], groups_changed[train])


def test_median_cutoff_splits_training_in_half(cohort):
    train = cohort[cohort["split"] == "train"]
    cutoff = survival.fit_cutoff(train, "score")
    groups = survival.assign_risk_groups(train, "score", cutoff)
    assert cutoff.value == pytest.approx(train["score"].median())
    assert groups.value_counts().to_dict() == {"low": 80, "high": 80}
    assert list(groups.cat.categories) == ["low", "high"]


def test_score_equal_to_cutoff_is_low():
    frame = pd.DataFrame({"score": [0.5, 1.0, 1.5]}, index=["P1", "P2", "P3"])
    groups = survival.assign_risk_groups(frame, "score", 1.0)
    assert groups.tolist() == ["low", "low", "high"]


def test_maxstat_cutoff_is_the_scan_maximum_within_bounds(cohort):
    train = cohort[cohort["split"] == "train"]
    scan = survival.maxstat_scan(train, "score", "pfs_time", "pfs_event")
    cutoff = survival.fit_cutoff(
        train, "score", method="maxstat", time_col="pfs_time", event_col="pfs_event"
    )
    assert cutoff.statistic == scan["statistic"].max()
    assert cutoff.value in set(train["score"])
    fraction_low = (train["score"] <= cutoff.value).mean()
    assert 0.1 <= fraction_low <= 0.9
    assert scan["n_low"].min() >= 16 and scan["n_high"].min() >= 16
    low = train["score"] <= cutoff.value
    direct = logrank_test(
        train.loc[low, "pfs_time"],
        train.loc[~low, "pfs_time"],
        train.loc[low, "pfs_event"],
        train.loc[~low, "pfs_event"],
    )
    assert cutoff.statistic == pytest.approx(direct.test_statistic)


def test_maxstat_scan_equals_lifelines_logrank_at_every_cutoff(cohort):
    # Whole months give tied event times, which the variance must handle as lifelines does.
    train = cohort[cohort["split"] == "train"].assign(pfs_time=lambda d: np.ceil(d["pfs_time"]))
    scan = survival.maxstat_scan(train, "score", "pfs_time", "pfs_event")
    for row in scan.itertuples():
        low = train["score"] <= row.cutoff
        direct = logrank_test(
            train.loc[low, "pfs_time"],
            train.loc[~low, "pfs_time"],
            train.loc[low, "pfs_event"],
            train.loc[~low, "pfs_event"],
        )
        assert row.statistic == pytest.approx(direct.test_statistic, rel=1e-9)
        assert row.p_value_unadjusted == pytest.approx(direct.p_value, rel=1e-9)


def test_maxstat_needs_survival_columns_and_spread(cohort):
    train = cohort[cohort["split"] == "train"]
    with pytest.raises(ValueError, match="needs time_col and event_col"):
        survival.fit_cutoff(train, "score", method="maxstat")
    with pytest.raises(ValueError, match="no cutoff of score"):
        survival.maxstat_scan(train.assign(score=1.0), "score", "pfs_time", "pfs_event")


# --------------------------------------------------------------------------- KM and log-rank


def test_logrank_matches_lifelines_and_published_waltons(waltons):
    result = survival.logrank(waltons, "group", "T", "E")
    treated, control = (
        waltons[waltons["group"] == "miR-137"],
        waltons[waltons["group"] == "control"],
    )
    direct = logrank_test(treated["T"], control["T"], treated["E"], control["E"])
    assert result.statistic == pytest.approx(direct.test_statistic)
    assert result.p_value == pytest.approx(direct.p_value)
    assert result.df == 1 and result.n_groups == 2
    # lifelines docs (Survival analysis with lifelines, log-rank example): 122.25.
    assert result.statistic == pytest.approx(122.25, abs=0.005)


def test_logrank_needs_two_groups(waltons):
    with pytest.raises(ValueError, match="at least two groups"):
        survival.logrank(waltons.assign(group="all"), "group", "T", "E")


def test_kaplan_meier_and_median_match_lifelines(waltons):
    curves = survival.kaplan_meier_table(waltons, "group", "T", "E")
    medians = survival.median_survival_table(waltons, "group", "T", "E").set_index("group")
    for group, subset in waltons.groupby("group"):
        km = KaplanMeierFitter().fit(subset["T"], subset["E"])
        curve = curves[curves["group"] == group]
        np.testing.assert_allclose(curve["survival"], km.survival_function_.iloc[:, 0])
        np.testing.assert_allclose(curve["ci_low"], km.confidence_interval_.iloc[:, 0])
        ci = median_survival_times(km.confidence_interval_)
        assert medians.loc[group, "median"] == km.median_survival_time_
        assert medians.loc[group, "ci_low"] == ci.iloc[0, 0]
        assert medians.loc[group, "ci_high"] == ci.iloc[0, 1]
        assert medians.loc[group, "n"] == len(subset)
        assert medians.loc[group, "events"] == subset["E"].sum()


def test_numbers_at_risk_hand_example():
    frame = pd.DataFrame(
        {"t": [1.0, 2.0, 2.0, 3.0, 5.0], "e": [1, 0, 1, 1, 0], "g": ["a"] * 5},
        index=[f"P{i}" for i in range(5)],
    )
    table = survival.numbers_at_risk(frame, "g", "t", "e", [0, 2, 4, 6]).set_index("time")
    assert table["at_risk"].tolist() == [5, 4, 1, 0]
    assert table["events"].tolist() == [0, 2, 3, 3]
    assert table["censored"].tolist() == [0, 1, 1, 2]


# --------------------------------------------------------------------------- Cox, C-index, AUC(t)


def test_cox_matches_lifelines_and_published_rossi():
    rossi = load_rossi()
    cox = survival.fit_cox(rossi, "week", "arrest", ROSSI_COVARIATES)
    table = survival.hazard_ratio_table(cox).set_index("covariate")
    direct = CoxPHFitter().fit(rossi, "week", "arrest").summary
    np.testing.assert_allclose(table["hr"], direct["exp(coef)"])
    np.testing.assert_allclose(table["ci_low"], direct["exp(coef) lower 95%"])
    np.testing.assert_allclose(table["ci_high"], direct["exp(coef) upper 95%"])
    np.testing.assert_allclose(table["p_value"], direct["p"])
    # Coefficients printed in the lifelines docs (Survival regression, Rossi example), which
    # match R's coxph on these data (Fox & Weisberg, Cox regression appendix).
    published = {
        "fin": -0.38,
        "age": -0.06,
        "race": 0.31,
        "wexp": -0.15,
        "mar": -0.43,
        "paro": -0.08,
        "prio": 0.09,
    }
    for covariate, coef in published.items():
        assert table.loc[covariate, "coef"] == pytest.approx(coef, abs=0.005)
    assert cox.log_likelihood_ratio_test().test_statistic == pytest.approx(33.27, abs=0.005)


def test_c_index_matches_lifelines():
    rossi = load_rossi()
    cox = survival.fit_cox(rossi, "week", "arrest", ROSSI_COVARIATES)
    scored = rossi.assign(risk=cox.predict_log_partial_hazard(rossi))
    c_index = survival.harrell_c_index(scored, "week", "arrest", "risk", higher_is_riskier=True)
    assert c_index == pytest.approx(cox.concordance_index_)
    assert c_index == pytest.approx(0.64, abs=0.005)  # lifelines docs, Rossi example
    assert c_index == pytest.approx(
        concordance_index(rossi["week"], -scored["risk"], rossi["arrest"])
    )
    flipped = survival.harrell_c_index(scored, "week", "arrest", "risk", higher_is_riskier=False)
    assert flipped == pytest.approx(1 - c_index)


def test_time_dependent_auc_matches_sksurv(cohort):
    train = cohort[cohort["split"] == "train"]
    test = cohort[cohort["split"] != "train"]
    times = [6.0, 12.0, 18.0]
    result = survival.time_dependent_auc(
        train, test, "pfs_time", "pfs_event", "score", times, higher_is_riskier=True
    )
    auc, mean_auc = cumulative_dynamic_auc(
        Surv.from_arrays(train["pfs_event"] == 1, train["pfs_time"]),
        Surv.from_arrays(test["pfs_event"] == 1, test["pfs_time"]),
        test["score"].to_numpy(),
        times,
    )
    np.testing.assert_allclose(result.table["auc"], auc)
    assert result.mean_auc == pytest.approx(mean_auc)
    assert (result.table["auc"] > 0.6).all()  # the planted effect is detected


def test_time_dependent_auc_rejects_times_outside_follow_up(cohort):
    train = cohort[cohort["split"] == "train"]
    test = cohort[cohort["split"] != "train"]
    with pytest.raises(ValueError, match=r"external_A: times must lie in"):
        survival.time_dependent_auc(
            train,
            test,
            "pfs_time",
            "pfs_event",
            "score",
            [1000.0],
            higher_is_riskier=True,
            context="external_A",
        )
