"""Deep-learning rules in the tiny workflow run: outputs, held-out scores, no test crops read."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config
from PIL import Image

from hccrad.deep import dltr
from hccrad.deep.networks import load_model
from hccrad.deep.predict import predict_scores
from hccrad.imaging.batches import read_manifest

pytestmark = pytest.mark.workflow

ENDPOINTS = ("response", "proliferative")


def recorded_inputs(workdir: Path, output: str) -> list[str]:
    """The inputs Snakemake recorded for an output (its metadata file, keyed by the path)."""
    key = base64.urlsafe_b64encode(output.encode()).decode()
    return json.loads((workdir / ".snakemake" / "metadata" / key).read_text())["input"]


def sheet(results: Path, cohort: str) -> pd.DataFrame:
    """A cohort sheet indexed by patient_id."""
    return pd.read_csv(results / cohort / "sheet.tsv", sep="\t", index_col="patient_id")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_selection_reads_training_patients_only(runs, endpoint):
    results = runs["first"]
    inputs = recorded_inputs(results.parent, f"results/sim_tace/deep/{endpoint}/model.pt")
    response_sheet = sheet(results, "sim_tace")
    train = set(response_sheet.index[response_sheet["split"] == "train"])
    # The training patients' batches, no other (the script reads their folders alone).
    batches = [read_manifest(results.parent / p) for p in inputs if "/prepared/" in p]
    assert train <= {p for batch in batches for p in batch}
    assert all(train & set(batch) for batch in batches)
    table = pd.read_csv(results / f"sim_tace/deep/{endpoint}/selection.tsv", sep="\t")
    n_train = (response_sheet["split"] == "train").sum()
    assert (table["n_train"] + table["n_val"] == n_train).all()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_scores_are_out_of_fold_for_training_and_the_ensemble_for_the_rest(runs, endpoint):
    results = runs["first"]
    folder = results / f"sim_tace/deep/{endpoint}"
    scores = pd.read_csv(folder / "scores.tsv", sep="\t", index_col="patient_id")
    response_sheet = sheet(results, "sim_tace")
    assert sorted(scores.index) == sorted(response_sheet.index)
    assert scores["dltr_score"].between(0, 1).all()
    train = scores["split"] == "train"
    assert scores.loc[train, "score_source"].eq("out_of_fold").all()
    assert scores.loc[~train, "score_source"].eq("folds_and_refit").all()
    out_of_fold = pd.read_csv(folder / "out_of_fold.tsv", sep="\t", index_col="patient_id")
    np.testing.assert_allclose(
        scores.loc[train, "dltr_score"], out_of_fold.loc[scores.index[train]].iloc[:, 0], atol=1e-6
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_both_cohorts_get_deep_features_and_scores(runs, endpoint):
    results = runs["first"]
    widths = set()
    for cohort in ("sim_tace", "sim_lihc"):
        features = pd.read_parquet(results / f"{cohort}/deep/{endpoint}/deep_features.parquet")
        assert sorted(features.index) == sorted(sheet(results, cohort).index)
        assert features.columns[0] == "deep_0000" and np.isfinite(features.to_numpy()).all()
        widths.add(features.shape[1])
    assert len(widths) == 1  # one network, one feature space for both cohorts
    lihc = pd.read_csv(results / f"sim_lihc/deep/{endpoint}/scores.tsv", sep="\t")
    assert lihc["score_source"].eq("folds_and_refit").all()
    assert lihc["split"].eq("radiogenomics").all()


def test_held_out_score_is_the_mean_of_the_fold_networks_and_the_refit(runs):
    results = runs["first"]
    folder = results / "sim_tace/deep/response"
    config = dltr.deep_config(tiny_config(7)["deep"], 7)
    names = ["model"] + [f"fold{k}" for k in range(1, config.folds + 1)]
    members = [load_model(folder / f"{n}.pt", folder / f"{n}.json") for n in names]
    scores = pd.read_csv(folder / "scores.tsv", sep="\t", index_col="patient_id")
    held_out = list(scores.index[scores["split"] != "train"])
    crops, _ = dltr.cohort_crops(
        dltr.prepared_folders(sorted((results / "sim_tace/prepared").iterdir())), held_out, config
    )
    each = np.array([predict_scores(m, crops, device="cpu").loc[held_out] for m in members])
    np.testing.assert_allclose(scores.loc[held_out, "dltr_score"], each.mean(axis=0), atol=1e-6)
    # The members differ: the ensemble is not one network counted several times.
    assert np.ptp(each, axis=0).max() > 1e-3


@pytest.mark.parametrize("figure", ["selection.png", "gradcam.png"])
def test_deep_figures_are_not_blank(runs, figure):
    for endpoint in ENDPOINTS:
        pixels = np.asarray(
            Image.open(runs["first"] / f"sim_tace/deep/{endpoint}/{figure}").convert("L"), float
        )
        assert pixels.std() > 10, (endpoint, figure)
