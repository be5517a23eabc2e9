"""Exact Spearman correlation on the rank lattice, and Benjamini-Hochberg from counts.

Why a lattice: centred doubled average ranks ``2 rank - (N + 1)`` are integers, so the product
of two such rows is an integer D, exact in a float32 matrix product while every partial sum
stays below 2^24 (Cauchy-Schwarz bounds them by sqrt(S_f S_g), S a row's sum of squares), and
Spearman's rho is D / sqrt(S_f S_g). Rows without ties all have S = (N^3 - N) / 3; tied rows
have smaller S. Rows are grouped by S ("classes"), and a pair's *key* numbers (S_f S_g, |D|):
its P value depends on the key only, so P is computed once per distinct key, and both BH
passes come from counts of keys (``bh_by_key``) instead of a sort of every P value.

The BH arithmetic is scipy.stats.false_discovery_control's (P (m / C), a running minimum from
the largest P, clipped to [0, 1]; C the number of P values at or below P), so the adjusted
values are bit-identical to scipy's given the same P values.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import special

FLOAT32_EXACT = 2**24  # integers below this are exact in float32 (24-bit significand)
MAX_KEYS = 2**23  # above this many keys (very large N, heavy ties) the lattice does not pay


def doubled(ranks: np.ndarray) -> np.ndarray:
    """Centred doubled average ranks ``2 rank - (N + 1)`` of each row: integers, as float64."""
    return 2.0 * ranks - (ranks.shape[1] + 1)


def squares(doubled: np.ndarray) -> np.ndarray:
    """Each row's sum of squares, an exact integer (0 for a constant row)."""
    return np.rint((doubled * doubled).sum(axis=1)).astype(np.int64)


@dataclass(frozen=True)
class RowClasses:
    """Rows grouped by their sum of squares S (their tie structure); constant rows excluded."""

    sums: np.ndarray  # distinct nonzero S, ascending
    members: tuple[np.ndarray, ...]  # row positions of each class

    @classmethod
    def of(cls, sums_of_squares: np.ndarray) -> RowClasses:
        """Classes of rows by S; rows with S = 0 (constant) belong to none."""
        values, labels = np.unique(sums_of_squares, return_inverse=True)
        members = tuple(np.flatnonzero(labels == k) for k in range(len(values)) if values[k] > 0)
        return cls(values[values > 0], members)


@dataclass(frozen=True)
class Lattice:
    """Keys of (S_f S_g, |D|): a block of isqrt(S_f S_g) + 1 keys per distinct product."""

    n_samples: int
    features: RowClasses
    genes: RowClasses
    offsets: np.ndarray  # features classes x gene classes: first key of the block
    products: np.ndarray  # features classes x gene classes: S_f S_g
    n_keys: int
    exact_float32: bool  # the integer products are exact in a float32 matrix product

    @classmethod
    def of(cls, n_samples: int, features: RowClasses, genes: RowClasses) -> Lattice:
        """The key layout for these feature and gene classes."""
        products = np.multiply.outer(features.sums, genes.sums)
        distinct, inverse = np.unique(products, return_inverse=True)
        sizes = np.array([math.isqrt(int(s)) + 1 for s in distinct], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        largest = math.isqrt(int(distinct.max())) if len(distinct) else 0
        return cls(
            n_samples=n_samples,
            features=features,
            genes=genes,
            offsets=starts[inverse].reshape(products.shape),
            products=products,
            n_keys=int(sizes.sum()),
            exact_float32=largest < FLOAT32_EXACT,
        )

    def key_rho(self, keys: np.ndarray) -> np.ndarray:
        """|rho| of the given keys: d / sqrt(S_f S_g), the same float operation as for a pair."""
        starts, first = np.unique(self.offsets.ravel(), return_index=True)
        block = np.searchsorted(starts, keys, side="right") - 1
        products = self.products.ravel()[first][block].astype(np.float64)
        return (keys - starts[block]) / np.sqrt(products)


@dataclass(frozen=True)
class PGroups:
    """Distinct P values of the keys in use, ascending; BH on them from counts of keys."""

    group_of_key: np.ndarray  # group of each key (len(p) for keys not in use)
    p: np.ndarray  # distinct P values, ascending, then NaN (the group of untested keys)

    @classmethod
    def of(cls, p_key: np.ndarray, used: np.ndarray) -> PGroups:
        """Groups of equal P among the keys ``used``; NaN P values must not be among them."""
        order = used[np.argsort(p_key[used], kind="stable")]
        ordered = p_key[order]
        first = np.ones(len(ordered), dtype=bool)
        first[1:] = ordered[1:] != ordered[:-1]
        groups = np.full(len(p_key) + 1, int(first.sum()), dtype=np.int64)
        groups[order] = np.cumsum(first) - 1
        return cls(groups, np.append(ordered[first], np.nan))

    @property
    def size(self) -> int:
        """Number of distinct P values."""
        return len(self.p) - 1

    def adjust(self, counts: np.ndarray, m: int) -> np.ndarray:
        """BH-adjusted P of each group from its count of tests (m in all); NaN appended.

        scipy's arithmetic: P (m / C) with C the tests at or below P (the last position of a
        run of equal P), a running minimum from the largest P, clipped to [0, 1]. Groups with
        no test are skipped (inf); only tests below a level matter to the groups below it.
        """
        at_or_below = np.cumsum(counts[: self.size])
        with np.errstate(divide="ignore", invalid="ignore"):
            adjusted = self.p[: self.size] * (m / at_or_below)
        adjusted[counts[: self.size] == 0] = np.inf
        adjusted = np.minimum.accumulate(adjusted[::-1])[::-1].clip(0.0, 1.0)
        return np.append(adjusted, np.nan)

    def adjust_all(self, groups: np.ndarray, m: int) -> np.ndarray:
        """BH over all the tests whose groups are given (untested: group ``size``)."""
        counts = np.bincount(groups.ravel(), minlength=self.size + 1)
        return self.adjust(counts, m)[groups]

    def adjust_rows(self, groups: np.ndarray, m_rows: np.ndarray) -> np.ndarray:
        """BH within each row of a groups matrix; m_rows[i] tests in row i.

        The arithmetic of ``adjust``, written into buffers reused from row to row (a row's
        arrays are small, so allocation and call overhead would dominate).
        """
        adjusted = np.empty(groups.shape)
        if self.size > 4 * groups.shape[1]:
            for row, row_groups in enumerate(groups):
                adjusted[row] = self._adjust_sparse_row(row_groups, int(m_rows[row]))
            return adjusted
        size, p = self.size, self.p[: self.size]
        ratio, row_adjusted = np.empty(size), np.full(size + 1, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            for row, row_groups in enumerate(groups):
                counts = np.bincount(row_groups, minlength=size + 1)[:size]
                np.divide(int(m_rows[row]), np.cumsum(counts), out=ratio)
                ratio *= p  # P (m / C), scipy's order of operations
                ratio[counts == 0] = np.inf
                np.minimum.accumulate(ratio[::-1], out=ratio[::-1])
                np.clip(ratio, 0.0, 1.0, out=row_adjusted[:size])
                adjusted[row] = row_adjusted[row_groups]
        return adjusted

    def _adjust_sparse_row(self, row_groups: np.ndarray, m: int) -> np.ndarray:
        """BH of one row with far fewer tests than groups: on the row's own groups (a sort)."""
        present, local, counts = np.unique(row_groups, return_inverse=True, return_counts=True)
        sub = PGroups(np.arange(len(present)), self.p[present])
        if present[-1] != self.size:  # no untested key in the row: add the NaN group
            sub = PGroups(sub.group_of_key, np.append(sub.p, np.nan))
            counts = np.append(counts, 0)
        return sub.adjust(counts, m)[local]


def candidate_rho(threshold: float, n_samples: int, method: str) -> float:
    """A |r| below which no P value is under threshold (with a margin for rounding)."""
    if threshold >= 1:
        return 0.0
    dof = n_samples - 2
    if method == "spearman":
        # P = 2 sf_t(|t|) < threshold  <=>  |t| > t*;  r = t / sqrt(dof + t^2).
        t = -special.stdtrit(dof, threshold / 2)
        rho = t / math.sqrt(dof + t * t)
    else:
        shape = n_samples / 2 - 1
        rho = 2 * special.betainccinv(shape, shape, threshold / 2) - 1
    # The margin is far above rounding (1e-16) and far below the spacing of ranks' rho.
    return max(0.0, float(rho) - 1e-9)


class RawProduct(Protocol):
    """A matrix product of the features with a chunk of gene rows (CorrelationProduct.raw)."""

    n_rows: int

    def raw(self, values: np.ndarray) -> np.ndarray:
        """features @ values.T on the host, in the backend's dtype."""
        ...


@dataclass(frozen=True)
class Block:
    """Integer rank products of one feature class with the genes of one class in a chunk."""

    rows: np.ndarray | slice  # feature positions
    columns: np.ndarray | slice  # gene positions (global)
    values: np.ndarray  # D, integers stored as floats
    offset: int  # first key of the block
    product: int  # S_f S_g


def _positions(members: np.ndarray, n: int, start: int = 0) -> np.ndarray | slice:
    """A slice when the (sorted, distinct) members are all n positions, else the positions."""
    return slice(start, start + n) if len(members) == n else members + start


def put(matrix: np.ndarray, rows: np.ndarray | slice, columns: np.ndarray | slice, values) -> None:
    """matrix[rows, columns] = values, with an outer product of two position arrays."""
    if isinstance(rows, slice) or isinstance(columns, slice):
        matrix[rows, columns] = values
    else:
        matrix[np.ix_(rows, columns)] = values


def blocks(
    lattice: Lattice, product: RawProduct, gene_ranks: np.ndarray, chunk: int
) -> Iterator[Block]:
    """The blocks of D = features x genes, gene chunk by gene chunk (constant rows skipped)."""
    n_features = sum(len(m) for m in lattice.features.members)
    n_all_features = product.n_rows
    labels = np.full(len(gene_ranks), -1)
    for k, members in enumerate(lattice.genes.members):
        labels[members] = k
    for start in range(0, len(gene_ranks), chunk):
        stop = min(start + chunk, len(gene_ranks))
        chunk_labels = labels[start:stop]
        classes = np.unique(chunk_labels[chunk_labels >= 0])
        if n_features == 0 or classes.size == 0:
            continue
        product_values = product.raw(gene_ranks[start:stop])
        for gene_class in classes:
            local = np.flatnonzero(chunk_labels == gene_class)
            by_gene = product_values if len(local) == stop - start else product_values[:, local]
            for feature_class, members in enumerate(lattice.features.members):
                rows = _positions(members, n_all_features)
                yield Block(
                    rows=rows,
                    columns=_positions(local, stop - start, start),
                    values=by_gene if isinstance(rows, slice) else by_gene[members],
                    offset=int(lattice.offsets[feature_class, gene_class]),
                    product=int(lattice.products[feature_class, gene_class]),
                )


def rho_and_keys(
    lattice: Lattice, product: RawProduct, gene_ranks: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rho (NaN: constant row) and the key of every pair (n_keys: untested)."""
    shape = (product.n_rows, len(gene_ranks))
    # np.empty, not np.full: the blocks cover every tested pair, and a fill is a pass over
    # the whole matrix; only the constant rows and columns are filled below.
    rho = np.empty(shape)
    keys = np.empty(shape, dtype=np.intp)
    for classes, axis in ((lattice.features, 0), (lattice.genes, 1)):
        constant = np.ones(shape[axis], dtype=bool)
        constant[np.concatenate([np.array([], dtype=np.int64), *classes.members])] = False
        index = (constant, slice(None)) if axis == 0 else (slice(None), constant)
        rho[index], keys[index] = np.nan, lattice.n_keys
    for block in blocks(lattice, product, gene_ranks, chunk):
        scale = np.sqrt(float(block.product))
        if isinstance(block.rows, slice) and isinstance(block.columns, slice):
            # One class each (no ties): write in place, no temporaries of the block's size.
            np.divide(block.values, scale, out=rho[block.rows, block.columns])
            magnitude = np.abs(block.values, out=block.values)
            keys[block.rows, block.columns] = magnitude
            if block.offset:
                keys[block.rows, block.columns] += block.offset
            continue
        put(rho, block.rows, block.columns, np.divide(block.values, scale, dtype=np.float64))
        put(keys, block.rows, block.columns, np.abs(block.values).astype(np.intp) + block.offset)
    return rho, keys
