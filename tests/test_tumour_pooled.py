"""The tumour-pooled network: pooling over the tumour mask only, mask kept through augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hccrad.core.labels import TUMOUR_LABEL
from hccrad.deep import tumour_pooled
from hccrad.deep.augment import monai_augmentation
from hccrad.deep.config import DeepConfig, NetworkConfig
from hccrad.deep.crops import crops_from_arrays
from hccrad.deep.predict import crop_input, network_input


def test_masked_moments_are_the_mean_and_sd_over_the_mask() -> None:
    features = torch.randn(2, 3, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 1, 4, 5, 6)
    mask[0, 0, 1:3, 1:4, 2:5] = 1
    mask[1, 0, 0, 0, :2] = 1
    moments = tumour_pooled.masked_moments(features, mask).numpy()
    for crop in range(2):
        inside = features[crop][:, mask[crop, 0].bool()].numpy()
        expected = np.concatenate([inside.mean(axis=1), inside.std(axis=1)])
        np.testing.assert_allclose(moments[crop], expected, rtol=1e-4, atol=1e-3)


def test_network_ignores_what_lies_out_of_reach_of_the_tumour() -> None:
    torch.manual_seed(0)
    network = tumour_pooled.TumourPooledCNN(image_channels=2, width=0.25, stem_stride=2).eval()
    mask = torch.zeros(1, 1, 32, 32, 32)
    mask[..., 4:8, 4:8, 4:8] = 1
    images = torch.randn(1, 2, 32, 32, 32)
    # Stem (3 voxels, stride 2) and four 3^3 convolutions on the 16^3 grid reach 10 voxels;
    # everything with a coordinate of 20 or more lies at least 12 voxels from the tumour.
    far = torch.zeros(32, 32, 32, dtype=torch.bool)
    far[20:], far[:, 20:], far[:, :, 20:] = True, True, True
    disturbed = torch.where(far, torch.randn(1, 2, 32, 32, 32) * 5, images)
    with torch.no_grad():
        assert torch.equal(
            network(torch.cat([images, mask], 1)), network(torch.cat([disturbed, mask], 1))
        )
        # ...while what lies in the tumour does change the logit.
        inside = images.clone()
        inside[..., 4:8, 4:8, 4:8] += 3
        assert not torch.equal(
            network(torch.cat([images, mask], 1)), network(torch.cat([inside, mask], 1))
        )


def test_network_input_appends_the_tumour_mask_as_last_channel() -> None:
    config = NetworkConfig(tumour_pooled.ARCHITECTURE, 2, 8, 0.25, 1)
    assert config.takes_mask and config.input_channels == 3
    images = np.ones((2, 8, 8, 8), np.float32)
    labels = np.ones((8, 8, 8), np.uint8)  # liver
    labels[2:5, 2:5, 2:5] = TUMOUR_LABEL
    shown = network_input(images, config, labels)
    assert shown.shape == (3, 8, 8, 8)
    assert np.array_equal(shown[-1], (labels == TUMOUR_LABEL).astype(np.float32))


def test_augmentation_moves_the_mask_with_the_image_and_leaves_it_binary() -> None:
    config = DeepConfig(
        flip_prob=1.0, rotate_prob=1.0, rotate_degrees=25.0, intensity_prob=1.0, elastic=True
    )
    transform = monai_augmentation(config, with_mask=True)
    transform.set_random_state(seed=3)
    mask = np.zeros((1, 16, 16, 16), np.float32)
    mask[0, 2:9, 3:12, 5:10] = 1
    image = np.concatenate([mask * 5, mask * 5]) + 1
    out = transform({"image": image, "mask": mask, "label": np.float32(1)})
    shown = out["image"].numpy()
    assert shown.shape == (3, 16, 16, 16) and "mask" not in out
    moved = shown[-1]
    assert set(np.unique(moved)) <= {0.0, 1.0} and not np.array_equal(moved, mask[0])
    # The mask follows the bright tumour of the image (up to interpolation at the edge).
    bright = shown[0] > shown[0].min() + 0.5 * np.ptp(shown[0])
    dice = 2 * (bright & (moved > 0)).sum() / (bright.sum() + moved.sum())
    assert dice > 0.85


def test_a_crop_without_tumour_is_an_error_naming_the_patient() -> None:
    config = NetworkConfig(tumour_pooled.ARCHITECTURE, 2, 8, 0.25, 1)
    masks = np.ones((2, 8, 8, 8), np.uint8)  # liver only
    masks[0, 3:5, 3:5, 3:5] = TUMOUR_LABEL
    crops = crops_from_arrays(
        ["P1", "P2"], np.zeros((2, 2, 8, 8, 8), np.float32), spatial_size=8, masks=list(masks)
    )
    with pytest.raises(ValueError, match=r"1 crop\(s\) have no tumour voxels.*P2.*rerun the crop"):
        crop_input(crops, config)
