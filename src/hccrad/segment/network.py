"""Multi-task segmentation: a 2.5D U-Net++ with an EfficientNet-B0 encoder and a response head.

The network of the multi-task study: one encoder-decoder segments liver and tumour on axial
slices (phases x neighbouring slices as channels, "2.5D") and a classification head on the
encoder's deepest features predicts the endpoint; both are trained jointly (Dice + cross-entropy
for the labels, BCE for the endpoint, weights from the config) on the training split only
(``hccrad.segment.train``). This module holds the network and its weights; its settings are in
``hccrad.segment.config``.

Why MONAI and not segmentation-models-pytorch: smp and timm import torchvision at import time,
and the only torchvision wheel for the pinned torch 2.13 on PyPI is a CUDA build that does not
load against the CPU torch ("operator torchvision::nms does not exist"). MONAI, already a
dependency, ships the EfficientNet-B0 encoder (``EfficientNetEncoder``) and the nested up-and-
concatenate block of its U-Net++ (``UpCat``); only the dense skip wiring of U-Net++ (Zhou et al.
2018) over the encoder's five feature maps is written here.

Why 2.5D and not 3D: the prepared volumes are ~70 x 70 x 50 voxels; slices make a few thousand
training samples from ~70 patients and an EfficientNet-B0 slice pass costs ~30 ms on one CPU
core, so the default cohort trains in minutes on a laptop.

"""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.blocks import Convolution, UpSample
from monai.networks.nets import EfficientNetEncoder
from monai.networks.nets.basic_unetplusplus import UpCat
from torch import nn

from hccrad.segment.config import CLASSES, ENCODER, ENCODER_CHANNELS, SegmentConfig

# --------------------------------------------------------------------------- network


class MultiTaskUNetPlusPlus(nn.Module):
    """U-Net++ decoder with dense nested skips on an EfficientNet-B0 encoder, plus a response head.

    ``forward`` returns (segmentation logits [B, classes, H, W], response logits [B]); H and W
    must be multiples of 32 (``pad_to_multiple``).
    """

    def __init__(self, in_channels: int, classes: int = CLASSES, dropout: float = 0.2) -> None:
        super().__init__()
        self.encoder = EfficientNetEncoder(
            ENCODER, pretrained=False, spatial_dims=2, in_channels=in_channels
        )
        channels = ENCODER_CHANNELS
        # Decoder node X[i][j] (level i, j-th nested step) keeps the encoder width of level i.
        self.nodes = nn.ModuleDict()
        for j in range(1, len(channels)):
            for i in range(len(channels) - j):
                below = channels[i + 1]
                skips = channels[i] * j  # X[i][0] ... X[i][j-1], all of width channels[i]
                self.nodes[f"{i}_{j}"] = UpCat(
                    2, below, skips, channels[i], "relu", "batch", False, halves=False
                )
        self.final_up = UpSample(2, channels[0], channels[0], scale_factor=2, mode="deconv")
        self.final_conv = Convolution(2, channels[0], channels[0], act="relu", norm="batch")
        self.segmentation_head = nn.Conv2d(channels[0], classes, kernel_size=1)
        self.response_head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels[-1], 1)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segmentation logits at input size and one response logit per slice."""
        features = self.encoder(x)
        grid: dict[tuple[int, int], torch.Tensor] = {(i, 0): f for i, f in enumerate(features)}
        for j in range(1, len(features)):
            for i in range(len(features) - j):
                skips = torch.cat([grid[(i, k)] for k in range(j)], dim=1)
                grid[(i, j)] = self.nodes[f"{i}_{j}"](grid[(i + 1, j - 1)], skips)
        top = self.final_conv(self.final_up(grid[(0, len(features) - 1)]))
        return self.segmentation_head(top), self.response_head(features[-1]).squeeze(1)


def build_network(config: SegmentConfig) -> MultiTaskUNetPlusPlus:
    """The multi-task network for the configured phases and neighbouring slices."""
    return MultiTaskUNetPlusPlus(config.in_channels)


def load_encoder_weights(network: MultiTaskUNetPlusPlus, path: str | Path) -> list[str]:
    """Load pretrained encoder weights from a local file; return the tensors that fitted.

    Only a local path: nothing is downloaded. Tensors whose name or shape do not fit (e.g. the
    3-channel stem of an ImageNet checkpoint against our phase x slice stem) are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"segment.pretrained: {path} does not exist; give a local EfficientNet-B0 "
            "state_dict (.pt) or leave it empty to train from scratch"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = network.encoder.state_dict()
    fitting = {
        k.removeprefix("encoder."): v
        for k, v in state.items()
        if k.removeprefix("encoder.") in own and own[k.removeprefix("encoder.")].shape == v.shape
    }
    if not fitting:
        raise ValueError(
            f"segment.pretrained: no tensor of {path} fits the EfficientNet-B0 encoder"
        )
    network.encoder.load_state_dict(fitting, strict=False)
    return sorted(fitting)
