"""The real single-centre cohort end to end: HCC-TACE-Seg's clinical table with RadTACE features.

config/hcc_tace_seg_features.yaml as shipped (5 x 5 repeated CV, permuted-label control), with
its feature table read from the project's shared real data (no licence: never copied in).
"""

from __future__ import annotations

import copy
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, load_default_config, run_workflow, workflow_command
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from snakemake.utils import update_config

from hccrad.cohorts.sheet import read_patients, read_sheet
from hccrad.models.clinical import ClinicalLogistic

RADTACE = Path(__file__).parents[2] / "shared" / "realdata" / "radtace"
COHORT = "hcc_tace_seg_features"
CROSSVAL = f"results/{COHORT}/crossval/response"
pytestmark = pytest.mark.skipif(
    not RADTACE.is_dir(), reason="needs ../shared/realdata (RadTACE features)"
)


def features_config() -> dict[str, Any]:
    """The shipped config over the default, the feature table read from the shared data."""
    config = copy.deepcopy(load_default_config())
    update_config(
        config, yaml.safe_load((ROOT / "config" / "hcc_tace_seg_features.yaml").read_text())
    )
    config["sheets"][COHORT]["features"]["table"] = str(RADTACE / "radtace_features_lesion.csv")
    return config


@pytest.fixture(scope="module")
def features_run(tmp_path_factory, snakemake_bin) -> tuple[Path, dict[str, Any], float]:
    """The cross-validation targets of the shipped config, run once, and their wall time."""
    workdir = tmp_path_factory.mktemp("hcc_tace_seg_features")
    config = features_config()
    start = time.perf_counter()
    targets = (f"{CROSSVAL}/auc.tsv", f"{CROSSVAL}/reader_auc.tsv")
    run_workflow(workdir, config, snakemake_bin, targets)
    return workdir, config, time.perf_counter() - start


def test_cohort_flow_starts_at_105_and_gives_every_exclusion_a_reason(features_run):
    workdir, _, _ = features_run
    flow = pd.read_csv(workdir / CROSSVAL / "cohort_flow.tsv", sep="\t").set_index("step")
    assert flow.loc["source table", "n_after"] == 105
    # Six patients have no mRECIST read; three more have no feature value (HCC_085, the
    # fourth without features, has no read either and is counted at the import).
    assert flow.loc["import_sheet", "n_excluded"] == 6
    assert flow.loc["feature_table", "n_excluded"] == 3
    assert flow.loc["analysed", "n_after"] == 96
    assert flow["n_excluded"].sum() == 105 - 96
    exclusions = read_patients(workdir / CROSSVAL / "exclusions.tsv")
    assert len(exclusions) == 9 and exclusions["reason"].str.len().gt(0).all()
    assert "no feature value" in exclusions.loc["HCC_082", "reason"]
    assert "no response" in exclusions.loc["HCC_024", "reason"]


def test_permuted_label_control_sits_near_chance_for_every_model(features_run):
    workdir, _, _ = features_run
    auc = pd.read_csv(workdir / CROSSVAL / "auc.tsv", sep="\t")
    permuted = auc[auc["labels"] == "permuted"].set_index("model")["auc_mean"]
    assert set(permuted.index) == {
        "clinical",
        "radiomics",
        "radiomics_lasso",
        "radiomics_ridge",
        "clinical_radiomics",
    }
    assert ((permuted - 0.5).abs() <= 0.07).all(), permuted.to_dict()
    assert (auc["n_repeats"] == 5).all()


def test_clinical_auc_matches_an_independent_refit_on_the_same_folds(features_run):
    workdir, config, _ = features_run
    sheet = read_sheet(workdir / "results" / COHORT / "sheet.tsv")
    folds = read_patients(workdir / CROSSVAL / "folds.tsv", index=False)
    covariates = config["models"]["clinical_covariates"]
    y = sheet["response"]
    expected = []
    for _, repeat in folds.groupby("repeat", sort=True):
        scores = pd.Series(np.nan, index=repeat["patient_id"])
        for _, fold in repeat.groupby("fold"):
            test = list(fold["patient_id"])
            train = [p for p in repeat["patient_id"] if p not in set(test)]
            model = ClinicalLogistic(covariates).fit(sheet.loc[train], y.loc[train].astype(int))
            scores.loc[test] = model.predict_proba(sheet.loc[test])[:, 1]
        expected.append(roc_auc_score(y.loc[scores.index].astype(int), scores))
    table = pd.read_csv(workdir / CROSSVAL / "auc_repeats.tsv", sep="\t")
    clinical = table.query("labels == 'observed' and model == 'clinical'").sort_values("repeat")
    assert np.allclose(clinical["auc"], expected, atol=1e-6)
    summary = pd.read_csv(workdir / CROSSVAL / "auc.tsv", sep="\t")
    row = summary.query("labels == 'observed' and model == 'clinical'")
    assert row["auc_mean"].item() == pytest.approx(np.mean(expected))


def test_every_table_is_written_and_the_run_takes_minutes(features_run):
    workdir, _, seconds = features_run
    for name in ("comparisons", "calibration", "decision_curves", "logrank", "cox"):
        assert len(pd.read_csv(workdir / CROSSVAL / f"{name}.tsv", sep="\t")) > 0, name
    columns = pd.read_csv(workdir / "results" / COHORT / "features" / "columns.tsv", sep="\t")
    assert (columns["status"] == "dropped").sum() == 4
    assert seconds < 15 * 60


def test_reader_agreement_and_auc_per_reader(features_run):
    workdir, _, _ = features_run
    agreement = pd.read_csv(workdir / CROSSVAL / "reader_agreement.tsv", sep="\t")
    assert len(agreement) == 4  # three pairs and Fleiss' kappa of all three
    sheet = read_sheet(workdir / "results" / COHORT / "sheet.tsv")
    analysed = read_patients(workdir / CROSSVAL / "folds.tsv", index=False)["patient_id"].unique()
    reads = sheet.loc[analysed, ["response_reader1", "response_reader2"]].dropna()
    pair = agreement.query("reader_a == 'response_reader1' and reader_b == 'response_reader2'")
    assert pair["n"].item() == len(reads)
    expected = cohen_kappa_score(reads["response_reader1"], reads["response_reader2"])
    assert pair["kappa"].item() == pytest.approx(expected)
    assert (agreement["ci_low"] < agreement["kappa"]).all()
    assert (agreement["kappa"] < agreement["ci_high"]).all()
    auc = pd.read_csv(workdir / CROSSVAL / "reader_auc.tsv", sep="\t")
    assert len(auc) == 5 * 3 and auc["auc_mean"].between(0, 1).all()


def test_without_crossval_the_train_test_models_read_the_feature_table(tmp_path, snakemake_bin):
    config = features_config()
    config["crossval"]["run"] = False
    config["models"]["n_cs"] = 5
    models = f"results/{COHORT}/models/response"
    run_workflow(tmp_path, config, snakemake_bin, (f"{models}/predictions.tsv",))
    predictions = pd.read_csv(tmp_path / models / "predictions.tsv", sep="\t")
    assert {"clinical", "radiomics", "radiomics_lasso", "radiomics_ridge"} <= set(
        predictions["model"]
    )
    exclusions = read_patients(tmp_path / "results" / COHORT / "features" / "model_exclusions.tsv")
    assert set(exclusions["step"]) == {"import_sheet", "feature_table"}
    assert predictions["patient_id"].nunique() == 96
    assert not set(predictions["patient_id"]) & set(exclusions.index)


def test_a_feature_table_outside_the_response_cohort_stops_the_parse(tmp_path, snakemake_bin):
    config = features_config()
    config["sheets"]["other"] = copy.deepcopy(config["sheets"][COHORT])
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [*workflow_command(snakemake_bin, tmp_path), "-n"],
        capture_output=True,
        encoding="utf-8",
        timeout=600,
    )
    assert run.returncode != 0
    assert "sheets.other.features: only the response cohort" in run.stdout + run.stderr
