"""3D CNNs that predict TACE response from tumour crops: train, select, refit, predict, explain.

Inputs are the tumour crops of `hccrad.imaging.read` (.npz: ``image`` (phases, z, y, x) float32,
already normalised per phase, e.g. z-scored over the liver) and a cohort sheet indexed by
``patient_id`` with ``split`` and ``response`` (1 = objective response).

The procedure, and what the cross-validation estimates:

1. Architecture selection sees the training split only (`training_labels` refuses any other
   row). Stratified k-fold CV over the training patients, with the same folds for every
   architecture so that the comparison is paired. Inside each fold the fitting patients are split
   again (stratified, seeded) into an inner training and an inner validation part: the network
   trains on the first with class-weighted BCE, stops when the validation AUC (ties: the lower
   validation loss) has not improved for `patience` epochs and keeps the weights of its best
   epoch (``early_stopping=False``: no inner split; a fixed cosine schedule over all the fitting
   patients, keeping the last epoch). The fold AUC is that network's AUC on the held-out fold.
2. The winner has the highest mean fold AUC. Ties (equal to 3 decimals, i.e. below what 20-50
   patients per fold can resolve) go to the lower SD over folds, then to fewer parameters, then
   to the order of `ARCHITECTURES`.
3. The winner is refitted on the whole training split by the same procedure (inner split and
   early stopping). A refit, not an ensemble of the fold networks: CV estimates the performance of
   the *procedure*, and the refit is that procedure applied to all training patients; and one
   network gives one deep-feature space and one Grad-CAM per patient, which the radiogenomic
   correlation and the figures need (k fold networks are k unrelated feature spaces that cannot
   be averaged).
4. Internal-test and external patients are only ever predicted (`predict_scores`,
   `deep_features`, `grad_cam`).

Several tumours per patient: `load_crops` keeps the ``top_k`` largest tumours of each patient
(default 1, the largest: the mRECIST target lesion that dominates response, and what the studies
crop). Training gives every kept crop its patient's label; a patient's score and deep features
are the mean over the patient's kept crops.

Reproducibility: on the CPU the same config, data and thread count give bit-identical weights
(seeded torch/numpy/MONAI transforms, seeded DataLoader generator, deterministic algorithms). On
CUDA, training is seeded but uses mixed precision and cuDNN autotuning, so it is fast rather than
bit-reproducible.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import monai
import numpy as np
import pandas as pd
import torch
from matplotlib import pyplot as plt
from monai.data import DataLoader, Dataset
from monai.networks import nets
from monai.networks.nets.resnet import get_medicalnet_pretrained_resnet_args
from monai.transforms import (
    Compose,
    ConcatItemsd,
    DeleteItemsd,
    EnsureTyped,
    Rand3DElasticd,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandRotated,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ResizeWithPadOrCrop,
)
from monai.visualize import GradCAM
from scipy import ndimage
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import nn
from tqdm.auto import tqdm

from hccrad.core.config import known_keys
from hccrad.core.labels import TUMOUR_LABEL
from hccrad.core.seeding import rng_for
from hccrad.core.torch_runtime import reproducible, resolve_device
from hccrad.deep import tumour_pooled
from hccrad.figures.style import apply_style
from hccrad.stats.checks import check_binary_outcome, name_patients

logger = logging.getLogger(__name__)

ARCHITECTURES: tuple[str, ...] = (
    "resnet18",
    "resnet50",
    "densenet121",
    "efficientnet_b0",
    tumour_pooled.ARCHITECTURE,
)
# Architectures that take the tumour mask as an extra, last input channel.
MASK_INPUT_ARCHITECTURES: tuple[str, ...] = (tumour_pooled.ARCHITECTURE,)
FEATURE_PREFIX = "deep_"
SCORE_NAME = "deep_score"
ENSEMBLES = ("refit", "folds_and_refit")
TRAIN_SPLIT = "train"
# n_train: patients a fold's network is fitted on (inner training + inner validation); n_val:
# the held-out fold that gives the fold AUC; n_inner_val: the early-stopping part of n_train.
SELECTION_COLUMNS: tuple[str, ...] = (
    "architecture",
    "fold",
    "auc",
    "n_train",
    "n_val",
    "epochs",
    "best_epoch",
    "n_inner_val",
    "n_parameters",
    "seconds",
)
# Block definition of EfficientNet-B0 as in monai.networks.nets.EfficientNetBN, which takes no
# width multiplier; the generic EfficientNet class does.
EFFICIENTNET_B0_BLOCKS: tuple[str, ...] = (
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
)
# Grad-CAM candidate layers, deepest first. The last stage of every network is 1 voxel wide at
# 32^3 crops (total stride 32), where a CAM is a constant; "auto" takes the deepest stage that
# is still MIN_CAM_VOXELS wide. EfficientNet's `_swish` is shared by stem and head (hooks on it
# would mix the two), so its candidates are the block stages.
CAM_LAYERS: dict[str, tuple[str, ...]] = {
    "resnet18": ("layer4", "layer3", "layer2", "layer1"),
    "resnet50": ("layer4", "layer3", "layer2", "layer1"),
    "densenet121": (
        "class_layers.relu",
        "features.denseblock3",
        "features.denseblock2",
        "features.denseblock1",
    ),
    "efficientnet_b0": ("_blocks.6", "_blocks.4", "_blocks.2", "_blocks.1"),
    tumour_pooled.ARCHITECTURE: ("features.2", "features.1", "features.0"),
}
MIN_CAM_VOXELS = 4
CAM_COLOURMAP = "inferno"
PREFERRED_CAM_PHASE = "arterial"  # the phase whose enhancement drives response in the studies
# Share of tumour voxels per phase that deep.intensity_clip may saturate before a warning.
CLIPPED_TUMOUR_LIMIT = 0.01


# --------------------------------------------------------------------------- configuration


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
        object.__setattr__(self, "spatial_size", _as_size(self.spatial_size))
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
        object.__setattr__(self, "spatial_size", _as_size(self.spatial_size))
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


def _as_size(size: int | Sequence[int]) -> tuple[int, int, int]:
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


def _seed_for(seed: int, *labels: str | int) -> int:
    """An int seed for one named purpose, derived from the config seed."""
    return int(rng_for(seed, "deep", *labels).integers(0, 2**31 - 1))


# --------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class CropSet:
    """Tumour crops at one size: images (n, phases, z, y, x) and per-crop patient metadata."""

    patient_ids: tuple[str, ...]
    instances: tuple[int, ...]
    tumour_volumes_mm3: tuple[float, ...]
    phases: tuple[str, ...]
    images: np.ndarray
    masks: np.ndarray | None = None  # (n, z, y, x) labels, 2 = tumour
    spacing_zyx: tuple[tuple[float, float, float], ...] | None = None

    @property
    def patients(self) -> list[str]:
        """Patient ids in order of first appearance."""
        return list(dict.fromkeys(self.patient_ids))

    @property
    def spatial_size(self) -> tuple[int, int, int]:
        """The crops' (z, y, x) size."""
        return tuple(self.images.shape[2:])  # type: ignore[return-value]

    def __len__(self) -> int:
        """Number of crops."""
        return len(self.patient_ids)

    def subset(self, patients: Iterable[str]) -> CropSet:
        """The crops of the given patients, in their order; ValueError if one has none."""
        wanted = [str(p) for p in patients]
        rows_by_patient: dict[str, list[int]] = {}
        for row, patient in enumerate(self.patient_ids):
            rows_by_patient.setdefault(patient, []).append(row)
        missing = [p for p in wanted if p not in rows_by_patient]
        if missing:
            raise ValueError(
                f"no tumour crop for {len(missing)} patient(s): {name_patients(missing)}; "
                "crop them (hccrad.imaging.read) or leave them out of the sheet"
            )
        return self._take([row for p in wanted for row in rows_by_patient[p]])

    def _take(self, rows: Sequence[int]) -> CropSet:
        """The crops at the given row positions."""
        return CropSet(
            tuple(self.patient_ids[r] for r in rows),
            tuple(self.instances[r] for r in rows),
            tuple(self.tumour_volumes_mm3[r] for r in rows),
            self.phases,
            self.images[list(rows)],
            None if self.masks is None else self.masks[list(rows)],
            None if self.spacing_zyx is None else tuple(self.spacing_zyx[r] for r in rows),
        )


def crops_from_arrays(
    patient_ids: Sequence[str],
    images: Sequence[np.ndarray] | np.ndarray,
    *,
    spatial_size: int | Sequence[int],
    phases: Sequence[str] | None = None,
    masks: Sequence[np.ndarray] | None = None,
    instances: Sequence[int] | None = None,
    tumour_volumes_mm3: Sequence[float] | None = None,
    spacing_zyx: Sequence[Sequence[float]] | None = None,
    top_k: int = 1,
) -> CropSet:
    """A CropSet from (phases, z, y, x) arrays, padded/cropped about the centre to one size."""
    n = len(patient_ids)
    if len(images) != n:
        raise ValueError(f"{len(images)} images for {n} patient ids")
    n_channels = {np.asarray(image).shape[0] for image in images}
    if len(n_channels) != 1 or any(np.asarray(image).ndim != 4 for image in images):
        raise ValueError("every crop image must be (phases, z, y, x) with the same phase count")
    instances = list(instances) if instances is not None else [1] * n
    # Without volumes, the earlier instance number (1 = largest in hccrad.imaging) ranks higher.
    volumes = (
        list(tumour_volumes_mm3) if tumour_volumes_mm3 is not None else [-i for i in instances]
    )
    order = _largest_first(list(map(str, patient_ids)), volumes, top_k)
    size = _as_size(spatial_size)
    # Centre crop/pad keeps the millimetre scale (the crops share a spacing); "edge" padding
    # avoids inventing a signal value that the normalised image does not have.
    resize_image = ResizeWithPadOrCrop(size, mode="edge")
    resize_mask = ResizeWithPadOrCrop(size, mode="constant")
    stacked = np.stack(
        [np.asarray(resize_image(np.asarray(images[i], np.float32))) for i in order]
    ).astype(np.float32)
    stacked_masks = None
    if masks is not None:
        stacked_masks = np.stack(
            [np.asarray(resize_mask(np.asarray(masks[i])[None]))[0] for i in order]
        ).astype(np.uint8)
    channels = n_channels.pop()
    return CropSet(
        patient_ids=tuple(str(patient_ids[i]) for i in order),
        instances=tuple(int(instances[i]) for i in order),
        tumour_volumes_mm3=tuple(float(volumes[i]) for i in order),
        phases=tuple(phases) if phases is not None else tuple(f"phase{c}" for c in range(channels)),
        images=stacked,
        masks=stacked_masks,
        spacing_zyx=None
        if spacing_zyx is None
        else tuple(tuple(float(s) for s in spacing_zyx[i]) for i in order),  # type: ignore[misc]
    )


def _largest_first(patient_ids: Sequence[str], volumes: Sequence[float], top_k: int) -> list[int]:
    """Row order: patients by first appearance, each patient's top_k largest tumours first."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    first_seen = {p: i for i, p in reversed(list(enumerate(patient_ids)))}
    order = sorted(range(len(patient_ids)), key=lambda i: (first_seen[patient_ids[i]], -volumes[i]))
    kept: dict[str, int] = {}
    rows = []
    for row in order:
        patient = patient_ids[row]
        if kept.get(patient, 0) < top_k:
            kept[patient] = kept.get(patient, 0) + 1
            rows.append(row)
    return rows


def load_crops(
    paths: Iterable[str | Path], spatial_size: int | Sequence[int], *, top_k: int = 1
) -> CropSet:
    """Read hccrad.imaging.read crop files (.npz) and keep each patient's top_k largest tumours."""
    records = [_read_crop(Path(path)) for path in paths]
    if not records:
        raise ValueError("no crop files given")
    phases = records[0]["phases"]
    for record in records:
        if record["phases"] != phases:
            raise ValueError(
                f"{record['path']}: phases {record['phases']} differ from {phases} of "
                f"{records[0]['path']}; crop every patient with the same phases"
            )
    return crops_from_arrays(
        [r["patient_id"] for r in records],
        [r["image"] for r in records],
        spatial_size=spatial_size,
        phases=phases,
        masks=[r["mask"] for r in records],
        instances=[r["instance"] for r in records],
        tumour_volumes_mm3=[r["tumour_volume_mm3"] for r in records],
        spacing_zyx=[r["spacing_zyx"] for r in records],
        top_k=top_k,
    )


def _read_crop(path: Path) -> dict[str, Any]:
    """One crop file as a dict; ValueError naming the file when it is not a crop."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {
                "path": path,
                "image": data["image"].astype(np.float32),
                "mask": data["mask"],
                "phases": tuple(str(p) for p in data["phases"]),
                "patient_id": str(data["patient_id"]),
                "instance": int(data["instance"]),
                "tumour_volume_mm3": float(data["tumour_volume_mm3"]),
                "spacing_zyx": tuple(float(s) for s in data["spacing_zyx"]),
            }
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(
            f"{path}: not a readable hccrad tumour crop ({error}); rerun the crop step"
        ) from error


# --------------------------------------------------------------------------- networks


def build_network(config: NetworkConfig) -> nn.Module:
    """A MONAI 3D CNN with one output logit; fails early if the crop is too small for it."""
    channels, width = config.in_channels, config.width
    if config.architecture in ("resnet18", "resnet50"):
        depth = int(config.architecture.removeprefix("resnet"))
        # MedicalNet's shortcut and downsample-bias choices, so that its weights fit.
        bias_downsample, shortcut_type = get_medicalnet_pretrained_resnet_args(depth)
        factory = nets.resnet18 if depth == 18 else nets.resnet50
        network: nn.Module = factory(
            spatial_dims=3,
            n_input_channels=channels,
            num_classes=1,
            conv1_t_stride=config.stem_stride,
            widen_factor=width,
            shortcut_type=shortcut_type,
            bias_downsample=bias_downsample,
        )
    elif config.architecture == "densenet121":
        network = nets.DenseNet121(
            spatial_dims=3,
            in_channels=channels,
            out_channels=1,
            init_features=max(1, round(64 * width)),
            growth_rate=max(1, round(32 * width)),
        )
    elif config.architecture == tumour_pooled.ARCHITECTURE:
        network = tumour_pooled.TumourPooledCNN(channels, width, config.stem_stride)
    else:
        network = nets.EfficientNet(
            list(EFFICIENTNET_B0_BLOCKS),
            spatial_dims=3,
            in_channels=channels,
            num_classes=1,
            width_coefficient=width,
            image_size=max(config.spatial_size),
            # MONAI's batch-norm momentum for EfficientNet (0.01) suits ImageNet-length training;
            # after a few hundred steps its running statistics are still near their start, and
            # eval-mode predictions near chance. PyTorch's default (0.1) follows the data.
            norm=("batch", {"eps": 1e-3, "momentum": 0.1}),
        )
    _check_runs(network, config)
    return network


def _check_runs(network: nn.Module, config: NetworkConfig) -> None:
    """Run zeros through the network once, so a too-small crop fails with a clear message."""
    network.eval()  # eval: no batch-norm statistics change and no random draws
    try:
        with torch.no_grad():
            network(torch.zeros(1, config.input_channels, *config.spatial_size))
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"{config.architecture} cannot take crops of {config.spatial_size} voxels ({error}); "
            "use larger crops (DenseNet-121 needs at least 32 per axis) or another architecture"
        ) from error
    network.train()


def count_parameters(network: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


@dataclass(frozen=True)
class PretrainedReport:
    """What a pretrained checkpoint filled in, and what did not fit."""

    path: str
    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    shape_mismatch: tuple[str, ...]

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"{self.path}: loaded {len(self.loaded)} tensors; missing {len(self.missing)} "
            f"{list(self.missing[:5])}; unexpected {len(self.unexpected)} "
            f"{list(self.unexpected[:5])}; shape mismatch {len(self.shape_mismatch)} "
            f"{list(self.shape_mismatch[:5])}"
        )


def load_pretrained(network: nn.Module, path: str | Path) -> PretrainedReport:
    """Load a local checkpoint with strict=False (never downloads) and report what did not fit."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {path} do not exist; download them yourself (e.g. MedicalNet) "
            "and give the local path in the config: the workflow never downloads weights"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]  # MedicalNet's layout
    # Checkpoints saved from nn.DataParallel prefix every key with "module.".
    source = {str(k).removeprefix("module."): v for k, v in checkpoint.items()}
    target = network.state_dict()
    mismatched = tuple(
        k for k, v in source.items() if k in target and tuple(v.shape) != tuple(target[k].shape)
    )
    usable = {k: v for k, v in source.items() if k not in mismatched}
    result = network.load_state_dict(usable, strict=False)
    report = PretrainedReport(
        path=str(path),
        loaded=tuple(k for k in usable if k in target),
        missing=tuple(result.missing_keys),
        unexpected=tuple(result.unexpected_keys),
        shape_mismatch=mismatched,
    )
    logger.info("pretrained weights %s", report.summary())
    return report


# --------------------------------------------------------------------------- models and I/O


@dataclass
class DeepModel:
    """A trained network with its config and how its training went."""

    network: nn.Module
    config: NetworkConfig
    best_epoch: int = 0
    epochs: int = 0
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    pretrained: PretrainedReport | None = None
    n_train: int = 0
    n_validation: int = 0


def save_model(model: DeepModel, weights_path: str | Path, config_path: str | Path) -> list[Path]:
    """Write the state_dict (.pt) and a JSON of the network config and training summary."""
    weights_path, config_path = Path(weights_path), Path(config_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.network.state_dict().items()}
    torch.save(state, weights_path)
    description = {
        "network": asdict(model.config),
        "best_epoch": model.best_epoch,
        "epochs": model.epochs,
        "n_parameters": count_parameters(model.network),
        "pretrained": None if model.pretrained is None else model.pretrained.path,
        "torch": torch.__version__,
        "monai": monai.__version__,
    }
    config_path.write_text(json.dumps(description, indent=2) + "\n")
    return [weights_path, config_path]


def load_model(
    weights_path: str | Path, config_path: str | Path, *, device: str = "cpu"
) -> DeepModel:
    """Rebuild a network from its JSON config and load its weights strictly."""
    description = json.loads(Path(config_path).read_text())
    config = NetworkConfig.from_mapping(description["network"])
    network = build_network(config)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    network.load_state_dict(state, strict=True)
    network.to(resolve_device(device)).eval()
    return DeepModel(
        network, config, int(description.get("best_epoch", 0)), int(description.get("epochs", 0))
    )


# --------------------------------------------------------------------------- training


def training_labels(train_sheet: pd.DataFrame, endpoint: str = "response") -> pd.Series:
    """The 0/1 `endpoint` of the training patients; ValueError if any row's split is not 'train'."""
    sheet = _by_patient(train_sheet)
    if "split" not in sheet.columns:
        raise ValueError("the training sheet needs a 'split' column (train/internal_test/...)")
    other = sheet.index[sheet["split"].astype(str) != TRAIN_SPLIT]
    if len(other):
        splits = sorted(set(sheet.loc[other, "split"].astype(str)))
        raise ValueError(
            f"selection and fitting take training patients only, but {len(other)} row(s) have "
            f"split {splits}: {name_patients(list(other))}. Internal-test and external patients "
            "are only predicted: pass sheet[sheet['split'] == 'train']"
        )
    if endpoint not in sheet.columns:
        raise ValueError(
            f"the training sheet has no {endpoint!r} column (a 0/1 endpoint, e.g. response: "
            "1 = CR/PR, 0 = SD/PD); add it or choose one of the endpoints in the sheet"
        )
    outcome = check_binary_outcome(sheet[endpoint], context=f"{endpoint} in the training split")
    return pd.Series(outcome, index=sheet.index, name=endpoint)


def _by_patient(sheet: pd.DataFrame) -> pd.DataFrame:
    """The sheet indexed by patient_id (as str), whether it was a column or the index."""
    if "patient_id" in sheet.columns:
        sheet = sheet.set_index("patient_id")
    elif sheet.index.name != "patient_id":
        raise ValueError("the sheet needs patient_id as its index or a column")
    sheet = sheet.copy()
    sheet.index = sheet.index.astype(str)
    duplicated = sheet.index[sheet.index.duplicated()]
    if len(duplicated):
        raise ValueError(f"patient ids repeat in the sheet: {name_patients(list(duplicated))}")
    return sheet


def augmentation(config: DeepConfig, *, with_mask: bool = False) -> Compose:
    """Flips, small rotations, intensity scale/shift; optionally elastic warps, blur and noise.

    `with_mask`: the records also hold a "mask" (1, z, y, x), which moves with the image
    (nearest-neighbour, so it stays a mask), takes no intensity change, and is appended to the
    image as its last channel at the end.
    """
    keys = ["image"]
    spatial_keys = ["image", "mask"] if with_mask else keys
    # Per key: images interpolate and repeat their border; the mask is nearest and 0 outside.
    modes = ("bilinear", "nearest")[: len(spatial_keys)]
    paddings = ("border", "zeros")[: len(spatial_keys)]
    radians = float(np.deg2rad(config.rotate_degrees))
    transforms: list[Any] = [
        RandFlipd(spatial_keys, prob=config.flip_prob, spatial_axis=axis) for axis in range(3)
    ]
    transforms.append(
        RandRotated(
            spatial_keys,
            range_x=radians,
            range_y=radians,
            range_z=radians,
            prob=config.rotate_prob,
            keep_size=True,
            mode=modes,
            padding_mode=paddings,
        )
    )
    if config.elastic:
        # Mild warps for 32-48 voxel crops: smooth (sigma 5-7 voxels), a few voxels at most.
        transforms.append(
            Rand3DElasticd(
                spatial_keys,
                sigma_range=(5, 7),
                magnitude_range=(20, 60),
                prob=config.elastic_prob,
                mode=modes,
                padding_mode=paddings,
            )
        )
    if config.blur_prob > 0:
        # Crops are (phase, z, y, x): MONAI's first spatial axis ("x") is z here.
        transforms.append(
            RandGaussianSmoothd(
                keys,
                sigma_x=config.blur_sigma_z,
                sigma_y=config.blur_sigma_xy,
                sigma_z=config.blur_sigma_xy,
                prob=config.blur_prob,
            )
        )
    transforms += [
        RandScaleIntensityd(
            keys,
            factors=config.intensity_scale,
            prob=config.intensity_prob,
            channel_wise=config.phase_wise_intensity,
        ),
        RandShiftIntensityd(
            keys,
            offsets=config.intensity_shift,
            prob=config.intensity_prob,
            channel_wise=config.phase_wise_intensity,
        ),
    ]
    if config.noise_prob > 0:
        # After the blur: scanner noise is not smoothed by thick slices.
        transforms.append(
            RandGaussianNoised(keys, prob=config.noise_prob, std=config.noise_std, sample_std=True)
        )
    if with_mask:
        transforms += [
            ConcatItemsd(spatial_keys, name="image", dim=0),
            DeleteItemsd("mask"),
        ]
    transforms.append(EnsureTyped(keys, dtype=torch.float32, track_meta=False))
    return Compose(transforms)


def training_loader(
    images: np.ndarray,
    labels: np.ndarray,
    config: DeepConfig,
    seed: int,
    device: torch.device,
    *,
    with_mask: bool = False,
) -> DataLoader:
    """A shuffling, augmenting loader whose order and augmentations follow the seed.

    `with_mask`: the last channel of `images` is the tumour mask (see augmentation).
    """
    records = [
        {"image": image[:-1], "mask": image[-1:], "label": np.float32(label)}
        if with_mask
        else {"image": image, "label": np.float32(label)}
        for image, label in zip(images, labels, strict=True)
    ]
    batch_size = min(config.batch_size, len(records))
    workers = config.num_workers
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if device.type == "cuda" else 0
    return DataLoader(
        Dataset(records, transform=augmentation(config, with_mask=with_mask)),
        batch_size=batch_size,
        shuffle=True,
        # A last batch of one would break batch norm at 1-voxel feature maps.
        drop_last=len(records) % batch_size == 1,
        generator=torch.Generator().manual_seed(seed),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 on GPUs that have it, float16 on older GPUs, none (float32) on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def batch_to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to the device (channels-last-3D on CUDA, where convolutions prefer it)."""
    if device.type == "cuda":
        return images.to(device, non_blocking=True, memory_format=torch.channels_last_3d)
    return images.to(device)


def _train_network(
    network_config: NetworkConfig,
    crops: CropSet,
    labels: pd.Series,
    validation: CropSet | None,
    validation_labels: pd.Series | None,
    config: DeepConfig,
    seed: int,
    description: str,
) -> DeepModel:
    """Train with weighted BCE; early stopping on a validation part, or a fixed cosine schedule."""
    device = resolve_device(config.device, "deep.device")
    y_train = labels.loc[list(crops.patient_ids)].to_numpy(np.float32)
    fixed_schedule = validation is None or validation_labels is None
    with reproducible(seed, device):
        network = build_network(network_config)
        pretrained = None
        if network_config.architecture in config.pretrained:
            pretrained = load_pretrained(network, config.pretrained[network_config.architecture])
        network.to(device)
        if device.type == "cuda":
            network.to(memory_format=torch.channels_last_3d)
        loader = training_loader(
            crop_input(crops, network_config),
            y_train,
            config,
            seed,
            device,
            with_mask=network_config.takes_mask,
        )
        optimiser = torch.optim.AdamW(
            network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        schedule = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.max_epochs)
            if fixed_schedule
            else None
        )
        # The validation crops as the network sees them, prepared once rather than every epoch
        # (the margin blanking is a distance transform per crop).
        validation_input = None if fixed_schedule else crop_input(validation, network_config)
        # Class weighting: positives weigh n_negative / n_positive, so both classes count alike.
        n_positive = float(y_train.sum())
        pos_weight = torch.tensor([(len(y_train) - n_positive) / max(n_positive, 1.0)])
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device))
        amp_dtype = autocast_dtype(device)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        rows: list[dict[str, float]] = []
        best: tuple[float, float] = (-np.inf, -np.inf)
        best_epoch, best_state = 0, None
        epochs = tqdm(
            range(1, config.max_epochs + 1),
            desc=description,
            unit="epoch",
            disable=not config.progress,
            leave=False,
        )
        for epoch in epochs:
            network.train()
            train_loss, seen = 0.0, 0
            for batch in loader:
                images = batch_to_device(batch["image"], device)
                targets = batch["label"].to(device).float()
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = loss_fn(network(images).squeeze(1).float(), targets)
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
                train_loss += float(loss.detach()) * len(targets)
                seen += len(targets)
            if schedule is not None:
                schedule.step()
                rows.append(_history_row(epoch, train_loss / max(seen, 1), np.nan, np.nan))
                epochs.set_postfix(train=f"{rows[-1]['train_loss']:.3f}")
                best, best_epoch = (np.nan, np.nan), epoch
                continue
            val_loss, val_auc = _validation_metrics(
                network, validation_input, validation, validation_labels, loss_fn, device
            )
            rows.append(_history_row(epoch, train_loss / max(seen, 1), val_loss, val_auc))
            epochs.set_postfix(train=f"{rows[-1]['train_loss']:.3f}", val=f"{val_loss:.3f}")
            # Best = highest validation AUC, then lowest loss: the loss of a small validation
            # set swings with batch-norm statistics early on; the AUC is what selection uses.
            current = (-np.inf if np.isnan(val_auc) else val_auc, -val_loss)
            if epoch < config.min_epochs:
                continue
            if current > best:
                best, best_epoch = current, epoch
                best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            elif epoch - best_epoch >= config.patience:
                break
        if best_state is not None:
            network.load_state_dict(best_state)
    network.eval()
    logger.info(
        "%s: %d epochs, kept epoch %d (validation AUC %.3f, loss %.4f)",
        description,
        len(rows),
        best_epoch,
        best[0],
        -best[1],
    )
    return DeepModel(
        network,
        network_config,
        best_epoch,
        len(rows),
        pd.DataFrame(rows),
        pretrained,
        n_train=len(labels),
        n_validation=0 if validation_labels is None else len(validation_labels),
    )


def _history_row(epoch: int, train_loss: float, val_loss: float, val_auc: float) -> dict:
    """One epoch of the training history (validation columns NaN without a validation part)."""
    return {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_auc": val_auc}


def _validation_metrics(
    network: nn.Module,
    validation_input: np.ndarray,
    validation: CropSet,
    validation_labels: pd.Series,
    loss_fn: nn.Module,
    device: torch.device,
) -> tuple[float, float]:
    """Weighted BCE and AUC of the network on the validation patients (input: crop_input)."""
    y_val = validation_labels.loc[validation.patients].to_numpy(np.float32)
    val_logits = _patient_logits(network, validation_input, validation, device)
    val_loss = float(
        loss_fn(
            torch.as_tensor(val_logits, dtype=torch.float32, device=device),
            torch.as_tensor(y_val, device=device),
        )
    )
    return val_loss, _auc_or_nan(y_val, val_logits)


def _auc_or_nan(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, or NaN when the labels have a single class."""
    return float(roc_auc_score(y_true, scores)) if len(np.unique(y_true)) == 2 else float("nan")


def _inner_split(labels: pd.Series, config: DeepConfig, seed: int) -> tuple[pd.Series, pd.Series]:
    """Stratified, seeded split of the fitting patients into inner training and validation."""
    counts = labels.value_counts()
    if counts.min() < 2:
        raise ValueError(
            f"too few patients to hold out a stratified validation part ({counts.to_dict()}); "
            "at least 2 per class are needed"
        )
    fit, validation = train_test_split(
        labels.index.to_numpy(),
        test_size=config.validation_fraction,
        stratify=labels.to_numpy(),
        random_state=seed,
    )
    return labels.loc[fit], labels.loc[validation]


def _fit(
    architecture: str, labels: pd.Series, crops: CropSet, config: DeepConfig, label: str
) -> DeepModel:
    """The whole fitting procedure on given patients: inner split, training, early stopping."""
    fit_labels, val_labels, validation = labels, None, None
    if config.early_stopping:
        fit_labels, val_labels = _inner_split(
            labels, config, _seed_for(config.seed, "inner", architecture, label)
        )
        validation = crops.subset(val_labels.index)
    return _train_network(
        config.network(architecture, crops.images.shape[1]),
        crops.subset(fit_labels.index),
        fit_labels,
        validation,
        val_labels,
        config,
        _seed_for(config.seed, "train", architecture, label),
        f"{architecture} {label}",
    )


def fit_model(
    train_sheet: pd.DataFrame,
    crops: CropSet,
    config: DeepConfig,
    architecture: str | None = None,
    *,
    endpoint: str = "response",
) -> DeepModel:
    """Fit one architecture on the training split (inner validation split, early stopping)."""
    labels = training_labels(train_sheet, endpoint)
    architecture = architecture or config.architectures[0]
    return _fit(architecture, labels, crops.subset(labels.index), config, "refit")


@dataclass
class Selection:
    """Architecture selection: fold table, summary, winner, its refit and out-of-fold scores."""

    table: pd.DataFrame
    summary: pd.DataFrame
    winner: str
    model: DeepModel
    # The winner's held-out-fold score of every training patient (index patient_id): what a
    # downstream model fitted on training rows must see, as the refit's in-sample scores are
    # optimistic.
    out_of_fold: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    # The winner's network of each CV fold (fold order), kept for the fold ensemble.
    fold_models: tuple[DeepModel, ...] = ()

    def ensemble_members(self, how: str) -> tuple[DeepModel, ...]:
        """The networks whose mean probability is the DLTR score (see DeepConfig.ensemble)."""
        if how not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {ENSEMBLES}, not {how!r}")
        return (self.model,) if how == "refit" else (*self.fold_models, self.model)


def cross_validate(
    train_sheet: pd.DataFrame, crops: CropSet, config: DeepConfig, *, endpoint: str = "response"
) -> pd.DataFrame:
    """Stratified k-fold CV of every architecture on the training split; one row per fold."""
    return cross_validate_networks(train_sheet, crops, config, endpoint=endpoint)[0]


def cross_validate_networks(
    train_sheet: pd.DataFrame, crops: CropSet, config: DeepConfig, *, endpoint: str = "response"
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[DeepModel]]]:
    """The fold table, every held-out score and the fold networks of each architecture."""
    labels = training_labels(train_sheet, endpoint)
    crops = crops.subset(labels.index)
    folds = StratifiedKFold(
        n_splits=config.folds, shuffle=True, random_state=_seed_for(config.seed, "folds")
    )
    # The same folds for every architecture: a paired comparison.
    splits = list(folds.split(labels.index.to_numpy(), labels.to_numpy()))
    rows = []
    held_out = []
    networks: dict[str, list[DeepModel]] = {}
    for architecture in config.architectures:
        for fold, (fit_rows, held_rows) in enumerate(splits, start=1):
            started = time.perf_counter()
            fit_labels, held_labels = labels.iloc[fit_rows], labels.iloc[held_rows]
            model = _fit(architecture, fit_labels, crops, config, f"fold {fold}")
            networks.setdefault(architecture, []).append(model)
            held_scores = predict_scores(
                model, crops.subset(held_labels.index), device=config.device
            )
            held_out.append(
                pd.DataFrame(
                    {
                        "architecture": architecture,
                        "fold": fold,
                        "patient_id": held_scores.index,
                        SCORE_NAME: held_scores.to_numpy(),
                    }
                )
            )
            rows.append(
                {
                    "architecture": architecture,
                    "fold": fold,
                    "auc": _auc_or_nan(
                        held_labels.loc[held_scores.index].to_numpy(), held_scores.to_numpy()
                    ),
                    "n_train": len(fit_labels),
                    "n_val": len(held_labels),
                    "epochs": model.epochs,
                    "best_epoch": model.best_epoch,
                    "n_inner_val": model.n_validation,
                    "n_parameters": count_parameters(model.network),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            logger.info("%s fold %d: AUC %.3f", architecture, fold, rows[-1]["auc"])
    return pd.DataFrame(rows, columns=list(SELECTION_COLUMNS)), pd.concat(held_out), networks


def selection_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD of the fold AUCs per architecture, ranked by the winner rule (rank 1 wins)."""
    summary = table.groupby("architecture", sort=False).agg(
        mean_auc=("auc", "mean"),
        sd_auc=("auc", "std"),
        n_folds=("auc", "size"),
        n_parameters=("n_parameters", "first"),
    )
    summary["order"] = [
        ARCHITECTURES.index(a) if a in ARCHITECTURES else len(ARCHITECTURES) for a in summary.index
    ]
    # Ties at 3 decimals go to the steadier (lower SD), then the smaller, then the listed first.
    summary["rounded"] = summary["mean_auc"].round(3)
    summary = summary.sort_values(
        ["rounded", "sd_auc", "n_parameters", "order"],
        ascending=[False, True, True, True],
        na_position="last",
    )
    summary["rank"] = np.arange(1, len(summary) + 1)
    return summary.drop(columns=["order", "rounded"]).reset_index()


def choose_winner(table: pd.DataFrame) -> str:
    """The architecture with the best mean CV AUC (ties: lower SD, fewer parameters, order)."""
    return str(selection_summary(table)["architecture"].iloc[0])


def select_and_refit(
    train_sheet: pd.DataFrame, crops: CropSet, config: DeepConfig, *, endpoint: str = "response"
) -> Selection:
    """Cross-validate every architecture on the training split, then refit the winner on it."""
    table, held_out, networks = cross_validate_networks(
        train_sheet, crops, config, endpoint=endpoint
    )
    winner = choose_winner(table)
    logger.info("selected %s; refitting on the whole training split", winner)
    model = fit_model(train_sheet, crops, config, winner, endpoint=endpoint)
    out_of_fold = held_out.loc[held_out["architecture"] == winner].set_index("patient_id")
    return Selection(
        table,
        selection_summary(table),
        winner,
        model,
        out_of_fold[SCORE_NAME].rename(SCORE_NAME),
        tuple(networks[winner]),
    )


# --------------------------------------------------------------------------- prediction


def _check_crops_fit(model: DeepModel, crops: CropSet) -> None:
    """ValueError when crops have another size or phase count than the network was built for."""
    expected = (model.config.in_channels, *model.config.spatial_size)
    if tuple(crops.images.shape[1:]) != expected:
        raise ValueError(
            f"crops are {tuple(crops.images.shape[1:])} (phases, z, y, x) but the "
            f"{model.config.architecture} network takes {expected}; load the crops with "
            f"spatial_size={model.config.spatial_size} and the same phases"
        )


def _network_outputs(
    network: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (n,) and penultimate features (n, f) of each crop, in eval mode."""
    captured: list[torch.Tensor] = []
    # The input of the final linear layer is the global-pooled feature vector of every family.
    last_linear = [m for m in network.modules() if isinstance(m, nn.Linear)][-1]
    hook = last_linear.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    network.eval()
    network.to(device)
    amp_dtype = autocast_dtype(device)
    logits = []
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = batch_to_device(
                    torch.from_numpy(images[start : start + batch_size]), device
                )
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits.append(network(batch).squeeze(1).float().cpu())
    finally:
        hook.remove()
    features = torch.cat([c.float().cpu() for c in captured]).numpy().astype(np.float64)
    return torch.cat(logits).numpy().astype(np.float64), features


def network_input(
    images: np.ndarray,
    config: NetworkConfig,
    masks: np.ndarray | None = None,
    spacing_zyx: Sequence[Sequence[float]] | None = None,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Crops as the network sees them: float32, clipped, blanked beyond the tumour margin.

    `images` is one crop (phases, z, y, x) or a stack (n, phases, z, y, x); `masks` and
    `spacing_zyx` (one per crop) are needed when the config has a tumour margin, and `masks`
    when the network takes the tumour mask as its last channel; `names` (one per crop, e.g.
    patient ids) name the crops in errors.
    """
    images = np.asarray(images, np.float32)
    if config.intensity_clip is not None:
        images = np.clip(images, *config.intensity_clip)
    if config.tumour_margin_mm is None and not config.takes_mask:
        return images
    single = images.ndim == 4
    stack = images[None] if single else images
    mask_stack = _masks_for(config, masks, single)
    if config.tumour_margin_mm is not None:
        if spacing_zyx is None:
            raise ValueError(
                f"the {config.architecture} network sees only the tumour and "
                f"{config.tumour_margin_mm} mm around it, so it needs the crops' spacings; "
                "load the crops with hccrad.deep.train.load_crops"
            )
        spacings = [spacing_zyx] if single else list(spacing_zyx)
        regions = np.stack(
            [
                tumour_region(mask, spacing, config.tumour_margin_mm)
                for mask, spacing in zip(mask_stack, spacings, strict=True)
            ]
        )
        stack = np.where(regions[:, None], stack, np.float32(0.0))
    if config.takes_mask:
        tumour = mask_stack == TUMOUR_LABEL
        empty = [i for i, crop in enumerate(tumour) if not crop.any()]
        if empty:
            # A network that pools over the tumour has nothing to pool without one.
            labels = [names[i] if names is not None else f"crop {i}" for i in empty]
            raise ValueError(
                f"{len(empty)} crop(s) have no tumour voxels (label {TUMOUR_LABEL}): "
                f"{name_patients(labels)}; the {config.architecture} network pools over the "
                "tumour, so rerun the crop step (hccrad.imaging crops are centred on a tumour) "
                "or leave these patients out"
            )
        stack = np.concatenate([stack, tumour[:, None].astype(np.float32)], axis=1)
    return stack[0] if single else stack


def _masks_for(config: NetworkConfig, masks: np.ndarray | None, single: bool) -> np.ndarray:
    """The crops' label masks as a stack; ValueError naming what needs them when absent."""
    if masks is None:
        needs = (
            "takes the tumour mask as an input channel"
            if config.takes_mask
            else f"sees only the tumour and {config.tumour_margin_mm} mm around it"
        )
        raise ValueError(
            f"the {config.architecture} network {needs}, so it needs the crops' tumour masks; "
            "load the crops with hccrad.deep.train.load_crops"
        )
    masks = np.asarray(masks)
    return masks[None] if single else masks


def crop_input(crops: CropSet, config: NetworkConfig) -> np.ndarray:
    """The network input of every crop of a CropSet (see network_input)."""
    return network_input(crops.images, config, crops.masks, crops.spacing_zyx, crops.patient_ids)


def clipped_tumour_fraction(crops: CropSet, clip: tuple[float, float] | None) -> pd.Series:
    """Per phase, the share of the crops' tumour voxels that `clip` saturates (0 without one)."""
    fractions = pd.Series(0.0, index=pd.Index(crops.phases, name="phase"), name="clipped")
    if clip is None or crops.masks is None:
        return fractions
    tumour = crops.masks == TUMOUR_LABEL
    if not tumour.any():
        return fractions
    for index, phase in enumerate(crops.phases):
        values = crops.images[:, index][tumour]
        fractions[phase] = float(np.mean((values < clip[0]) | (values > clip[1])))
    return fractions


def warn_if_tumour_clipped(
    crops: CropSet, clip: tuple[float, float] | None, limit: float = CLIPPED_TUMOUR_LIMIT
) -> pd.Series:
    """Log the clipped share of tumour voxels per phase; warn above `limit`; returns the shares.

    A clip meant for air and bone can cut into the tumour itself (hypointense tumours in the
    hepatobiliary phase lie 4-8 liver SDs below the liver), and what it cuts the network
    cannot see.
    """
    fractions = clipped_tumour_fraction(crops, clip)
    logger.info(
        "tumour voxels outside deep.intensity_clip %s per phase: %s",
        clip,
        fractions.round(4).to_dict(),
    )
    over = fractions[fractions > limit]
    if len(over):
        logger.warning(
            "deep.intensity_clip %s saturates more than %.0f%% of the tumour's voxels in %s; "
            "the network cannot see intensity differences there: widen deep.intensity_clip",
            clip,
            100 * limit,
            ", ".join(f"{phase} ({share:.0%})" for phase, share in over.items()),
        )
    return fractions


def tumour_region(mask: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float) -> np.ndarray:
    """Voxels within margin_mm of the tumour (label 2); ValueError if the crop has no tumour."""
    tumour = np.asarray(mask) == TUMOUR_LABEL
    if not tumour.any():
        raise ValueError(
            "a crop has no tumour voxels, so there is no tumour margin to show the network; "
            "rerun the crop step (hccrad.imaging crops are centred on a tumour)"
        )
    # Euclidean distance in mm (anisotropic spacings included) from each voxel to the tumour.
    distance = ndimage.distance_transform_edt(~tumour, sampling=tuple(map(float, spacing_zyx)))
    return distance <= margin_mm


def _patient_logits(
    network: nn.Module, images: np.ndarray, crops: CropSet, device: torch.device
) -> np.ndarray:
    """Mean logit over each patient's crops (images: crop_input), in crops.patients' order."""
    logits, _ = _network_outputs(network, images, device)
    return pd.Series(logits).groupby(list(crops.patient_ids), sort=False).mean().to_numpy()


def predict_scores(model: DeepModel, crops: CropSet, *, device: str = "auto") -> pd.Series:
    """Response probability per patient: the mean sigmoid over the patient's crops."""
    return predict_ensemble([model], crops, device=device)


def predict_ensemble(
    models: Sequence[DeepModel], crops: CropSet, *, device: str = "auto"
) -> pd.Series:
    """The mean response probability of several networks per patient (one network: its own)."""
    if not models:
        raise ValueError("an ensemble needs at least one network")
    # Networks of one config (a fold ensemble) share one prepared input: the margin blanking is
    # a distance transform per crop, the slowest part of inference on a GPU.
    inputs: dict[NetworkConfig, np.ndarray] = {}
    scores = []
    target = resolve_device(device)
    for model in models:
        _check_crops_fit(model, crops)
        if model.config not in inputs:
            inputs[model.config] = crop_input(crops, model.config)
        logits, _ = _network_outputs(model.network, inputs[model.config], target)
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        per_patient = pd.Series(probabilities).groupby(list(crops.patient_ids), sort=False).mean()
        per_patient.index.name = "patient_id"
        scores.append(per_patient)
    return pd.concat(scores, axis=1).mean(axis=1).rename(SCORE_NAME)


def deep_features(model: DeepModel, crops: CropSet, *, device: str = "auto") -> pd.DataFrame:
    """Penultimate-layer features per patient (mean over crops): columns deep_0000, ..."""
    _check_crops_fit(model, crops)
    images = crop_input(crops, model.config)
    _, features = _network_outputs(model.network, images, resolve_device(device))
    columns = [f"{FEATURE_PREFIX}{i:04d}" for i in range(features.shape[1])]
    frame = pd.DataFrame(features, columns=columns)
    frame = frame.groupby(list(crops.patient_ids), sort=False).mean()
    frame.index.name = "patient_id"
    return frame


# --------------------------------------------------------------------------- Grad-CAM


def grad_cam_layer(model: DeepModel, min_voxels: int = MIN_CAM_VOXELS) -> str:
    """The deepest candidate layer whose feature map is at least `min_voxels` per axis."""
    candidates = CAM_LAYERS[model.config.architecture]
    modules = dict(model.network.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Any:
        """A forward hook that notes the layer's output size (and returns None: no change)."""

        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            shapes[name] = tuple(output.shape[2:])

        return hook

    hooks = [modules[name].register_forward_hook(record(name)) for name in candidates]
    network = model.network
    device = next(network.parameters()).device
    try:
        network.eval()
        with torch.inference_mode():
            network(
                torch.zeros(
                    1, model.config.input_channels, *model.config.spatial_size, device=device
                )
            )
    finally:
        for hook in hooks:
            hook.remove()
    for name in candidates:
        if min(shapes[name]) >= min_voxels:
            return name
    return candidates[-1]


def _cam_explainer(model: DeepModel, layer: str) -> tuple[GradCAM, str]:
    """A GradCAM on a CPU copy of the network (its hooks stay off the caller's network)."""
    layer = grad_cam_layer(model) if layer == "auto" else layer
    network = copy.deepcopy(model.network).cpu().eval()
    return GradCAM(nn_module=network, target_layers=layer), layer


def grad_cam(
    model: DeepModel,
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    spacing_zyx: Sequence[float] | None = None,
    layer: str = "auto",
) -> np.ndarray:
    """Grad-CAM of the response logit for one crop (phases, z, y, x): a (z, y, x) map in [0, 1]."""
    explainer, _ = _cam_explainer(model, layer)
    shown = network_input(image, model.config, mask, spacing_zyx)
    return _cam_map(explainer, shown, model.config.takes_mask)


def _cam_map(explainer: GradCAM, image: np.ndarray, takes_mask: bool = False) -> np.ndarray:
    """One crop's CAM, upsampled by MONAI to the crop's size and scaled to [0, 1].

    For a network that pools over the tumour mask (the image's last channel), the CAM is kept
    to the tumour: Grad-CAM weighs every voxel's activations by the channel's mean gradient,
    but the logit does not depend on activations outside the mask at all.
    """
    tensor = torch.as_tensor(np.asarray(image, np.float32))[None]
    with torch.enable_grad():
        cam = explainer(x=tensor, class_idx=0)
    cam_map = np.nan_to_num(cam[0, 0].detach().cpu().numpy().astype(np.float32))
    if takes_mask:
        cam_map = np.where(np.asarray(image)[-1] > 0.5, cam_map, np.float32(0.0))
        peak = cam_map.max()
        cam_map = cam_map / peak if peak > 0 else cam_map
    return cam_map


def _mid_tumour_slice(crops: CropSet, row: int) -> int:
    """The axial slice with the most tumour voxels, or the middle slice without a mask."""
    if crops.masks is None or not (crops.masks[row] == TUMOUR_LABEL).any():
        return crops.images.shape[2] // 2
    return int(np.argmax((crops.masks[row] == TUMOUR_LABEL).sum(axis=(1, 2))))


def _patients_to_show(sheet: pd.DataFrame, scores: pd.Series, per_centre: int) -> list[str]:
    """Per centre, patients spread over the score range (highest and lowest first)."""
    chosen = []
    for _, group in sheet.groupby("centre", sort=True):
        ranked = scores.reindex(group.index).dropna().sort_values(ascending=False)
        if ranked.empty:
            continue
        positions = np.unique(np.linspace(0, len(ranked) - 1, min(per_centre, len(ranked))).round())
        chosen += [str(ranked.index[int(p)]) for p in positions]
    return chosen


@dataclass(frozen=True)
class GradCamPanels:
    """What the Grad-CAM figure shows: per patient the mid-tumour slice, its map and outline."""

    patients: tuple[str, ...]
    titles: tuple[str, ...]
    images: np.ndarray  # (n, y, x) the chosen phase's slice
    cams: np.ndarray  # (n, y, x) Grad-CAM, 0-1 per patient
    tumour: np.ndarray  # (n, y, x) bool tumour outline (all False without masks)
    extents_mm: np.ndarray  # (n, 4) imshow extents in mm (voxels where the spacing is unknown)
    phase: str
    architecture: str
    layer: str
    has_spacing: bool

    def save(self, path: str | Path) -> Path:
        """Write the panels as one .npz: the Grad-CAM figure is drawn from it alone."""
        path = Path(path)
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                patients=np.array(self.patients),
                titles=np.array(self.titles),
                images=self.images,
                cams=self.cams,
                tumour=self.tumour,
                extents_mm=self.extents_mm,
                meta=np.array([self.phase, self.architecture, self.layer]),
                has_spacing=np.array(self.has_spacing),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> GradCamPanels:
        """Read panels written by ``save``."""
        with np.load(path, allow_pickle=False) as data:
            phase, architecture, layer = (str(v) for v in data["meta"])
            return cls(
                tuple(str(p) for p in data["patients"]),
                tuple(str(t) for t in data["titles"]),
                data["images"],
                data["cams"],
                data["tumour"],
                data["extents_mm"],
                phase,
                architecture,
                layer,
                bool(data["has_spacing"]),
            )


def grad_cam_panels(
    model: DeepModel,
    crops: CropSet,
    sheet: pd.DataFrame,
    scores: pd.Series,
    *,
    patients_per_centre: int = 2,
    phase: str | None = None,
    layer: str = "auto",
    endpoint: str = "response",
) -> GradCamPanels:
    """Grad-CAM over the mid-tumour axial slice for a few patients per centre."""
    sheet = _by_patient(sheet)
    scores = scores.copy()
    scores.index = scores.index.astype(str)
    in_crops = set(crops.patient_ids)
    patients = _patients_to_show(
        sheet.loc[[p for p in sheet.index if p in in_crops]], scores, patients_per_centre
    )
    if not patients:
        raise ValueError("no patient has a crop, a centre in the sheet and a score to show")
    phase = phase or (
        PREFERRED_CAM_PHASE if PREFERRED_CAM_PHASE in crops.phases else crops.phases[0]
    )
    channel = crops.phases.index(phase)
    explainer, layer = _cam_explainer(model, layer)
    images, cams, tumour, extents = [], [], [], []
    for patient in patients:
        row = crops.patient_ids.index(patient)  # the patient's largest tumour comes first
        k = _mid_tumour_slice(crops, row)
        # The panel shows what the network sees (clipped, blanked beyond the tumour margin).
        image = crop_input(crops._take([row]), model.config)[0]
        images.append(image[channel, k])
        cams.append(_cam_map(explainer, image, model.config.takes_mask)[k])
        outline = crops.masks[row, k] == TUMOUR_LABEL if crops.masks is not None else None
        tumour.append(np.zeros(images[-1].shape, bool) if outline is None else outline)
        extents.append(_extent_mm(crops, row))
    return GradCamPanels(
        tuple(patients),
        tuple(_panel_title(p, sheet, scores, endpoint) for p in patients),
        np.stack(images).astype(np.float32),
        np.stack(cams).astype(np.float32),
        np.stack(tumour),
        np.array(extents, dtype=float),
        phase,
        model.config.architecture,
        layer,
        crops.spacing_zyx is not None,
    )


def grad_cam_figure(panels: GradCamPanels) -> plt.Figure:
    """The Grad-CAM figure: each patient's slice (tumour outlined) above its Grad-CAM overlay."""
    apply_style()
    n = len(panels.patients)
    figure, axes = plt.subplots(
        2, n, figsize=(1.45 * n + 0.9, 3.4), squeeze=False, layout="constrained"
    )
    shown = None
    for column in range(n):
        image, extent = panels.images[column], tuple(panels.extents_mm[column])
        low, high = np.percentile(image, [1, 99])
        for ax in axes[:, column]:
            ax.imshow(image, cmap="gray", vmin=low, vmax=high, extent=extent)
            if panels.tumour[column].any():
                ax.contour(
                    panels.tumour[column],
                    levels=[0.5],
                    colors="#56B4E9",
                    linewidths=0.7,
                    extent=extent,
                    origin="upper",
                )
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        shown = axes[1, column].imshow(
            panels.cams[column], cmap=CAM_COLOURMAP, vmin=0, vmax=1, alpha=0.55, extent=extent
        )
        axes[0, column].set_title(panels.titles[column], fontsize=7)
    axes[0, 0].set_ylabel(f"{panels.phase.replace('_', ' ')} phase")
    axes[1, 0].set_ylabel("Grad-CAM overlay")
    if panels.has_spacing:
        _scale_bar(axes[0, 0])
    colorbar = figure.colorbar(shown, ax=axes[1, :].tolist(), shrink=0.9)
    colorbar.set_label(f"Grad-CAM, {panels.architecture} {panels.layer}\n(0-1 per patient)")
    figure.suptitle("Where the network looks: mid-tumour axial slice, tumour outlined", fontsize=9)
    return figure


def _panel_title(patient: str, sheet: pd.DataFrame, scores: pd.Series, endpoint: str) -> str:
    """Patient, centre, predicted probability and (where known) the observed endpoint."""
    title = f"{patient}\ncentre {sheet.loc[patient, 'centre']} · p = {scores[patient]:.2f}"
    # The observed outcome on a line of its own: "· proliferative 1" overran a panel's width.
    if endpoint in sheet.columns and pd.notna(sheet.loc[patient, endpoint]):
        observed = int(sheet.loc[patient, endpoint])
        if endpoint == "response":
            title += "\nresponder" if observed == 1 else "\nnon-responder"
        else:
            title += f"\n{endpoint}: {'yes' if observed == 1 else 'no'}"
    return title


def _extent_mm(crops: CropSet, row: int) -> tuple[float, float, float, float]:
    """imshow extent of an axial slice in mm (voxels where the spacing is unknown)."""
    _, sy, sx = crops.spacing_zyx[row] if crops.spacing_zyx is not None else (1.0, 1.0, 1.0)
    ny, nx = crops.images.shape[3:]
    return (0.0, nx * sx, ny * sy, 0.0)


def _scale_bar(ax: plt.Axes) -> None:
    """A 10 mm bar in the lower left corner of a panel whose axes are in mm."""
    width = ax.get_xlim()[1]
    bottom = ax.get_ylim()[0]  # the image's last row: y grows downwards
    x0, y0 = 0.08 * width, 0.9 * bottom
    ax.plot([x0, x0 + 10.0], [y0, y0], color="white", linewidth=1.5)
    ax.text(x0 + 5.0, 0.86 * bottom, "10 mm", color="white", fontsize=6, ha="center")
