"""End to end: Snakemake runs a tiny config in a temporary folder, twice, bit for bit.

The runs are the session fixture `runs` of conftest.py, shared with the other workflow tests.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import digests

pytestmark = pytest.mark.workflow


def test_outputs_of_rule_all_exist(runs):
    results = runs["first"]
    for cohort in ("sim_tace", "sim_lihc"):
        for name in (
            "sheet.tsv",
            "truth/truth.json",
            "truth/lesions.tsv",
            "qc/cohort_qc.png",
            "qc/cohort_qc.pdf",
            "table1.tsv",
            "table1.png",
        ):
            assert (results / cohort / name).stat().st_size > 0, (cohort, name)
    assert (results / "sim_lihc/rnaseq/gdc_sample_sheet.tsv").exists()
    for cohort in ("sim_tace", "sim_lihc"):
        for name in (
            "radiomics/features.parquet",
            "radiomics/features_robust.parquet",
            "exclusions.tsv",
            "qc/preprocessing_qc.png",
        ):
            assert (results / cohort / name).stat().st_size > 0, (cohort, name)
    assert (results / "sim_tace/radiomics/icc.tsv").exists()


def test_same_seed_gives_byte_identical_files(runs):
    first, again = digests(runs["first"]), digests(runs["again"])
    assert first.keys() == again.keys()
    differing = [name for name in first if first[name] != again[name]]
    assert not differing


def test_another_seed_gives_other_data(runs):
    first, other = digests(runs["first"]), digests(runs["other"])
    for name in (
        "sim_tace/sheet.tsv",
        "sim_tace/images/shard1/A-0001/arterial.nii.gz",
        "sim_lihc/truth/planted_genes.tsv",
    ):
        assert first[name] != other[name], name


def test_sheet_points_to_images_that_match_their_mask(runs):
    results = runs["first"]
    workdir = results.parent
    sheet = pd.read_csv(results / "sim_tace/sheet.tsv", sep="\t", index_col="patient_id")
    assert list(sheet.columns[:2]) == ["centre", "split"]
    assert len(sheet) == 46
    for patient, row in sheet.iterrows():
        mask = nib.load(workdir / row["mask"])
        labels = set(np.unique(np.asarray(mask.dataobj)))
        assert labels == {0, 1, 2}, patient
        for phase in ("arterial", "portal_venous", "hepatobiliary"):
            image = nib.load(workdir / row[f"image_{phase}"])
            assert image.shape == mask.shape and np.allclose(image.affine, mask.affine)


def test_truth_is_written_and_not_in_the_sheet(runs):
    results = runs["first"]
    truth = json.loads((results / "sim_tace/truth/truth.json").read_text())
    assert truth["endpoints"]["response"]["effects_log_odds"]["arterial_enhancement"] == 1.0
    sheet = pd.read_csv(results / "sim_tace/sheet.tsv", sep="\t")
    assert not any(c.startswith("z_") or c.endswith("_probability") for c in sheet.columns)
    lihc_truth = json.loads((results / "sim_lihc/truth/truth.json").read_text())
    assert len(lihc_truth["planted_pathways"]) == 4
    planted = pd.read_csv(results / "sim_lihc/truth/planted_genes.tsv", sep="\t")
    assert set(planted["pathway"]) == {
        "HALLMARK_ANGIOGENESIS",
        "HALLMARK_EPITHELIAL_MESENCHYMAL_TRANSITION",
        "HALLMARK_HYPOXIA",
        "HALLMARK_TGF_BETA_SIGNALING",
    }


def test_table_one_has_a_column_per_split_and_p_values(runs):
    table = pd.read_csv(runs["first"] / "sim_tace/table1.tsv", sep="\t", index_col=0)
    for column in ("train", "internal_test", "external_B", "external_C", "P-Value"):
        assert column in table.columns
