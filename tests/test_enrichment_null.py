"""With no planted effect (strength 0) no Hallmark set reaches FDR < 0.05 (issue 31).

The radiogenomics cohort is simulated at its default size (60 patients, 12 000 genes) with the
default seed and the default plants at strength 0, and goes through the project's own path with
the default settings: GDC STAR files -> one sample per patient -> expressed protein-coding
genes -> VST -> Spearman correlation with the imaging features -> gene list (P rule and FDR
rule) -> ORA of both lists and GSEA preranked by the signed strongest rho. The imaging features
are as many as the default run correlates (the ten selected deep features, the DLTR score and
the robust radiomic features): correlated mixtures of the latent traits plus noise, as radiomic
features are. tests/test_radiogenomics.py checks the same null with five features at seed 31.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, load_default_config

from hccrad.cohorts.rnaseq_sim import simulate_rnaseq
from hccrad.cohorts.simulate import TRAITS, simulate_cohort
from hccrad.core.seeding import rng_for
from hccrad.radiogenomics.correlate import correlate
from hccrad.radiogenomics.enrich import gsea_prerank, load_collection
from hccrad.radiogenomics.expression import (
    filter_expressed_genes,
    load_star_cohort,
    variance_stabilise,
)
from hccrad.radiogenomics.gene_list import (
    background_symbols,
    gene_list,
    gene_list_enrichment,
    long_table,
    ranking_statistic,
    rho_matrix,
)

TPM = ROOT / "resources/tcga_lihc/linnorm_LIHC_tpm_10pairs.csv.gz"
FDR = 0.05
# Features of the default run's correlation: 10 deep features, the DLTR score and 271 robust
# radiomic features (results/sim_tace/radiomics/features_robust.parquet of the default config).
N_FEATURES = 10 + 1 + 271


def imaging_features(traits: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Features x patients: random mixtures of the latent traits plus noise (r ~ 0.3-0.9)."""
    rng = rng_for(seed, "test", "null_imaging")
    latent = traits[list(TRAITS)].to_numpy()
    loadings = rng.normal(size=(latent.shape[1], N_FEATURES))
    signal = latent @ loadings / np.sqrt((loadings**2).sum(axis=0))
    noise = rng.uniform(0.3, 1.5, N_FEATURES) * rng.standard_normal(signal.shape)
    names = [f"feature_{i:03d}" for i in range(N_FEATURES)]
    return pd.DataFrame(signal + noise, index=traits.index, columns=names).T


def null_enrichment(tmp: Path) -> dict[str, pd.DataFrame]:
    """ORA (both gene-list rules) and GSEA of the default cohort with every plant at strength 0."""
    config = load_default_config()
    seed, settings = config["seed"], config["radiogenomics"]
    cohort_cfg = copy.deepcopy(config["simulate"]["radiogenomics"])
    plants = [dict(spec, strength=0.0) for spec in cohort_cfg["planted_pathways"]]
    cohort_cfg["planted_pathways"] = plants
    gmt = ROOT / config["gene_sets"]
    simulated = simulate_cohort(cohort_cfg, seed)
    traits = simulated["latent"].filter(like="z_").rename(columns=lambda c: c.removeprefix("z_"))
    rnaseq = simulate_rnaseq(
        traits, cohort_cfg["rnaseq"], plants, gmt, TPM, tmp / "files", seed, cohort_cfg["name"]
    )
    rnaseq["sample_sheet"].to_csv(tmp / "sample_sheet.tsv", sep="\t", index=False)
    expression_cfg = settings["expression"]
    cohort = load_star_cohort(
        tmp / "sample_sheet.tsv",
        tmp / "files",
        count_column=expression_cfg["count_column"],
        sample_types=expression_cfg["sample_types"],
        progress=False,
    )
    counts, _ = filter_expressed_genes(
        cohort.counts,
        cohort.genes,
        min_count=expression_cfg["min_count"],
        min_fraction=expression_cfg["min_fraction"],
        biotypes=expression_cfg["biotypes"],
    )
    expression = variance_stabilise(counts, trend_genes=expression_cfg["vst_trend_genes"])
    expression = expression.expression
    features = imaging_features(traits.loc[expression.columns], seed)
    result = correlate(features, expression, method="spearman", device="numpy", progress=False)
    symbols = cohort.genes["symbol"]
    pairs = long_table(result, symbols)
    listed = gene_list(
        result,
        symbols,
        p_threshold=settings["gene_list"]["p_threshold"],
        fdr_threshold=settings["gene_list"]["fdr_threshold"],
        fdr_scope=settings["gene_list"]["fdr_scope"],
    )
    enrichment_cfg = settings["enrichment"]
    collection = load_collection(gmt)
    sizes = {"min_size": enrichment_cfg["min_size"], "max_size": enrichment_cfg["max_size"]}
    ora = gene_list_enrichment(listed, background_symbols(pairs), collection, **sizes)
    ranking = ranking_statistic(enrichment_cfg["ranking"], symbols, rho=rho_matrix(pairs))
    gsea = gsea_prerank(
        ranking,
        collection,
        permutations=enrichment_cfg["permutations"],
        seed=seed,
        min_null=enrichment_cfg["min_same_sign_null"],
        **sizes,
    ).table
    return {"ora": ora, "gsea": gsea, "genes": listed, "p": pd.DataFrame(result.p)}


@pytest.fixture(scope="module")
def null_run(tmp_path_factory) -> dict[str, pd.DataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydeseq2's trend-fit fallback
        return null_enrichment(tmp_path_factory.mktemp("null"))


def test_no_hallmark_set_at_fdr_005_without_a_planted_effect(null_run) -> None:
    ora, gsea = null_run["ora"], null_run["gsea"]
    assert set(ora["gene_list"]) == {"p_rule", "fdr_rule"}
    for rule, rows in ora.groupby("gene_list"):
        assert len(rows) >= 40, rule  # the Hallmark sets were tested, not skipped
        significant = rows.loc[rows["fdr"] < FDR, "pathway"].tolist()
        assert not significant, f"ORA {rule}: {significant}"
    # Every GSEA set is judged (a set without an FDR would pass this test by default).
    assert len(gsea) >= 40 and not gsea["null_too_small"].any()
    assert gsea["fdr"].notna().all()
    significant = gsea.loc[gsea["fdr"] < FDR, "pathway"].tolist()
    assert not significant, f"GSEA: {significant}"


def test_the_null_run_is_a_null(null_run) -> None:
    """Feature-gene P values are uniform: the nominal rate, and no pair passes BH."""
    p = null_run["p"].to_numpy()
    assert 0.04 < float((p < 0.05).mean()) < 0.06
    assert not null_run["genes"]["pass_fdr_rule"].any()
