"""hccrad.radiogenomics gene_list and imaging_features, and planted-truth recovery of the analysis.

The recovery tests run the library pipeline (GDC STAR files -> one sample per patient ->
expressed protein-coding genes -> VST -> correlation -> gene list -> ORA and GSEA) on the
simulated TCGA-like cohort at its default size, with imaging features that are noisy
measurements of the latent traits (as radiomic features are), and compare the pathways found
with the planted truth: the default seed and plants, another seed with other plants, and no
planted effect at all.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, load_default_config
from sklearn.metrics import roc_auc_score

from hccrad.cohorts.rnaseq_sim import simulate_rnaseq
from hccrad.cohorts.simulate import TRAITS, simulate_cohort
from hccrad.core.plan import RadiogenomicsInputError, check_radiogenomics_settings
from hccrad.core.seeding import rng_for
from hccrad.radiogenomics.correlate import ConstantRowsWarning, correlate
from hccrad.radiogenomics.enrich import GeneSetCollection, gsea_prerank, load_collection
from hccrad.radiogenomics.expression import (
    filter_expressed_genes,
    load_star_cohort,
    read_expression,
    variance_stabilise,
    write_expression,
)
from hccrad.radiogenomics.gene_list import (
    background_symbols,
    correlation_summary,
    dltr_groups,
    empty_ora_table,
    enrichment_without_planted,
    gene_list,
    gene_list_enrichment,
    long_table,
    planted_pathways,
    planted_recovery,
    ranking_statistic,
    rho_matrix,
    training_cutoff,
)
from hccrad.radiogenomics.imaging_features import (
    DLTR_FEATURE,
    assemble_imaging,
    match_patients,
    select_deep_features,
    univariable_auc,
)
from hccrad.stats.discrimination import youden_threshold

GMT = ROOT / "resources/genesets/h.all.v2025.1.Hs.symbols.gmt"
TPM = ROOT / "resources/tcga_lihc/linnorm_LIHC_tpm_10pairs.csv.gz"
FDR = 0.05
# Another seed with other plants: pathways far from the default four, one of them negative.
OTHER_SEED = 99
OTHER_PLANTS = [
    {"pathway": "HALLMARK_E2F_TARGETS", "trait": "tumour_size", "strength": 0.5},
    {
        "pathway": "HALLMARK_INTERFERON_GAMMA_RESPONSE",
        "trait": "capsule",
        "strength": 0.5,
        "direction": "negative",
    },
    {
        "pathway": "HALLMARK_ADIPOGENESIS",
        "trait": "hepatobiliary_hypointensity",
        "strength": 0.5,
        "direction": "positive",
    },
]


# --------------------------------------------------------------------------- small tables


def random_features(n_patients: int, n_features: int, seed: int) -> pd.DataFrame:
    """Patients x deep features with ties (rounded), named like the DLTR network's."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(size=(n_patients, n_features)), 1)
    return pd.DataFrame(
        values,
        index=[f"P{i:03d}" for i in range(n_patients)],
        columns=[f"deep_{j:04d}" for j in range(n_features)],
    )


def test_univariable_auc_matches_sklearn() -> None:
    features = random_features(40, 6, seed=1)
    outcome = pd.Series(np.random.default_rng(2).integers(0, 2, 40), index=features.index)
    auc = univariable_auc(features, outcome)
    for column in features:
        assert auc[column] == pytest.approx(roc_auc_score(outcome, features[column]), abs=1e-12)
    with pytest.raises(ValueError, match="single class"):
        univariable_auc(features, outcome * 0)


def test_selection_reads_training_rows_only_and_skips_constant_features() -> None:
    deep_train = random_features(50, 8, seed=3)
    outcome = pd.Series(np.random.default_rng(4).integers(0, 2, 50), index=deep_train.index)
    # deep_0003 predicts the outcome on training; deep_0005 is dead (all zero) on training.
    deep_train["deep_0003"] = outcome + np.random.default_rng(5).normal(0, 0.3, 50)
    deep_train["deep_0005"] = 0.0
    train = outcome.iloc[:35]  # the other 15 rows are test rows of the response cohort
    analysis = random_features(20, 8, seed=6).rename(index=lambda p: p.replace("P", "T"))
    analysis["deep_0006"] = 1.0  # constant in the radiogenomics cohort

    ranked = select_deep_features(deep_train.loc[train.index], train, analysis, top_k=3)
    assert ranked.index[0] == "deep_0003"
    assert ranked["selected"].sum() == 3
    assert ranked.loc["deep_0005", "reason"] == "constant in the training split"
    assert ranked.loc["deep_0006", "reason"] == "constant in the radiogenomics cohort"
    assert not ranked.loc[["deep_0005", "deep_0006"], "selected"].any()

    def selected_with(train_deep: pd.DataFrame) -> list[str]:
        imaging = assemble_imaging(
            analysis.index, analysis.index, analysis, train_deep, train, top_k=3
        )
        return imaging.selection.loc[imaging.selection["selected"], "feature"].tolist()

    # Scrambling the test rows of the response cohort changes nothing.
    scrambled = deep_train.copy()
    scrambled.iloc[35:] = np.random.default_rng(7).normal(size=(15, 8)) * 100
    assert selected_with(deep_train) == selected_with(scrambled)
    assert selected_with(deep_train) == ranked.index[ranked["selected"]].tolist()


def test_all_usable_features_and_dltr_score_and_radiomics() -> None:
    deep = random_features(12, 5, seed=8)
    outcome = pd.Series([0, 1] * 6, index=deep.index)
    score = pd.Series(np.linspace(0, 1, 12), index=deep.index)
    radiomics = pd.DataFrame({"arterial_tumour_mean": np.arange(12.0)}, index=deep.index)
    imaging = assemble_imaging(
        deep.index,
        deep.index,
        deep,
        deep,
        outcome,
        deep_selection="all",
        dltr_score=score,
        radiomics=radiomics,
    )
    assert list(imaging.matrix.index[-2:]) == [DLTR_FEATURE, "arterial_tumour_mean"]
    assert imaging.matrix.shape == (7, 12)
    sources = imaging.selection.set_index("feature")["source"]
    assert sources[DLTR_FEATURE] == "DLTR score"
    assert sources["arterial_tumour_mean"] == "radiomics"
    only_score = assemble_imaging(deep.index, deep.index, deep_selection="none", dltr_score=score)
    assert list(only_score.matrix.index) == [DLTR_FEATURE]


def test_patients_missing_on_either_side_are_listed_with_the_reason() -> None:
    analysed, table = match_patients(
        ["A", "B", "C", "D"],
        {"RNA-seq": ["A", "B", "C", "E"], "deep features": ["A", "B", "D", "E"]},
    )
    assert analysed == ["A", "B"]
    reasons = table["reason"].to_dict()
    assert reasons["C"] == "no deep features"
    assert reasons["D"] == "no RNA-seq"
    assert reasons["E"] == "not in the cohort sheet"
    assert not table.loc[["C", "D", "E"], "analysed"].any()
    with pytest.raises(RadiogenomicsInputError, match="at least 3"):
        assemble_imaging(
            ["A", "B"],
            ["A", "B"],
            deep_selection="none",
            dltr_score=pd.Series([0.1, 0.2], ["A", "B"]),
        )


def small_correlation(seed: int = 10) -> tuple[Any, pd.DataFrame, pd.DataFrame, pd.Series]:
    """Four features x 300 genes over 30 patients, the first 20 genes following feature f0."""
    rng = np.random.default_rng(seed)
    patients = [f"P{i}" for i in range(30)]
    features = pd.DataFrame(rng.normal(size=(4, 30)), index=["f0", "f1", "f2", "f3"])
    features.columns = patients
    expression = pd.DataFrame(
        rng.normal(size=(300, 30)), index=[f"G{i:03d}" for i in range(300)], columns=patients
    )
    expression.iloc[:20] += 1.5 * features.loc["f0"].to_numpy()
    symbols = pd.Series([f"SYM{i}" for i in range(300)], index=expression.index)
    result = correlate(features, expression, device="numpy", progress=False)
    return result, features, expression, symbols


def test_gene_list_matches_the_long_table() -> None:
    result, _, _, symbols = small_correlation()
    table = gene_list(result, symbols, p_threshold=0.05, fdr_threshold=0.05)
    pairs = long_table(result, symbols)
    passing = pairs[pairs["p"] < 0.05]
    assert set(table["gene_id"]) == set(passing["gene_id"].astype(str))
    best = passing.sort_values("p", kind="stable").drop_duplicates("gene_id")
    best = best.set_index(best["gene_id"].astype(str))
    mine = table.set_index("gene_id")
    assert (mine["feature"] == best.loc[mine.index, "feature"].astype(str)).all()
    np.testing.assert_allclose(mine["rho"], best.loc[mine.index, "rho"])
    np.testing.assert_allclose(mine["fdr"], best.loc[mine.index, "fdr_all"])
    counts = passing.groupby(passing["gene_id"].astype(str)).size()
    assert (mine["n_features_p"] == counts.loc[mine.index]).all()
    fdr_genes = set(pairs.loc[pairs["fdr_all"] < 0.05, "gene_id"].astype(str))
    assert set(mine.index[mine["pass_fdr_rule"]]) == fdr_genes
    assert {f"G{i:03d}" for i in range(20)} <= fdr_genes  # the planted genes pass both rules
    assert mine.loc[[f"G{i:03d}" for i in range(20)], "feature"].eq("f0").all()
    assert table["p"].is_monotonic_increasing


def test_summary_counts_genes_per_rule_and_by_chance() -> None:
    result, features, expression, _ = small_correlation()
    summary = correlation_summary(
        result, features, expression, null_permutations=30, seed=1
    ).set_index(["rule", "feature"])
    assert summary.loc[("p_rule", "f0"), "n_genes"] == (result.p[0] < 0.05).sum()
    assert summary.loc[("p_rule", "any"), "n_genes"] == (result.p < 0.05).any(axis=0).sum()
    # By chance each feature lists about 5% of the 300 genes, any of four about 18.5%.
    for feature in ("f1", "f2", "f3"):
        assert 9 <= summary.loc[("p_rule", feature), "n_genes_chance"] <= 21
    assert 40 <= summary.loc[("p_rule", "any"), "n_genes_chance"] <= 72
    assert summary.loc[("fdr_rule", "any"), "n_genes_chance"] < 2
    assert summary.loc[("fdr_rule", "f0"), "n_genes"] >= 20
    again = correlation_summary(result, features, expression, null_permutations=30, seed=1)
    pd.testing.assert_frame_equal(again.set_index(["rule", "feature"]), summary)


def test_ranking_statistics() -> None:
    result, _, _, symbols = small_correlation()
    pairs = long_table(result, symbols)
    rho = rho_matrix(pairs)
    strongest = ranking_statistic("max_abs_rho", symbols, rho=rho)
    assert strongest["SYM0"] == pytest.approx(np.abs(result.rho[:, 0]).max())
    assert (strongest >= 0).all()
    signed = ranking_statistic("signed_rho", symbols, rho=rho)
    np.testing.assert_allclose(signed.abs().sort_index(), strongest.sort_index())
    at_strongest = result.rho[np.abs(result.rho).argmax(axis=0), np.arange(result.rho.shape[1])]
    assert (signed < 0).any() and (signed > 0).any()
    assert signed["SYM2"] == pytest.approx(at_strongest[2])
    with pytest.raises(RadiogenomicsInputError, match="include_dltr_score"):
        ranking_statistic("dltr_score", symbols, rho=rho)
    signed = ranking_statistic("dltr_score", symbols, rho=rho.rename(index={"f0": DLTR_FEATURE}))
    assert signed["SYM3"] == pytest.approx(result.rho[0, 3])
    de = pd.DataFrame({"gene": ["G000", "G001"], "stat": [2.0, -3.0]})
    assert ranking_statistic("de_stat", symbols, de_table=de).to_dict() == {
        "SYM1": -3.0,
        "SYM0": 2.0,
    }
    assert background_symbols(pairs) == sorted(symbols)


def test_an_empty_list_gives_p_one_everywhere() -> None:
    collection = GeneSetCollection(
        "toy", "unversioned", {"A": [f"G{i}" for i in range(20)], "B": ["G1", "X"]}
    )
    background = [f"G{i}" for i in range(40)]
    table = empty_ora_table(background, collection, min_size=15, max_size=500)
    assert table["pathway"].tolist() == ["A"]
    assert table["p_value"].eq(1).all() and table["fdr"].eq(1).all()
    genes = pd.DataFrame(
        {"symbol": ["G1", "G2"], "pass_p_rule": [True, True], "pass_fdr_rule": [False, False]}
    )
    both = gene_list_enrichment(genes, background, collection, 15, 500)
    assert both.groupby("gene_list")["list_size"].first().to_dict() == {
        "fdr_rule": 0,
        "p_rule": 2,
    }


def test_dltr_groups() -> None:
    scores = pd.Series([0.1, 0.2, 0.3, 0.3, 0.9, 0.8], index=list("abcdef"))
    median = dltr_groups(scores, "median")
    assert median["cutoff"].iat[0] == pytest.approx(0.3)
    assert median["group"].tolist() == ["low", "low", "low", "low", "high", "high"]
    cutoff = dltr_groups(scores, "training_cutoff", cutoff=0.3)
    assert cutoff["group"].tolist() == ["low", "low", "high", "high", "high", "high"]
    with pytest.raises(RadiogenomicsInputError, match=r"use radiogenomics\.differential"):
        dltr_groups(scores, "training_cutoff", cutoff=0.85)


def test_training_cutoff_is_youden_on_training_rows_only() -> None:
    rng = np.random.default_rng(3)
    outcome = pd.Series(rng.integers(0, 2, 30), index=[f"T{i}" for i in range(30)])
    scores = pd.DataFrame(
        {"dltr_score": np.clip(0.3 * outcome + rng.uniform(0, 0.7, 30), 0, 1)},
        index=outcome.index,
    )
    # Test rows of the response cohort sit in the same table and must not matter.
    test_rows = pd.DataFrame(
        {"dltr_score": rng.uniform(0, 1, 10)}, index=[f"X{i}" for i in range(10)]
    )
    value = training_cutoff(pd.concat([scores, test_rows]), outcome)
    assert value == youden_threshold(outcome.to_numpy(), scores["dltr_score"].to_numpy())
    with pytest.raises(RadiogenomicsInputError, match="missing for training patients"):
        training_cutoff(scores.iloc[1:], outcome)


def test_settings_cross_checks() -> None:
    settings = copy.deepcopy(load_default_config()["radiogenomics"])
    check_radiogenomics_settings(settings, ["response", "proliferative"])
    with pytest.raises(RadiogenomicsInputError, match="not in endpoints"):
        check_radiogenomics_settings(settings, ["proliferative"])
    bad = copy.deepcopy(settings)
    bad["enrichment"]["ranking"] = "dltr_score"
    bad["features"]["include_dltr_score"] = False
    with pytest.raises(RadiogenomicsInputError, match="include_dltr_score"):
        check_radiogenomics_settings(bad, ["response"])
    bad = copy.deepcopy(settings)
    bad["features"] |= {"deep": "none", "include_dltr_score": False, "include_radiomics": False}
    with pytest.raises(RadiogenomicsInputError, match="no imaging feature"):
        check_radiogenomics_settings(bad, ["response"])


def test_expression_matrix_round_trip(tmp_path: Path) -> None:
    matrix = pd.DataFrame(
        [[1, 2, 3], [4, 5, 6]],
        index=pd.Index(["SIMG1", "SIMG2"], name="gene_id"),
        columns=["TCGA-Z9-A001", "TCGA-Z9-A002", "TCGA-Z9-A003"],
    )
    write_expression(matrix, tmp_path / "m.parquet")
    on_disk = pd.read_parquet(tmp_path / "m.parquet")
    assert on_disk.index.name == "patient_id" and on_disk.shape == (3, 2)
    pd.testing.assert_frame_equal(
        read_expression(tmp_path / "m.parquet"), matrix, check_names=False
    )


def test_planted_pathways_from_truth_or_genes() -> None:
    genes = pd.DataFrame(
        {"gene_name": ["A", "B"], "pathway": ["P1", "P1"], "trait": ["t", "t"], "strength": 0.5}
    )
    assert planted_pathways({}, genes) == [{"pathway": "P1", "trait": "t", "strength": 0.5}]
    spec = {"pathway": "P2", "trait": "u", "strength": 0.3}
    assert planted_pathways({"planted_pathways": [spec]}, genes) == [spec]


# --------------------------------------------------------------------------- planted truth


def run_analysis(tmp: Path, seed: int, plants: list[dict], noise_sd: float = 0.5) -> dict:
    """Simulate the radiogenomics cohort and run the library pipeline on noisy trait features."""
    cohort_cfg = copy.deepcopy(load_default_config()["simulate"]["radiogenomics"])
    cohort_cfg["planted_pathways"] = plants
    simulated = simulate_cohort(cohort_cfg, seed)
    traits = simulated["latent"].filter(like="z_").rename(columns=lambda c: c.removeprefix("z_"))
    rnaseq = simulate_rnaseq(
        traits, cohort_cfg["rnaseq"], plants, GMT, TPM, tmp / "files", seed, cohort_cfg["name"]
    )
    rnaseq["sample_sheet"].to_csv(tmp / "sample_sheet.tsv", sep="\t", index=False)

    cohort = load_star_cohort(tmp / "sample_sheet.tsv", tmp / "files", progress=False)
    counts, _ = filter_expressed_genes(cohort.counts, cohort.genes)
    expression = variance_stabilise(counts).expression
    # One noisy measurement of every latent imaging trait (r about 0.9 with it).
    latent = traits.loc[expression.columns, list(TRAITS)]
    noise = noise_sd * rng_for(seed, "test", "imaging").standard_normal(latent.shape)
    features = (latent + noise).T
    result = correlate(features, expression, device="numpy", progress=False)
    symbols = cohort.genes["symbol"]
    pairs = long_table(result, symbols)
    background = background_symbols(pairs)
    collection = load_collection(GMT)
    genes = gene_list(result, symbols)
    ora = gene_list_enrichment(genes, background, collection)
    ranking = ranking_statistic("signed_rho", symbols, rho=rho_matrix(pairs))
    gsea = gsea_prerank(ranking, collection, permutations=1000, seed=seed).table
    tables = {f"ora {rule}": rows for rule, rows in ora.groupby("gene_list", sort=False)}
    tables["gsea"] = gsea
    truth_plants = planted_pathways(simulated["truth"], rnaseq["effects"])
    without = enrichment_without_planted(
        rnaseq["effects"]["gene_name"].astype(str),
        collection,
        genes=genes,
        background=background,
        ranking=ranking,
        permutations=1000,
        seed=seed,
    )
    per_pathway, summary = planted_recovery(
        tables, without, truth_plants, rnaseq["effects"], collection, background, FDR
    )
    print(summary.to_string())
    return {
        "result": result,
        "genes": genes,
        "per_pathway": per_pathway,
        "summary": summary.set_index("analysis"),
        "tables": tables,
    }


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> dict:
    config = load_default_config()
    plants = config["simulate"]["radiogenomics"]["planted_pathways"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydeseq2's trend-fit fallback
        return run_analysis(tmp_path_factory.mktemp("rg_default"), config["seed"], plants)


@pytest.fixture(scope="module")
def other_run(tmp_path_factory) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return run_analysis(tmp_path_factory.mktemp("rg_other"), OTHER_SEED, OTHER_PLANTS)


def assert_recovered(run: dict, n_planted: int) -> None:
    """Every planted pathway significant everywhere; non-planted ones only via shared genes."""
    summary = run["summary"]
    assert set(summary.index) == {"ora p_rule", "ora fdr_rule", "gsea"}
    assert (summary["planted"] == n_planted).all()
    assert (summary["planted_significant"] == n_planted).all(), summary["planted_missed"]
    # Non-planted significant sets split by the removal test; few are "other" (at most two).
    assert (
        summary["driven_by_overlap"] + summary["other"] == summary["non_planted_significant"]
    ).all()
    assert (summary["other"] <= 2).all(), summary["other_names"]
    for analysis in ("ora p_rule", "gsea"):
        row = summary.loc[analysis]
        assert row["non_planted_significant"] <= row["non_planted_tested"] / 3, analysis


def test_default_seed_recovers_every_planted_pathway(default_run) -> None:
    assert_recovered(default_run, 4)
    gsea = default_run["tables"]["gsea"].set_index("pathway")
    assert not gsea["null_too_small"].any()  # a signed ranking leaves both nulls large
    config = load_default_config()
    for spec in config["simulate"]["radiogenomics"]["planted_pathways"]:
        # Signed ranking: features are the traits plus noise, so the planted sign is recovered.
        assert gsea.loc[spec["pathway"], "nes"] > 0 and gsea.loc[spec["pathway"], "fdr"] < FDR


def test_another_seed_with_other_plants_is_recovered(other_run) -> None:
    assert_recovered(other_run, len(OTHER_PLANTS))
    per_pathway = other_run["per_pathway"]
    defaults = per_pathway["pathway"].isin(["HALLMARK_ANGIOGENESIS", "HALLMARK_HYPOXIA"])
    assert not per_pathway.loc[defaults, "significant"].any()


def test_no_planted_effect_gives_nominal_rate_and_no_pathway(tmp_path) -> None:
    plants = [
        dict(spec, strength=0.0)
        for spec in load_default_config()["simulate"]["radiogenomics"]["planted_pathways"]
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        run = run_analysis(tmp_path, seed=31, plants=plants)
    p = run["result"].p
    assert 0.04 < float((p < 0.05).mean()) < 0.06
    # Per feature the rate scatters more than binomially: genes share co-expression modules.
    per_feature = (p < 0.05).mean(axis=1)
    assert ((per_feature > 0.02) & (per_feature < 0.08)).all(), per_feature
    summary = run["summary"]
    assert (summary["planted_significant"] == 0).all()
    assert (summary["non_planted_significant"] == 0).all()
    assert not run["genes"]["pass_fdr_rule"].any()


def test_constant_rows_do_not_break_the_gene_list() -> None:
    result, features, expression, symbols = small_correlation()
    expression = expression.copy()
    expression.iloc[5] = 1.0
    with pytest.warns(ConstantRowsWarning):
        result = correlate(features, expression, device="numpy", progress=False)
    table = gene_list(result, symbols)
    assert "G005" not in set(table["gene_id"])
    assert "SYM5" not in background_symbols(long_table(result, symbols))


def test_the_removal_test_separates_overlap_from_other_discoveries() -> None:
    """B shares planted genes with A (overlap-driven); C is shifted on its own (other)."""
    genes = [f"G{i:04d}" for i in range(2000)]
    planted_set = genes[:40]
    sets = {
        "A": planted_set,
        "B": planted_set[:25] + genes[1000:1015],  # mostly planted genes, rest at random
        "C": genes[100:140],  # an effect outside the truth: a false discovery
        **{f"N{k}": genes[200 + 40 * k : 240 + 40 * k] for k in range(15)},
    }
    collection = GeneSetCollection("toy", "unversioned", sets)
    rng = np.random.default_rng(4)
    ranking = pd.Series(rng.standard_normal(len(genes)), index=genes)
    ranking[planted_set] += 1.5
    ranking[sets["C"]] += 1.5
    truth = pd.DataFrame({"gene_name": planted_set, "pathway": "A"})
    listed = ranking[ranking > 1.5].index
    table = pd.DataFrame(
        {"symbol": listed, "pass_p_rule": True, "pass_fdr_rule": True}, index=range(len(listed))
    )
    settings = {"permutations": 200, "seed": 1, "min_size": 15, "max_size": 500}
    tables = gene_list_enrichment(table, genes, collection, 15, 500)
    tables = {f"ora {rule}": rows for rule, rows in tables.groupby("gene_list", sort=False)}
    tables["gsea"] = gsea_prerank(ranking, collection, permutations=200, seed=1).table
    without = enrichment_without_planted(
        planted_set, collection, genes=table, background=genes, ranking=ranking, **settings
    )
    spec = [{"pathway": "A", "trait": "t", "strength": 1.0}]
    rows, summary = planted_recovery(tables, without, spec, truth, collection, genes, FDR)
    gsea = rows[rows["analysis"] == "gsea"].set_index("pathway")
    assert gsea.loc["A", "class"] == "planted"
    assert gsea.loc["B", "class"] == "driven by overlap"  # loses significance without A's genes
    assert gsea.loc["C", "class"] == "other"  # stays significant: no share of planted genes
    row = summary.set_index("analysis").loc["gsea"]
    assert (row["driven_by_overlap"], row["driven_by_overlap_names"]) == (1, "B")
    assert "C" in row["other_names"].split(";")
    assert row["other"] == (gsea["class"] == "other").sum()
