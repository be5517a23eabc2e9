"""Where a network runs and how it is seeded: one rule for the deep and segmentation models."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from monai.utils import set_determinism

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto", setting: str = "device") -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without a GPU is an error naming `setting`."""
    if device not in DEVICES:
        raise ValueError(f"{setting} must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{setting} 'cuda' was asked for but torch sees no CUDA GPU; use 'auto'")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


@contextmanager
def reproducible(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch/numpy/random and, on the CPU, require deterministic algorithms."""
    previous = torch.are_deterministic_algorithms_enabled()
    set_determinism(seed=seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    else:
        # CUDA runs trade bit-reproducibility for cuDNN autotuning (see hccrad.deep).
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def set_torch_threads(configured: int, granted: int) -> int:
    """Run torch on the configured thread count, whatever the scheduler granted; returns it.

    On the CPU a network's weights depend on the thread count (ResNet-18's mean CV AUC on the
    default cohort, same seed: 0.911 with one thread, 0.843 with two), so taking Snakemake's
    granted threads would let `--cores 1` change the results. Fewer cores cost time only.
    """
    if granted < configured:
        logger.warning(
            "the scheduler granted %d core(s) but the config asks for %d torch threads; "
            "running %d threads, as the CPU results depend on the thread count",
            granted,
            configured,
            configured,
        )
    torch.set_num_threads(configured)
    return configured
