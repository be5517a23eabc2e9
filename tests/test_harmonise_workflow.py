"""Workflow test of radiomics.harmonisation: combat on the tiny config: the response cohort's
diagnostic (table and figure) and the radiogenomics cohort harmonised against its training rows."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from conftest import run_workflow, tiny_config

TARGETS = (
    "results/sim_tace/radiomics/harmonisation.png",
    "results/sim_lihc/radiomics/features_robust.parquet",
)


@pytest.fixture(scope="module")
def combat_run(runs, tmp_path_factory, snakemake_bin):
    """The shared tiny run (conftest.runs) copied, its harmonisation redone with combat."""
    work = tmp_path_factory.mktemp("combat")
    # copytree keeps modification times: only the rules that read the setting run again.
    shutil.copytree(runs["first"].parent, work, dirs_exist_ok=True, symlinks=True)
    config = tiny_config(7)
    config["radiomics"]["harmonisation"] = "combat"
    rules = ("robust_features", "harmonisation_diagnostic", "harmonisation_figure")
    run_workflow(work, config, snakemake_bin, TARGETS, rules=rules)
    return work / "results"


def test_combat_diagnostic_shows_the_centre_separation_drop(combat_run) -> None:
    radiomics = combat_run / "sim_tace" / "radiomics"
    summary = pd.read_csv(radiomics / "harmonisation_separation.tsv", sep="\t").set_index("stage")
    assert (summary["harmonisation"] == "combat").all()
    before, after = summary.loc[["before", "after"], "mean_between_centre_share"]
    assert after < before
    for suffix in ("png", "pdf", "tiff"):
        assert (radiomics / f"harmonisation.{suffix}").stat().st_size > 0
    # The training centre is the reference: its rows leave ComBat unchanged.
    sheet = pd.read_csv(combat_run / "sim_tace" / "sheet.tsv", sep="\t", dtype={"patient_id": str})
    a_rows = sheet.loc[sheet["centre"] == "A", "patient_id"]
    robust = pd.read_parquet(radiomics / "features_robust.parquet")
    raw = pd.read_parquet(radiomics / "features.parquet")[robust.columns]
    a_rows = a_rows[a_rows.isin(robust.index)]
    pd.testing.assert_frame_equal(robust.loc[a_rows], raw.loc[a_rows].astype(float))


def test_radiogenomics_cohort_is_mapped_onto_the_response_training_rows(combat_run) -> None:
    robust = pd.read_parquet(combat_run / "sim_lihc" / "radiomics" / "features_robust.parquet")
    raw = pd.read_parquet(combat_run / "sim_lihc" / "radiomics" / "features.parquet")
    assert list(robust.index) == list(raw.index)
    assert not robust.equals(raw[robust.columns].astype(float))
