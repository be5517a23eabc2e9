"""The radiogenomics gene list, the enrichment inputs, DLTR groups and the planted truth.

The statistics live in the modules beside this one: expression (counts, VST), correlate
(feature x gene correlation), differential (DESeq2) and enrich (ORA, GSEA); imaging_features
chooses the imaging features and the patients. This module decides what goes from the
correlations into the gene list and the enrichment:

- The gene list: a gene is listed when any selected feature correlates with it at P <
  ``p_threshold`` (the study's rule) and flagged when it also passes the FDR rule
  (Benjamini-Hochberg over all feature-gene pairs by default). Each gene is reported with its
  strongest feature (smallest P, ties by |rho| then name).
- The GSEA ranking (``ranking_statistic``): ``signed_rho`` (default) ranks genes by the signed
  rho of their strongest correlation with any selected feature, the threshold-free counterpart
  of the gene list that keeps the direction; ``max_abs_rho`` by its absolute value (unsigned:
  every score is positive, so GSEA's sign-matched null for a depleted set is nearly empty and
  such sets are flagged, not judged); ``dltr_score`` by their signed rho with the DLTR score;
  ``de_stat`` by DESeq2's Wald statistic (high vs low DLTR score).
- Planted-truth recovery (simulated cohorts): a significant non-planted set is "driven by
  overlap" only when it loses significance once the planted genes are removed from the ranking
  (GSEA) or from the list and background (ORA) and the enrichment is recomputed; else "other".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from hccrad.core.plan import RadiogenomicsInputError
from hccrad.radiogenomics.correlate import CorrelationResult
from hccrad.radiogenomics.correlation_null import null_rule_counts
from hccrad.radiogenomics.enrich import (
    GeneSetCollection,
    benjamini_hochberg,
    collapse_to_symbols,
    gsea_prerank,
    over_representation,
)
from hccrad.radiogenomics.expression import ID_COLUMN
from hccrad.radiogenomics.imaging_features import DLTR_FEATURE

RadiogenomicsRanking = Literal["signed_rho", "max_abs_rho", "dltr_score", "de_stat"]
FdrScope = Literal["all_pairs", "per_feature"]
FDR_COLUMNS: dict[str, str] = {"all_pairs": "fdr_all", "per_feature": "fdr_feature"}
GENE_LIST_COLUMNS: tuple[str, ...] = (
    "gene_id",
    "symbol",
    "feature",
    "rho",
    "p",
    "fdr",
    "fdr_feature",
    "n_features_p",
    "n_features_fdr",
    "pass_p_rule",
    "pass_fdr_rule",
)
RULES: tuple[str, ...] = ("p_rule", "fdr_rule")
# Classes of the truth-recovery table, for significant non-planted sets the removal test's.
CLASSES: tuple[str, ...] = ("planted", "driven by overlap", "other", "not significant")


# --------------------------------------------------------------------------- gene list


def long_table(
    result: CorrelationResult, symbols: pd.Series, max_p: float | None = None
) -> pd.DataFrame:
    """Feature-gene pairs with the gene symbol (feature, gene_id, symbol, rho, p, FDRs).

    ``max_p`` None: every pair. Else the pairs at P <= max_p and each gene's strongest pair,
    which is all the ORA background and the signed_rho/max_abs_rho GSEA rankings read.
    """
    if max_p is None:
        table = result.to_long()
    else:
        table = result.to_long(max_p=max_p, strongest_per_gene=True)
    table = table.rename(columns={"gene": "gene_id"})
    table.insert(2, "symbol", symbols.reindex(table["gene_id"].astype(str)).to_numpy())
    return table


def gene_list(
    result: CorrelationResult,
    symbols: pd.Series,
    p_threshold: float = 0.05,
    fdr_threshold: float = 0.05,
    fdr_scope: FdrScope = "all_pairs",
) -> pd.DataFrame:
    """Genes correlated with any feature at P < p_threshold, each with its strongest feature."""
    p = result.p
    fdr = getattr(result, FDR_COLUMNS[fdr_scope])
    with np.errstate(invalid="ignore"):
        pass_p = p < p_threshold
        pass_fdr = fdr < fdr_threshold
    listed = np.flatnonzero(pass_p.any(axis=0))
    # Strongest feature: smallest P (equal P means equal |rho|: same n and method); ties go to
    # the first feature in the matrix order (deep features by rank, DLTR score, radiomics).
    order = np.argmin(np.nan_to_num(p, nan=np.inf), axis=0)
    gene_ids = result.genes.astype(str)
    table = pd.DataFrame(
        {
            "gene_id": gene_ids[listed],
            "symbol": symbols.reindex(gene_ids[listed]).to_numpy(),
            "feature": result.features.astype(str)[order[listed]],
            "rho": result.rho[order[listed], listed],
            "p": p[order[listed], listed],
            "fdr": fdr[order[listed], listed],
            "fdr_feature": result.fdr_feature[order[listed], listed],
            "n_features_p": pass_p[:, listed].sum(axis=0),
            "n_features_fdr": pass_fdr[:, listed].sum(axis=0),
        }
    )
    table["pass_p_rule"] = True
    table["pass_fdr_rule"] = table["n_features_fdr"] > 0
    table = table.sort_values(["p", "gene_id"], kind="stable").reset_index(drop=True)
    return table.loc[:, list(GENE_LIST_COLUMNS)]


def _genes_passing(
    result: CorrelationResult, p_threshold: float, fdr_threshold: float, fdr_scope: FdrScope
) -> dict[str, np.ndarray]:
    """Per rule, a features x genes mask of passing pairs."""
    with np.errstate(invalid="ignore"):
        return {
            "p_rule": result.p < p_threshold,
            "fdr_rule": getattr(result, FDR_COLUMNS[fdr_scope]) < fdr_threshold,
        }


def correlation_summary(
    result: CorrelationResult,
    features: pd.DataFrame,
    expression: pd.DataFrame,
    p_threshold: float = 0.05,
    fdr_threshold: float = 0.05,
    fdr_scope: FdrScope = "all_pairs",
    null_permutations: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Genes (and pairs) passing each rule, per feature and for any feature, with the chance level.

    The chance level is the mean number over ``null_permutations`` runs with the patients of
    the imaging features permuted together (their correlation with each other kept, their link
    to expression broken): what the rule lists when nothing is there.
    """
    observed = _genes_passing(result, p_threshold, fdr_threshold, fdr_scope)
    # Counts of passing pairs and genes per permutation, not a full correlation per permutation
    # (null_rule_counts equals one; tests/test_correlate.py holds it).
    null = null_rule_counts(
        features,
        expression,
        method=result.method,
        p_threshold=p_threshold,
        fdr_threshold=fdr_threshold,
        fdr_scope=fdr_scope,
        null_permutations=null_permutations,
        seed=seed,
    )
    names = [*result.features.astype(str), "any"]
    rows = []
    for rule in RULES:
        passing = observed[rule]
        genes = np.append(passing.sum(axis=1), passing.any(axis=0).sum())
        pairs = np.append(passing.sum(axis=1), passing.sum())
        chance = null[rule].mean(axis=0) if null_permutations else np.full(len(names), np.nan)
        for i, name in enumerate(names):
            rows.append(
                {
                    "rule": rule,
                    "threshold": p_threshold if rule == "p_rule" else fdr_threshold,
                    "fdr_scope": "" if rule == "p_rule" else fdr_scope,
                    "feature": name,
                    "n_genes": int(genes[i]),
                    "n_pairs": int(pairs[i]),
                    "n_genes_chance": chance[i],
                    "genes_tested": len(result.genes),
                    "fraction_of_genes": genes[i] / len(result.genes),
                    "n_samples": result.n_samples,
                    "method": result.method,
                    "null_permutations": null_permutations,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- enrichment inputs


def background_symbols(correlations: pd.DataFrame) -> list[str]:
    """Symbols of the genes that were tested (a finite correlation in the long table).

    This is the ORA background: the genes that could have entered the list, not the genome.
    """
    tested = correlations.loc[np.isfinite(correlations["rho"].to_numpy()), "symbol"].dropna()
    return sorted({str(s) for s in tested if str(s)})


def rho_matrix(correlations: pd.DataFrame) -> pd.DataFrame:
    """Features x genes rho from the long table (feature, gene_id, rho)."""
    frame = correlations.assign(
        feature=correlations["feature"].astype(str), gene_id=correlations["gene_id"].astype(str)
    )
    return frame.pivot(index="feature", columns="gene_id", values="rho")


def gene_list_symbols(table: pd.DataFrame, rule: str) -> list[str]:
    """Symbols of the genes of a gene-list table that pass a rule (p_rule or fdr_rule)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    passing = table.loc[table[f"pass_{rule}"].astype(bool), "symbol"].dropna()
    return sorted({s for s in passing if s})


def strongest_rho(rho: pd.DataFrame) -> pd.Series:
    """Per gene (column), the signed rho of its largest |rho|; ties go to the first feature."""
    values = rho.to_numpy(dtype=float)
    strongest = np.argmax(np.nan_to_num(np.abs(values), nan=-1.0), axis=0)
    picked = values[strongest, np.arange(values.shape[1])]  # NaN where no feature was tested
    return pd.Series(picked, index=rho.columns)


def ranking_statistic(
    how: RadiogenomicsRanking,
    symbols: pd.Series,
    rho: pd.DataFrame | None = None,
    de_table: pd.DataFrame | None = None,
) -> pd.Series:
    """The per-symbol statistic GSEA ranks (see the module docstring for the choices)."""
    if how in ("signed_rho", "max_abs_rho", "dltr_score"):
        if rho is None:
            raise ValueError(f"ranking {how!r} needs the correlation table")
        if how == "signed_rho":
            values = strongest_rho(rho)
        elif how == "max_abs_rho":
            values = rho.abs().max(axis=0)
        else:
            if DLTR_FEATURE not in rho.index:
                raise RadiogenomicsInputError(
                    "ranking 'dltr_score' needs the DLTR score among the correlated features: "
                    "set radiogenomics.features.include_dltr_score: true"
                )
            values = rho.loc[DLTR_FEATURE]
    elif how == "de_stat":
        if de_table is None:
            raise ValueError("ranking 'de_stat' needs the differential-expression table")
        values = de_table.set_index("gene")["stat"]
    else:
        raise ValueError(f"unknown ranking {how!r}")
    values = values.dropna().rename(how)
    values.index = values.index.astype(str)
    return collapse_to_symbols(values, symbols)


def gene_list_enrichment(
    genes: pd.DataFrame,
    background: Sequence[str],
    collection: GeneSetCollection,
    min_size: int = 15,
    max_size: int = 500,
) -> pd.DataFrame:
    """ORA of the gene list under both rules (column gene_list: p_rule, fdr_rule)."""
    tables = []
    for rule in RULES:
        listed = gene_list_symbols(genes, rule)
        table = (
            over_representation(listed, background, collection, min_size, max_size)
            if listed
            else empty_ora_table(background, collection, min_size, max_size)
        )
        table.insert(0, "gene_list", rule)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def empty_ora_table(
    background: Sequence[str], collection: GeneSetCollection, min_size: int, max_size: int
) -> pd.DataFrame:
    """The ORA table of an empty gene list: every tested set with no overlap and P = 1."""
    from hccrad.radiogenomics.enrich import ORA_COLUMNS, restrict_gene_sets

    tested = restrict_gene_sets(collection.gene_sets, sorted(background), min_size, max_size)
    table = pd.DataFrame({"pathway": list(tested)})
    table["collection"], table["collection_version"] = collection.name, collection.version
    table["set_size_gmt"] = [len(set(collection.gene_sets[n])) for n in tested]
    table["set_size"] = [len(tested[n]) for n in tested]
    table["list_size"], table["background_size"] = 0, len(set(background))
    table["overlap"], table["expected"], table["fold_enrichment"] = 0, 0.0, np.nan
    table["p_value"] = 1.0
    table["fdr"] = benjamini_hochberg(table["p_value"].to_numpy())
    table["overlap_genes"] = ""
    return table.sort_values("pathway", kind="stable").reset_index(drop=True)[list(ORA_COLUMNS)]


# --------------------------------------------------------------------------- DLTR groups


def dltr_groups(
    scores: pd.Series, rule: Literal["median", "training_cutoff"], cutoff: float | None = None
) -> pd.DataFrame:
    """High/low DLTR-score group per patient: above the cohort median, or at/above a cutoff.

    ``median``: score > the median of these patients is high (ties go low), so the groups
    are as balanced as the ties allow. ``training_cutoff``: score >= ``cutoff`` (the Youden
    threshold of the training split, fitted elsewhere) is high, the rule of the trained model.
    """
    scores = scores.astype(float)
    if scores.isna().any():
        raise RadiogenomicsInputError(
            f"DLTR score missing for patients {list(scores.index[scores.isna()][:5])}"
        )
    if rule == "median":
        value = float(np.median(scores.to_numpy()))
        high = scores > value
    elif rule == "training_cutoff":
        if cutoff is None or not np.isfinite(cutoff):
            raise ValueError("rule 'training_cutoff' needs a finite cutoff")
        value = float(cutoff)
        high = scores >= value
    else:
        raise ValueError(f"unknown grouping rule {rule!r}")
    groups = pd.DataFrame(
        {
            "dltr_score": scores,
            "group": np.where(high, "high", "low"),
            "rule": rule,
            "cutoff": value,
        },
        index=pd.Index(scores.index.astype(str), name=ID_COLUMN),
    )
    sizes = groups["group"].value_counts()
    if min(sizes.get("high", 0), sizes.get("low", 0)) < 2:
        raise RadiogenomicsInputError(
            f"DLTR groups by {rule} (cutoff {value:.4g}): {sizes.get('high', 0)} high and "
            f"{sizes.get('low', 0)} low patients; differential expression needs at least 2 in "
            "each. With 'training_cutoff' the radiogenomics cohort's scores may sit on one side "
            "of the training threshold: use radiogenomics.differential.grouping: median"
        )
    return groups


def training_cutoff(scores: pd.DataFrame, train_outcome: pd.Series) -> float:
    """Youden threshold of the DLTR score on the response cohort's training split.

    ``scores`` is the response cohort's deep/<endpoint>/scores.tsv (indexed by patient_id;
    training rows hold out-of-fold scores); only rows of ``train_outcome`` are read.
    """
    from hccrad.stats.discrimination import youden_threshold

    missing = train_outcome.index.difference(scores.index)
    if len(missing):
        raise RadiogenomicsInputError(
            f"DLTR scores missing for training patients {list(missing[:5])}"
        )
    train_scores = scores.loc[train_outcome.index, "dltr_score"]
    return youden_threshold(
        train_outcome.to_numpy(), train_scores.to_numpy(), context="DLTR training scores"
    )


# --------------------------------------------------------------------------- planted truth


def planted_pathways(truth: Mapping[str, Any], planted_genes: pd.DataFrame) -> list[dict]:
    """The planted pathways of a simulated cohort: truth.json's list, else planted_genes.tsv's.

    Truth files written before truth.json listed the pathways only have them per gene.
    """
    if "planted_pathways" in truth:
        return [dict(spec) for spec in truth["planted_pathways"]]
    specs = planted_genes.drop_duplicates("pathway")
    return [
        {"pathway": row.pathway, "trait": row.trait, "strength": float(row.strength)}
        for row in specs.itertuples()
    ]


def enrichment_without_planted(
    planted_symbols: Iterable[str],
    collection: GeneSetCollection,
    genes: pd.DataFrame,
    background: Sequence[str],
    ranking: pd.Series,
    min_size: int = 15,
    max_size: int = 500,
    **gsea_settings: Any,
) -> dict[str, pd.DataFrame]:
    """The enrichment tables recomputed with the planted genes removed (the removal test).

    ORA: the planted genes leave the list and the background; GSEA: they leave the ranking.
    Keys as in :func:`planted_recovery`'s ``tables`` ("ora p_rule", "ora fdr_rule", "gsea").
    """
    planted = set(planted_symbols)
    kept_genes = genes[~genes["symbol"].isin(planted)]
    kept_background = [g for g in background if g not in planted]
    ora = gene_list_enrichment(kept_genes, kept_background, collection, min_size, max_size)
    tables = {f"ora {rule}": rows for rule, rows in ora.groupby("gene_list", sort=False)}
    kept_ranking = ranking[~ranking.index.isin(planted)]
    tables["gsea"] = gsea_prerank(
        kept_ranking, collection, min_size=min_size, max_size=max_size, **gsea_settings
    ).table
    return tables


def recovery_class(planted: bool, significant: bool, significant_without: bool) -> str:
    """planted, driven by overlap (loses significance without the planted genes), other."""
    if planted:
        return "planted"
    if not significant:
        return "not significant"
    return "other" if significant_without else "driven by overlap"


def planted_recovery(
    tables: Mapping[str, pd.DataFrame],
    without_planted: Mapping[str, pd.DataFrame],
    planted: Sequence[Mapping[str, Any]],
    planted_genes: pd.DataFrame,
    collection: GeneSetCollection,
    background: Iterable[str],
    fdr_threshold: float = 0.05,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare enrichment tables with the planted pathways: per-pathway rows and a summary.

    ``tables`` maps an analysis name (e.g. "gsea", "ora p_rule") to its table (pathway, fdr);
    ``without_planted`` the same analyses recomputed without the planted genes
    (:func:`enrichment_without_planted`). ``planted_genes`` is the simulator's
    truth/planted_genes.tsv (gene_name, pathway). A significant non-planted set is "driven by
    overlap" when it is not significant without the planted genes (or no longer tested: its
    tested genes were mostly planted), "other" when it stays significant: a false discovery
    as far as the planted truth goes. Each row also reports the set's share of planted genes.
    """
    by_pathway = {spec["pathway"]: spec for spec in planted}
    planted_symbols = set(planted_genes["gene_name"].astype(str))
    universe = set(background)
    background_share = len(universe & planted_symbols) / max(len(universe), 1)
    per_pathway, summary = [], []
    for analysis, table in tables.items():
        rows = table.copy()
        rows["analysis"] = analysis
        rows["planted"] = rows["pathway"].isin(list(by_pathway))
        rows["trait"] = rows["pathway"].map(lambda p: by_pathway.get(p, {}).get("trait", ""))
        rows["significant"] = rows["fdr"] < fdr_threshold
        removed = without_planted[analysis].set_index("pathway")["fdr"]
        rows["fdr_without_planted"] = rows["pathway"].map(removed).astype(float)
        rows["class"] = [
            recovery_class(p, s, w < fdr_threshold)
            for p, s, w in zip(
                rows["planted"], rows["significant"], rows["fdr_without_planted"], strict=True
            )
        ]
        members = [set(collection.gene_sets.get(p, ())) & universe for p in rows["pathway"]]
        rows["planted_gene_share"] = [
            len(genes & planted_symbols) / len(genes) if genes else np.nan for genes in members
        ]
        keep = ["analysis", "pathway", "planted", "trait", "p_value", "fdr", "significant"]
        keep += [c for c in ("nes", "fold_enrichment", "note") if c in rows]
        keep += ["fdr_without_planted", "class", "planted_gene_share"]
        per_pathway.append(rows[keep])
        is_planted, significant = rows["planted"], rows["significant"]
        names = {c: ";".join(sorted(rows.loc[rows["class"] == c, "pathway"])) for c in CLASSES}
        summary.append(
            {
                "analysis": analysis,
                "fdr_threshold": fdr_threshold,
                "planted": len(by_pathway),
                "planted_tested": int(is_planted.sum()),
                "planted_significant": int((significant & is_planted).sum()),
                "non_planted_tested": int((~is_planted).sum()),
                "non_planted_significant": int((significant & ~is_planted).sum()),
                "driven_by_overlap": int((rows["class"] == "driven by overlap").sum()),
                "other": int((rows["class"] == "other").sum()),
                "planted_gene_share_background": background_share,
                "planted_missed": ";".join(
                    sorted(set(by_pathway) - set(rows.loc[significant, "pathway"]))
                ),
                "driven_by_overlap_names": names["driven by overlap"],
                "other_names": names["other"],
            }
        )
    return pd.concat(per_pathway, ignore_index=True), pd.DataFrame(summary)
