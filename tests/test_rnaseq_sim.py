"""Simulated RNA-seq: GDC's exact STAR-counts layout and the planted gene-trait links."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hccrad.cohorts.rnaseq_counts import STAR_COLUMNS, STAR_SUMMARY_ROWS
from hccrad.cohorts.rnaseq_sim import simulate_rnaseq
from hccrad.cohorts.simulate import simulate_traits
from hccrad.core.genesets import read_gmt
from hccrad.core.plan import tcga_like_ids
from hccrad.core.seeding import rng_for

ROOT = Path(__file__).resolve().parent.parent
GMT = ROOT / "resources/genesets/h.all.v2025.1.Hs.symbols.gmt"
TPM = ROOT / "resources/tcga_lihc/linnorm_LIHC_tpm_10pairs.csv.gz"
GDC_EXAMPLE = Path(__file__).parent / "data/gdc/gdc_augmented_star_gene_counts_format_example.tsv"


def rnaseq_cfg(config: dict) -> dict:
    """The default RNA-seq settings with a smaller gene universe."""
    return {**config["simulate"]["radiogenomics"]["rnaseq"], "n_genes": 6000, "n_noncoding": 100}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> dict:
    """Sixty simulated TCGA-like samples with the default planted pathways."""
    from conftest import load_default_config

    config = load_default_config()
    traits = simulate_traits(60, rng_for(4, "rg", "traits"))
    traits.index = tcga_like_ids(60, "Z9")
    out = tmp_path_factory.mktemp("rnaseq")
    result = simulate_rnaseq(
        traits,
        rnaseq_cfg(config),
        config["simulate"]["radiogenomics"]["planted_pathways"],
        GMT,
        TPM,
        out,
        4,
        "sim_lihc",
    )
    return {"result": result, "traits": traits, "out": out, "config": config}


def test_star_files_have_gdcs_exact_layout(simulated):
    sheet, out = simulated["result"]["sample_sheet"], simulated["out"]
    row = sheet.iloc[0]
    path = out / row["File ID"] / row["File Name"]
    lines = path.read_text().splitlines()
    assert lines[0] == "# gene-model: GENCODE v36"
    assert lines[1].split("\t") == list(STAR_COLUMNS)
    assert [line.split("\t")[0] for line in lines[2:6]] == list(STAR_SUMMARY_ROWS)
    assert lines[2].split("\t")[1:3] == ["", ""]  # summary rows have no name or type
    table = pd.read_csv(path, sep="\t", comment="#")
    genes = table.iloc[4:]
    assert genes["gene_id"].str.match(r"^SIMG\d{11}\.\d+$").all()
    assert genes["tpm_unstranded"].sum() == pytest.approx(1e6, rel=1e-3)
    assert (genes["stranded_first"] + genes["stranded_second"] == genes["unstranded"]).all()
    assert {"protein_coding", "lncRNA"} <= set(genes["gene_type"])


def test_layout_matches_the_real_gdc_example_header():
    real = GDC_EXAMPLE.read_text().splitlines()
    assert real[0].startswith("# gene-model:")
    assert real[1].split("\t") == list(STAR_COLUMNS)
    assert [line.split("\t")[0] for line in real[2:6]] == list(STAR_SUMMARY_ROWS)


def test_sample_sheet_is_gdc_style_with_tumour_normal_and_duplicates(simulated):
    sheet = simulated["result"]["sample_sheet"]
    assert list(sheet.columns[:8]) == [
        "File ID",
        "File Name",
        "Data Category",
        "Data Type",
        "Project ID",
        "Case ID",
        "Sample ID",
        "Sample Type",
    ]
    assert sheet["Case ID"].str.match(r"^TCGA-Z9-A\d{3}$").all()
    assert set(sheet["Sample Type"]) == {"Primary Tumor", "Solid Tissue Normal"}
    assert (sheet["Sample Type"] == "Primary Tumor").sum() >= 60
    assert sheet["File ID"].is_unique


def test_every_hallmark_gene_is_in_the_universe_and_it_is_large(simulated):
    genes = simulated["result"]["genes"]
    hallmark = {g for members in read_gmt(GMT).values() for g in members}
    assert hallmark <= set(genes["gene_name"])
    assert len(genes) >= 6000


def test_planted_genes_follow_their_trait_at_the_configured_strength(simulated):
    """Correlation of log CPM with the trait: planted genes near strength, others near 0."""
    result, traits = simulated["result"], simulated["traits"]
    plan, out = result["plan"], simulated["out"]
    tumours = plan[(plan["sample_type"] == "01") & (plan["replicate"] == 1)]
    counts = pd.concat(
        {
            row.patient_id: pd.read_csv(
                out / row.file_id / row.file_name, sep="\t", comment="#", index_col=0
            )["unstranded"].iloc[4:]
            for row in tumours.itertuples()
        },
        axis=1,
    )
    log_cpm = np.log2((counts + 0.5) / counts.sum() * 1e6)
    expressed = counts.mean(axis=1) > 50
    effects = result["effects"]
    for spec in simulated["config"]["simulate"]["radiogenomics"]["planted_pathways"]:
        trait = traits.loc[log_cpm.columns, spec["trait"]]
        genes = effects.loc[effects["pathway"] == spec["pathway"], "gene_id"].unique()
        genes = [g for g in genes if expressed.get(g, False)]
        r = log_cpm.loc[genes].T.corrwith(trait).mean()
        print(f"{spec['pathway']}: {len(genes)} expressed planted genes, mean r {r:.2f}")
        # Count noise and overlapping pathways dilute a little; the sign and size must show.
        assert spec["strength"] - 0.15 < r < spec["strength"] + 0.1
    unplanted = log_cpm.index[expressed & ~log_cpm.index.isin(effects["gene_id"])]
    null_r = log_cpm.loc[unplanted].T.corrwith(traits.loc[log_cpm.columns, "necrosis"])
    assert abs(null_r.mean()) < 0.05


def test_same_seed_same_counts(tmp_path, simulated):
    config = simulated["config"]
    traits = simulated["traits"].iloc[:5]
    outputs = []
    for name in ("a", "b"):
        result = simulate_rnaseq(
            traits, rnaseq_cfg(config), [], GMT, TPM, tmp_path / name, 4, "sim_lihc"
        )
        row = result["plan"].iloc[0]
        outputs.append((tmp_path / name / row["file_id"] / row["file_name"]).read_bytes())
    assert outputs[0] == outputs[1]
