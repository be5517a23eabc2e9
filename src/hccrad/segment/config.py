"""The segmentation settings: the ``segment:`` block typed, and the network's fixed names.

Kept apart from ``hccrad.segment.network`` so that what reads masks, metrics and tables (the
evaluation, the figures) does not import torch and MONAI (~2.5 s per job; issue 30).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CLASSES = 3  # background, liver, tumour: the labels of the reference masks
ENCODER = "efficientnet-b0"
ENCODER_CHANNELS = (16, 24, 40, 112, 320)  # EfficientNet-B0 features at strides 2 ... 32
ENCODER_STRIDE = 32
METHOD_NETWORK = "unetplusplus"  # the network's name in the evaluation tables


@dataclass(frozen=True)
class SegmentConfig:
    """The ``segment`` section of the config, typed."""

    phases: tuple[str, ...] = ("arterial", "portal_venous", "hepatobiliary")
    neighbour_slices: int = 1
    patch_size: tuple[int, int] = (64, 64)
    intensity_clip: tuple[float, float] = (-10.0, 10.0)
    tumour_slices_per_patient: int = 8
    negative_fraction: float = 0.4
    epochs: int = 4
    batch_size: int = 16
    learning_rate: float = 0.003
    weight_decay: float = 0.0001
    loss_weights: Mapping[str, float] = field(
        default_factory=lambda: {"dice": 1.0, "ce": 1.0, "response": 0.5}
    )
    endpoint: str = "response"
    pretrained: str = ""
    device: str = "auto"

    @property
    def in_channels(self) -> int:
        """Input channels: every phase at each of the 2k+1 neighbouring slices."""
        return len(self.phases) * (2 * self.neighbour_slices + 1)


def segment_config(cfg: Mapping[str, Any]) -> SegmentConfig:
    """The typed settings from the config's ``segment`` block (unknown keys are ignored)."""
    names = SegmentConfig.__dataclass_fields__
    values = {k: v for k, v in cfg.items() if k in names}
    for key in ("phases", "patch_size", "intensity_clip"):
        if key in values:
            values[key] = tuple(values[key])
    if values.get("neighbour_slices", 1) < 0:
        raise ValueError("segment.neighbour_slices must be 0 or more")
    return SegmentConfig(**values)
