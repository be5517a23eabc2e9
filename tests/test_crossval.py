"""Repeated cross-validation: folds, no leakage from test folds, the permuted control, tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_classif
from sklearn.impute import SimpleImputer
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from sklearn.pipeline import Pipeline

from hccrad.cohorts.column_map import UNITS, threshold_column
from hccrad.core.seeding import rng_for
from hccrad.figures.flow import cohort_flow_figure
from hccrad.models.crossval import (
    OBSERVED,
    PERMUTED,
    UNLABELLED,
    CrossvalSettings,
    Prefilter,
    crossval_estimators,
    crossval_inputs,
    crossval_predictions,
    crossval_settings,
    fold_predictions,
    fold_table,
    labellings,
    repeat_folds,
)
from hccrad.models.inputs import RADIOMICS
from hccrad.models.radiomics import LassoSignature
from hccrad.models.settings import ModelSettings, higher_score_riskier
from hccrad.reporting.crossval import (
    auc_repeats,
    auc_summary,
    crossval_tables,
    figure_tables,
    flow_table,
    reader_tables,
    survival_tables,
)
from hccrad.stats.agreement import cohen_kappa_table, fleiss_kappa_row

COVARIATES = ("age", "afp")


def noise_cohort(n: int, p: int, seed: int, signal: float = 0.0) -> tuple[pd.DataFrame, pd.Series]:
    """Random features and clinical covariates; the outcome follows f0000 by ``signal``."""
    rng = rng_for(seed, "test", "crossval")
    ids = pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id")
    features = pd.DataFrame(
        rng.normal(size=(n, p)), index=ids, columns=[f"f{j:04d}" for j in range(p)]
    )
    logit = signal * features["f0000"].to_numpy()
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), index=ids)
    clinical = pd.DataFrame({"age": rng.normal(65, 8, n), "afp": rng.lognormal(3, 1, n)}, index=ids)
    return clinical.join(features), y.rename("response")


def lasso_only(columns: list[str], k: int) -> dict:
    """The radiomics_lasso model behind the in-fold pre-filter (the cheapest radiomics model)."""
    settings = CrossvalSettings(prefilter_k=k)
    models = ModelSettings(clinical_covariates=COVARIATES, n_cs=8, cv_folds=3)
    built = crossval_estimators({RADIOMICS: columns}, models, settings, 3, "response")
    return {"radiomics_lasso": built["radiomics_lasso"]}


def mean_auc(oof: pd.DataFrame, labels: str = OBSERVED) -> float:
    """Mean over repeats of the out-of-fold AUC."""
    part = oof[oof["labels"] == labels]
    return float(
        part.groupby("repeat")[["outcome", "score"]]
        .apply(lambda d: roc_auc_score(d["outcome"], d["score"]))
        .mean()
    )


def test_folds_are_stratified_seeded_and_cover_everyone_once():
    y = np.array([0] * 30 + [1] * 20)
    folds = repeat_folds(y, 5, 7, "response", 1)
    assert [len(test) for _, test in folds] == [10] * 5
    assert all(y[test].sum() == 4 for _, test in folds)
    assert np.array_equal(np.sort(np.concatenate([t for _, t in folds])), np.arange(50))
    again = repeat_folds(y, 5, 7, "response", 1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    other = repeat_folds(y, 5, 7, "response", 2)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))
    outcome = pd.Series(y, index=[f"p{i}" for i in range(50)])
    table = fold_table(outcome, CrossvalSettings(repeats=3), 7, "response")
    assert table.groupby("repeat")["patient_id"].nunique().tolist() == [50, 50, 50]


def test_test_fold_outcomes_never_reach_the_fit():
    inputs, y = noise_cohort(60, 40, 1, signal=1.5)
    estimators = crossval_estimators(
        {RADIOMICS: [c for c in inputs if c.startswith("f")]},
        ModelSettings(clinical_covariates=COVARIATES, n_cs=6, cv_folds=3),
        CrossvalSettings(prefilter_k=10),
        5,
        "response",
    )
    train, test = repeat_folds(y.to_numpy(), 4, 5, "response", 1)[0]
    flipped = y.to_numpy().copy()
    flipped[test] = 1 - flipped[test]
    a = fold_predictions(inputs, y.to_numpy(), train, test, estimators)
    b = fold_predictions(inputs, flipped, train, test, estimators)
    columns = ["model", "patient_id", "score", "youden_threshold", "risk_cutoff"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    assert (a["outcome"] != b["outcome"]).all()


def test_noise_selected_inside_folds_stays_at_chance_but_leaks_when_selected_on_all():
    inputs, y = noise_cohort(80, 1000, 2)
    noise = [c for c in inputs if c.startswith("f")]
    settings = CrossvalSettings(repeats=2, folds=4, permuted=False, prefilter_k=10)
    inside = crossval_predictions(inputs, y, lasso_only(noise, 10), settings, 11, "response")
    # The same model on the 10 noise features that look best on every patient: the leak.
    best = SelectKBest(f_classif, k=10).fit(inputs[noise], y).get_feature_names_out()
    leaked = crossval_predictions(inputs, y, lasso_only(list(best), 10), settings, 11, "response")
    assert abs(mean_auc(inside) - 0.5) < 0.12
    assert mean_auc(leaked) > 0.75


def test_permuted_control_sits_at_chance_while_a_real_signal_is_found():
    inputs, y = noise_cohort(90, 60, 3, signal=3.0)
    features = [c for c in inputs if c.startswith("f")]
    settings = CrossvalSettings(repeats=3, folds=3, prefilter_k=10)
    oof = crossval_predictions(inputs, y, lasso_only(features, 10), settings, 4, "response")
    assert set(oof["labels"]) == {OBSERVED, PERMUTED}
    assert mean_auc(oof, OBSERVED) > 0.75
    assert abs(mean_auc(oof, PERMUTED) - 0.5) < 0.1
    # Every patient once per repeat and labelling.
    counts = oof.groupby(["labels", "repeat"])["patient_id"].nunique()
    assert (counts == 90).all()


def test_tables_from_out_of_fold_predictions():
    inputs, y = noise_cohort(60, 20, 5, signal=2.0)
    sheet = inputs.assign(
        ttp_time=np.linspace(1, 60, 60), ttp_event=np.tile([1, 1, 0], 20), response=y
    )
    models = ModelSettings(clinical_covariates=COVARIATES, n_cs=5, cv_folds=3)
    settings = CrossvalSettings(repeats=2, folds=3, prefilter_k=5)
    estimators = crossval_estimators(
        {RADIOMICS: list(inputs.columns[2:])}, models, settings, 1, "r"
    )
    assert set(estimators) == {
        "clinical",
        "radiomics",
        "radiomics_lasso",
        "radiomics_ridge",
        "clinical_radiomics",
    }
    oof = crossval_predictions(inputs, y, estimators, settings, 1, "response")
    tables = crossval_tables(
        oof, sheet, {"ttp": {"time": "ttp_time", "event": "ttp_event"}}, endpoint="response"
    )
    by_repeat = tables["auc_repeats"]
    # The summary is the mean of each repeat's AUC, which is sklearn's AUC of that repeat.
    one = oof[(oof["labels"] == OBSERVED) & (oof["model"] == "clinical") & (oof["repeat"] == 2)]
    row = by_repeat.query("labels == 'observed' and model == 'clinical' and repeat == 2")
    assert row["auc"].item() == pytest.approx(roc_auc_score(one["outcome"], one["score"]))
    summary = auc_summary(auc_repeats(oof)).set_index(["labels", "model"])
    expected = by_repeat.groupby(["labels", "model"])["auc"].mean()
    assert np.allclose(summary["auc_mean"], expected.loc[summary.index])
    assert len(tables["comparisons"]) == 2 * 10  # two labellings x 5 choose 2 pairs
    assert set(tables["logrank"]["repeat"]) == {1, 2}
    assert tables["cox"]["hr"].notna().all()
    assert set(tables["decision_curves"]["labels"]) == {OBSERVED, PERMUTED}


@pytest.mark.parametrize(
    ("endpoint", "high_scores_high_risk"), [("response", False), ("proliferative", True)]
)
def test_high_risk_group_is_the_unfavourable_side_of_the_endpoint(endpoint, high_scores_high_risk):
    """A response probability above the fold's median is the favourable (low-risk) group."""
    oof = pd.DataFrame(
        {
            "patient_id": ["a", "b", "c", "d"],
            "model": "m",
            "repeat": 1,
            "fold": 1,
            "labels": OBSERVED,
            "score": [0.9, 0.8, 0.2, 0.1],
            "outcome": [1, 1, 0, 0],
            "risk_cutoff": 0.5,
        }
    )
    sheet = pd.DataFrame(
        {"ttp_time": [30.0, 25.0, 3.0, 2.0], "ttp_event": [0, 1, 1, 1]}, index=oof["patient_id"]
    )
    groups = survival_tables(
        oof,
        sheet,
        {"ttp": {"time": "ttp_time", "event": "ttp_event"}},
        riskier=higher_score_riskier(endpoint),
    )["risk_groups"].set_index("patient_id")["risk_group"]
    high_score_group = "high" if high_scores_high_risk else "low"
    assert groups.loc[["a", "b"]].eq(high_score_group).all()
    assert not groups.loc[["c", "d"]].eq(high_score_group).any()


def test_flow_counts_each_patient_at_its_first_exclusion():
    steps = [
        ("sheet import", pd.DataFrame({"patient_id": ["a", "b"], "reason": ["no response"] * 2})),
        (
            "feature table",
            pd.DataFrame(
                {"patient_id": ["b", "c", "zz"], "reason": ["not in sheet", "empty", "other"]}
            ),
        ),
    ]
    flow = flow_table(["a", "b", "c", "d", "e"], steps).set_index("step")
    assert flow.loc["source table", "n_after"] == 5
    assert flow.loc["sheet import", "n_excluded"] == 2
    assert flow.loc["feature table", "n_excluded"] == 1
    assert flow.loc["feature table", "n_after"] == 2
    assert "1 id(s) not in the source table" in flow.loc["feature table", "reasons"]


def test_inputs_and_settings_are_checked():
    inputs, y = noise_cohort(10, 3, 6)
    sheet = inputs[list(COVARIATES)].assign(response=y.astype(float))
    sheet.iloc[0, -1] = np.nan
    table, outcome, lacking = crossval_inputs(
        sheet, inputs.drop(columns=list(COVARIATES)), "response"
    )
    assert lacking["patient_id"].tolist() == ["P000"] and len(outcome) == 9
    assert "f0000" in table
    with pytest.raises(ValueError, match="lacks 1 patient"):
        crossval_inputs(sheet, inputs.iloc[1:].drop(columns=list(COVARIATES)), "response")
    with pytest.raises(ValueError, match="unknown keys"):
        crossval_settings({"repeat": 3})
    with pytest.raises(ValueError, match="permuted_repeats >= 1"):
        crossval_settings({"permuted_repeats": 0})
    pairs = labellings(crossval_settings({"repeats": 2, "permuted_repeats": 3}), "response")
    assert pairs == [
        (OBSERVED, 1), (PERMUTED, 1), (OBSERVED, 2), (PERMUTED, 2), (PERMUTED, 3)
    ]  # fmt: skip
    assert labellings(crossval_settings({"repeats": 2, "permuted": False}), "response") == [
        (OBSERVED, 1),
        (OBSERVED, 2),
    ]
    # One count per endpoint; an endpoint not named gets `repeats`.
    per_endpoint = crossval_settings({"repeats": 2, "permuted_repeats": {"ttp_response": 4}})
    assert labellings(per_endpoint, "ttp_response").count((PERMUTED, 4)) == 1
    assert [p for p in labellings(per_endpoint, "response") if p[0] == PERMUTED] == [
        (PERMUTED, 1),
        (PERMUTED, 2),
    ]
    with pytest.raises(ValueError, match="permuted_repeats >= 1"):
        crossval_settings({"permuted_repeats": {"response": 0}})
    assert crossval_settings({"repeats": 3}).repeats == 3


def test_reader_kappa_matches_sklearn_and_fleiss_is_one_when_all_agree():
    rng = rng_for(1, "test", "readers")
    first = rng.integers(0, 2, 80)
    second = np.where(rng.random(80) < 0.8, first, 1 - first)
    reads = pd.DataFrame({"r1": first, "r2": second}).astype(float)
    reads.iloc[0, 1] = np.nan
    row = cohen_kappa_table(reads).iloc[0]
    assert row["n"] == 79
    assert row["kappa"] == pytest.approx(cohen_kappa_score(first[1:], second[1:]))
    assert row["ci_low"] < row["kappa"] < row["ci_high"]
    same = pd.DataFrame({"a": first, "b": first, "c": first})
    assert fleiss_kappa_row(same, seed=1, n_resamples=50)["kappa"] == pytest.approx(1.0)


def test_auc_per_reader_scores_each_read_on_its_own_patients():
    ids = [f"p{i}" for i in range(40)]
    outcome = np.tile([0, 1], 20)
    oof = pd.DataFrame(
        {
            "labels": OBSERVED,
            "repeat": 1,
            "model": "m",
            "patient_id": ids,
            "score": outcome + np.linspace(0, 0.5, 40),
            "outcome": outcome,
        }
    )
    sheet = pd.DataFrame(
        {"r1": outcome, "r2": 1 - outcome, "r3": np.where(np.arange(40) < 10, np.nan, outcome)},
        index=ids,
    )
    tables = reader_tables(oof, sheet, ["r1", "r2", "r3"], seed=3)
    auc = tables["reader_auc"].set_index("reader")
    assert auc.loc["r1", "auc_mean"] == pytest.approx(1.0)
    assert auc.loc["r2", "auc_mean"] == pytest.approx(0.0)
    assert auc.loc["r3", "n"] == 30
    assert len(tables["reader_agreement"]) == 4


def test_a_reader_column_missing_from_the_sheet_is_named():
    oof = pd.DataFrame({"labels": [OBSERVED], "patient_id": ["p"], "score": [0.5]})
    with pytest.raises(ValueError, match="response_reader9"):
        reader_tables(oof, pd.DataFrame({"r1": [1]}, index=["p"]), ["response_reader9"], seed=1)


def test_threshold_endpoint_labels_and_says_why_a_patient_has_none():
    weeks = pd.Series([20.0, 14.0, 10.0, 10.0, np.nan], index=list("abcde"))
    sheet = pd.DataFrame(
        {"ttp_time": weeks * UNITS["weeks"], "ttp_event": [1, 0, 1, 0, 1]}, index=weeks.index
    )
    rule = {"time": "ttp_time", "event": "ttp_event", "at": 14, "unit": "weeks"}
    values, reasons = threshold_column(sheet, "ttp_response", rule)
    # Progression at 20 weeks and censoring at exactly 14 are past the threshold: 1; progression
    # at 10 weeks: 0; censored at 10 weeks cannot be labelled; no time, no label.
    assert values.tolist()[:3] == [1.0, 1.0, 0.0] and values[["d", "e"]].isna().all()
    assert (reasons[["a", "b", "c"]] == "").all()
    assert reasons["d"].startswith("censored before the 14-week threshold of ttp_response")
    assert "no ttp_time" in reasons["e"]


def test_patients_without_the_endpoint_are_scored_but_never_fitted():
    inputs, y = noise_cohort(60, 5, 11, signal=1.0)
    labelled, extra = inputs.iloc[:50], inputs.iloc[50:]
    settings = CrossvalSettings(repeats=2, folds=3, prefilter_k=3, permuted=True)
    models = ModelSettings(clinical_covariates=COVARIATES, n_cs=5, cv_folds=3)
    built = crossval_estimators({RADIOMICS: list(inputs.columns[2:])}, models, settings, 1, "r")
    estimators = {name: built[name] for name in ("clinical", "radiomics_lasso")}
    plain = crossval_predictions(labelled, y.iloc[:50], estimators, settings, 1, "r")
    scored = crossval_predictions(labelled, y.iloc[:50], estimators, settings, 1, "r", extra)
    # The labelled patients' predictions do not change: the unlabelled never entered a fit.
    kept = scored[scored["labels"] != UNLABELLED].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, plain, check_dtype=False)
    unlabelled = scored[scored["labels"] == UNLABELLED]
    # Once per observed repeat and model, never in the permuted control, outcome missing.
    counts = unlabelled.groupby(["repeat", "model"])["patient_id"].nunique()
    assert (counts == 10).all() and len(counts) == 2 * len(estimators)
    assert unlabelled.groupby(["repeat", "model", "patient_id"]).size().eq(1).all()
    assert unlabelled["outcome"].isna().all()
    sheet = inputs.assign(ttp_time=np.linspace(1, 30, 60), ttp_event=np.tile([0, 1], 30))
    tables = crossval_tables(
        scored, sheet, {"ttp": {"time": "ttp_time", "event": "ttp_event"}}, endpoint="response"
    )
    # Discrimination on the labelled patients only; survival on all 60.
    assert (tables["auc_repeats"]["n_positive"] + tables["auc_repeats"]["n_negative"]).eq(50).all()
    assert tables["logrank"]["n"].eq(60).all()
    assert tables["risk_groups"].groupby(["model", "repeat"]).size().eq(60).all()


def test_figure_tables_and_the_flow_diagram_show_the_tables_numbers():
    inputs, y = noise_cohort(40, 3, 5, signal=1.0)
    settings = CrossvalSettings(repeats=2, folds=3, prefilter_k=2)
    models = ModelSettings(clinical_covariates=COVARIATES, n_cs=5, cv_folds=3)
    built = crossval_estimators({RADIOMICS: list(inputs.columns[2:])}, models, settings, 1, "r")
    estimators = {name: built[name] for name in ("clinical", "radiomics_lasso")}
    oof = crossval_predictions(inputs, y, estimators, settings, 1, "r")
    sheet = inputs.assign(ttp_time=np.linspace(1, 30, 40), ttp_event=np.tile([0, 1], 20))
    tables = crossval_tables(
        oof, sheet, {"ttp": {"time": "ttp_time", "event": "ttp_event"}}, endpoint="response"
    )
    drawn = figure_tables(tables)
    assert set(drawn["auc"]["cohort"]) == {"out-of-fold", "permuted-label control"}
    assert drawn["auc"]["n"].eq(40).all()
    row = drawn["auc"].query("cohort == 'out-of-fold' and model == 'clinical'")
    expected = tables["auc"].query("labels == 'observed' and model == 'clinical'")
    assert row["auc"].item() == expected["auc_mean"].item()
    assert {"predicted", "observed", "ci_low"} <= set(drawn["calibration_loess"].columns)
    flow = pd.DataFrame(
        {
            "step": ["source table", "feature_table", "endpoint x", "analysed", "survival"],
            "n_before": [10, 10, 8, 5, 5],
            "n_excluded": [0, 2, 3, 0, -3],
            "n_after": [10, 8, 5, 5, 8],
            "reasons": ["", "no row (2)", "censored (3)", "", "3 scored"],
        }
    )
    figure = cohort_flow_figure(flow)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert any("n = 10" in t for t in texts) and any("Analysed\nn = 5" in t for t in texts)
    assert any("(n = 3)" in t and "censored (3)" in t for t in texts)
    assert any("survival: n = 8" in t for t in texts)


def test_fits_shared_within_a_fold_score_as_fitting_every_model_on_its_own(monkeypatch):
    inputs, y = noise_cohort(48, 60, 6, signal=1.5)
    inputs.iloc[::7, 3] = np.nan  # the pre-filter imputes
    models = ModelSettings(clinical_covariates=COVARIATES, n_cs=5, cv_folds=3)
    estimators = crossval_estimators(
        {RADIOMICS: [c for c in inputs if c.startswith("f")]},
        models,
        CrossvalSettings(prefilter_k=15),
        5,
        "response",
    )
    assert set(estimators) == {
        "clinical", "radiomics", "radiomics_lasso", "radiomics_ridge", "clinical_radiomics"
    }  # fmt: skip
    train, test = repeat_folds(y.to_numpy(), 4, 5, "response", 1)[0]
    fits = []
    original = LassoSignature.fit
    monkeypatch.setattr(
        LassoSignature, "fit", lambda self, X, y: fits.append(1) or original(self, X, y)
    )
    shared = fold_predictions(inputs, y.to_numpy(), train, test, estimators)
    # One LASSO selection for the three radiomics models and the stack's refit; the stack's
    # own inner folds fit theirs.
    assert len(fits) == 1 + models.cv_folds
    fits.clear()
    for name, (estimator, used) in estimators.items():
        # Each model on its own, as scikit-learn fits it.
        fitted = clone(estimator).fit(inputs.iloc[train][used], y.iloc[train])
        scores = shared.loc[shared["model"] == name, "score"].to_numpy()
        assert np.array_equal(scores, fitted.predict_proba(inputs.iloc[test][used])[:, 1]), name
    assert len(fits) == 3 + 1 + models.cv_folds


def test_prefilter_selects_and_imputes_as_the_scikit_learn_pipeline_on_the_dataframe():
    inputs, y = noise_cohort(40, 30, 8, signal=1.0)
    features = inputs[[c for c in inputs if c.startswith("f")]].copy()
    features.iloc[::5, 2] = np.nan
    features["f0007"] = 1.0  # no variance
    features.iloc[:, 9] = np.nan  # empty column
    reference = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("variance", VarianceThreshold()),
            ("select", SelectKBest(f_classif, k=8)),
        ]
    ).set_output(transform="pandas")
    expected = reference.fit(features, y).transform(features.iloc[:10])
    prefilter = Prefilter(k=8).fit(features, y)
    pd.testing.assert_frame_equal(prefilter.transform(features.iloc[:10]), expected)
