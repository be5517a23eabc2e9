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
- GSEA: ``fdr`` is Benjamini-Hochberg over the nominal permutation P of the tested sets;
  ``fdr_gsea`` is GSEA's own NES-based permutation q value as gseapy reports it.
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
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib import colors
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from scipy import stats
from scipy.cluster import hierarchy

from hccrad.core.genesets import read_gmt
from hccrad.figures.style import apply_style

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
    "fdr_gsea",
    "fwer_p",
    "leading_edge_size",
    "leading_edge",
    "permutations",
    "seed",
)
# Words of Hallmark names kept upper case in figure labels.
ACRONYMS: frozenset[str] = frozenset(
    [
        "AKT",
        "DN",
        "DNA",
        "E2F",
        "G2M",
        "IL2",
        "IL6",
        "JAK",
        "KRAS",
        "MTOR",
        "MTORC1",
        "MYC",
        "NFKB",
        "P53",
        "PI3K",
        "STAT3",
        "STAT5",
        "TGF",
        "TNFA",
        "UP",
        "UV",
        "V1",
        "V2",
        "WNT",
    ]
)
UNDERFLOW_FLOOR = 1e-300  # an ORA P of 0 is a floating-point underflow


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
    """BH-adjusted P (scipy); NaN (e.g. a GSEA set without a same-sign null) stays NaN."""
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


def gsea_prerank(
    ranking: pd.Series,
    collection: GeneSetCollection,
    permutations: int = 1000,
    seed: int = 0,
    threads: int = 1,
    min_size: int = 15,
    max_size: int = 500,
    weight: float = 1.0,
) -> PrerankResult:
    """GSEA preranked (gene-set permutations) of a score per gene, e.g. rho or a DE statistic."""
    import gseapy  # slow import (~2-5 s): only when an analysis runs

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
    result = gseapy.prerank(
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
    raw = result.res2d
    leading = [
        [to_gene[t] for t in str(genes).split(";") if t] for genes in raw["Lead_genes"].fillna("")
    ]
    table = pd.DataFrame(
        {
            "pathway": raw["Term"].to_numpy(),
            "es": raw["ES"].astype(float).to_numpy(),
            "nes": raw["NES"].astype(float).to_numpy(),
            "p_value": raw["NOM p-val"].astype(float).to_numpy(),
            "fdr_gsea": raw["FDR q-val"].astype(float).to_numpy(),
            "fwer_p": raw["FWER p-val"].astype(float).to_numpy(),
            "leading_edge_size": [len(genes) for genes in leading],
            "leading_edge": [";".join(genes) for genes in leading],
        }
    )
    table["set_size_gmt"] = [len(set(collection.gene_sets[n])) for n in table["pathway"]]
    table["set_size"] = [len(tested[n]) for n in table["pathway"]]
    table["fdr"] = benjamini_hochberg(table["p_value"].to_numpy())
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


def pathway_label(pathway: str) -> str:
    """Readable pathway name: 'HALLMARK_TGF_BETA_SIGNALING' -> 'TGF beta signaling'."""
    words = re.sub(r"^HALLMARK_", "", pathway).split("_")
    words = [w if w in ACRONYMS else w.lower() for w in words]
    label = " ".join(words)
    return label[:1].upper() + label[1:]


def top_pathways(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The n rows with the smallest FDR (then P, then largest |NES| where present)."""
    keys = ["fdr", "p_value"]
    ordered = table.assign(_abs_nes=-table["nes"].abs() if "nes" in table else 0.0)
    ordered = ordered.sort_values([*keys, "_abs_nes", "pathway"], kind="stable")
    return ordered.drop(columns="_abs_nes").head(n)


def fdr_floor(table: pd.DataFrame) -> float:
    """Smallest FDR a table can resolve: 1/permutations for GSEA, the underflow limit for ORA."""
    if "permutations" in table:
        return 1.0 / float(table["permutations"].max())
    return UNDERFLOW_FLOOR


def format_fdr(fdr: float, floor: float) -> str:
    """FDR for a figure label; a permutation FDR of 0 reads '< 1/permutations'."""
    return f"< {floor:.2g}" if fdr < floor else f"{fdr:.2g}"


def _size_column(table: pd.DataFrame) -> str:
    """The dot-size column: list overlap (ORA) or leading-edge size (GSEA)."""
    return "overlap" if "overlap" in table else "leading_edge_size"


def plot_enrichment_dots(
    table: pd.DataFrame,
    x: Literal["fdr", "nes"] = "fdr",
    n_pathways: int = 20,
    fdr_threshold: float = 0.05,
    title: str | None = None,
) -> Figure:
    """Dot plot of the top pathways: x = -log10 FDR or NES, size = overlap, colour = FDR."""
    apply_style()
    if x == "nes" and "nes" not in table:
        raise ValueError("x='nes' needs a GSEA table (no 'nes' column)")
    top = top_pathways(table, n_pathways).iloc[::-1]  # best at the top of the axis
    fdr = top["fdr"].clip(lower=fdr_floor(table)).to_numpy()
    x_values = -np.log10(fdr) if x == "fdr" else top["nes"].to_numpy()
    sizes = top[_size_column(table)].to_numpy(dtype=float)
    area = 12 + 180 * sizes / max(sizes.max(), 1.0)
    figure, ax = plt.subplots(figsize=(4.8, 0.5 + 0.22 * len(top)))
    norm = colors.LogNorm(vmin=min(fdr.min(), fdr_threshold / 10), vmax=1.0)
    dots = ax.scatter(
        x_values,
        np.arange(len(top)),
        s=area,
        c=fdr,
        cmap="viridis",
        norm=norm,
        edgecolors="black",
        linewidths=0.4,
        zorder=3,
    )
    ax.set_yticks(np.arange(len(top)), [pathway_label(p) for p in top["pathway"]])
    ax.set_ylim(-0.7, len(top) - 0.3)
    if x == "fdr":
        ax.axvline(-np.log10(fdr_threshold), color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlabel(r"$-\log_{10}$ FDR")
        ax.set_xlim(left=0)
    else:
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("Normalised enrichment score (NES)")
    colour_bar = figure.colorbar(dots, ax=ax, pad=0.02, fraction=0.06)
    colour_bar.set_label("FDR")
    legend_sizes = np.unique(np.linspace(max(sizes.min(), 1), max(sizes.max(), 1), 3).round())
    handles = [
        ax.scatter([], [], s=12 + 180 * s / max(sizes.max(), 1.0), c="white", edgecolors="black")
        for s in legend_sizes
    ]
    ax.legend(
        handles,
        [f"{int(s)}" for s in legend_sizes],
        title="Leading edge" if _size_column(table) == "leading_edge_size" else "Overlap",
        loc="lower right",
        frameon=False,
        borderaxespad=0.2,
    )
    collection = f"{table['collection'].iat[0]} {table['collection_version'].iat[0]}"
    ax.set_title(title or collection)
    ax.grid(axis="x", linewidth=0.4, alpha=0.5, zorder=0)
    return figure


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


def plot_running_scores(
    result: PrerankResult, pathways: Sequence[str], weight: float = 1.0, n_columns: int = 2
) -> Figure:
    """GSEA running-score curves with hit ticks, one panel per pathway, NES and FDR in each."""
    apply_style()
    pathways = [p for p in pathways if p in result.gene_sets]
    if not pathways:
        raise ValueError("none of the requested pathways was tested")
    rows_of_panels = int(np.ceil(len(pathways) / n_columns))
    figure = plt.figure(figsize=(3.4 * n_columns, 2.2 * rows_of_panels), layout="constrained")
    panels = figure.add_gridspec(rows_of_panels, n_columns)
    rows = result.table.set_index("pathway")
    floor = fdr_floor(result.table)
    positions = np.arange(1, len(result.ranking) + 1)
    for i, pathway in enumerate(pathways):
        # Curve and hit ticks share a panel without a gap, as in the GSEA desktop plot.
        cell = panels[divmod(i, n_columns)].subgridspec(2, 1, height_ratios=[4, 1], hspace=0)
        score_ax = figure.add_subplot(cell[0])
        hits_ax = figure.add_subplot(cell[1], sharex=score_ax)
        score, hits = running_enrichment_score(result.ranking, result.gene_sets[pathway], weight)
        nes, fdr = rows.at[pathway, "nes"], rows.at[pathway, "fdr"]
        score_ax.plot(positions, score, color="#D55E00" if nes >= 0 else "#0072B2", linewidth=1.0)
        score_ax.axhline(0, color="grey", linewidth=0.6)
        score_ax.set_ylabel("Running ES")
        score_ax.set_title(pathway_label(pathway))
        score_ax.text(
            0.98,
            0.95,
            f"NES {nes:.2f}\nFDR {format_fdr(fdr, floor)}",
            transform=score_ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
        )
        score_ax.tick_params(bottom=False, labelbottom=False)
        score_ax.spines["bottom"].set_visible(False)
        hits_ax.vlines(hits + 1, 0, 1, color="black", linewidth=0.4)
        hits_ax.set_yticks([])
        hits_ax.set_ylim(0, 1)
        hits_ax.spines["left"].set_visible(False)
        hits_ax.set_xlim(1, len(result.ranking))
        hits_ax.set_xlabel("Gene rank")
    return figure


def top_genes_by_rho(rho: pd.DataFrame, n_genes: int) -> list[str]:
    """The n genes (columns) with the largest maximum |rho| over features, ties by name."""
    strongest = rho.abs().max(axis=0).rename("abs_rho").rename_axis("gene").reset_index()
    strongest = strongest.sort_values(["abs_rho", "gene"], ascending=[False, True], kind="stable")
    return strongest["gene"].head(n_genes).tolist()


def _clustered_order(matrix: np.ndarray) -> np.ndarray:
    """Row order from average-linkage clustering (Euclidean), or as given for < 3 rows."""
    if len(matrix) < 3:
        return np.arange(len(matrix))
    return hierarchy.leaves_list(hierarchy.linkage(matrix, method="average", optimal_ordering=True))


def plot_rho_heatmap(
    rho: pd.DataFrame,
    n_genes: int = 40,
    gene_labels: Mapping[str, str] | None = None,
    cluster: bool = True,
    value_label: str = r"Spearman $\rho$",
    value_symbol: str = r"$\rho$",
    max_tick_labels: int = 60,
) -> Figure:
    """Heatmap of features (rows) x top genes (columns) of rho, symmetric colour bar."""
    apply_style()
    genes = top_genes_by_rho(rho, n_genes)
    matrix = rho.loc[:, genes].fillna(0.0)
    if cluster:
        matrix = matrix.iloc[_clustered_order(matrix.to_numpy()), :]
        matrix = matrix.iloc[:, _clustered_order(matrix.to_numpy().T)]
    limit = float(np.nanmax(np.abs(matrix.to_numpy()))) or 1.0
    width = min(1.8 + 0.14 * matrix.shape[1], 11.0)
    height = min(1.4 + 0.14 * matrix.shape[0], 9.0)
    figure, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(
        matrix.to_numpy(),
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        aspect="auto",
        interpolation="nearest",
    )
    labels = [gene_labels.get(g, g) if gene_labels else g for g in matrix.columns]
    if matrix.shape[1] <= max_tick_labels:
        ax.set_xticks(np.arange(matrix.shape[1]), labels, rotation=90)
    else:
        ax.set_xticks([])
    if matrix.shape[0] <= max_tick_labels:
        ax.set_yticks(np.arange(matrix.shape[0]), [str(f) for f in matrix.index])
    else:
        ax.set_yticks([])
    ax.set_xlabel(f"Gene (top {matrix.shape[1]} by max |{value_symbol}|)")
    ax.set_ylabel("Imaging feature")
    for spine in ax.spines.values():
        spine.set_visible(False)
    colour_bar = figure.colorbar(image, ax=ax, pad=0.02, fraction=0.05)
    colour_bar.set_label(value_label)
    return figure
