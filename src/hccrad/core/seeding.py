"""One seed in the config, many independent random streams derived from it by name."""

from __future__ import annotations

import zlib

import numpy as np


def stream_key(*labels: str | int) -> tuple[int, ...]:
    """Turn labels (cohort, purpose, patient index) into a stable integer spawn key."""
    # crc32, not hash(): Python's str hash is salted per process and would break reproducibility.
    return tuple(
        label if isinstance(label, int) else zlib.crc32(label.encode()) for label in labels
    )


def rng_for(seed: int, *labels: str | int) -> np.random.Generator:
    """A generator for one named purpose; the same seed and labels always give the same stream."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=stream_key(*labels)))
