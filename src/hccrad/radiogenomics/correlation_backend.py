"""The matrix-product backend of the correlation engine: numpy or torch, and the null histogram.

Split from ``correlate`` to keep modules short; ``correlate`` re-exports CorrelationProduct.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


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
        self.n_rows = unit_features.shape[0]
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

    def raw(self, genes: np.ndarray) -> np.ndarray:
        """features @ genes.T on the host, in the backend's dtype."""
        product = self.features @ self.to_device(genes).T
        if self.device is not None:
            product = product.cpu().numpy()
        return product

    def correlation(self, unit_genes: np.ndarray) -> np.ndarray:
        """r of every feature with every gene of a chunk, as float64 on the host."""
        return np.clip(self.raw(unit_genes).astype(np.float64, copy=False), -1.0, 1.0)

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
