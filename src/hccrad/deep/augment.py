"""Training augmentation: the per-sample MONAI Compose and the same transforms on a whole batch.

`BatchAugmentation` is what training uses: flips, rotations, blur, intensity scale and shift
and noise applied to a (B, C, z, y, x) batch with torch ops on the batch's device, the
parameters drawn per sample from a seeded torch.Generator. Each transform has the distribution
of its MONAI counterpart in `monai_augmentation` (the per-sample Compose, kept as the reference
that the tests and benchmarks/deep_training_benchmark.py compare with): one Bernoulli(prob) per
sample and transform, angles, factors, offsets and sigmas uniform over the same ranges, MONAI's
rotation convention (intrinsic x-y-z Euler angles over the array axes, about the crop centre,
keep_size, align_corners False). Per-sample MONAI transforms on the training thread made
training run at 0.53-0.65 of a plain MONAI loop (issue 30); the batched transforms cost a few
tensor ops per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from monai.networks.layers import gaussian_1d
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
)
from monai.utils import convert_to_tensor

from hccrad.core.seeding import rng_for
from hccrad.deep.config import DeepConfig

# Mild warps for 32-48 voxel crops: smooth (sigma 5-7 voxels), a few voxels at most.
ELASTIC_SIGMA = (5.0, 7.0)
ELASTIC_MAGNITUDE = (20.0, 60.0)
# MONAI's GaussianFilter truncation (RandGaussianSmooth's kernels reach 4 sigma).
BLUR_TRUNCATED = 4.0


def monai_augmentation(config: DeepConfig, *, with_mask: bool = False) -> Compose:
    """The per-sample MONAI Compose of the training transforms (the batched path's reference).

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
        transforms.append(_elastic(spatial_keys, config.elastic_prob))
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


def _elastic(keys: list[str], prob: float) -> Rand3DElasticd:
    """MONAI's elastic warp of the training crops (images bilinear/border, mask nearest/zeros)."""
    return Rand3DElasticd(
        keys,
        sigma_range=ELASTIC_SIGMA,
        magnitude_range=ELASTIC_MAGNITUDE,
        prob=prob,
        mode=("bilinear", "nearest")[: len(keys)],
        padding_mode=("border", "zeros")[: len(keys)],
    )


@dataclass(frozen=True)
class Draws:
    """One batch's augmentation parameters, per sample (CPU tensors; B = batch size)."""

    flip: torch.Tensor  # (B, 3) bool: flip along z, y, x
    rotate: torch.Tensor  # (B,) bool
    angles: torch.Tensor  # (B, 3) radians, MONAI's (x, y, z) angles over the array axes
    elastic: torch.Tensor  # (B,) bool
    elastic_seed: torch.Tensor  # (B,) int64: seeds of the per-sample MONAI elastic warp
    blur: torch.Tensor  # (B,) bool
    sigma: torch.Tensor  # (B, 3) blur sigma along z, y, x (voxels)
    scale: torch.Tensor  # (B,) bool
    factor: torch.Tensor  # (B, C) x * (1 + factor); one value per sample unless phase-wise
    shift: torch.Tensor  # (B,) bool
    offset: torch.Tensor  # (B, C) x + offset
    noise: torch.Tensor  # (B,) bool
    noise_std: torch.Tensor  # (B,) SD of the Gaussian noise


def draw(config: DeepConfig, batch_size: int, channels: int, generator: torch.Generator) -> Draws:
    """The parameters of every transform for `batch_size` crops of `channels` image channels."""

    def chance(prob: float) -> torch.Tensor:
        return torch.rand(batch_size, generator=generator, dtype=torch.float64) < prob

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        unit = torch.rand(batch_size, *shape, generator=generator, dtype=torch.float64)
        return low + (high - low) * unit

    def per_channel(limit: float) -> torch.Tensor:
        # MONAI's channel_wise draws one value per channel; otherwise one for the whole crop.
        values = uniform(-limit, limit, channels if config.phase_wise_intensity else 1)
        return values.expand(batch_size, channels)

    radians = float(np.deg2rad(config.rotate_degrees))
    return Draws(
        flip=torch.rand(batch_size, 3, generator=generator, dtype=torch.float64) < config.flip_prob,
        rotate=chance(config.rotate_prob),
        angles=uniform(-radians, radians, 3),
        elastic=chance(config.elastic_prob if config.elastic else 0.0),
        elastic_seed=torch.randint(0, 2**31 - 1, (batch_size,), generator=generator),
        blur=chance(config.blur_prob),
        sigma=torch.stack(
            [
                uniform(*config.blur_sigma_z),
                uniform(*config.blur_sigma_xy),
                uniform(*config.blur_sigma_xy),
            ],
            dim=1,
        ),
        scale=chance(config.intensity_prob),
        factor=per_channel(config.intensity_scale),
        shift=chance(config.intensity_prob),
        offset=per_channel(config.intensity_shift),
        noise=chance(config.noise_prob),
        noise_std=uniform(0.0, config.noise_std),
    )


def flip(batch: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Flip each crop of (B, C, z, y, x) along the spatial axes where `flips` (B, 3) is True."""
    # One flip over all drawn axes per crop: a third of the copies of flipping the batch per axis.
    axes = [[axis + 1 for axis, on in enumerate(row) if on] for row in flips.tolist()]
    if not any(axes):
        return batch
    return torch.stack(
        [crop.flip(dims) if dims else crop for crop, dims in zip(batch, axes, strict=True)]
    )


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotations of MONAI's create_rotate: intrinsic x, y, z over the array axes."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    zero, one = torch.zeros_like(cos[:, 0]), torch.ones_like(cos[:, 0])

    def matrix(*rows: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)

    c, s = cos[:, 0], sin[:, 0]
    about_x = matrix((one, zero, zero), (zero, c, -s), (zero, s, c))
    c, s = cos[:, 1], sin[:, 1]
    about_y = matrix((c, zero, s), (zero, one, zero), (-s, zero, c))
    c, s = cos[:, 2], sin[:, 2]
    about_z = matrix((c, -s, zero), (s, c, zero), (zero, zero, one))
    return about_x @ about_y @ about_z


def rotate(batch: torch.Tensor, angles: torch.Tensor, *, with_mask: bool = False) -> torch.Tensor:
    """Rotate every crop of (B, C, z, y, x) about its centre, as MONAI's Rotate(keep_size) does.

    Image channels: bilinear, border padding; with `with_mask`, the last channel is a mask:
    nearest, zeros outside.
    """
    size = torch.tensor(batch.shape[2:], dtype=torch.float64)
    # MONAI's voxel-space matrix (output -> input voxel, about the centre) in grid_sample's
    # normalised coordinates with align_corners=False is D^-1 R D with D = diag(size / 2), and
    # grid_sample lists the axes as (x, y, z), the array's reversed: computed in float64 on
    # the CPU as MONAI does, then cast.
    rotation = rotation_matrices(angles.to(torch.float64))
    normalised = rotation * size[None, :] / size[:, None]
    reverse = [2, 1, 0]
    theta = torch.zeros(len(batch), 3, 4, dtype=torch.float64)
    theta[:, :, :3] = normalised[:, reverse][:, :, reverse]
    grid = F.affine_grid(
        theta.to(batch.device, torch.float32), list(batch.shape), align_corners=False
    )
    images = batch[:, :-1] if with_mask else batch
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if with_mask:
        mask = F.grid_sample(
            batch[:, -1:], grid, mode="nearest", padding_mode="zeros", align_corners=False
        )
        out = torch.cat([out, mask], dim=1)
    return out


def blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of each crop of (B, C, z, y, x) with its own (z, y, x) sigma, as MONAI's.

    MONAI's GaussianSmooth: erf kernels to 4 sigma, zero padding, separable. Kernels of one
    axis are zero-padded to the longest of the batch, which adds only zero terms, so the whole
    batch is one grouped convolution per axis.
    """
    n, channels = images.shape[:2]
    out = images.reshape(1, n * channels, *images.shape[2:])
    for axis in range(3):
        kernels = [
            gaussian_1d(s, truncated=BLUR_TRUNCATED, approx="erf") for s in sigma[:, axis].float()
        ]
        tail = max(len(k) for k in kernels) // 2
        weight = torch.stack([F.pad(k, (tail - len(k) // 2,) * 2) for k in kernels])
        weight = weight.to(images.device).repeat_interleave(channels, dim=0)
        shape = [n * channels, 1, 1, 1, 1]
        shape[axis + 2] = 2 * tail + 1
        padding = [0, 0, 0]
        padding[axis] = tail
        out = F.conv3d(out, weight.view(shape), padding=padding, groups=n * channels)
    return out.reshape(images.shape)


class BatchAugmentation:
    """The training augmentation of `monai_augmentation`, applied to whole batches.

    The parameters come from a torch.Generator seeded with `seed`, so on the CPU the same seed
    gives the same batches bit for bit. `with_mask`: the last channel is the tumour mask, which
    moves with the image (nearest neighbour) and takes no intensity change.
    """

    def __init__(self, config: DeepConfig, seed: int, *, with_mask: bool = False) -> None:
        """Seed the parameter stream; the noise stream is seeded on first use, on the device."""
        self.config = config
        self.with_mask = with_mask
        # Parameters are drawn on the CPU (small; no device sync to decide which crops change).
        self.generator = torch.Generator().manual_seed(
            int(rng_for(seed, "augment").integers(2**62))
        )
        self._noise_seed = int(rng_for(seed, "augment", "noise").integers(2**62))
        self._noise: torch.Generator | None = None
        # Elastic warps stay per sample with MONAI's own transform: batching them would need
        # random displacement fields smoothed with a different 43-voxel kernel per crop, and at
        # ~20 crops/s they cost far more than every other transform together either way.
        keys = ["image", "mask"] if with_mask else ["image"]
        self._elastic = _elastic(keys, prob=1.0) if config.elastic else None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """The augmented batch: (B, C, z, y, x) in, the same shape and device out."""
        channels = batch.shape[1] - int(self.with_mask)
        return self.apply(batch, draw(self.config, len(batch), channels, self.generator))

    def apply(self, batch: torch.Tensor, draws: Draws) -> torch.Tensor:
        """Apply drawn parameters in MONAI's order: flip, rotate, warp, blur, intensity, noise."""
        batch = flip(batch.float(), draws.flip)
        chosen = _indices(draws.rotate, batch.device)
        if len(chosen):
            # Only the chosen crops are resampled: an identity resampling is not exact.
            batch = batch.index_copy(
                0,
                chosen,
                rotate(batch[chosen], draws.angles[draws.rotate], with_mask=self.with_mask),
            )
        if self._elastic is not None and bool(draws.elastic.any()):
            batch = self._warp(batch, draws)
        images = batch[:, :-1] if self.with_mask else batch
        chosen = _indices(draws.blur, batch.device)
        if len(chosen):
            images = images.index_copy(0, chosen, blur(images[chosen], draws.sigma[draws.blur]))
        images = images * (1 + _gated(draws.scale, draws.factor, images))
        images = images + _gated(draws.shift, draws.offset, images)
        chosen = _indices(draws.noise, batch.device)
        if len(chosen):
            sd = draws.noise_std[draws.noise].to(images.device, torch.float32)
            noise = torch.randn(
                (len(chosen), *images.shape[1:]),
                generator=self._noise_generator(images.device),
                device=images.device,
            )
            images = images.index_add(0, chosen, noise * sd.view(-1, 1, 1, 1, 1))
        return torch.cat([images, batch[:, -1:]], dim=1) if self.with_mask else images

    def _warp(self, batch: torch.Tensor, draws: Draws) -> torch.Tensor:
        """MONAI's elastic warp of the drawn crops, each seeded from the parameter stream."""
        assert self._elastic is not None
        warped = []
        for crop, chosen, seed in zip(batch, draws.elastic, draws.elastic_seed, strict=True):
            if chosen:
                keys = ("image", "mask") if self.with_mask else ("image",)
                parts = (crop[:-1], crop[-1:]) if self.with_mask else (crop,)
                out = self._elastic.set_random_state(seed=int(seed))(
                    dict(zip(keys, parts, strict=True))
                )
                crop = torch.cat([convert_to_tensor(out[key], track_meta=False) for key in keys])
            warped.append(crop)
        return torch.stack(warped)

    def _noise_generator(self, device: torch.device) -> torch.Generator:
        """The noise stream, on the batch's device (noise is drawn where it is added)."""
        if self._noise is None or self._noise.device != device:
            self._noise = torch.Generator(device=device).manual_seed(self._noise_seed)
        return self._noise


def _indices(chosen: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Positions of the True entries of a (B,) CPU mask, on `device`."""
    return chosen.nonzero().flatten().to(device)


def _gated(on: torch.Tensor, values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, 1, 1) values where `on`, else 0, as float32 on the images' device."""
    gated = torch.where(on[:, None], values, torch.zeros_like(values)).float()
    return gated.to(images.device).view(*gated.shape, 1, 1, 1)
