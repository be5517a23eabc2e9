"""The 3D CNNs: build one per architecture, load local pretrained weights, save and load a model.

Also how a batch runs on a device (mixed-precision dtype, memory format), which training and
prediction share.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import monai
import pandas as pd
import torch
from monai.networks import nets
from monai.networks.nets.resnet import get_medicalnet_pretrained_resnet_args
from torch import nn

from hccrad.core.torch_runtime import resolve_device
from hccrad.deep import tumour_pooled
from hccrad.deep.config import NetworkConfig

logger = logging.getLogger(__name__)

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
