"""Tests of hccrad.stats.survival: risk groups, KM/log-rank, Cox, C-index and time-dependent AUC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_rossi, load_waltons
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index, median_survival_times
from sksurv.metrics import cumulative_dynamic_auc
from sksurv.util import Surv
from snakemake.utils import update_config

from hccrad.cohorts.column_map import load_column_map
from hccrad.cohorts.sheet_import import import_sheet
from hccrad.cohorts.tables import read_table
from hccrad.reporting.survival import SurvivalSettings, stratify_survival, survival_settings
from hccrad.stats import cox, survival

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


# --------------------------------------------------------------------------- Cox: rare levels,
# separation, no events (hccrad.stats.cox) and the real HCC-TACE-Seg table


def test_rare_ordinal_level_joins_its_smaller_neighbour():
    counts = pd.Series({"A": 56, "B": 12, "C": 1})
    mapping, note = cox.merge_rare_levels(counts, 5, ordinal=True, covariate="child_pugh")
    assert mapping == {"A": "A", "B": "B/C", "C": "B/C"}
    assert note == "child_pugh C (1 training patient) -> B/C"
    # Rarest first: 0 joins A (11), then B (3) the smaller of its neighbours 0/A and C (42).
    bclc = pd.Series({"0": 2, "A": 9, "B": 3, "C": 42, "D": 6})
    mapping, _ = cox.merge_rare_levels(bclc, 5, ordinal=True, covariate="bclc")
    assert mapping == {"0": "0/A/B", "A": "0/A/B", "B": "0/A/B", "C": "C", "D": "D"}
    assert cox.merge_rare_levels(bclc, 1, ordinal=True, covariate="bclc") == (
        {level: level for level in bclc.index},
        "",
    )


def test_rare_nominal_levels_pool_into_other_or_the_largest_level():
    counts = pd.Series({"HBV": 30, "HBV+HCV": 3, "HCV": 25, "alcohol": 4})
    mapping, note = cox.merge_rare_levels(counts, 5, ordinal=False, covariate="aetiology")
    assert mapping["HBV+HCV"] == mapping["alcohol"] == "other"  # 7 patients together
    assert "HBV+HCV (3 training patients) -> other" in note
    alone = pd.Series({"HBV": 30, "HCV": 25, "alcohol": 2})
    mapping, _ = cox.merge_rare_levels(alone, 5, ordinal=False, covariate="aetiology")
    assert mapping["alcohol"] == "HBV"  # 2 patients are too few even as 'other'


def one_patient_level_cohort(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions and a sheet in which one training patient (censored early) is Child-Pugh C."""
    rng = np.random.default_rng(seed)
    n = 120
    ids = [f"P{i:03d}" for i in range(n)]
    score = rng.normal(size=n)
    event_time = rng.exponential(12 * np.exp(-0.7 * score))
    censor_time = rng.uniform(6, 40, size=n)
    child_pugh = np.where(np.arange(n) % 4 == 0, "B", "A").astype(object)
    child_pugh[0] = "C"
    sheet = pd.DataFrame(
        {
            "pfs_time": np.minimum(event_time, censor_time),
            "pfs_event": (event_time <= censor_time).astype(int),
            "child_pugh": child_pugh,
        },
        index=pd.Index(ids, name="patient_id"),
    )
    # The Child-Pugh C patient is censored first: no event can inform its hazard ratio.
    sheet.loc["P000", ["pfs_time", "pfs_event"]] = [0.5, 0]
    predictions = pd.DataFrame(
        {
            "patient_id": ids,
            "endpoint": "response",
            "split": ["train"] * 80 + ["internal_test"] * 40,
            "centre": "A",
            "outcome": rng.integers(0, 2, n),
            "model": "clinical",
            "score": score,
        }
    )
    return predictions, sheet


def multivariable_rows(tables: dict[str, pd.DataFrame], cohort: str = "train") -> pd.DataFrame:
    """The multivariable Cox rows of one cohort, indexed by covariate."""
    rows = tables["cox"].query("cox_model == 'multivariable' and cohort == @cohort")
    return rows.set_index("covariate")


def test_level_with_one_patient_is_merged_before_the_cox_fit():
    predictions, sheet = one_patient_level_cohort()
    settings = SurvivalSettings(cox_covariates=("child_pugh",))
    rows = multivariable_rows(stratify_survival(predictions, sheet, ["pfs"], settings))
    assert list(rows.index) == ["high_risk", "child_pugh[B/C]"]
    assert 0.2 < rows.loc["child_pugh[B/C]", "hr"] < 5
    assert "child_pugh C (1 training patient) -> B/C" in rows.loc["child_pugh[B/C]", "note"]
    # Without merging, the one-patient level's HR is no number but a note in words.
    unmerged = SurvivalSettings(cox_covariates=("child_pugh",), min_level_count=1)
    rows = multivariable_rows(stratify_survival(predictions, sheet, ["pfs"], unmerged))
    assert rows.loc["child_pugh[C]", ["hr", "ci_low", "ci_high", "p_value"]].isna().all()
    assert abs(rows.loc["child_pugh[C]", "coef"]) > np.log(1e3)
    assert "hazard ratio not estimable" in rows.loc["child_pugh[C]", "note"]
    assert np.isfinite(rows.loc["child_pugh[B]", "hr"])


def separated_frame() -> pd.DataFrame:
    """Patients with marker = 1 all fail before anyone with marker = 0: complete separation."""
    rng = np.random.default_rng(5)
    n = 60
    marker = (np.arange(n) < 15).astype(float)
    time = np.where(marker == 1, rng.uniform(1, 2, n), rng.uniform(3, 30, n))
    return pd.DataFrame(
        {
            "time": time,
            "event": np.where(marker == 1, 1, rng.integers(0, 2, n)),
            "marker": marker,
            "age": rng.normal(60, 8, n),
        },
        index=pd.Index([f"S{i}" for i in range(n)], name="patient_id"),
    )


def test_separation_is_reported_in_words_and_a_ridge_penalty_keeps_it_finite():
    frame = separated_frame()
    fit = cox.fit_cox_checked(frame, "time", "event", ["marker", "age"], context="sep")
    table = cox.cox_table(fit).set_index("covariate")
    assert np.isnan(table.loc["marker", "hr"])
    assert "hazard ratio not estimable" in table.loc["marker", "note"]
    assert "http" not in table.loc["marker", "note"] + fit.model_note
    assert np.isfinite(table.loc["age", "hr"]) and table.loc["age", "note"] == ""
    penalised = cox.fit_cox_checked(
        frame, "time", "event", ["marker", "age"], penalizer=0.1, context="sep"
    )
    table = cox.cox_table(penalised).set_index("covariate")
    assert 1 < table.loc["marker", "hr"] < 1e3 and table.loc["marker", "note"] == ""
    assert "ridge penalty 0.1 (survival.cox_penalizer)" in penalised.model_note


def test_lifelines_convergence_error_becomes_words_without_a_url():
    # Two copies of one column: lifelines' Newton-Raphson meets a singular Hessian.
    frame = separated_frame().assign(copy=lambda f: f["marker"])
    with pytest.raises(ValueError) as caught:
        cox.fit_cox_checked(frame, "time", "event", ["marker", "copy"], context="pfs in train")
    message = str(caught.value)
    assert message.startswith("pfs in train: the Cox model did not converge")
    assert "survival.cox_penalizer" in message and "http" not in message
    text = "delta contains nan value(s). Convergence halted. Please see: https://x.org/a#b"
    assert cox.without_urls(text) == "delta contains nan value(s). Convergence halted."


def test_cohort_without_events_gives_a_note_naming_the_outcome():
    predictions, sheet = one_patient_level_cohort()
    test_ids = predictions.loc[predictions["split"] == "internal_test", "patient_id"]
    sheet.loc[test_ids, "pfs_event"] = 0
    settings = SurvivalSettings(cox_covariates=("child_pugh",))
    tables = stratify_survival(predictions, sheet, ["pfs"], settings)
    rows = tables["cox"].query("cohort == 'internal_test'")
    assert len(rows) == 2 and rows["hr"].isna().all()
    for note in rows["note"]:
        assert "pfs by clinical in internal_test: no event (pfs_event = 1) among 40" in note
    with pytest.raises(ValueError, match=r"no event \(pfs_event = 1\) among 40 patient"):
        survival.fit_cox(sheet.loc[test_ids].assign(x=range(40)), "pfs_time", "pfs_event", ["x"])


REAL = Path(__file__).resolve().parent.parent
REAL_SEED = 20251123


@pytest.fixture(scope="module")
def real_cox() -> dict[str, pd.DataFrame]:
    """Cox tables of the real HCC-TACE-Seg table (config's covariates and outcomes) per setting."""
    sheet, _ = import_sheet(
        read_table(REAL / "resources" / "hcc_tace_seg" / "hcc_tace_seg_clinical.csv"),
        load_column_map(REAL / "config" / "hcc_tace_seg_columns.yaml"),
        REAL_SEED,
        "hcc_tace_seg",
    )
    config = yaml.safe_load((REAL / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REAL / "config" / "hcc_tace_seg.yaml").read_text()))
    # A plain clinical score (log AFP), so that no model fit is needed: the Cox models are the
    # workflow's (risk group + the config's covariates), coded and merged on training.
    predictions = pd.DataFrame(
        {
            "patient_id": sheet.index,
            "endpoint": "response",
            "split": sheet["split"].to_numpy(),
            "centre": sheet["centre"].to_numpy(),
            "outcome": sheet["response"].to_numpy(),
            "model": "log_afp",
            "score": np.log10(sheet["afp"].fillna(sheet["afp"].median()) + 1).to_numpy(),
        }
    )
    settings = survival_settings(config["survival"])
    outcomes = settings.outcomes_for("response")
    unmerged = survival_settings(config["survival"] | {"min_level_count": 1})
    return {
        "default": stratify_survival(predictions, sheet, outcomes, settings)["cox"],
        "unmerged": stratify_survival(predictions, sheet, outcomes, unmerged)["cox"],
    }


def test_real_hcc_tace_seg_cox_has_no_extreme_hazard_ratio_without_a_note(real_cox):
    table = real_cox["default"]
    assert set(table["outcome"]) == {"ttp", "os"}
    extreme = ~table["hr"].between(1e-3, 1e3) & table["hr"].notna()
    assert not (extreme & (table["note"] == "")).any()
    assert table["note"].str.contains("http").sum() == 0
    # The Child-Pugh C patient (one in training) and the three BCLC D patients are merged, so
    # every multivariable model on training fits with finite CIs.
    train = table.query("cohort == 'train' and cox_model == 'multivariable'")
    assert set(train["covariate"]) == {"high_risk", "bclc[B]", "bclc[C/D]", "child_pugh[B/C]"}
    assert np.isfinite(train[["hr", "ci_low", "ci_high"]].to_numpy()).all()
    assert train["note"].str.contains("child_pugh C (1 training patient) -> B/C", regex=False).all()


def test_real_hcc_tace_seg_unmerged_levels_are_flagged_not_reported(real_cox):
    # The defect the merge fixes: unmerged, Child-Pugh C has an HR near 1e-7 (CI 0 to inf) and
    # the OS model fails to converge; both must be words, never a number or a bare URL.
    table = real_cox["unmerged"]
    ttp = table.query("outcome == 'ttp' and cohort == 'train' and cox_model == 'multivariable'")
    row = ttp.set_index("covariate").loc["child_pugh[C]"]
    assert np.isnan(row["hr"]) and "hazard ratio not estimable" in row["note"]
    os_model = table.query("outcome == 'os' and cohort == 'train' and cox_model == 'multivariable'")
    assert "did not converge" in os_model["note"].iloc[0]
    assert table["note"].str.contains("http").sum() == 0
