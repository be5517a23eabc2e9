"""The deep settings: the architectures, one network's config and the `deep:` block's config.

`NetworkConfig` is what it takes to rebuild one network; `DeepConfig` holds the training and
selection settings of the workflow config's `deep:` block and hands out NetworkConfigs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hccrad.core.config import known_keys
from hccrad.core.seeding import rng_for
from hccrad.deep import tumour_pooled

ARCHITECTURES: tuple[str, ...] = (
    "resnet18",
    "resnet50",
    "densenet121",
    "efficientnet_b0",
    tumour_pooled.ARCHITECTURE,
)
# Architectures that take the tumour mask as an extra, last input channel.
MASK_INPUT_ARCHITECTURES: tuple[str, ...] = (tumour_pooled.ARCHITECTURE,)
ENSEMBLES = ("refit", "folds_and_refit")


@dataclass(frozen=True)
class NetworkConfig:
    """What it takes to rebuild a network: architecture, channels, crop size and width."""

    architecture: str = "resnet18"
    in_channels: int = 3
    spatial_size: tuple[int, int, int] = (32, 32, 32)
    # Channel multiplier (ResNet widen_factor, DenseNet features/growth, EfficientNet width,
    # tumour-pooled channels).
    width: float = 0.5
    # Stride of the first convolution; ResNets and the tumour-pooled network only (DenseNet and
    # EfficientNet stems are fixed).
    stem_stride: int = 2
    # Input values are clipped to this range before the network (None: not clipped).
    intensity_clip: tuple[float, float] | None = None
    # Voxels farther than this from the tumour are set to 0 before the network (None: the
    # whole crop). See DeepConfig.tumour_margin_mm.
    tumour_margin_mm: float | None = None

    def __post_init__(self) -> None:
        """Normalise sizes and ranges to tuples and reject unknown architectures."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; use one of {ARCHITECTURES}"
            )
        object.__setattr__(self, "spatial_size", as_size(self.spatial_size))
        object.__setattr__(self, "intensity_clip", _as_range(self.intensity_clip))
        _check_margin(self.tumour_margin_mm)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> NetworkConfig:
        """A network config from a JSON-like dict."""
        return cls(**known_keys(cls, mapping, "network"))

    @property
    def takes_mask(self) -> bool:
        """Whether the network takes the tumour mask as its last input channel."""
        return self.architecture in MASK_INPUT_ARCHITECTURES

    @property
    def input_channels(self) -> int:
        """Channels of the network's input: one per phase, plus the mask where it takes one."""
        return self.in_channels + int(self.takes_mask)


@dataclass(frozen=True)
class DeepConfig:
    """Training and selection settings (the `deep:` block of the workflow config)."""

    architectures: tuple[str, ...] = ARCHITECTURES
    spatial_size: tuple[int, int, int] = (32, 32, 32)
    width: float = 0.5
    stem_stride: int = 2
    # For liver z-scored MRI, e.g. (-10, 10): air, fat and bone lie 10-20 liver SDs below the
    # liver and would otherwise dominate the input scale, while hypointense tumours reach 8 SDs
    # below it in the hepatobiliary phase (see warn_if_tumour_clipped). None for HU crops (the
    # default, as a range that suits z-scores would flatten Hounsfield units).
    intensity_clip: tuple[float, float] | None = None
    # The network sees the tumour and this margin (mm) around it; the rest of the crop is set
    # to 0, the liver's mean on z-scored MRI. A 96 mm box holds much more liver and body than
    # tumour, and with 70-140 training patients the network did not learn to find the tumour in
    # it: on the training split's CV the blanked crops scored higher (see
    # config/README.md, `deep.tumour_margin_mm`). None: the whole crop.
    tumour_margin_mm: float | None = None
    folds: int = 3
    max_epochs: int = 20
    # True: stop on an inner validation part (`validation_fraction` of the fitting patients,
    # `patience`, `min_epochs`) and keep its best epoch. False: train on all fitting patients
    # for `max_epochs` with the learning rate decayed to 0 on a cosine, and keep the last
    # epoch: no patient is spent on validation and no checkpoint is chosen by the AUC of ~10
    # patients, which with 2-3 positives is mostly noise.
    early_stopping: bool = True
    patience: int = 5
    # Epochs before a checkpoint may be kept: the first epochs' validation AUC on a handful of
    # patients is mostly batch-norm noise, and an early lucky epoch would end training there.
    min_epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    validation_fraction: float = 0.2
    flip_prob: float = 0.5
    rotate_degrees: float = 10.0
    rotate_prob: float = 0.5
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    intensity_prob: float = 0.5
    # Rand3DElastic costs more than all other augmentations together on a CPU: off by default.
    elastic: bool = False
    elastic_prob: float = 0.2
    # Acquisition shift between centres, simulated on the training crops (all off by default).
    # Contrast timing differs per phase between scanners and protocols: draw the intensity
    # scale and shift per phase rather than once per crop.
    phase_wise_intensity: bool = False
    # Thicker slices elsewhere: blur through the slices (sigma in voxels of the crop grid) and,
    # less, in plane; the crops are resampled to one isotropic spacing, so a 6 mm acquisition
    # reaches the network as a 3 mm grid blurred along z.
    blur_prob: float = 0.0
    blur_sigma_z: tuple[float, float] = (0.25, 1.0)
    blur_sigma_xy: tuple[float, float] = (0.0, 0.5)
    # Noisier scanners: Gaussian noise with an SD drawn up to this (crop intensity units).
    noise_prob: float = 0.0
    noise_std: float = 0.1
    top_k_instances: int = 1
    # The DLTR score of patients outside the training split: "refit" (the winner refitted on the
    # whole training split) or "folds_and_refit" (the mean probability of the winner's k fold
    # networks and the refit). The fold networks are trained during selection anyway; averaging
    # them lowers the variance that early stopping on a small validation part leaves in any one
    # network. Deep features and Grad-CAM always come from the refit (one feature space).
    ensemble: str = "refit"
    device: str = "auto"
    # None: 0 on the CPU (tensors are in memory already), up to 4 on CUDA.
    num_workers: int | None = None
    # Local checkpoint per architecture (e.g. MedicalNet ResNets); nothing is ever downloaded.
    pretrained: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        """Normalise sequences to tuples and check the architectures."""
        object.__setattr__(self, "spatial_size", as_size(self.spatial_size))
        object.__setattr__(self, "intensity_clip", _as_range(self.intensity_clip))
        for name in ("blur_sigma_z", "blur_sigma_xy"):
            object.__setattr__(self, name, _as_range(getattr(self, name), name, strict=False))
        object.__setattr__(self, "architectures", tuple(self.architectures))
        _check_margin(self.tumour_margin_mm)
        unknown = [a for a in self.architectures if a not in ARCHITECTURES]
        if unknown or not self.architectures:
            raise ValueError(f"unknown architectures {unknown}; use some of {ARCHITECTURES}")
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {ENSEMBLES}, not {self.ensemble!r}")
        if not 1 <= self.min_epochs <= self.max_epochs:
            raise ValueError(
                f"min_epochs ({self.min_epochs}) must lie between 1 and max_epochs "
                f"({self.max_epochs})"
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> DeepConfig:
        """A config from the workflow config's `deep:` dict; unknown keys are an error."""
        return cls(**known_keys(cls, mapping or {}, "deep"))

    def network(self, architecture: str, in_channels: int) -> NetworkConfig:
        """The network config of one architecture for crops with `in_channels` phases."""
        return NetworkConfig(
            architecture,
            in_channels,
            self.spatial_size,
            self.width,
            self.stem_stride,
            self.intensity_clip,
            self.tumour_margin_mm,
        )


def as_size(size: int | Sequence[int]) -> tuple[int, int, int]:
    """A (z, y, x) crop size from one int or three."""
    values = (int(size),) * 3 if isinstance(size, int | np.integer) else tuple(map(int, size))
    if len(values) != 3 or min(values) < 1:
        raise ValueError(f"spatial_size must be one or three positive ints, not {size!r}")
    return values  # type: ignore[return-value]


def _as_range(
    values: Sequence[float] | None, name: str = "intensity_clip", *, strict: bool = True
) -> tuple[float, float] | None:
    """A (low, high) pair of floats (low < high, or low <= high when not strict), or None."""
    if values is None:
        return None
    low, high = (float(v) for v in values)
    if not (low < high if strict else 0 <= low <= high):
        rule = "low < high" if strict else "0 <= low <= high"
        raise ValueError(f"{name} must be (low, high) with {rule}, not {values!r}")
    return low, high


def _check_margin(margin_mm: float | None) -> None:
    """ValueError unless the tumour margin is None or a non-negative number of mm."""
    if margin_mm is not None and not margin_mm >= 0:
        raise ValueError(f"tumour_margin_mm must be null or at least 0 mm, not {margin_mm}")


def seed_for(seed: int, *labels: str | int) -> int:
    """An int seed for one named purpose, derived from the config seed."""
    return int(rng_for(seed, "deep", *labels).integers(0, 2**31 - 1))
