"""Gene-set enrichment of correlation results: over-representation (ORA) and preranked GSEA.

Both analyses run offline on a GMT file (any collection; MSigDB Hallmark by default) through
gseapy: ``gseapy.enrich`` (hypergeometric test) and ``gseapy.prerank`` (GSEA permutation test).
gseapy is always given a dict of gene sets, never a library name, so nothing is downloaded.

Conventions
-----------
- Genes are identified as in the GMT (HGNC symbols for ``*.symbols.gmt``); map Ensembl ids
  to symbols first (:func:`collapse_to_symbols`).
- ORA background = the genes that were tested (expressed and correlated), not the genome. Sets
  are restricted to the background before the ``min_size``/``max_size`` filter, and the BH
  FDR counts every set that passed the filter, including those without a hit (P = 1).
- GSEA: ``fdr`` is GSEA's own q value as gseapy computes it (the NES of each set against the
  NES of all permuted sets of the same sign, Subramanian et al. 2005), not BH over nominal P.
  ``p_value`` is the sign-matched permutation P, (b + 1) / (n + 1) over the n permutations whose
  ES has the set's sign. A lopsided ranking (most scores of one sign) can leave a set with
  almost no permuted ES of its sign; then NES (scaled by their mean) and P cannot be judged:
  such a set is flagged (``null_too_small``), its ``fdr`` is NaN and ``note`` says why.
- Every table carries ``collection`` and ``collection_version`` parsed from the GMT file name.

Why genes are handed to gseapy as tokens (``G000001``, ...) rather than symbols: when fewer than
90% of the query genes are upper case while the GMT is, gseapy 1.3.1 upper-cases the query and
the background but not the sets, which silently loses mixed-case symbols such as ``C1orf112``.
Upper-case tokens never trigger that path; results are mapped back to symbols.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from hccrad.core.genesets import read_gmt

# The four programmes the DLTR study reports; drawn as running-score plots by default.
DEFAULT_PATHWAYS: tuple[str, ...] = (
    "HALLMARK_ANGIOGENESIS",
    "HALLMARK_EPITHELIAL_MESENCHYMAL_TRANSITION",
    "HALLMARK_HYPOXIA",
    "HALLMARK_TGF_BETA_SIGNALING",
)
# MSigDB file names: <collection>.v<version>.<species>.<identifiers>.gmt
MSIGDB_FILE_NAME = re.compile(
    r"^(?P<name>.+?)\.(?P<version>v\d{4}\.\d+)\.(?P<species>Hs|Mm)\.(?P<ids>[A-Za-z_]+)\.gmt$"
)
ORA_COLUMNS: tuple[str, ...] = (
    "collection",
    "collection_version",
    "pathway",
    "set_size_gmt",
    "set_size",
    "list_size",
    "background_size",
    "overlap",
    "expected",
    "fold_enrichment",
    "p_value",
    "fdr",
    "overlap_genes",
)
GSEA_COLUMNS: tuple[str, ...] = (
    "collection",
    "collection_version",
    "pathway",
    "set_size_gmt",
    "set_size",
    "es",
    "nes",
    "p_value",
    "fdr",
    "fwer_p",
    "null_same_sign",
    "null_too_small",
    "leading_edge_size",
    "leading_edge",
    "permutations",
    "seed",
    "note",
)
# Fewest permuted ES of a set's sign that judge it: the NES divides by their mean, and the
# smallest P is 1/(n+1) (0.02 at 50), which BH over a Hallmark-size collection can still pass.
MIN_SAME_SIGN_NULL = 50


@dataclass(frozen=True)
class GeneSetCollection:
    """Gene sets of one GMT file with the collection's name and version."""

    name: str
    version: str
    gene_sets: dict[str, list[str]]


@dataclass(frozen=True)
class PrerankResult:
    """GSEA preranked results: the tidy table, the sorted ranking and the tested sets."""

    table: pd.DataFrame
    ranking: pd.Series  # descending score, ties by gene name: the order GSEA walked
    gene_sets: dict[str, list[str]]  # tested sets restricted to the ranked genes


def collection_name_version(path: str | Path) -> tuple[str, str]:
    """(name, version) from an MSigDB GMT file name; (file stem, 'unversioned') otherwise."""
    file_name = Path(path).name
    match = MSIGDB_FILE_NAME.match(file_name)
    if match is None:
        return Path(path).stem, "unversioned"
    return match["name"], f"{match['version']}.{match['species']}.{match['ids']}"


def load_collection(path: str | Path) -> GeneSetCollection:
    """Read a GMT file into a collection named and versioned from its file name."""
    name, version = collection_name_version(path)
    return GeneSetCollection(name=name, version=version, gene_sets=read_gmt(path))


def restrict_gene_sets(
    gene_sets: Mapping[str, Sequence[str]], universe: Iterable[str], min_size: int, max_size: int
) -> dict[str, list[str]]:
    """Sets cut down to the universe's genes, kept when min_size <= size <= max_size."""
    if min_size < 1 or max_size < min_size:
        raise ValueError(f"need 1 <= min_size <= max_size, got {min_size} and {max_size}")
    universe = set(universe)
    restricted = {}
    for name, genes in gene_sets.items():
        kept = list(dict.fromkeys(g for g in genes if g in universe))
        if min_size <= len(kept) <= max_size:
            restricted[name] = kept
    return restricted


def collapse_to_symbols(values: pd.Series, symbols: pd.Series) -> pd.Series:
    """Re-index values by gene symbol, keeping the largest |value| where ids share a symbol."""
    mapped = pd.DataFrame({"value": values, "symbol": symbols.reindex(values.index)})
    mapped = mapped.dropna(subset=["symbol"]).loc[lambda f: f["symbol"] != ""]
    mapped["order"] = -mapped["value"].abs()
    # Stable sort plus gene id as tie-break: the kept id does not depend on the input order.
    mapped = mapped.rename_axis("gene_id").reset_index()
    mapped = mapped.sort_values(["order", "gene_id"], kind="stable")
    kept = mapped.drop_duplicates("symbol").set_index("symbol")["value"]
    return kept.rename_axis("gene").rename(values.name)


def _tokens(genes: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Upper-case gseapy-safe token per gene, and the map back (see the module docstring)."""
    to_token = {gene: f"G{i:06d}" for i, gene in enumerate(genes)}
    return to_token, {token: gene for gene, token in to_token.items()}


def _encode_sets(
    gene_sets: Mapping[str, Sequence[str]], to_token: Mapping[str, str]
) -> dict[str, list[str]]:
    """Gene sets with every gene replaced by its token."""
    return {name: [to_token[g] for g in genes] for name, genes in gene_sets.items()}


def _unique_genes(genes: Iterable[str], what: str) -> list[str]:
    """The genes as a list of strings, refusing duplicates and empty names."""
    index = pd.Index([str(g) for g in genes])
    if index.duplicated().any():
        raise ValueError(
            f"{what}: duplicated genes {index[index.duplicated()].unique()[:10].tolist()}"
        )
    if (index.str.strip() == "").any():
        raise ValueError(f"{what}: empty gene names")
    return index.tolist()


def over_representation(
    gene_list: Iterable[str],
    background: Iterable[str],
    collection: GeneSetCollection,
    min_size: int = 10,
    max_size: int = 500,
) -> pd.DataFrame:
    """Hypergeometric ORA of a gene list against the tested genes, one row per tested set."""
    import gseapy  # slow import (~2-5 s): only when an analysis runs

    query = _unique_genes(gene_list, "gene list")
    universe = sorted(_unique_genes(background, "background"))
    outside = sorted(set(query) - set(universe))
    if outside:
        raise ValueError(
            f"{len(outside)} gene(s) of the list are not in the background (the genes tested), "
            f"e.g. {outside[:10]}; the background must contain every listed gene"
        )
    if not query:
        raise ValueError("the gene list is empty")
    tested = restrict_gene_sets(collection.gene_sets, universe, min_size, max_size)
    if not tested:
        raise ValueError(
            f"no gene set of {collection.name} has {min_size}-{max_size} genes in the background"
            f" of {len(universe)} genes; are the identifiers the GMT's ({collection.version})?"
        )
    to_token, _ = _tokens(universe)
    result = gseapy.enrich(
        gene_list=sorted(to_token[g] for g in query),
        gene_sets=_encode_sets(tested, to_token),
        background=[to_token[g] for g in universe],
        outdir=None,
        no_plot=True,
    )
    result.close()  # gseapy opens a logger per call; release its handlers now
    # gseapy reports only sets with at least one hit; the others enter BH with P = 1.
    p_value = pd.Series(1.0, index=list(tested))
    if result.res2d is not None and len(result.res2d):
        p_value.update(result.res2d.set_index("Term")["P-value"])
    query_set = set(query)
    overlap_genes = {name: [g for g in genes if g in query_set] for name, genes in tested.items()}
    table = pd.DataFrame({"pathway": list(tested)})
    table["set_size_gmt"] = [len(set(collection.gene_sets[n])) for n in tested]
    table["set_size"] = [len(tested[n]) for n in tested]
    table["list_size"] = len(query)
    table["background_size"] = len(universe)
    table["overlap"] = [len(overlap_genes[n]) for n in tested]
    table["expected"] = table["set_size"] * len(query) / len(universe)
    table["fold_enrichment"] = table["overlap"] / table["expected"]
    table["p_value"] = p_value.loc[table["pathway"]].to_numpy()
    table["fdr"] = benjamini_hochberg(table["p_value"].to_numpy())
    table["overlap_genes"] = [";".join(sorted(overlap_genes[n])) for n in tested]
    return _finish(table, collection, ORA_COLUMNS)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH-adjusted P (scipy); NaN P values stay NaN and do not count as tests."""
    adjusted = np.full(p_values.shape, np.nan)
    finite = np.isfinite(p_values)
    if finite.any():
        adjusted[finite] = stats.false_discovery_control(p_values[finite], method="bh")
    return adjusted


def _finish(
    table: pd.DataFrame, collection: GeneSetCollection, columns: Sequence[str]
) -> pd.DataFrame:
    """Add the collection columns, order rows by P then name, and columns by the schema."""
    table = table.assign(collection=collection.name, collection_version=collection.version)
    table = table.sort_values(["p_value", "pathway"], kind="stable").reset_index(drop=True)
    return table.loc[:, list(columns)]


def sorted_ranking(ranking: pd.Series) -> pd.Series:
    """Ranking in descending order with ties broken by gene name, refusing NaN/inf/duplicates."""
    _unique_genes(ranking.index, "ranking")
    values = ranking.astype(float)
    if not np.isfinite(values.to_numpy()).all():
        bad = values.index[~np.isfinite(values.to_numpy())].tolist()
        raise ValueError(f"ranking: non-finite scores for {len(bad)} gene(s), e.g. {bad[:10]}")
    frame = pd.DataFrame({"gene": values.index.astype(str), "score": values.to_numpy()})
    frame = frame.sort_values(["score", "gene"], ascending=[False, True], kind="stable")
    return pd.Series(frame["score"].to_numpy(), index=pd.Index(frame["gene"], name="gene"))


def _prerank_with_null(**kwargs) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """gseapy.prerank's table plus each set's permuted ES, which gseapy computes but drops."""
    import gseapy  # slow import (~2-5 s): only when an analysis runs

    class _KeepNull(gseapy.Prerank):
        """Prerank that keeps the per-set null ES of its summaries (to judge sign-matched nulls)."""

        def to_df(self, gsea_summary: list, *args: object, **kw: object) -> None:
            self.esnull = {gs.term: np.asarray(gs.esnull, dtype=float) for gs in gsea_summary}
            super().to_df(gsea_summary, *args, **kw)

    runner = _KeepNull(**kwargs)
    runner.run()
    return runner.res2d, runner.esnull


def sign_matched_null(es: float, null: np.ndarray) -> tuple[int, float]:
    """Permuted ES of the observed ES's sign (n) and the permutation P (b + 1) / (n + 1).

    GSEA compares a positive ES only with positive permuted ES and a negative one only with
    negative ones (gseapy's sign split: ES >= 0 is positive). gseapy reports b / n, which is 0
    when no permuted ES is as extreme and 0 / 0 = 0 or 1 when none has the sign; the +1 keeps
    P above zero and makes an empty null P = 1 (Phipson and Smyth 2010).
    """
    same = null[null >= 0] if es >= 0 else null[null < 0]
    extreme = int((same >= es).sum()) if es >= 0 else int((same <= es).sum())
    return len(same), (extreme + 1) / (len(same) + 1)


def _null_note(es: float, n_same: int, permutations: int, min_null: int, q: float) -> str:
    """Why a set's sign-matched null cannot judge it, in words ('' when it can)."""
    if n_same >= min_null:
        return ""
    sign = "positive" if es >= 0 else "negative"
    what = "NES undefined" if n_same == 0 else "NES and P unreliable"
    count = "none" if n_same == 0 else f"only {n_same}"
    return (
        f"{count} of {permutations} permuted ES {sign} (fewer than {min_null}): "
        f"{what}, FDR not judged (gseapy's q {q:.3g}); the ranking is lopsided"
    )


def gsea_prerank(
    ranking: pd.Series,
    collection: GeneSetCollection,
    permutations: int = 1000,
    seed: int = 0,
    threads: int = 1,
    min_size: int = 15,
    max_size: int = 500,
    weight: float = 1.0,
    min_null: int = MIN_SAME_SIGN_NULL,
) -> PrerankResult:
    """GSEA preranked (gene-set permutations) of a score per gene, e.g. rho or a DE statistic."""
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    ordered = sorted_ranking(ranking)
    tested = restrict_gene_sets(collection.gene_sets, ordered.index, min_size, max_size)
    if not tested:
        raise ValueError(
            f"no gene set of {collection.name} has {min_size}-{max_size} genes in the ranking "
            f"of {len(ordered)} genes; are the identifiers the GMT's ({collection.version})?"
        )
    to_token, to_gene = _tokens(list(ordered.index))
    tokens = pd.Series(ordered.to_numpy(), index=[to_token[g] for g in ordered.index])
    # ascending=None: gseapy keeps our order, so ties are broken by gene name, not by the
    # input order. gseapy caps threads at cpu_count - 1; results do not depend on threads.
    raw, nulls = _prerank_with_null(
        rnk=tokens,
        gene_sets=_encode_sets(tested, to_token),
        min_size=min_size,
        max_size=max_size,
        permutation_num=permutations,
        weight=weight,
        ascending=None,
        threads=threads,
        seed=seed,
        outdir=None,
        no_plot=True,
    )
    leading = [
        [to_gene[t] for t in str(genes).split(";") if t] for genes in raw["Lead_genes"].fillna("")
    ]
    es = raw["ES"].astype(float).to_numpy()
    q = raw["FDR q-val"].astype(float).to_numpy()
    null = [sign_matched_null(e, nulls[term]) for e, term in zip(es, raw["Term"], strict=True)]
    n_same = np.array([n for n, _ in null])
    too_small = n_same < min_null
    table = pd.DataFrame(
        {
            "pathway": raw["Term"].to_numpy(),
            "es": es,
            # An empty sign-matched null has no mean to scale by: gseapy then reports -1 or 1.
            "nes": np.where(n_same == 0, np.nan, raw["NES"].astype(float).to_numpy()),
            "p_value": [p for _, p in null],
            "fdr": np.where(too_small, np.nan, q),
            "fwer_p": raw["FWER p-val"].astype(float).to_numpy(),
            "null_same_sign": n_same,
            "null_too_small": too_small,
            "leading_edge_size": [len(genes) for genes in leading],
            "leading_edge": [";".join(genes) for genes in leading],
            "note": [
                _null_note(e, n, permutations, min_null, qv)
                for e, n, qv in zip(es, n_same, q, strict=True)
            ],
        }
    )
    table["set_size_gmt"] = [len(set(collection.gene_sets[n])) for n in table["pathway"]]
    table["set_size"] = [len(tested[n]) for n in table["pathway"]]
    table["permutations"] = permutations
    table["seed"] = seed
    table = _finish(table, collection, GSEA_COLUMNS)
    # gseapy also skips a set that covers the whole ranking; keep the sets it tested.
    tested = {name: tested[name] for name in table["pathway"]}
    return PrerankResult(table=table, ranking=ordered, gene_sets=tested)


def prerank_result_from_files(
    table_path: str | Path, ranking_path: str | Path, collection: GeneSetCollection
) -> PrerankResult:
    """A GSEA run as written by the workflow (table, ranking in walk order): for redrawing."""
    table = pd.read_csv(table_path, sep="\t")
    ranking = pd.read_csv(ranking_path, sep="\t", index_col=0, float_precision="round_trip")
    ranking = ranking.iloc[:, 0]
    ranking.index = ranking.index.astype(str)
    # The file keeps GSEA's walking order (ties broken by name): no re-sorting here.
    ranked = set(ranking.index)
    tested = {
        name: [g for g in dict.fromkeys(collection.gene_sets[name]) if g in ranked]
        for name in table["pathway"]
    }
    return PrerankResult(table=table, ranking=ranking, gene_sets=tested)


def running_enrichment_score(
    ranking: pd.Series, gene_set: Iterable[str], weight: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """GSEA running score along a descending ranking, and the positions of the set's genes."""
    hit = ranking.index.isin(list(gene_set))
    if not hit.any() or hit.all():
        raise ValueError("the gene set must contain some, but not all, ranked genes")
    hit_weight = np.abs(ranking.to_numpy(dtype=float)) ** weight * hit
    # Subramanian et al. 2005: hits step up by their weight share, misses step down evenly.
    step = np.where(hit, hit_weight / hit_weight.sum(), -1.0 / (~hit).sum())
    return np.cumsum(step), np.flatnonzero(hit)


def top_pathways(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The n judged rows with the smallest FDR (then P, then largest |NES| where present).

    Rows without an FDR (a GSEA set whose sign-matched null was too small) cannot be ranked.
    """
    keys = ["fdr", "p_value"]
    ordered = table[table["fdr"].notna()]
    ordered = ordered.assign(_abs_nes=-ordered["nes"].abs() if "nes" in ordered else 0.0)
    ordered = ordered.sort_values([*keys, "_abs_nes", "pathway"], kind="stable")
    return ordered.drop(columns="_abs_nes").head(n)


def running_score_pathways(
    table: pd.DataFrame,
    named: Sequence[str] = DEFAULT_PATHWAYS,
    fdr_threshold: float = 0.05,
    max_pathways: int = 9,
) -> list[str]:
    """Named pathways that were tested, then significant ones by FDR, at most max_pathways."""
    tested = set(table["pathway"])
    chosen = [p for p in named if p in tested]
    significant = top_pathways(table[table["fdr"] < fdr_threshold], len(table))["pathway"]
    chosen += [p for p in significant if p not in chosen]
    return chosen[:max_pathways]


def top_genes_by_rho(rho: pd.DataFrame, n_genes: int) -> list[str]:
    """The n genes (columns) with the largest maximum |rho| over features, ties by name."""
    strongest = rho.abs().max(axis=0).rename("abs_rho").rename_axis("gene").reset_index()
    strongest = strongest.sort_values(["abs_rho", "gene"], ascending=[False, True], kind="stable")
    return strongest["gene"].head(n_genes).tolist()
