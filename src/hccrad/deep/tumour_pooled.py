"""A 3D CNN that pools its features over the tumour only: the tumour-pooled candidate of DLTR.

The MONAI classifiers (ResNet, DenseNet, EfficientNet) end in a global average pool over the
whole crop, and at 32^3 crops their last feature map is one voxel wide: the tumour's outline,
hence its size, is part of what they pool. On the default cohort's training split their
out-of-fold proliferative scores followed tumour size more than the traits that define the
endpoint (config/README.md, `deep.architectures`). This network keeps the resolution (one
stride-2 stem, then residual units at stride 1) and pools each feature channel over the
tumour mask alone, as a mean and an SD, so that the tumour's outline and extent do not enter
the pooling (what size does to the inside, partial volume at the edge and a necrotic core that
only large tumours resolve, still can). The mask is the input's last channel.

MONAI has no network with region (masked) pooling; the layers are MONAI's Convolution and
ResidualUnit blocks, and only the pooling is written here.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn
from torch.nn import functional

ARCHITECTURE = "tumour_pooled"
# Channels of the two residual stages at width 1 (the ResNets' first two stages at width 1).
BASE_CHANNELS: tuple[int, int] = (64, 128)
# Guards the division of an empty mask and the square root of a zero variance.
EPSILON = 1e-6


def masked_moments(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per channel the mean and SD of `features` (n, c, z, y, x) weighted by `mask` (n, 1, ...)."""
    weights = mask / mask.sum(dim=(2, 3, 4), keepdim=True).clamp_min(EPSILON)
    mean = (features * weights).sum(dim=(2, 3, 4))
    variance = ((features - mean[..., None, None, None]) ** 2 * weights).sum(dim=(2, 3, 4))
    return torch.cat([mean, torch.sqrt(variance + EPSILON)], dim=1)


class TumourPooledCNN(nn.Module):
    """Convolutions on the image channels; the tumour mask (last channel) weights the pooling."""

    def __init__(self, image_channels: int, width: float = 0.25, stem_stride: int = 2) -> None:
        """Stem (stride `stem_stride`), two residual units; channels scale with `width`."""
        super().__init__()
        first, second = (max(1, round(base * width)) for base in BASE_CHANNELS)
        block = {"spatial_dims": 3, "norm": "batch", "act": "relu"}
        self.features = nn.Sequential(
            Convolution(
                in_channels=image_channels, out_channels=first, strides=stem_stride, **block
            ),
            ResidualUnit(in_channels=first, out_channels=first, subunits=2, **block),
            ResidualUnit(in_channels=first, out_channels=second, subunits=2, **block),
        )
        self.fc = nn.Linear(2 * second, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """One logit per crop from (n, image channels + 1 mask channel, z, y, x)."""
        images, mask = inputs[:, :-1], inputs[:, -1:]
        # Pooled in float32: a bfloat16 variance of near-equal values (mixed precision) is 0.
        features = self.features(images).float()
        # The share of tumour in each feature-map voxel: a soft mask at the features' grid.
        share = functional.adaptive_avg_pool3d((mask > 0.5).float(), features.shape[2:])
        return self.fc(masked_moments(features, share))
