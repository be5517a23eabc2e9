"""hccrad.radiogenomics.correlate on a CUDA GPU against its numpy path: agreement and run time.

Run where torch sees a GPU: ``PYTHONPATH=src python benchmarks/correlate_gpu.py``. Prints a
Markdown section for benchmarks/correlate_benchmark.md.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import pandas as pd
import torch

from hccrad.radiogenomics.correlate import (
    CorrelationProduct,
    correlate,
    rank_rows,
    standardise_rows,
)

F, G, N = 512, 20_000, 60


def matrices(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random features (F x N) and genes (G x N), a tenth of the genes following feature 0."""
    rng = np.random.default_rng(seed)
    samples = [f"P{i:03d}" for i in range(N)]
    features = pd.DataFrame(rng.normal(size=(F, N)), columns=samples)
    expression = pd.DataFrame(rng.normal(size=(G, N)), columns=samples)
    expression.iloc[: G // 10] += 0.5 * features.iloc[0].to_numpy()
    return features, expression


def timed(**kwargs: object) -> tuple[float, object]:
    """Seconds of one correlate call (after the GPU has finished) and its result."""
    start = time.perf_counter()
    result = correlate(progress=False, **kwargs)  # type: ignore[arg-type]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def permutation_seconds(
    features: pd.DataFrame, expression: pd.DataFrame, device: str | None
) -> float:
    """Seconds per permutation of the binned null (all genes), batches of 4 permutations."""
    rng = np.random.default_rng(1)
    unit_features = standardise_rows(rank_rows(features.to_numpy()))
    unit_genes = standardise_rows(rank_rows(expression.to_numpy()))
    product = CorrelationProduct(unit_features, device, "float64")
    batch = np.stack([rng.permutation(N) for _ in range(4)])
    product.null_histogram(unit_genes, batch[:1], 10_000)  # warm-up
    if device is not None:
        torch.cuda.synchronize()
    repeats = 2 if device is None else 25
    start = time.perf_counter()
    for _ in range(repeats):
        product.null_histogram(unit_genes, batch, 10_000)
    if device is not None:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (repeats * len(batch))


def main() -> None:
    """Agreement on a subset, then F x G x N timings for both paths."""
    features, expression = matrices()
    threads = len(os.sched_getaffinity(0))
    sub_f, sub_g = features.iloc[:64], expression.iloc[:4000]
    _, reference = timed(features=sub_f, expression=sub_g, device="numpy")
    _, gpu = timed(features=sub_f, expression=sub_g, device="cuda")
    _, gpu32 = timed(features=sub_f, expression=sub_g, device="cuda", dtype="float32")
    rows = [
        ("max abs(r) difference, cuda float64 vs numpy", np.abs(gpu.rho - reference.rho).max()),
        ("max relative P difference, cuda float64", np.max(np.abs(gpu.p / reference.p - 1))),
        ("max abs(r) difference, cuda float32 vs numpy", np.abs(gpu32.rho - reference.rho).max()),
    ]
    timed(features=sub_f, expression=sub_g, device="cuda", n_permutations=2)  # warm-up
    times = {}
    for name, kwargs in (
        ("numpy float64", {"device": "numpy", "n_threads": threads}),
        ("cuda float64", {"device": "cuda", "n_threads": threads}),
        ("cuda float32", {"device": "cuda", "dtype": "float32", "n_threads": threads}),
    ):
        # Best of two: the host part (P values, BH) varies from run to run.
        times[name] = min(
            timed(features=features, expression=expression, **kwargs)[0] for _ in range(2)
        )
    perm = {
        name: permutation_seconds(features, expression, device)
        for name, device in (("numpy", None), ("cuda", "cuda"))
    }
    # The product alone on the GPU, as the floor the device sets.
    a = torch.randn(F, N, dtype=torch.float64, device="cuda")
    b = torch.randn(N, G, dtype=torch.float64, device="cuda")
    a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    product = (time.perf_counter() - start) / 20

    print(f"## GPU: {torch.cuda.get_device_name()} (torch {torch.__version__})\n")
    print(
        f"Python {platform.python_version()}, {threads} CPU threads for P values; "
        f"F={F} x G={G:,} x N={N} ({F * G / 1e6:.2f} M pairs), Spearman.\n"
    )
    print("| check (64 features x 4,000 genes) | value |\n| --- | ---: |")
    for name, value in rows:
        print(f"| {name} | {value:.2e} |")
    print("\n| what | seconds | pairs / s |\n| --- | ---: | ---: |")
    for name, seconds in times.items():
        print(f"| `correlate`, {name} (r, P, BH) | {seconds:.2f} | {F * G / seconds:.2e} |")
    print(f"| float64 product alone on the GPU | {product:.5f} | {F * G / product:.2e} |")
    print(
        f"\nPermutation null, per permutation: numpy {perm['numpy'] * 1e3:.0f} ms, "
        f"cuda {perm['cuda'] * 1e3:.1f} ms (1,000 permutations: "
        f"{perm['numpy'] * 1e3:.0f} s vs {perm['cuda'] * 1e3:.1f} s)."
    )


if __name__ == "__main__":
    main()
