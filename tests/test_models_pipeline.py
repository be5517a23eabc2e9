"""The models -> evaluation -> survival chain on the simulated cohort, at the library level.

Shows the issue's "must show" items: the planted ranking on external AUC, a significant KM split
where planted, chance-level AUCs and a non-significant log-rank with permuted labels, no
information from test rows in cutoffs, directions, imputation or thresholds, and clear messages
for bad survival input. The numbers are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from test_models import synthetic_features

from hccrad.cohorts.simulate import simulate_cohort
from hccrad.core.plan import EVALUATION_TABLES
from hccrad.figures.models import calibration_figure, decision_curve_figure, roc_figure
from hccrad.figures.survival import forest_figure, km_figure
from hccrad.models.fit import (
    describe_all,
    fit_all,
    predict_all,
    selected_features_table,
    thresholds_table,
)
from hccrad.models.settings import ModelSettings, model_settings
from hccrad.reporting.evaluation import (
    EvaluationSettings,
    evaluate_predictions,
    evaluation_cohorts,
    evaluation_settings,
)
from hccrad.reporting.model_card import model_card
from hccrad.reporting.survival import SurvivalSettings, stratify_survival, survival_settings

ROOT = Path(__file__).resolve().parent.parent
SEED = 20251123
ENDPOINT = "response"
PLANTED_MODELS = ["clinical", "DLTR", "DLTR_MLP"]


def default_config() -> dict[str, Any]:
    """The shipped config."""
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.fixture(scope="module")
def cohort() -> dict[str, Any]:
    """The default simulated response cohort, synthetic feature tables that track its traits."""
    simulated = simulate_cohort(default_config()["simulate"]["response"], SEED)
    return {
        "sheet": simulated["sheet"],
        "features": synthetic_features(simulated["latent"], SEED),
    }


@pytest.fixture(scope="module")
def chain(cohort) -> dict[str, Any]:
    """Models fitted on training, their predictions, evaluation and survival tables."""
    fitted = fit_all(cohort["sheet"], cohort["features"], ENDPOINT, SEED, None)
    predictions = predict_all(fitted, cohort["sheet"], cohort["features"])
    thresholds = thresholds_table(fitted).set_index("model")["youden_threshold"].to_dict()
    tables = evaluate_predictions(predictions, thresholds, seed=SEED)
    assert tuple(tables) == EVALUATION_TABLES  # the workflow's output list
    subset = predictions[predictions["model"].isin(PLANTED_MODELS)]
    strata = stratify_survival(subset, cohort["sheet"], ["pfs", "os"])
    return {
        "models": fitted,
        "predictions": predictions,
        "thresholds": thresholds,
        "evaluation": tables,
        "survival": strata,
    }


def auc_of(tables: dict[str, pd.DataFrame], cohort: str) -> dict[str, float]:
    """AUC per model on one cohort."""
    rows = tables["auc"][tables["auc"]["cohort"] == cohort]
    return dict(zip(rows["model"], rows["auc"], strict=True))


def logrank_p(strata: dict[str, pd.DataFrame], outcome: str, model: str, cohort: str) -> float:
    """Log-rank P of one model's risk groups for one outcome and cohort."""
    table = strata["logrank"].set_index(["outcome", "model", "cohort"])
    return float(table.loc[(outcome, model, cohort), "p_value"])


# --------------------------------------------------------------------------- what is planted


def test_planted_ranking_on_external_auc(chain, capsys):
    external = auc_of(chain["evaluation"], "external")
    with capsys.disabled():
        print("\nexternal AUC (planted signal):", {k: round(v, 3) for k, v in external.items()})
    assert external["DLTR_MLP"] > external["clinical"]
    assert external["DLTR"] > external["clinical"]
    # Not DLTR_MLP > DLTR: in this draw the clinical covariates that the fusion also uses do
    # not transfer (clinical 0.52); test_models.py checks the fusion over draws.


def test_km_split_is_significant_where_planted(chain, capsys):
    """PFS depends on response in the simulation, so a response score splits it."""
    p_values = {
        model: logrank_p(chain["survival"], "pfs", model, "external")
        for model in ("DLTR", "DLTR_MLP")
    }
    with capsys.disabled():
        print("\nexternal PFS log-rank P (planted):", {k: f"{v:.3g}" for k, v in p_values.items()})
    assert p_values["DLTR_MLP"] < 0.05
    high_risk = chain["survival"]["cox"].query(
        "outcome == 'pfs' and model == 'DLTR_MLP' and cohort == 'external' "
        "and cox_model == 'univariable'"
    )
    assert high_risk["hr"].iloc[0] > 1  # the high-risk group progresses sooner


def test_permuted_labels_give_chance_auc_and_no_survival_split(cohort, capsys):
    """Every label of the sheet permuted: no model beats chance, no risk group splits survival."""
    rng = np.random.default_rng(11)
    sheet = cohort["sheet"].copy()
    sheet[ENDPOINT] = rng.permutation(sheet[ENDPOINT].to_numpy())
    # Survival permuted as (time, event) pairs so each pair stays a valid observation.
    for outcome in ("pfs", "os"):
        order = rng.permutation(len(sheet))
        for column in (f"{outcome}_time", f"{outcome}_event"):
            sheet[column] = sheet[column].to_numpy()[order]
    # Without the precomputed DLTR score (trained on the true labels) every model learns here.
    features = {
        "radiomics": cohort["features"]["radiomics"],
        "deep": cohort["features"]["deep"].drop(columns="dltr_score"),
    }
    fitted = fit_all(sheet, features, ENDPOINT, SEED, None)
    predictions = predict_all(fitted, sheet, features)
    thresholds = thresholds_table(fitted).set_index("model")["youden_threshold"]
    tables = evaluate_predictions(predictions, thresholds.to_dict())
    external = auc_of(tables, "external")
    subset = predictions[predictions["model"].isin(PLANTED_MODELS)]
    strata = stratify_survival(subset, sheet, ["pfs", "os"])
    logrank = strata["logrank"]
    tested = logrank[logrank["cohort"] != "train"]
    with capsys.disabled():
        print("\npermuted labels, external AUC:", {k: round(v, 3) for k, v in external.items()})
        print(
            "permuted labels, external log-rank P:",
            {
                f"{r.outcome}/{r.model}": round(r.p_value, 3)
                for r in logrank[logrank["cohort"] == "external"].itertuples()
            },
        )
    assert all(abs(auc - 0.5) < 0.2 for auc in external.values()), external
    assert abs(np.mean(list(external.values())) - 0.5) < 0.1, external
    assert (logrank.query("cohort == 'external'")["p_value"] > 0.05).all()
    # Across every test cohort, significant splits are no more frequent than chance allows.
    assert (tested["p_value"] < 0.05).mean() <= 0.15


# --------------------------------------------------------------------------- leakage


def corrupt_test_rows(sheet: pd.DataFrame, predictions: pd.DataFrame) -> tuple:
    """Sheet and predictions with every non-training row's outcome, survival and score changed."""
    rng = np.random.default_rng(5)
    sheet = sheet.copy()
    other = (sheet["split"] != "train").to_numpy()
    n = int(other.sum())
    sheet.loc[other, "pfs_time"] = rng.uniform(0.5, 3.0, n)
    sheet.loc[other, "pfs_event"] = 1
    sheet.loc[other, "os_time"] = rng.uniform(50, 60, n)
    sheet.loc[other, "os_event"] = 0
    sheet.loc[other, "bclc"] = "C"
    sheet.loc[other, "child_pugh"] = np.nan
    predictions = predictions.copy()
    test_rows = (predictions["split"] != "train").to_numpy()
    predictions.loc[test_rows, "score"] = rng.uniform(0, 1, int(test_rows.sum()))
    predictions.loc[test_rows, "outcome"] = 1 - predictions.loc[test_rows, "outcome"]
    return sheet, predictions


@pytest.mark.parametrize("cutoff", ["median", "maxstat"])
def test_survival_cutoffs_directions_and_training_results_ignore_test_rows(chain, cohort, cutoff):
    settings = SurvivalSettings(cutoff=cutoff)
    predictions = chain["predictions"][chain["predictions"]["model"].isin(["DLTR_MLP", "DLR"])]
    before = stratify_survival(predictions, cohort["sheet"], ["pfs", "os"], settings)
    sheet, corrupted = corrupt_test_rows(cohort["sheet"], predictions)
    after = stratify_survival(corrupted, sheet, ["pfs", "os"], settings)
    pd.testing.assert_frame_equal(before["cutoffs"], after["cutoffs"])
    for name in ("logrank", "cox", "concordance", "km_curves"):
        train_before = before[name][before[name]["cohort"] == "train"].reset_index(drop=True)
        train_after = after[name][after[name]["cohort"] == "train"].reset_index(drop=True)
        pd.testing.assert_frame_equal(train_before, train_after, obj=name)
    groups = before["risk_groups"]["split"] == "train"
    pd.testing.assert_series_equal(
        before["risk_groups"].loc[groups, "risk_group"],
        after["risk_groups"].loc[groups, "risk_group"],
    )
    assert not before["logrank"].equals(after["logrank"])  # the test rows did change


def test_evaluation_uses_training_thresholds_and_isolates_cohorts(chain, cohort):
    metrics = chain["evaluation"]["threshold_metrics"]
    for model, threshold in chain["thresholds"].items():
        assert (metrics.loc[metrics["model"] == model, "threshold"] == threshold).all()
    _, corrupted = corrupt_test_rows(cohort["sheet"], chain["predictions"])
    after = evaluate_predictions(corrupted, chain["thresholds"], seed=SEED)
    for name in ("auc", "threshold_metrics", "calibration"):
        train_before = chain["evaluation"][name].query("cohort == 'train'").reset_index(drop=True)
        train_after = after[name].query("cohort == 'train'").reset_index(drop=True)
        pd.testing.assert_frame_equal(train_before, train_after, obj=name)


def test_changing_test_rows_leaves_models_thresholds_and_predictions_of_training_unchanged(
    chain, cohort
):
    sheet = cohort["sheet"].copy()
    other = (sheet["split"] != "train").to_numpy()
    sheet.loc[other, ENDPOINT] = 1 - sheet.loc[other, ENDPOINT]
    sheet.loc[other, "afp"] = np.nan
    refitted = fit_all(sheet, cohort["features"], ENDPOINT, SEED, None)
    pd.testing.assert_frame_equal(thresholds_table(refitted), thresholds_table(chain["models"]))
    before = chain["predictions"].drop(columns="outcome")
    after = predict_all(refitted, sheet, cohort["features"]).drop(columns="outcome")
    train = (before["split"] == "train").to_numpy()
    pd.testing.assert_frame_equal(before[train], after[train])


# --------------------------------------------------------------------------- tables


def test_evaluation_cohorts_pool_and_split_external_centres(cohort):
    cohorts = evaluation_cohorts(cohort["sheet"])
    assert list(cohorts) == ["train", "internal_test", "external", "external_B", "external_C"]
    assert len(cohorts["external"]) == len(cohorts["external_B"]) + len(cohorts["external_C"])
    one_centre = cohort["sheet"][cohort["sheet"]["centre"] != "C"]
    assert list(evaluation_cohorts(one_centre)) == ["train", "internal_test", "external"]


def test_evaluation_tables_cover_every_model_and_cohort(chain):
    tables = chain["evaluation"]
    auc = tables["auc"]
    assert len(auc) == 7 * 5 and (auc["note"] == "").all()
    assert ((auc["ci_low"] <= auc["auc"]) & (auc["auc"] <= auc["ci_high"])).all()
    assert set(tables["delong"]["cohort"]) == set(auc["cohort"])
    assert len(tables["delong"]) == 5 * 21  # every pair of 7 models per cohort
    assert {"treat_all", "treat_none"} <= set(tables["decision_curves"]["model"])
    calibration = tables["calibration"]
    assert calibration["brier"].between(0, 1).all()
    assert calibration["hosmer_lemeshow_p"].between(0, 1).all()
    metrics = tables["threshold_metrics"]
    assert set(metrics["metric"]) == {"accuracy", "sensitivity", "specificity", "ppv", "npv"}


def test_bootstrap_option_adds_seeded_cis(chain):
    settings = EvaluationSettings(bootstrap=True, bootstrap_resamples=300)
    one = chain["predictions"][chain["predictions"]["model"] == "DLTR_MLP"]
    first = evaluate_predictions(one, chain["thresholds"], settings, seed=SEED)["auc"]
    again = evaluate_predictions(one, chain["thresholds"], settings, seed=SEED)["auc"]
    pd.testing.assert_frame_equal(first, again)
    assert (first["bootstrap_ci_low"] < first["auc"]).all()
    assert (first["auc"] < first["bootstrap_ci_high"]).all()


def test_single_class_cohort_is_a_note_naming_patients(chain):
    predictions = chain["predictions"].copy()
    external_b = (predictions["split"] == "external_B").to_numpy()
    predictions.loc[external_b, "outcome"] = 1.0
    tables = evaluate_predictions(predictions, chain["thresholds"])
    auc = tables["auc"].set_index(["model", "cohort"])
    note = auc.loc[("DLTR_MLP", "external_B"), "note"]
    assert "single class" in note and "B-0001" in note
    assert np.isnan(auc.loc[("DLTR_MLP", "external_B"), "auc"])
    assert auc.loc[("DLTR_MLP", "external_C"), "note"] == ""  # other cohorts unaffected


def test_constant_scores_get_a_calibration_note_not_a_crash(chain):
    """A model predicting one probability for everyone (e.g. the prevalence) has no slope."""
    predictions = chain["predictions"].copy()
    dltr_mlp = (predictions["model"] == "DLTR_MLP").to_numpy()
    predictions.loc[dltr_mlp, "score"] = 0.4
    tables = evaluate_predictions(predictions, chain["thresholds"])
    calibration = tables["calibration"].set_index(["model", "cohort"])
    row = calibration.loc[("DLTR_MLP", "external")]
    assert "every score is the same" in row["note"]
    assert np.isnan(row["slope"]) and np.isfinite(row["intercept"])
    assert np.isfinite(calibration.loc[("DLTR", "external"), "slope"])


def test_survival_tables_are_consistent(chain):
    strata = chain["survival"]
    cutoffs = strata["cutoffs"].set_index(["outcome", "model"])
    predictions = chain["predictions"]
    train_scores = predictions[(predictions["split"] == "train")].groupby("model")["score"]
    for model in PLANTED_MODELS:
        assert cutoffs.loc[("pfs", model), "cutoff"] == train_scores.median()[model]
    # Numbers at risk at time 0 are the group sizes of the log-rank table.
    at_zero = strata["numbers_at_risk"].query("time == 0")
    logrank = strata["logrank"].set_index(["outcome", "model", "cohort"])
    for row in at_zero.itertuples():
        assert row.at_risk == logrank.loc[(row.outcome, row.model, row.cohort), f"n_{row.group}"]
    assert strata["concordance"]["c_index"].between(0, 1).all()
    assert (strata["td_auc"].dropna(subset=["auc"])["auc"].between(0, 1)).all()
    multivariable = strata["cox"].query("cox_model == 'multivariable' and note == ''")
    assert {"high_risk", "bclc[B]", "bclc[C]", "child_pugh[B]"} <= set(multivariable["covariate"])


# --------------------------------------------------------------------------- bad input


def test_bad_survival_input_names_column_and_patients(chain, cohort):
    predictions = chain["predictions"][chain["predictions"]["model"] == "clinical"]
    sheet = cohort["sheet"].copy()
    sheet.loc["B-0003", "pfs_time"] = 0.0
    sheet.loc["C-0002", "pfs_time"] = np.nan
    with pytest.raises(ValueError, match=r"pfs_time must be a number > 0.*B-0003.*C-0002"):
        stratify_survival(predictions, sheet, ["pfs"])
    sheet = cohort["sheet"].copy()
    sheet.loc["A-0001", "os_event"] = 2
    with pytest.raises(ValueError, match=r"os_event must be 0 \(censored\) or 1.*A-0001"):
        stratify_survival(predictions, sheet, ["os"])
    with pytest.raises(ValueError, match=r"no column\(s\) \['ttp_time', 'ttp_event'\]"):
        settings = SurvivalSettings(outcomes={"ttp": {"time": "ttp_time", "event": "ttp_event"}})
        stratify_survival(predictions, cohort["sheet"], ["ttp"], settings)


def test_too_few_events_for_cox_is_a_note(chain, cohort):
    predictions = chain["predictions"][chain["predictions"]["model"] == "clinical"]
    settings = SurvivalSettings(min_events_per_variable=30)
    strata = stratify_survival(predictions, cohort["sheet"], ["os"], settings)
    notes = strata["cox"].query("cohort == 'internal_test' and cox_model == 'multivariable'")
    assert notes["note"].str.contains(r"os_event .* events per variable").all()


def test_settings_reject_unknown_keys_and_undefined_outcomes():
    with pytest.raises(ValueError, match="unknown key"):
        evaluation_settings({"bootstraps": True})
    with pytest.raises(ValueError, match="decision_thresholds"):
        evaluation_settings({"decision_thresholds": [0.5, 0.2, 0.01]})
    with pytest.raises(ValueError, match="unknown key"):
        survival_settings({"cut": "median"})
    with pytest.raises(ValueError, match=r"stratify.proliferative names outcome\(s\) \['ttp'\]"):
        survival_settings({"stratify": {"proliferative": ["ttp"]}})


def test_shipped_config_matches_library_defaults():
    config = default_config()
    assert model_settings(config["models"]) == ModelSettings()
    assert evaluation_settings(config["evaluation"]) == EvaluationSettings()
    shipped = survival_settings(config["survival"])
    default = SurvivalSettings()
    for name in SurvivalSettings.__dataclass_fields__:
        if name != "stratify":  # the config spells the default (every outcome) out
            assert getattr(shipped, name) == getattr(default, name), name
    for endpoint in config["endpoints"]:
        assert shipped.outcomes_for(endpoint) == default.outcomes_for(endpoint)


# --------------------------------------------------------------------------- figures and card


def test_figures_and_model_card_render_from_the_tables(chain, cohort, tmp_path):
    tables, strata = chain["evaluation"], chain["survival"]
    figures = [
        roc_figure(tables["roc_curves"], tables["auc"]),
        calibration_figure(tables["calibration_curves"], tables["calibration"]),
        decision_curve_figure(tables["decision_curves"]),
        forest_figure(strata["cox"].query("outcome == 'pfs'"), models=PLANTED_MODELS),
    ]
    pick = "outcome == 'pfs' and model == 'DLTR_MLP'"
    groups = strata["risk_groups"].query(pick).set_index("patient_id")
    members = pd.concat(
        groups.loc[index].assign(cohort=name) for name, index in evaluation_cohorts(groups).items()
    )
    figures.append(
        km_figure(
            strata["km_curves"].query(pick),
            strata["numbers_at_risk"].query(pick),
            strata["logrank"].query(pick),
            members,
        )
    )
    assert all(len(figure.axes) >= 5 for figure in figures)
    card = model_card(
        endpoint=ENDPOINT,
        cohort="sim_tace",
        sheet=cohort["sheet"],
        exclusions=pd.DataFrame(index=pd.Index([], name="patient_id")),
        described=describe_all(chain["models"]),
        selected_features=selected_features_table(chain["models"]),
        auc=tables["auc"],
        calibration=tables["calibration"],
        threshold_metrics=tables["threshold_metrics"],
        delong=tables["delong"],
        logrank=strata["logrank"],
        cox=strata["cox"],
        settings={"models": {}},
        seed=SEED,
        survival_models=PLANTED_MODELS,
    )
    for heading in ("## Data", "## Selected predictors", "AUC (95% DeLong CI)", "TRIPOD+AI"):
        assert heading in card
    dltr_mlp_row = next(line for line in card.splitlines() if line.startswith("| DLTR_MLP |"))
    external = tables["auc"].query("model == 'DLTR_MLP' and cohort == 'external'").iloc[0]
    assert f"{external['auc']:.2f} ({external['ci_low']:.2f}-{external['ci_high']:.2f})" in (
        dltr_mlp_row
    )
