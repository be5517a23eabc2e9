"""Correlation of every imaging feature with every gene: Spearman/Pearson, P, BH, permutation FDR.

Inputs are two matrices with the same sample columns: ``features`` (F features x N samples)
and ``expression`` (G genes x N samples). Why not a loop over ``scipy.stats.spearmanr``: it
costs ~0.14 ms a pair, ~24 minutes for 512 x 20,000 pairs, whereas ranking both matrices and
one matrix product of the standardised rows gives every r in well under a second. The P
values use scipy's own special functions with scipy's own formulas (``spearmanr``: Student t
on n - 2 degrees of freedom; ``pearsonr``: the beta distribution), so they agree with scipy to
rounding. Benjamini-Hochberg is ``scipy.stats.false_discovery_control``.

Memory: the per-pair results (r, P, two FDRs, optionally the permutation FDR) are dense F x G
float64 arrays, 8 bytes a pair each, because BH ranks every P value. Everything else (ranks,
t statistics, permutation nulls) is computed in chunks of genes bounded by ``max_chunk_bytes``.
The long table costs ~50 bytes a row: pass ``max_p``/``max_fdr`` to keep only passing pairs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats
from tqdm.auto import tqdm

Method = Literal["spearman", "pearson"]
FdrColumn = Literal["fdr_feature", "fdr_all", "fdr_perm"]
DEFAULT_MAX_CHUNK_BYTES = 256 * 2**20
DEFAULT_PERMUTATION_BINS = 10_000


class ConstantRowsWarning(UserWarning):
    """Some features or genes are constant over the samples; their correlations are NaN."""


@dataclass(frozen=True)
class CorrelationResult:
    """Dense feature x gene correlation results and their long-table views."""

    features: pd.Index
    genes: pd.Index
    method: str
    n_samples: int
    rho: np.ndarray  # F x G correlation coefficients (Spearman rho or Pearson r); NaN if constant
    p: np.ndarray  # F x G two-sided P values
    fdr_feature: np.ndarray  # BH over the genes of each feature
    fdr_all: np.ndarray  # BH over all pairs
    fdr_perm: np.ndarray | None  # permutation FDR over all pairs, when permutations were run
    n_permutations: int
    constant_features: tuple[str, ...]
    constant_genes: tuple[str, ...]

    def to_long(
        self,
        max_p: float | None = None,
        max_fdr: float | None = None,
        fdr: FdrColumn = "fdr_all",
    ) -> pd.DataFrame:
        """Long table (feature, gene, rho, p, fdr_feature, fdr_all[, fdr_perm]), maybe filtered."""
        keep = np.ones(self.p.shape, dtype=bool)
        if max_p is not None:
            keep &= self.p <= max_p
        if max_fdr is not None:
            keep &= self._fdr(fdr) <= max_fdr
        feature_positions, gene_positions = np.nonzero(keep)
        return self._table(feature_positions, gene_positions)

    def top_k(self, k: int, by: Literal["p", "abs_rho"] = "p") -> pd.DataFrame:
        """The k strongest pairs by P (ascending) or |rho| (descending); ties broken by position."""
        score = self.p if by == "p" else -np.abs(self.rho)
        flat = np.where(np.isnan(score), np.inf, score).ravel()
        k = min(k, int(np.isfinite(flat).sum()))
        if k <= 0:
            return self._table(np.array([], dtype=int), np.array([], dtype=int))
        # Partition finds the k-th value in O(F G); everything tied with it is kept, then a
        # stable sort by (score, position) makes the cut independent of the partition order.
        kth = np.partition(flat, k - 1)[k - 1]
        candidates = np.flatnonzero(flat <= kth)
        chosen = candidates[np.argsort(flat[candidates], kind="stable")][:k]
        return self._table(*np.unravel_index(chosen, self.p.shape))

    def _fdr(self, name: FdrColumn) -> np.ndarray:
        """One of the FDR arrays by column name."""
        values = getattr(self, name)
        if values is None:
            raise ValueError(f"{name} is not available: run correlate with n_permutations > 0")
        return values

    def _table(self, feature_positions: np.ndarray, gene_positions: np.ndarray) -> pd.DataFrame:
        """Rows for the given (feature, gene) positions; categorical names keep the table small."""
        columns: dict[str, Any] = {
            "feature": pd.Categorical.from_codes(feature_positions, categories=self.features),
            "gene": pd.Categorical.from_codes(gene_positions, categories=self.genes),
            "rho": self.rho[feature_positions, gene_positions],
            "p": self.p[feature_positions, gene_positions],
            "fdr_feature": self.fdr_feature[feature_positions, gene_positions],
            "fdr_all": self.fdr_all[feature_positions, gene_positions],
        }
        if self.fdr_perm is not None:
            columns["fdr_perm"] = self.fdr_perm[feature_positions, gene_positions]
        return pd.DataFrame(columns)


def rank_rows(values: np.ndarray) -> np.ndarray:
    """Rank each row with average ranks for ties (as ``scipy.stats.spearmanr`` does)."""
    return stats.rankdata(values, method="average", axis=1)


def constant_rows(values: np.ndarray) -> np.ndarray:
    """Mask of rows whose values are all equal (their correlation is undefined)."""
    return (values == values[:, :1]).all(axis=1)


def standardise_rows(values: np.ndarray) -> np.ndarray:
    """Centre each row and scale it to unit norm, so a matrix product gives Pearson r.

    Constant rows become zeros (not NaN) so that a chunk's product stays finite; the caller
    masks their r as NaN.
    """
    centred = values - values.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = centred / norms
    unit[constant_rows(values)] = 0.0
    return unit


def p_values(r: np.ndarray, n_samples: int, method: Method) -> np.ndarray:
    """Two-sided P of correlation coefficients, with scipy's formulas for spearmanr/pearsonr."""
    if method == "spearman":
        # scipy.stats.spearmanr: t = r sqrt(dof / ((1 + r)(1 - r))), P = 2 sf_t(|t|).
        dof = n_samples - 2
        with np.errstate(divide="ignore", invalid="ignore"):
            t = r * np.sqrt((dof / ((r + 1.0) * (1.0 - r))).clip(0))
        return 2 * special.stdtr(dof, -np.abs(t))
    # scipy.stats.pearsonr: r ~ Beta(n/2 - 1, n/2 - 1) on (-1, 1) under the null.
    shape = n_samples / 2 - 1
    return 2 * special.betaincc(shape, shape, (np.abs(r) + 1) / 2)


def benjamini_hochberg(p: np.ndarray, axis: int | None = None) -> np.ndarray:
    """BH-adjusted P along an axis (None: over all values); NaN stays NaN and is not counted.

    NaN must come in whole rows or whole columns (constant features or genes): the adjustment
    is then done on the finite block, so the number of tests is the number of finite P values.
    """
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.all():
        return stats.false_discovery_control(p, axis=axis).reshape(p.shape)
    if p.ndim != 2:
        adjusted[finite] = stats.false_discovery_control(p[finite])
        return adjusted
    rows, columns = finite.any(axis=1), finite.any(axis=0)
    block = np.ix_(rows, columns)
    if not finite[block].all():
        raise ValueError("NaN P values must fill whole rows or columns (constant inputs)")
    if rows.any():
        finite_block = p[block]
        adjusted[block] = stats.false_discovery_control(finite_block, axis=axis).reshape(
            finite_block.shape
        )
    return adjusted


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, where the platform reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _resolve_device(device: str) -> str | None:
    """The torch device to use, or None for numpy; 'auto' picks CUDA when torch sees a GPU."""
    if device == "numpy":
        return None
    if device == "auto":
        try:
            import torch
        except ImportError:
            return None
        return "cuda" if torch.cuda.is_available() else None
    return device


class CorrelationProduct:
    """Matrix products of the standardised features with gene chunks, in numpy or torch."""

    def __init__(self, unit_features: np.ndarray, device: str | None, dtype: str) -> None:
        self.device = device
        self.dtype = dtype
        if device is None:
            self.features = unit_features.astype(dtype, copy=False)
        else:
            import torch

            self.torch = torch
            self.features = torch.as_tensor(
                unit_features, dtype=getattr(torch, dtype), device=device
            )

    def to_device(self, values: np.ndarray) -> Any:
        """Move a host matrix to the backend."""
        if self.device is None:
            return values.astype(self.dtype, copy=False)
        return self.torch.as_tensor(values, dtype=self.features.dtype, device=self.device)

    def correlation(self, unit_genes: np.ndarray) -> np.ndarray:
        """r of every feature with every gene of a chunk, as float64 on the host."""
        product = self.features @ self.to_device(unit_genes).T
        if self.device is not None:
            product = product.cpu().numpy()
        return np.clip(product.astype(np.float64, copy=False), -1.0, 1.0)

    def null_histogram(
        self, unit_genes: np.ndarray, permutations: np.ndarray, n_bins: int
    ) -> np.ndarray:
        """Histogram of |r| over n_bins bins of [0, 1]: features with permuted samples vs genes.

        Why it looks unusual: binning 10 M null values per permutation costs more than their
        product, so the product is made to return bin positions directly. The features are
        scaled by n_bins and given an extra column n_bins, the genes an extra column of ones,
        so one float32 product yields r n_bins + n_bins in [0, 2 n_bins]; truncation gives a
        signed bin, and the negative and positive halves are folded into |r| bins. float32
        errors (~1e-6 of a bin) are far below the bin width.
        """
        n_rows, n_samples = len(permutations) * self.features.shape[0], unit_genes.shape[1]
        if self.device is None:
            scaled = np.empty((n_rows, n_samples + 1), dtype=np.float32)
            # One product for the whole batch of permutations: (B F) x (N + 1) times (N + 1) x G.
            scaled[:, :n_samples] = (
                self.features[:, permutations].transpose(1, 0, 2).reshape(n_rows, n_samples)
            )
            scaled[:, :n_samples] *= n_bins
            scaled[:, n_samples] = n_bins
            genes = np.ones((n_samples + 1, unit_genes.shape[0]), dtype=np.float32)
            genes[:n_samples] = unit_genes.T
            signed = (scaled @ genes).astype(np.intp)
            counts = np.bincount(signed.ravel(), minlength=2 * n_bins + 1)
        else:
            torch = self.torch
            index = torch.as_tensor(permutations, device=self.device)
            permuted = self.features[:, index].permute(1, 0, 2).reshape(n_rows, n_samples)
            scaled = torch.cat(
                [
                    permuted.float() * n_bins,
                    torch.full((n_rows, 1), float(n_bins), device=self.device),
                ],
                dim=1,
            )
            genes = torch.ones((n_samples + 1, unit_genes.shape[0]), device=self.device)
            genes[:n_samples] = torch.as_tensor(
                unit_genes.T, dtype=torch.float32, device=self.device
            )
            signed = (scaled @ genes).long().clamp_(min=0)
            counts = torch.bincount(signed.flatten(), minlength=2 * n_bins + 1).cpu().numpy()
        return _fold_signed_bins(counts.astype(np.int64), n_bins)


def _fold_signed_bins(signed_counts: np.ndarray, n_bins: int) -> np.ndarray:
    """Counts of |r| bins from counts of r n_bins + n_bins bins (2 n_bins and up: r = 1)."""
    # Bin n_bins + j holds r in [j, j + 1) / n_bins, bin n_bins - 1 - j holds r in
    # [-(j + 1), -j) / n_bins: both are |r| bin j.
    folded = signed_counts[n_bins : 2 * n_bins] + signed_counts[n_bins - 1 :: -1]
    folded[-1] += signed_counts[2 * n_bins :].sum()
    return folded


def _validated_inputs(
    features: pd.DataFrame, expression: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check names, samples and finiteness; return both with the samples in the same order."""
    for name, frame in (("features", features), ("expression", expression)):
        if frame.index.duplicated().any():
            raise ValueError(
                f"{name}: duplicated row names {list(frame.index[frame.index.duplicated()][:5])}"
            )
        if frame.columns.duplicated().any():
            raise ValueError(
                f"{name}: duplicated sample columns "
                f"{list(frame.columns[frame.columns.duplicated()][:5])}"
            )
        if frame.empty:
            raise ValueError(f"{name}: no rows or no samples")
    missing = features.columns.difference(expression.columns)
    extra = expression.columns.difference(features.columns)
    if len(missing) or len(extra):
        raise ValueError(
            "features and expression must have the same samples: "
            f"{len(missing)} only in features (e.g. {list(missing[:5])}), "
            f"{len(extra)} only in expression (e.g. {list(extra[:5])})"
        )
    expression = expression.loc[:, features.columns]
    for name, frame in (("features", features), ("expression", expression)):
        values = frame.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{name}: {int(bad.sum())} row(s) contain NaN or infinite values "
                f"(e.g. {list(frame.index[bad][:5])}); impute or drop them before correlating"
            )
    if features.shape[1] < 3:
        raise ValueError(f"need at least 3 samples, got {features.shape[1]}")
    return features, expression


def _genes_per_chunk(
    n_features: int, n_samples: int, n_genes: int, max_chunk_bytes: int, batch_rows: int
) -> int:
    """Genes per chunk so that a chunk's temporaries stay under max_chunk_bytes."""
    # Per gene: its ranks and unit row (2 N), r / t / P temporaries (4 F), and the permutation
    # batch's null r plus its bin indices (2 batch_rows), all 8 bytes.
    bytes_per_gene = 8 * (2 * n_samples + 4 * n_features + 2 * batch_rows)
    return int(np.clip(max_chunk_bytes // bytes_per_gene, 1, n_genes))


def _warn_constant(features: Sequence[str], genes: Sequence[str]) -> None:
    """Warn once that some rows are constant, listing a few of each kind."""
    if features or genes:
        warnings.warn(
            "constant rows, their correlations are undefined and set to NaN: "
            f"{len(features)} feature(s) {list(features[:10])}, "
            f"{len(genes)} gene(s) {list(genes[:10])}",
            ConstantRowsWarning,
            stacklevel=3,
        )


def permutation_fdr(
    abs_rho: np.ndarray, null_counts: np.ndarray, n_permutations: int
) -> np.ndarray:
    """Permutation FDR (q value) of each |r| on the grid of thresholds k / n_bins.

    At a threshold t: FDR(t) = (null |r| >= t per permutation) / (observed |r| >= t), capped
    at 1. A pair's q value is the smallest FDR(t) over the grid thresholds t <= its |r| (the
    thresholds that would report it), as BH's step-up does. ``null_counts`` is the histogram
    of null |r| over ``len(null_counts)`` equal bins of [0, 1]; NaN |r| stay NaN.
    """
    n_bins = len(null_counts)
    fdr = np.full(abs_rho.shape, np.nan)
    finite = np.isfinite(abs_rho)
    bins = np.minimum((abs_rho[finite] * n_bins).astype(np.intp), n_bins - 1)
    observed_at_or_above = np.cumsum(np.bincount(bins, minlength=n_bins)[::-1])[::-1]
    null_at_or_above = np.cumsum(null_counts[::-1])[::-1] / n_permutations
    with np.errstate(divide="ignore", invalid="ignore"):
        at_threshold = np.minimum(null_at_or_above / observed_at_or_above, 1.0)
    at_threshold[observed_at_or_above == 0] = 1.0
    fdr[finite] = np.minimum.accumulate(at_threshold)[bins]
    return fdr


def p_values_threaded(
    rho: np.ndarray, n_samples: int, method: Method, n_threads: int
) -> np.ndarray:
    """P values of a dense r matrix, in column blocks on a thread pool.

    scipy's special functions release the GIL, and P values (not the product) dominate the
    run time, so the blocks run in parallel threads.
    """
    p = np.empty_like(rho)
    block = max(1, -(-rho.shape[1] // (4 * n_threads)))

    def fill(start: int) -> None:
        p[:, start : start + block] = p_values(rho[:, start : start + block], n_samples, method)

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        list(pool.map(fill, range(0, rho.shape[1], block)))
    return p


def correlate(
    features: pd.DataFrame,
    expression: pd.DataFrame,
    method: Method = "spearman",
    device: str = "auto",
    dtype: Literal["float64", "float32"] = "float64",
    chunk_genes: int | None = None,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    n_permutations: int = 0,
    seed: int = 0,
    permutation_bins: int = DEFAULT_PERMUTATION_BINS,
    n_threads: int | None = None,
    progress: bool = True,
) -> CorrelationResult:
    """Correlate every feature (F x N) with every gene (G x N) over the same N samples.

    ``device``: "auto" (CUDA through torch when available, else numpy), "numpy", or a torch
    device ("cuda", "cuda:1", "cpu"). Only the matrix products (and the permutation nulls)
    run on the device; ranks, P values and BH run on the host in float64. Keep float64 for
    exact agreement with scipy; float32 is faster on a GPU and good to ~1e-6 in r.
    Permutation FDR: the samples of the features are permuted (the same permutation for every
    feature, so their correlation structure is kept), with permutations drawn from
    ``numpy.random.default_rng(seed)``; the same seed and inputs give the same output. The
    null is binned into ``permutation_bins`` bins of |r| (float32 products: see
    ``CorrelationProduct.null_histogram``). ``n_threads`` (default: the CPUs this process may
    use) runs the P values in parallel; pass the rule's ``threads``.
    """
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    features, expression = _validated_inputs(features, expression)
    feature_values = features.to_numpy(dtype=np.float64)
    n_features, n_samples = feature_values.shape
    n_genes = expression.shape[0]
    if method == "spearman":
        feature_values = rank_rows(feature_values)
    constant_feature_mask = constant_rows(feature_values)
    product = CorrelationProduct(standardise_rows(feature_values), _resolve_device(device), dtype)
    rng = np.random.default_rng(seed)
    permutations = (
        np.stack([rng.permutation(n_samples) for _ in range(n_permutations)])
        if n_permutations > 0
        else np.empty((0, n_samples), dtype=np.int64)
    )
    batch_size = max(1, min(n_permutations, 16)) if n_permutations else 0
    chunk = chunk_genes or _genes_per_chunk(
        n_features, n_samples, n_genes, max_chunk_bytes, batch_size * n_features
    )
    rho = np.empty((n_features, n_genes))
    constant_gene_mask = np.zeros(n_genes, dtype=bool)
    null_counts = np.zeros(permutation_bins, dtype=np.int64)
    starts = range(0, n_genes, chunk)
    for start in tqdm(starts, desc=f"{method} chunks", disable=not progress or len(starts) < 2):
        stop = min(start + chunk, n_genes)
        gene_values = expression.iloc[start:stop].to_numpy(dtype=np.float64)
        if method == "spearman":
            gene_values = rank_rows(gene_values)
        constant_gene_mask[start:stop] = constant_rows(gene_values)
        unit_genes = standardise_rows(gene_values)
        rho[:, start:stop] = product.correlation(unit_genes)
        for first in tqdm(
            range(0, n_permutations, batch_size or 1),
            desc="permutations",
            leave=False,
            disable=not progress or n_permutations == 0,
        ):
            batch = permutations[first : first + batch_size]
            null_counts += product.null_histogram(
                unit_genes[~constant_gene_mask[start:stop]], batch, permutation_bins
            )
    rho[constant_feature_mask, :] = np.nan
    rho[:, constant_gene_mask] = np.nan
    constant_features = tuple(features.index[constant_feature_mask].astype(str))
    constant_genes = tuple(expression.index[constant_gene_mask].astype(str))
    _warn_constant(constant_features, constant_genes)
    # Constant features contribute zero rows to the null products; they must not be counted.
    null_counts[0] -= (
        n_permutations * int(constant_feature_mask.sum()) * int((~constant_gene_mask).sum())
    )
    p = p_values_threaded(rho, n_samples, method, n_threads or _usable_cpus())
    fdr_perm = permutation_fdr(np.abs(rho), null_counts, n_permutations) if n_permutations else None
    return CorrelationResult(
        features=pd.Index(features.index, name="feature"),
        genes=pd.Index(expression.index, name="gene"),
        method=method,
        n_samples=n_samples,
        rho=rho,
        p=p,
        fdr_feature=benjamini_hochberg(p, axis=1),
        fdr_all=benjamini_hochberg(p, axis=None),
        fdr_perm=fdr_perm,
        n_permutations=n_permutations,
        constant_features=constant_features,
        constant_genes=constant_genes,
    )


def top_pairs(
    table: pd.DataFrame, k: int, by: str = "p", per_feature: bool = False
) -> pd.DataFrame:
    """Top-k rows of a long table by P (or another column, or "abs_rho"), overall or per feature."""
    key = table["rho"].abs() if by == "abs_rho" else table[by]
    ascending = by != "abs_rho"
    ordered = table.assign(_key=key).sort_values(
        ["_key", "feature", "gene"], ascending=[ascending, True, True], kind="stable"
    )
    if per_feature:
        ordered = ordered.groupby("feature", observed=True, sort=False).head(k)
        ordered = ordered.sort_values(
            ["feature", "_key"], ascending=[True, ascending], kind="stable"
        )
    else:
        ordered = ordered.head(k)
    return ordered.drop(columns="_key").reset_index(drop=True)
