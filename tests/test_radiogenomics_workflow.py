"""The radiogenomics rules in the shared tiny-config run, then again with other settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_workflow, tiny_config

from hccrad.cohorts.rnaseq_samples import read_star_files
from hccrad.radiogenomics.expression import load_star_cohort

pytestmark = pytest.mark.workflow

RG = "results/sim_lihc/radiogenomics"
OUTPUTS = (
    "results/sim_lihc/expression/vst.parquet",
    "results/sim_lihc/expression/counts.parquet",
    "results/sim_lihc/expression/genes.tsv",
    "results/sim_lihc/expression/samples.tsv",
    "results/sim_lihc/expression/sample_exclusions.tsv",
    *(
        f"{RG}/{name}"
        for name in (
            "features.tsv",
            "selected_features.tsv",
            "patients.tsv",
            "correlations.parquet",
            "gene_list.tsv",
            "correlation_summary.tsv",
            "heatmap.png",
            "heatmap.pdf",
            "dltr_groups.tsv",
            "differential.tsv",
            "volcano.png",
            "volcano.pdf",
            "ora.tsv",
            "ora_dotplot.png",
            "gsea.tsv",
            "gsea_ranking.tsv",
            "gsea_dotplot.png",
            "gsea_running_scores.png",
            "gsea_running_scores.pdf",
            "truth_recovery.tsv",
            "truth_recovery_summary.tsv",
        )
    ),
)


RULES = (
    "expression",
    "correlate_features",
    "differential_expression",
    "enrich_ora",
    "enrich_gsea",
    "enrich_truth",
)


@pytest.fixture(scope="module")
def workdir(runs, tmp_path_factory) -> Path:
    """A copy of the shared tiny-config run (conftest.runs), free to rerun with other settings."""
    base = tmp_path_factory.mktemp("radiogenomics_workflow")
    # copytree keeps modification times, so a rerun redoes only what the new settings change.
    shutil.copytree(runs["first"].parent, base, dirs_exist_ok=True, symlinks=True)
    return base


def test_default_settings_write_every_table_and_figure(workdir) -> None:
    for name in OUTPUTS:
        assert (workdir / name).stat().st_size > 0, name
    genes = pd.read_csv(workdir / RG / "gene_list.tsv", sep="\t")
    assert {"gene_id", "symbol", "feature", "rho", "p", "fdr", "pass_fdr_rule"} <= set(genes)
    assert (genes["p"] < 0.05).all()
    summary = pd.read_csv(workdir / RG / "correlation_summary.tsv", sep="\t")
    overall = summary[summary["feature"] == "any"].set_index("rule")
    assert overall.at["p_rule", "n_genes"] == len(genes)
    selected = pd.read_csv(workdir / RG / "selected_features.tsv", sep="\t")
    # Top 10 deep features, the DLTR score and (include_radiomics) every robust radiomic feature.
    by_source = selected[selected["selected"].astype(bool)].groupby("source").size()
    assert by_source.get("deep") == 10 and by_source.get("radiomics", 0) > 0
    assert selected["selected"].sum() == 10 + 1 + by_source["radiomics"]
    ora = pd.read_csv(workdir / RG / "ora.tsv", sep="\t")
    assert set(ora["gene_list"]) == {"p_rule", "fdr_rule"}
    assert ora["collection_version"].eq("v2025.1.Hs.symbols").all()
    gsea = pd.read_csv(workdir / RG / "gsea.tsv", sep="\t")
    assert {"nes", "p_value", "fdr", "leading_edge"} <= set(gsea)
    truth = pd.read_csv(workdir / RG / "truth_recovery_summary.tsv", sep="\t")
    assert set(truth["analysis"]) == {"ora p_rule", "ora fdr_rule", "gsea"}


def test_patients_and_samples_are_accounted_for(workdir) -> None:
    rnaseq = workdir / "results/sim_lihc/rnaseq"
    sheet = pd.read_csv(rnaseq / "gdc_sample_sheet.tsv", sep="\t")
    samples = pd.read_csv(workdir / "results/sim_lihc/expression/samples.tsv", sep="\t")
    exclusions = pd.read_csv(
        workdir / "results/sim_lihc/expression/sample_exclusions.tsv", sep="\t"
    )
    assert len(samples) + len(exclusions) == len(sheet)
    assert samples["sample_type"].astype(str).str.zfill(2).eq("01").all()
    patients = pd.read_csv(workdir / RG / "patients.tsv", sep="\t", keep_default_na=False)
    assert patients["patient_id"].is_unique
    assert (patients["reason"].eq("") == patients["analysed"]).all()
    # Every patient with a tumour sample and imaging is analysed.
    assert set(samples["patient_id"]) <= set(patients.loc[patients["analysed"], "patient_id"])


def test_other_settings_rerun_only_the_analysis(workdir, snakemake_bin) -> None:
    """Radiomics, all deep features, Pearson, DE-statistic GSEA and a plain counts matrix."""
    rnaseq = workdir / "results/sim_lihc/rnaseq"
    cohort = load_star_cohort(rnaseq / "gdc_sample_sheet.tsv", rnaseq / "files", progress=False)
    sheet = pd.read_csv(rnaseq / "gdc_sample_sheet.tsv", sep="\t")
    # Every STAR file as a matrix column named by its aliquot barcode (normal samples and
    # re-sequenced aliquots too: one sample per patient must again be chosen).
    aliquots = pd.read_csv(
        workdir / "results/sim_lihc/truth/rnaseq_samples.tsv", sep="\t", index_col="file_id"
    )["aliquot_id"]
    counts, genes = read_star_files(sheet, rnaseq / "files", progress=False)
    counts.columns = aliquots.loc[counts.columns].to_numpy()
    matrix = pd.concat([genes, counts], axis=1)
    matrix.rename_axis("gene_id").to_csv(workdir / "counts.tsv", sep="\t")

    config = tiny_config()
    settings = config["radiogenomics"]
    settings["expression"]["counts_matrix"] = "counts.tsv"
    settings["features"] |= {"deep": "all", "include_radiomics": True}
    settings["correlation"]["method"] = "pearson"
    settings["enrichment"]["ranking"] = "de_stat"
    settings["gene_list"]["ora_rule"] = "fdr_rule"
    # training_cutoff grouping is covered in test_radiogenomics.py: the tiny cohort's five
    # patients may all fall on one side of the training threshold.
    run_workflow(workdir, config, snakemake_bin, OUTPUTS, rules=RULES)
    samples = pd.read_csv(workdir / "results/sim_lihc/expression/samples.tsv", sep="\t")
    assert sorted(samples["patient_id"]) == sorted(cohort.samples.index)
    selected = pd.read_csv(workdir / RG / "selected_features.tsv", sep="\t")
    assert set(selected["source"]) == {"deep", "DLTR score", "radiomics"}
    gsea = pd.read_csv(workdir / RG / "gsea.tsv", sep="\t")
    assert gsea["ranking"].eq("de_stat").all()
