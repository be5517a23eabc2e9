"""Chance levels of the gene-list rules: counts of passing pairs in permuted data, not P arrays.

``gene_list.correlation_summary`` needs, per permutation of the imaging features' samples, how
many pairs pass each rule per feature and how many genes pass for any feature. Running the
whole engine per permutation computes and adjusts every P value of a dense matrix; a pair can
only pass with P below the larger threshold, and BH below a level depends only on the P values
below it, so only the pairs with |r| above the matching cut (``candidate_rho``) are looked at:
typically a few percent of them under the null.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

from hccrad.radiogenomics.correlate import (
    DEFAULT_MAX_CHUNK_BYTES,
    CorrelationProduct,
    Method,
    Prepared,
    _genes_per_chunk,
    p_values,
    prepare,
)
from hccrad.radiogenomics.rank_lattice import PGroups, blocks, candidate_rho, doubled

RULES = ("p_rule", "fdr_rule")


def _at(positions: np.ndarray | slice, local: np.ndarray) -> np.ndarray:
    """Global positions of local ones in a slice or a position array."""
    return local + positions.start if isinstance(positions, slice) else positions[local]


def candidates(
    prepared: Prepared,
    feature_values: np.ndarray,
    min_abs_rho: float,
    p_key: np.ndarray | None,
    gene_ranks: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and ids of the tested pairs with |r| >= min_abs_rho, and the P of each id.

    Ids number where a P value comes from: lattice keys (``p_key``, P per key, filled by the
    caller), or, without a lattice, the distinct P values of the candidates. ``gene_ranks``:
    the genes' doubled ranks, when the caller has them.
    """
    lattice = prepared.lattice
    if lattice is None or p_key is None:
        rho, _ = prepared.rho(feature_values)
        rows, columns = np.nonzero(np.abs(rho) >= min_abs_rho)  # NaN (constant rows) is not
        p = p_values(rho[rows, columns], prepared.n_samples, prepared.method)
        distinct, ids = np.unique(p, return_inverse=True)
        return rows, columns, ids.ravel(), distinct
    product = CorrelationProduct(
        doubled(feature_values), prepared.product.device, prepared.product.dtype
    )
    found = [(np.array([], dtype=np.int64),) * 3]
    gene_ranks = doubled(prepared.gene_values) if gene_ranks is None else gene_ranks
    for block in blocks(lattice, product, gene_ranks, prepared.chunk):
        # |D| is an integer: |rho| >= min_abs_rho needs |D| >= that cut's integer part.
        # The block's values are its own (a product chunk or a copy): abs in place.
        magnitude = np.abs(block.values, out=block.values).ravel()
        flat = np.flatnonzero(magnitude >= math.floor(min_abs_rho * math.sqrt(block.product)))
        rows, columns = np.divmod(flat, block.values.shape[1])
        keys = magnitude[flat].astype(np.int64) + block.offset
        found.append((_at(block.rows, rows), _at(block.columns, columns), keys))
    rows, columns, keys = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return rows, columns, keys, p_key


def _fdr(
    rows: np.ndarray, groups: np.ndarray, table: PGroups, m_rows: np.ndarray, per_feature: bool
) -> np.ndarray:
    """BH of the candidates over all pairs or per feature (exact below the candidates' cut)."""
    if not per_feature:
        return table.adjust_all(groups, int(m_rows.sum()))
    fdr = np.empty(len(groups))
    by_row = np.argsort(rows, kind="stable")
    bounds = np.searchsorted(rows[by_row], np.arange(len(m_rows) + 1))
    for row in np.flatnonzero(np.diff(bounds)):
        members = by_row[bounds[row] : bounds[row + 1]]
        counts = np.bincount(groups[members], minlength=table.size + 1)
        fdr[members] = table.adjust(counts, int(m_rows[row]))[groups[members]]
    return fdr


def null_rule_counts(
    features: pd.DataFrame,
    expression: pd.DataFrame,
    method: Method = "spearman",
    p_threshold: float = 0.05,
    fdr_threshold: float = 0.05,
    fdr_scope: Literal["all_pairs", "per_feature"] = "all_pairs",
    null_permutations: int = 20,
    seed: int = 0,
    device: str = "numpy",
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> dict[str, np.ndarray]:
    """Per rule, a (null_permutations, F + 1) array: passing pairs per feature, then genes.

    Row i is permutation i of the features' samples, drawn as ``correlation_summary`` draws
    them (``default_rng(seed).permutation`` in turn): pairs with P < p_threshold ("p_rule") or
    BH FDR < fdr_threshold ("fdr_rule"; over all pairs or per feature) of each feature, then
    the genes passing for any feature; what a full ``correlate`` of the permuted features gives.
    """
    n_features = len(features)
    chunk = _genes_per_chunk(n_features, features.shape[1], len(expression), max_chunk_bytes, 0)
    prepared = prepare(features, expression, method, device, "float64", chunk)
    cut = candidate_rho(max(p_threshold, fdr_threshold), prepared.n_samples, method)
    # P of the lattice keys met so far (NaN: not yet needed), filled permutation by permutation.
    p_key = None if prepared.lattice is None else np.full(prepared.lattice.n_keys, np.nan)
    m_rows = prepared.tests_per_row()
    gene_ranks = doubled(prepared.gene_values)
    rng = np.random.default_rng(seed)
    counts = {rule: np.zeros((null_permutations, n_features + 1)) for rule in RULES}
    for i in range(null_permutations):
        order = rng.permutation(prepared.n_samples)
        rows, columns, ids, p_of_id = candidates(
            prepared, prepared.feature_values[:, order], cut, p_key, gene_ranks
        )
        used = np.flatnonzero(np.bincount(ids, minlength=len(p_of_id)))
        if prepared.lattice is not None:
            new = used[np.isnan(p_of_id[used])]
            p_of_id[new] = p_values(prepared.lattice.key_rho(new), prepared.n_samples, method)
        table = PGroups.of(p_of_id, used)
        groups = table.group_of_key[ids]
        fdr = _fdr(rows, groups, table, m_rows, fdr_scope == "per_feature")
        for rule, passing in zip(
            RULES, (p_of_id[ids] < p_threshold, fdr < fdr_threshold), strict=True
        ):
            counts[rule][i, :n_features] = np.bincount(rows[passing], minlength=n_features)
            genes = np.bincount(columns[passing], minlength=len(prepared.gene_values))
            counts[rule][i, n_features] = np.count_nonzero(genes)
    return counts
