"""The batched training augmentation: MONAI's geometry, MONAI's draw distributions, the seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from monai.transforms import (
    Flip,
    GaussianSmooth,
    RandGaussianSmooth,
    RandRotate,
    RandScaleIntensity,
    RandShiftIntensity,
    Rotate,
)
from scipy import stats

from hccrad.deep.augment import BatchAugmentation, blur, draw, flip, rotate
from hccrad.deep.config import DeepConfig
from hccrad.deep.train import augmented_batches, training_loader

# Non-cubic, so that an axis mix-up in the rotation's normalisation shows.
SHAPE = (20, 24, 28)
N_DRAWS = 4000


def crops(n: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 2-phase crops and a blocky binary mask."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 2, *SHAPE, generator=generator)
    mask = torch.zeros(n, 1, *SHAPE)
    mask[:, :, 5:14, 6:17, 9:20] = 1
    mask[:, :, 8:10] = 0
    return images, mask


def test_rotation_equals_monai_rotate_for_fixed_angles() -> None:
    images, mask = crops()
    angles = torch.tensor([[0.12, -0.2, 0.3], [0.0, 0.25, -0.1], [-0.17, 0.0, 0.05]])
    out = rotate(torch.cat([images, mask], 1), angles, with_mask=True)
    for i, angle in enumerate(angles.tolist()):
        image = Rotate(angle, keep_size=True, mode="bilinear", padding_mode="border")(images[i])
        moved = Rotate(angle, keep_size=True, mode="nearest", padding_mode="zeros")(mask[i])
        interior = (slice(None), slice(2, -2), slice(2, -2), slice(2, -2))
        np.testing.assert_allclose(out[i, :2][interior], image[interior], rtol=0, atol=2e-5)
        assert torch.equal(out[i, 2:], torch.as_tensor(moved))
    # A wrong convention (angles about other axes) would not pass: the check can fail.
    swapped = rotate(images, angles[:, [2, 1, 0]])
    assert (swapped[0] - out[0, :2]).abs().max() > 0.5


def test_flip_equals_monai_flip_per_sample_and_axis() -> None:
    images, _ = crops()
    flips = torch.tensor([[True, False, True], [False, False, False], [False, True, False]])
    out = flip(images, flips)
    for i, row in enumerate(flips.tolist()):
        axes = [axis for axis in range(3) if row[axis]]
        expected = Flip(spatial_axis=axes)(images[i]) if axes else images[i]
        assert torch.equal(out[i], torch.as_tensor(expected))


def test_blur_equals_monai_gaussian_smooth_per_sample() -> None:
    images, _ = crops()
    sigma = torch.tensor([[0.9, 0.3, 0.0], [0.25, 0.5, 0.5], [0.0, 0.0, 0.0]], dtype=torch.float64)
    out = blur(images, sigma)
    for i, row in enumerate(sigma.tolist()):
        expected = GaussianSmooth(sigma=row)(images[i])
        np.testing.assert_allclose(out[i], expected, rtol=0, atol=1e-5)
    assert not torch.allclose(out[0], images[0])


def test_intensity_and_noise_spare_the_mask_and_follow_the_draws() -> None:
    images, mask = crops()
    config = DeepConfig(
        flip_prob=0.0, rotate_prob=0.0, intensity_prob=1.0, phase_wise_intensity=True
    )
    augment = BatchAugmentation(config, seed=5, with_mask=True)
    draws = draw(config, 3, 2, torch.Generator().manual_seed(1))
    out = augment.apply(torch.cat([images, mask], 1), draws)
    expected = images * (1 + draws.factor.float()[..., None, None, None])
    expected = expected + draws.offset.float()[..., None, None, None]
    np.testing.assert_allclose(out[:, :2], expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(out[:, 2:], mask)
    # Phase-wise: the two phases of a crop got different factors.
    assert (draws.factor[:, 0] != draws.factor[:, 1]).all()
    noisy = BatchAugmentation(dataclasses.replace(config, noise_prob=1.0), 5, with_mask=True)
    out = noisy(torch.cat([images, mask], 1))
    assert torch.equal(out[:, 2:], mask)


def test_every_transform_leaves_the_mask_binary_and_moving_with_the_image() -> None:
    config = DeepConfig(
        flip_prob=1.0,
        rotate_prob=1.0,
        rotate_degrees=25.0,
        intensity_prob=1.0,
        elastic=True,
        elastic_prob=1.0,
        blur_prob=1.0,
        noise_prob=1.0,
        noise_std=0.05,
    )
    _, mask = crops(4)
    images = torch.cat([mask * 5, mask * 5], 1) + 1
    out = BatchAugmentation(config, seed=3, with_mask=True)(torch.cat([images, mask], 1))
    moved = out[:, 2]
    assert set(moved.unique().tolist()) <= {0.0, 1.0} and not torch.equal(moved, mask[:, 0])
    for crop, shown in zip(out, moved, strict=True):
        bright = crop[0] > crop[0].min() + 0.5 * (crop[0].max() - crop[0].min())
        dice = 2 * (bright & (shown > 0)).sum() / (bright.sum() + shown.sum())
        assert dice > 0.8


def test_draws_follow_the_distributions_of_the_monai_transforms() -> None:
    config = DeepConfig(
        flip_prob=0.3,
        rotate_degrees=12.0,
        rotate_prob=0.4,
        intensity_scale=0.2,
        intensity_shift=0.15,
        intensity_prob=0.6,
        phase_wise_intensity=True,
        blur_prob=0.25,
        noise_prob=0.35,
        noise_std=0.08,
    )
    draws = draw(config, N_DRAWS, 3, torch.Generator().manual_seed(0))
    radians = np.deg2rad(config.rotate_degrees)
    monai_rotate = RandRotate(radians, radians, radians, prob=config.rotate_prob)
    monai_rotate.set_random_state(1)
    monai_scale = RandScaleIntensity(
        config.intensity_scale, prob=config.intensity_prob, channel_wise=True
    )
    monai_scale.set_random_state(2)
    monai_shift = RandShiftIntensity(
        config.intensity_shift, prob=config.intensity_prob, channel_wise=True
    )
    monai_shift.set_random_state(3)
    monai_blur = RandGaussianSmooth(
        config.blur_sigma_z, config.blur_sigma_xy, config.blur_sigma_xy, prob=config.blur_prob
    )
    monai_blur.set_random_state(4)
    reference: dict[str, list] = {k: [] for k in ("rotate", "angle", "scale", "factor", "shift")}
    reference |= {"offset": [], "blur": [], "sigma": []}
    three_channels = np.zeros((3, 1, 1, 1))
    for _ in range(N_DRAWS):
        monai_rotate.randomize()
        reference["rotate"].append(monai_rotate._do_transform)
        if monai_rotate._do_transform:
            reference["angle"].append([monai_rotate.x, monai_rotate.y, monai_rotate.z])
        monai_scale.randomize(three_channels)
        reference["scale"].append(monai_scale._do_transform)
        if monai_scale._do_transform:
            reference["factor"].append(monai_scale.factor)
        monai_shift.randomize(three_channels)
        reference["shift"].append(monai_shift._do_transform)
        if monai_shift._do_transform:
            reference["offset"].append(monai_shift._offset)
        monai_blur.randomize()
        reference["blur"].append(monai_blur._do_transform)
        if monai_blur._do_transform:
            reference["sigma"].append([monai_blur.x, monai_blur.y, monai_blur.z])
    # Fractions of crops transformed: within 4 binomial SEs of the configured probability and
    # of MONAI's own fraction.
    for ours, prob, theirs in (
        (draws.flip.float().mean(0), config.flip_prob, None),
        (draws.rotate.float().mean(), config.rotate_prob, reference["rotate"]),
        (draws.scale.float().mean(), config.intensity_prob, reference["scale"]),
        (draws.shift.float().mean(), config.intensity_prob, reference["shift"]),
        (draws.blur.float().mean(), config.blur_prob, reference["blur"]),
        (draws.noise.float().mean(), config.noise_prob, None),
    ):
        se = np.sqrt(prob * (1 - prob) / N_DRAWS)
        assert np.all(np.abs(ours.numpy() - prob) < 4 * se)
        if theirs is not None:
            assert abs(np.mean(theirs) - prob) < 4 * se
    # Spreads: the values MONAI draws and ours come from the same distribution (two-sample KS
    # per component), and lie in the configured range.
    pairs = (
        (draws.angles[draws.rotate], reference["angle"], radians),
        (draws.factor[draws.scale], reference["factor"], config.intensity_scale),
        (draws.offset[draws.shift], reference["offset"], config.intensity_shift),
        (draws.sigma[draws.blur], reference["sigma"], None),
    )
    for ours, theirs, limit in pairs:
        theirs = np.asarray(theirs)
        for column in range(3):
            assert stats.ks_2samp(ours[:, column].numpy(), theirs[:, column]).pvalue > 1e-3
        if limit is not None:
            assert ours.abs().max() <= limit and ours.abs().max() > 0.95 * limit
    # Angles about the three axes and phase-wise factors are drawn independently.
    assert abs(np.corrcoef(draws.angles[draws.rotate].T.numpy())[0, 1]) < 0.1
    assert abs(np.corrcoef(draws.factor[draws.scale].T.numpy())[0, 2]) < 0.1
    # RandGaussianNoise(sample_std=True): the SD is uniform on (0, std).
    sd = draws.noise_std.numpy()
    assert stats.kstest(sd, stats.uniform(0, config.noise_std).cdf).pvalue > 1e-3
    # Not phase-wise: one factor for the whole crop.
    single = draw(dataclasses.replace(config, phase_wise_intensity=False), 50, 3, torch.Generator())
    assert torch.equal(single.factor, single.factor[:, :1].expand(50, 3))


@pytest.mark.parametrize("with_mask", [False, True])
def test_same_seed_same_batches_bit_for_bit(with_mask: bool) -> None:
    config = DeepConfig(blur_prob=0.5, noise_prob=0.5, elastic=True, elastic_prob=0.5)
    images, mask = crops(4)
    batch = torch.cat([images, mask], 1) if with_mask else images
    first = BatchAugmentation(config, seed=11, with_mask=with_mask)
    second = BatchAugmentation(config, seed=11, with_mask=with_mask)
    other = BatchAugmentation(config, seed=12, with_mask=with_mask)
    for _ in range(3):
        out = first(batch)
        assert torch.equal(out, second(batch))
        assert not torch.equal(out, other(batch))
        assert out.shape == batch.shape and out.dtype == torch.float32


def test_background_augmentation_yields_the_inline_batches_bit_for_bit() -> None:
    config = DeepConfig(batch_size=4, noise_prob=0.5, blur_prob=0.5)
    images, mask = crops(10)
    inputs, labels = torch.cat([images, mask], 1).numpy(), np.arange(10) % 2
    cpu = torch.device("cpu")

    def loader() -> torch.utils.data.DataLoader:
        return training_loader(inputs, labels, config, seed=4, device=cpu)

    augment = BatchAugmentation(config, seed=9, with_mask=True)
    background = list(augmented_batches(loader(), augment, cpu))
    inline = BatchAugmentation(config, seed=9, with_mask=True)
    expected = [(inline(x), y) for x, y in loader()]
    assert len(background) == len(expected) == 3
    for (x, y), (x_inline, y_inline) in zip(background, expected, strict=True):
        assert torch.equal(x, x_inline) and torch.equal(y, y_inline)
    # Without augmentation the batches are the loader's own.
    plain = [x for x, _ in augmented_batches(loader(), None, cpu)]
    assert all(torch.equal(x, y) for x, (y, _) in zip(plain, loader(), strict=True))
