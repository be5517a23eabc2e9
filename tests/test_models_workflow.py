"""End to end: the models, evaluation and survival rules on the tiny config in a temporary dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config

from hccrad.core.plan import SURVIVAL_TABLES

pytestmark = pytest.mark.workflow

ENDPOINTS = ("response", "proliferative")
MODELS = ("clinical", "radiomics", "radiomics_lasso", "radiomics_ridge", "DLTR", "DLTR_MLP", "DLR")
COHORTS = {"train", "internal_test", "external", "external_B", "external_C"}


@pytest.fixture(scope="module")
def results(runs) -> Path:
    """results/<response cohort> of the shared tiny-config run (conftest.runs)."""
    return runs["first"] / tiny_config(7)["cohorts"]["response"]


def read(path: Path) -> pd.DataFrame:
    """A workflow TSV with empty cells as missing and the notes as strings."""
    table = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    return table.fillna({"note": ""}) if "note" in table else table


def expected_files(endpoint: str) -> list[str]:
    """Every table and figure the issue asks for, for one endpoint (relative to results/)."""
    files = [
        f"models/{endpoint}/{name}"
        for name in (
            "models.joblib",
            "predictions.tsv",
            "thresholds.tsv",
            "clinical_odds_ratios.tsv",
            "selected_features.tsv",
            "models.json",
            "model_card.md",
        )
    ]
    files += [
        f"evaluation/{endpoint}/{name}.tsv"
        for name in (
            "auc",
            "threshold_metrics",
            "delong",
            "calibration",
            "calibration_curves",
            "decision_curves",
            "roc_curves",
        )
    ]
    files += [
        f"evaluation/{endpoint}/{name}.{ext}"
        for name in ("roc", "calibration", "decision_curves")
        for ext in ("png", "pdf")
    ]
    files += [f"survival/{endpoint}/{name}.tsv" for name in SURVIVAL_TABLES]
    for outcome in ("pfs", "os"):
        files += [f"survival/{endpoint}/forest_{outcome}.{ext}" for ext in ("png", "pdf")]
        files += [
            f"survival/{endpoint}/km/{outcome}/{model}.{ext}"
            for model in ("clinical", "radiomics", "DLTR", "DLTR_MLP", "DLR")
            for ext in ("png", "pdf")
        ]
    return files


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_table_and_figure_is_written(results, endpoint):
    missing = [f for f in expected_files(endpoint) if not (results / f).is_file()]
    assert not missing
    empty = [f for f in expected_files(endpoint) if (results / f).stat().st_size == 0]
    assert not empty


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_predictions_score_every_patient_with_training_thresholds(results, endpoint):
    sheet = pd.read_csv(results / "sheet.tsv", sep="\t", index_col="patient_id")
    predictions = read(results / f"models/{endpoint}/predictions.tsv")
    assert set(predictions["model"]) == set(MODELS)
    assert len(predictions) == len(sheet) * len(MODELS)
    assert predictions["score"].between(0, 1).all()
    # DLTR's training scores are the deep model's out-of-fold scores, as the deep rule wrote them.
    deep = read(results / f"deep/{endpoint}/scores.tsv").set_index("patient_id")
    dltr = predictions[(predictions["model"] == "DLTR")].set_index("patient_id")
    np.testing.assert_allclose(dltr["score"], deep.loc[dltr.index, "dltr_score"], atol=1e-6)
    thresholds = read(results / f"models/{endpoint}/thresholds.tsv").set_index("model")
    metrics = read(results / f"evaluation/{endpoint}/threshold_metrics.tsv")
    for model, threshold in thresholds["youden_threshold"].items():
        assert np.allclose(metrics.loc[metrics["model"] == model, "threshold"], threshold)
    described = json.loads((results / f"models/{endpoint}/models.json").read_text())
    assert set(described) == set(MODELS)
    odds_ratios = read(results / f"models/{endpoint}/clinical_odds_ratios.tsv")
    assert set(odds_ratios["step"]) == {"univariable", "multivariable"}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_auc_table_has_every_model_and_cohort_with_cis(results, endpoint, capsys):
    auc = read(results / f"evaluation/{endpoint}/auc.tsv")
    assert set(auc["cohort"]) == COHORTS
    assert len(auc) == len(MODELS) * len(COHORTS)
    computed = auc[auc["note"] == ""]
    assert (computed["ci_low"] <= computed["auc"]).all()
    assert (computed["auc"] <= computed["ci_high"]).all()
    # Every cohort without a value says why (e.g. one class among 8 external patients).
    assert auc.loc[auc["auc"].isna(), "note"].str.len().gt(0).all()
    assert (computed["cohort"] == "train").sum() == len(MODELS)
    external = auc[auc["cohort"] == "external"].set_index("model")
    with capsys.disabled():
        print(
            f"\ntiny workflow, {endpoint}, external AUC (95% CI):",
            {
                m: f"{r.auc:.2f} ({r.ci_low:.2f}-{r.ci_high:.2f})" if r.note == "" else r.note
                for m, r in external.iterrows()
            },
        )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_evaluation_and_survival_tables_make_sense(results, endpoint):
    calibration = read(results / f"evaluation/{endpoint}/calibration.tsv")
    assert calibration["brier"].dropna().between(0, 1).all()
    decision = read(results / f"evaluation/{endpoint}/decision_curves.tsv")
    assert {"treat_all", "treat_none"} <= set(decision["model"])
    delong = read(results / f"evaluation/{endpoint}/delong.tsv")
    assert delong["p_value"].dropna().between(0, 1).all()
    cutoffs = read(results / f"survival/{endpoint}/cutoffs.tsv")
    predictions = read(results / f"models/{endpoint}/predictions.tsv")
    train = predictions[predictions["split"] == "train"].groupby("model")["score"].median()
    for row in cutoffs.itertuples():
        assert row.cutoff == pytest.approx(train[row.model], rel=1e-5)
    logrank = read(results / f"survival/{endpoint}/logrank.tsv")
    assert set(logrank["cohort"]) == COHORTS
    assert set(logrank["outcome"]) == {"pfs", "os"}
    assert logrank["p_value"].dropna().between(0, 1).all()
    assert logrank.loc[logrank["p_value"].isna(), "note"].str.len().gt(0).all()
    cox = read(results / f"survival/{endpoint}/cox.tsv")
    assert cox.loc[cox["hr"].isna(), "note"].str.len().gt(0).all()
    assert (cox["hr"].dropna() > 0).all()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_model_card_reports_data_metrics_and_tripod_items(results, endpoint):
    card = (results / f"models/{endpoint}/model_card.md").read_text()
    assert card.startswith(f"# Model card: `{endpoint}`")
    for heading in (
        "## Data",
        "## Selected predictors",
        "## Models and hyperparameters",
        "## Discrimination: AUC (95% DeLong CI)",
        "## Calibration",
        "## Survival stratification",
        "## TRIPOD+AI items covered",
    ):
        assert heading in card, heading
