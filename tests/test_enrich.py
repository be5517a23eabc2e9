"""hccrad.radiogenomics.enrich against gseapy called directly, scipy, and planted gene lists."""

from __future__ import annotations

from pathlib import Path

import gseapy
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED
from matplotlib import image
from scipy import stats

from hccrad.figures.enrichment import (
    pathway_label,
    plot_enrichment_dots,
    plot_rho_heatmap,
    plot_running_scores,
)
from hccrad.figures.style import save_figure
from hccrad.radiogenomics.enrich import (
    DEFAULT_PATHWAYS,
    MIN_SAME_SIGN_NULL,
    GeneSetCollection,
    collapse_to_symbols,
    collection_name_version,
    gsea_prerank,
    load_collection,
    over_representation,
    prerank_result_from_files,
    restrict_gene_sets,
    running_enrichment_score,
    running_score_pathways,
    sign_matched_null,
    sorted_ranking,
    top_pathways,
)

ROOT = Path(__file__).resolve().parent.parent
GMT = ROOT / "resources" / "genesets" / "h.all.v2025.1.Hs.symbols.gmt"
HYPOXIA = "HALLMARK_HYPOXIA"
PERMUTATIONS = 200


@pytest.fixture(scope="module")
def hallmark() -> GeneSetCollection:
    return load_collection(GMT)


@pytest.fixture(scope="module")
def tested_genes(hallmark: GeneSetCollection) -> list[str]:
    """Every Hallmark gene plus 3,000 genes in no set: a small 'tested genes' universe."""
    members = sorted({g for genes in hallmark.gene_sets.values() for g in genes})
    return members + [f"NOSET{i:04d}" for i in range(3000)]


@pytest.fixture(scope="module")
def planted_ranking(hallmark: GeneSetCollection, tested_genes: list[str]) -> pd.Series:
    """Normal scores, with half the hypoxia genes shifted up by one SD."""
    rng = np.random.default_rng(11)
    ranking = pd.Series(rng.standard_normal(len(tested_genes)), index=tested_genes)
    hypoxia = hallmark.gene_sets[HYPOXIA]
    ranking[hypoxia[::2]] += 1.0
    return ranking


@pytest.fixture(scope="module")
def prerank_result(hallmark, planted_ranking):
    return gsea_prerank(planted_ranking, hallmark, permutations=PERMUTATIONS, seed=3)


def planted_list(hallmark, tested_genes, n_members: int, n_random: int, seed: int) -> list[str]:
    """n_members hypoxia genes plus n_random other tested genes."""
    rng = np.random.default_rng(seed)
    hypoxia = sorted(hallmark.gene_sets[HYPOXIA])
    members = list(rng.choice(hypoxia, n_members, replace=False))
    others = sorted(set(tested_genes) - set(hypoxia))
    return members + list(rng.choice(others, n_random, replace=False))


def assert_non_blank_png(paths: list[Path]) -> None:
    """The PNG (and its PDF and TIFF) exist and the PNG is not a single colour."""
    png, pdf, _tiff = paths
    assert pdf.stat().st_size > 0
    assert image.imread(png).std() > 0


def test_collection_name_and_version_come_from_the_file_name(hallmark):
    assert (hallmark.name, hallmark.version) == ("h.all", "v2025.1.Hs.symbols")
    assert len(hallmark.gene_sets) == 50
    assert collection_name_version("my_sets.gmt") == ("my_sets", "unversioned")


def test_restrict_gene_sets_cuts_to_the_universe_before_the_size_filter():
    sets = {"A": ["a", "b", "c", "x"], "B": ["a", "y", "z"], "C": ["a", "b", "c", "d", "e"]}
    restricted = restrict_gene_sets(sets, ["a", "b", "c", "d"], min_size=3, max_size=3)
    assert restricted == {"A": ["a", "b", "c"]}  # B has 1 tested gene, C has 4


def test_ora_agrees_with_gseapy_enrich_and_with_the_hypergeometric_by_hand(hallmark, tested_genes):
    genes = planted_list(hallmark, tested_genes, 20, 130, seed=1)
    table = over_representation(genes, tested_genes, hallmark, min_size=10, max_size=500)
    assert table["collection"].eq("h.all").all()
    assert table["collection_version"].eq("v2025.1.Hs.symbols").all()
    assert len(table) == 50  # every set passes the size filter: all its genes are tested

    direct = gseapy.enrich(
        gene_list=genes,
        gene_sets=hallmark.gene_sets,
        background=tested_genes,
        outdir=None,
        no_plot=True,
    ).res2d.set_index("Term")
    mine = table.set_index("pathway")
    hit = mine.index[mine["overlap"] > 0]
    assert set(direct.index) == set(hit)  # gseapy leaves out sets without a hit
    np.testing.assert_allclose(mine.loc[hit, "p_value"], direct.loc[hit, "P-value"], rtol=1e-12)
    overlap = direct.loc[hit, "Overlap"].str.split("/", expand=True).astype(int)
    np.testing.assert_array_equal(mine.loc[hit, "overlap"], overlap[0])
    np.testing.assert_array_equal(mine.loc[hit, "set_size"], overlap[1])
    # Our BH also counts the sets without a hit, so it is never less conservative.
    assert (mine.loc[hit, "fdr"] >= direct.loc[hit, "Adjusted P-value"] - 1e-15).all()
    np.testing.assert_allclose(mine["fdr"], stats.false_discovery_control(mine["p_value"]))

    row = mine.loc[HYPOXIA]
    by_hand = stats.hypergeom.sf(row["overlap"] - 1, len(tested_genes), row["set_size"], len(genes))
    assert row["p_value"] == pytest.approx(by_hand, rel=1e-12)
    assert row["expected"] == pytest.approx(row["set_size"] * len(genes) / len(tested_genes))


def test_a_planted_hypoxia_list_makes_hypoxia_significant_and_few_others(hallmark, tested_genes):
    genes = planted_list(hallmark, tested_genes, 40, 110, seed=2)
    table = over_representation(genes, tested_genes, hallmark).set_index("pathway")
    significant = table.index[table["fdr"] < 0.05]
    assert HYPOXIA in significant
    assert table["fdr"].idxmin() == HYPOXIA
    # Sets sharing many genes with hypoxia (e.g. glycolysis) may ride along; no more than that.
    assert len(significant) <= 3, list(significant)


def test_random_lists_give_no_significant_pathway(hallmark, tested_genes):
    rng = np.random.default_rng(5)
    lists_with_a_hit = 0
    for _ in range(20):
        genes = list(rng.choice(tested_genes, 150, replace=False))
        table = over_representation(genes, tested_genes, hallmark)
        lists_with_a_hit += bool((table["fdr"] < 0.05).any())
    # BH at 0.05 under the global null: at most ~5% of lists have any discovery.
    assert lists_with_a_hit <= 2


def test_the_background_matters(hallmark):
    """A random draw from liver-like tested genes looks enriched against the genome only."""
    liver = ["HALLMARK_XENOBIOTIC_METABOLISM", "HALLMARK_BILE_ACID_METABOLISM"]
    liver_genes = sorted({g for name in liver for g in hallmark.gene_sets[name]})
    all_hallmark = sorted({g for genes in hallmark.gene_sets.values() for g in genes})
    genome = all_hallmark + [f"NOSET{i:05d}" for i in range(15000)]
    # The tested (expressed) genes: every liver-pathway gene, few other Hallmark genes.
    tested = liver_genes + [f"NOSET{i:05d}" for i in range(1500)]
    rng = np.random.default_rng(8)
    genes = list(rng.choice(tested, 150, replace=False))

    against_genome = over_representation(genes, genome, hallmark).set_index("pathway")
    against_tested = over_representation(genes, tested, hallmark).set_index("pathway")
    assert (against_genome.loc[liver, "fdr"] < 0.05).all()
    assert not (against_tested["fdr"] < 0.05).any()
    # Restricting sets to the tested genes changes their sizes and the universe.
    assert (against_tested.loc[liver, "set_size"] <= against_genome.loc[liver, "set_size"]).all()
    assert against_tested["background_size"].iat[0] == len(tested)


def test_ora_refuses_genes_outside_the_background(hallmark, tested_genes):
    with pytest.raises(ValueError, match="not in the background"):
        over_representation(["NOT_A_TESTED_GENE", *tested_genes[:20]], tested_genes, hallmark)


def test_mixed_case_symbols_are_not_lost():
    """gseapy upper-cases a mostly lower-case query; the tokens keep C1orf112 in its set."""
    upper = [f"GENE{i}" for i in range(20)]
    collection = GeneSetCollection(
        "toy", "unversioned", {"A": ["C1orf112", *upper[:10]], "B": upper[10:]}
    )
    background = ["C1orf112", "x1", *upper, *[f"X{i}" for i in range(50)]]
    table = over_representation(["C1orf112", "GENE1", "x1"], background, collection, min_size=5)
    row = table.set_index("pathway").loc["A"]
    assert (row["overlap"], row["set_size"]) == (2, 11)
    assert row["overlap_genes"] == "C1orf112;GENE1"


def test_prerank_agrees_with_gseapy_prerank_called_directly(
    hallmark, planted_ranking, prerank_result
):
    ranked = sorted_ranking(planted_ranking)
    direct = gseapy.prerank(
        rnk=ranked,
        gene_sets=hallmark.gene_sets,
        permutation_num=PERMUTATIONS,
        seed=3,
        threads=1,
        min_size=15,
        max_size=500,
        outdir=None,
        no_plot=True,
    ).res2d.set_index("Term")
    mine = prerank_result.table.set_index("pathway")
    assert set(mine.index) == set(direct.index)
    direct = direct.loc[mine.index]
    assert not mine["null_too_small"].any()  # a symmetric ranking: both nulls are large
    for ours, theirs in [("es", "ES"), ("nes", "NES"), ("fdr", "FDR q-val")]:
        np.testing.assert_allclose(mine[ours], direct[theirs].astype(float), rtol=1e-12)
    assert (mine["leading_edge"] == direct["Lead_genes"]).all()
    # gseapy's nominal P is b/n over the sign-matched null; ours is (b+1)/(n+1) of the same.
    b_over_n = direct["NOM p-val"].astype(float)
    n = mine["null_same_sign"]
    np.testing.assert_allclose(mine["p_value"], (b_over_n * n + 1) / (n + 1), rtol=1e-9)
    assert (mine["p_value"] > 0).all()


def test_sign_matched_null_counts_only_the_sets_sign():
    null = np.array([0.1, 0.2, 0.5, -0.1, -0.4])
    assert sign_matched_null(0.3, null) == (3, pytest.approx(2 / 4))
    assert sign_matched_null(-0.3, null) == (2, pytest.approx(2 / 3))
    assert sign_matched_null(-0.3, np.array([0.1, 0.2])) == (0, 1.0)  # empty null: P = 1


def test_an_unsigned_ranking_flags_depleted_sets_instead_of_calling_them(hallmark, tested_genes):
    """All-positive scores: a depleted set has no negative permuted ES, so it is not judged."""
    rng = np.random.default_rng(5)
    ranking = pd.Series(np.abs(rng.standard_normal(len(tested_genes))), index=tested_genes)
    ranking[hallmark.gene_sets[HYPOXIA]] *= 0.2  # hypoxia genes at the bottom: depleted
    table = gsea_prerank(ranking, hallmark, permutations=PERMUTATIONS, seed=1).table
    row = table.set_index("pathway").loc[HYPOXIA]
    assert row["es"] < 0 and row["null_same_sign"] < MIN_SAME_SIGN_NULL
    assert row["null_too_small"] and np.isnan(row["fdr"])
    assert "FDR not judged" in row["note"] and "negative" in row["note"]
    if row["null_same_sign"] == 0:
        assert np.isnan(row["nes"])  # never gseapy's -1 from an empty null
    assert not (table["nes"] == -1.0).any()
    judged = table[~table["null_too_small"]]
    assert judged["fdr"].notna().all() and judged["note"].eq("").all()
    assert HYPOXIA not in set(top_pathways(table, len(table))["pathway"])


def test_prerank_finds_the_planted_pathway_and_is_reproducible(
    hallmark, planted_ranking, prerank_result
):
    table = prerank_result.table.set_index("pathway")
    assert table.loc[HYPOXIA, "fdr"] < 0.05
    assert table.loc[HYPOXIA, "nes"] > 0
    assert (table["fdr"] < 0.05).sum() <= 3
    shuffled = planted_ranking.sample(frac=1.0, random_state=0)  # input order must not matter
    again = gsea_prerank(shuffled, hallmark, permutations=PERMUTATIONS, seed=3)
    pd.testing.assert_frame_equal(again.table, prerank_result.table)


def test_running_score_matches_gseapy(hallmark, planted_ranking):
    ranked = sorted_ranking(planted_ranking)
    direct = gseapy.prerank(
        rnk=ranked,
        gene_sets={HYPOXIA: hallmark.gene_sets[HYPOXIA]},
        permutation_num=1,
        outdir=None,
        no_plot=True,
    ).results[HYPOXIA]
    score, hits = running_enrichment_score(ranked, hallmark.gene_sets[HYPOXIA])
    np.testing.assert_allclose(score, direct["RES"], atol=1e-12)
    np.testing.assert_array_equal(hits, direct["hits"])


def test_collapse_to_symbols_keeps_the_strongest_id():
    values = pd.Series([0.2, -0.9, 0.5, 0.1], index=["ENSG1", "ENSG2", "ENSG3", "ENSG4"])
    symbols = pd.Series({"ENSG1": "VEGFA", "ENSG2": "VEGFA", "ENSG3": "HIF1A", "ENSG4": ""})
    collapsed = collapse_to_symbols(values, symbols)
    assert collapsed.to_dict() == {"VEGFA": -0.9, "HIF1A": 0.5}


def test_pathway_labels_are_readable():
    assert pathway_label("HALLMARK_TGF_BETA_SIGNALING") == "TGF beta signaling"
    assert pathway_label("HALLMARK_EPITHELIAL_MESENCHYMAL_TRANSITION") == (
        "Epithelial mesenchymal transition"
    )


def test_figures_are_written_and_not_blank(
    tmp_path, hallmark, tested_genes, prerank_result, planted_ranking
):
    genes = planted_list(hallmark, tested_genes, 40, 110, seed=2)
    ora = over_representation(genes, tested_genes, hallmark)
    assert_non_blank_png(save_figure(plot_enrichment_dots(ora), tmp_path / "ora_dots.png"))
    gsea = prerank_result.table
    assert_non_blank_png(save_figure(plot_enrichment_dots(gsea, x="nes"), tmp_path / "nes.png"))

    pathways = running_score_pathways(gsea)
    assert pathways[: len(DEFAULT_PATHWAYS)] == list(DEFAULT_PATHWAYS)
    assert HYPOXIA in pathways
    figure = plot_running_scores(prerank_result, pathways)
    assert_non_blank_png(save_figure(figure, tmp_path / "running.png"))

    rng = np.random.default_rng(4)
    features = [f"feature{i}" for i in range(8)]
    rho = pd.DataFrame(
        rng.uniform(-0.6, 0.6, (8, 200)), index=features, columns=planted_ranking.index[:200]
    )
    assert_non_blank_png(save_figure(plot_rho_heatmap(rho, n_genes=30), tmp_path / "rho.png"))


def test_prerank_does_not_depend_on_threads(hallmark, planted_ranking, monkeypatch):
    # gseapy caps threads at os.cpu_count() - 1; pretend there are more cores than here.
    monkeypatch.setattr("os.cpu_count", lambda: 9)
    one, four = (
        gsea_prerank(planted_ranking, hallmark, permutations=100, seed=5, threads=threads).table
        for threads in (1, 4)
    )
    pd.testing.assert_frame_equal(one, four)


def test_prerank_result_is_rebuilt_from_the_files_the_workflow_writes(
    hallmark, prerank_result, tmp_path
):
    # As enrich_gsea.py writes them: the table rounded, the ranking at full precision.
    table_path, ranking_path = tmp_path / "gsea.tsv", tmp_path / "gsea_ranking.tsv"
    prerank_result.table.to_csv(table_path, sep="\t", index=False, float_format="%.6g")
    prerank_result.ranking.rename("rho").to_csv(ranking_path, sep="\t", float_format="%.17g")
    again = prerank_result_from_files(table_path, ranking_path, hallmark)
    assert list(again.ranking.index) == list(prerank_result.ranking.index)
    np.testing.assert_array_equal(again.ranking.to_numpy(), prerank_result.ranking.to_numpy())
    assert again.gene_sets == prerank_result.gene_sets
    curves = [
        running_enrichment_score(r.ranking, r.gene_sets[HYPOXIA]) for r in (prerank_result, again)
    ]
    np.testing.assert_array_equal(curves[0][0], curves[1][0])
    np.testing.assert_array_equal(curves[0][1], curves[1][1])


# --------------------------------------------------------------------------- real TCGA-LIHC pairs

LIHC_TPM = SHARED / "tcga_lihc" / "linnorm_LIHC_tpm_10pairs.csv.gz"  # MIT, 10 tumour/normal pairs
LIHC_UP = ["HALLMARK_E2F_TARGETS", "HALLMARK_G2M_CHECKPOINT", "HALLMARK_MYC_TARGETS_V1"]
LIHC_DOWN = [
    "HALLMARK_XENOBIOTIC_METABOLISM",
    "HALLMARK_BILE_ACID_METABOLISM",
    "HALLMARK_COAGULATION",
    "HALLMARK_FATTY_ACID_METABOLISM",
]
LIHC_MARGINAL = ["HALLMARK_ESTROGEN_RESPONSE_LATE", "HALLMARK_UV_RESPONSE_DN"]


@pytest.fixture(scope="module")
def lihc_paired() -> tuple[np.ndarray, pd.Index, pd.Series]:
    """Tumour minus normal log2(TPM+1) per pair (genes expressed in half the samples), symbols."""
    if not LIHC_TPM.exists():
        pytest.skip(f"real data not found: {LIHC_TPM}")
    tpm = pd.read_csv(LIHC_TPM, index_col=0)
    tumour = sorted(c for c in tpm.columns if c.endswith("-01A"))
    normal = [c.removesuffix("-01A") + "-11A" for c in tumour]
    tpm = tpm[(tpm >= 1).mean(axis=1) >= 0.5]
    log2 = np.log2(tpm + 1.0)
    diff = log2[tumour].to_numpy() - log2[normal].to_numpy()
    symbols = pd.Series([i.split("|")[0] for i in tpm.index], index=tpm.index).replace("?", "")
    return diff, tpm.index, symbols


def lihc_gsea(hallmark, lihc_paired, statistic: str) -> pd.DataFrame:
    """GSEA of the tumour-vs-normal ranking (paired log2 fold change or paired t)."""
    diff, genes, symbols = lihc_paired
    mean = diff.mean(axis=1)
    values = mean if statistic == "log2fc" else stats.ttest_rel(diff, 0 * diff, axis=1).statistic
    ranking = collapse_to_symbols(pd.Series(values, index=genes), symbols)
    return gsea_prerank(ranking, hallmark, permutations=1000, seed=0).table.set_index("pathway")


def test_lihc_tumour_vs_normal_calls_the_known_programmes(hallmark, lihc_paired):
    """Proliferation up and liver metabolism down in HCC; EMT is not called."""
    table = lihc_gsea(hallmark, lihc_paired, "log2fc")
    assert not table["null_too_small"].any()  # every sign-matched null has >= 50 values
    assert (table.loc[LIHC_UP, "fdr"] < 0.05).all() and (table.loc[LIHC_UP, "nes"] > 0).all()
    assert (table.loc[LIHC_DOWN, "fdr"] < 0.05).all() and (table.loc[LIHC_DOWN, "nes"] < 0).all()
    assert table.at["HALLMARK_EPITHELIAL_MESENCHYMAL_TRANSITION", "fdr"] > 0.1


@pytest.mark.xfail(
    strict=True,
    reason="issue 31 asks these not be called; on the paired log2 fold change GSEA's q is "
    "0.036-0.045 for both over seeds 0-3 (1000 permutations), 160-190 permuted ES of their sign",
)
def test_lihc_estrogen_late_and_uv_dn_are_not_called(hallmark, lihc_paired):
    table = lihc_gsea(hallmark, lihc_paired, "log2fc")
    assert not (table.loc[LIHC_MARGINAL, "fdr"] < 0.05).any()


def test_lihc_paired_t_is_lopsided_and_its_depleted_sets_are_not_judged(hallmark, lihc_paired):
    """Paired t: 8,706 positive vs 2,797 negative scores leave the down sets no negative null."""
    table = lihc_gsea(hallmark, lihc_paired, "t")
    assert (table.loc[LIHC_UP, "fdr"] < 0.05).all()
    down = table.loc[[*LIHC_DOWN, *LIHC_MARGINAL]]
    assert (down["es"] < 0).all() and down["null_too_small"].all() and down["fdr"].isna().all()
    assert down["note"].str.contains("FDR not judged").all()
    assert not (table["nes"].abs() == 1.0).any()
    emt = table.loc["HALLMARK_EPITHELIAL_MESENCHYMAL_TRANSITION"]
    assert not emt["fdr"] < 0.05  # FDR 0 under the former BH over b/n
