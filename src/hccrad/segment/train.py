"""Training of the multi-task segmenter: slice sampling, batches, losses, saving and loading.

Segmentation (Dice + cross-entropy) and the endpoint (BCE) are trained jointly, with the
config's loss weights, on the training split only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.losses import DiceCELoss
from torch import nn

from hccrad.core.labels import TUMOUR_LABEL
from hccrad.core.seeding import rng_for
from hccrad.core.splits import TRAIN
from hccrad.core.torch_runtime import reproducible, resolve_device
from hccrad.segment.config import CLASSES, ENCODER, SegmentConfig, segment_config
from hccrad.segment.network import MultiTaskUNetPlusPlus, build_network, load_encoder_weights
from hccrad.segment.volumes import Volume, is_excluded, normalise, read_volume, slice_stack


def _tumour_slices(mask: np.ndarray) -> np.ndarray:
    """Indices of the axial slices that contain tumour."""
    return np.flatnonzero((mask == TUMOUR_LABEL).any(axis=(1, 2)))


def epoch_samples(
    volumes: Sequence[Volume], config: SegmentConfig, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """(volume, slice) pairs of one epoch: tumour slices plus a share of tumour-free ones."""
    samples = []
    for index, volume in enumerate(volumes):
        assert volume.mask is not None
        positive = _tumour_slices(volume.mask)
        negative = np.setdiff1d(np.arange(volume.mask.shape[0]), positive)
        n_positive = min(len(positive), config.tumour_slices_per_patient)
        chosen = rng.choice(positive, n_positive, replace=False) if n_positive else positive
        n_negative = min(len(negative), round(config.negative_fraction * max(n_positive, 1)))
        chosen = np.concatenate([chosen, rng.choice(negative, n_negative, replace=False)])
        samples += [(index, int(z)) for z in chosen]
    order = rng.permutation(len(samples))
    return [samples[i] for i in order]


def _random_patch(
    image: np.ndarray, labels: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random in-plane patch of ``size`` (padding first where the slice is smaller)."""
    height, width = image.shape[-2:]
    pad_h, pad_w = max(0, size[0] - height), max(0, size[1] - width)
    if pad_h or pad_w:
        pads = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
        image = np.pad(image, ((0, 0), *pads), mode="minimum")
        labels = np.pad(labels, pads)
    top = int(rng.integers(0, image.shape[-2] - size[0] + 1))
    left = int(rng.integers(0, image.shape[-1] - size[1] + 1))
    window = (slice(top, top + size[0]), slice(left, left + size[1]))
    return image[(slice(None), *window)], labels[window]


def make_batch(
    volumes: Sequence[Volume],
    samples: Sequence[tuple[int, int]],
    outcomes: np.ndarray,
    config: SegmentConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, labels, endpoint and "slice carries the endpoint" tensors of one batch.

    ``volumes`` are already normalised (``normalise``).
    """
    images, labels, has_tumour = [], [], []
    for index, z in samples:
        volume = volumes[index]
        assert volume.mask is not None
        stack = slice_stack(volume.image, z, config.neighbour_slices)
        patch, target = _random_patch(stack, volume.mask[z], config.patch_size, rng)
        images.append(patch)
        labels.append(target[np.newaxis].astype(np.int64))
        has_tumour.append(bool((volume.mask[z] == TUMOUR_LABEL).any()))
    y = outcomes[[index for index, _ in samples]]
    # The endpoint is a property of the tumour: only tumour slices of patients with a known
    # endpoint carry it.
    carries_endpoint = np.array(has_tumour) & np.isfinite(y)
    return (
        torch.from_numpy(np.stack(images)),
        torch.from_numpy(np.stack(labels)),
        torch.from_numpy(np.nan_to_num(y).astype(np.float32)),
        torch.from_numpy(carries_endpoint),
    )


def batches(samples: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Consecutive batches of ``size``; a last batch of one joins the previous one."""
    chunks = [samples[start : start + size] for start in range(0, len(samples), size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        # Batch norm cannot train on a single slice (the squeeze-excitation maps are 1 x 1).
        chunks[-2] = [*chunks[-2], *chunks.pop()]
    return chunks


@dataclass
class Segmenter:
    """A trained network with its settings and training history."""

    network: MultiTaskUNetPlusPlus
    config: SegmentConfig
    history: pd.DataFrame = field(default_factory=pd.DataFrame)


def _loss_terms(config: SegmentConfig) -> tuple[DiceCELoss, nn.BCEWithLogitsLoss]:
    """Dice + CE over the three labels (pooled over the batch) and BCE for the endpoint."""
    weights = config.loss_weights
    # batch=True: Dice pooled over the batch, so tumour-free slices do not give 0/0 Dice terms.
    dice_ce = DiceCELoss(
        to_onehot_y=True,
        softmax=True,
        batch=True,
        lambda_dice=float(weights["dice"]),
        lambda_ce=float(weights["ce"]),
    )
    return dice_ce, nn.BCEWithLogitsLoss()


def training_volumes(
    folders: Sequence[str | Path], sheet: pd.DataFrame, config: SegmentConfig
) -> tuple[list[Volume], np.ndarray, list[str]]:
    """Training patients' volumes and endpoint values, and those excluded in preparation."""
    volumes, excluded = [], []
    for folder in folders:
        patient = Path(folder).name
        if sheet.at[patient, "split"] != TRAIN:
            raise ValueError(f"patient {patient} is not in split 'train'; only train trains")
        if is_excluded(folder):
            excluded.append(patient)
            continue
        volumes.append(read_volume(folder, patient, config.phases))
    patients = [v.patient_id for v in volumes]
    outcomes = pd.to_numeric(sheet.loc[patients, config.endpoint], errors="coerce")
    return volumes, outcomes.to_numpy(dtype=float), excluded


def train_segmenter(
    volumes: Sequence[Volume],
    outcomes: Sequence[float],
    config: SegmentConfig,
    seed: int,
    log: Any = None,
) -> Segmenter:
    """Train the multi-task network on training patients' volumes and endpoint values."""
    if not volumes:
        raise ValueError("segmentation training needs at least one training patient")
    device = resolve_device(config.device, "segment.device")
    y = np.asarray(outcomes, dtype=np.float32)
    rng = rng_for(seed, "segment", "train")
    volumes = [replace(v, image=normalise(v.image, config.intensity_clip)) for v in volumes]
    dice_ce, bce = _loss_terms(config)
    response_weight = float(config.loss_weights["response"])
    rows = []
    with reproducible(seed, device):
        network = build_network(config)
        if config.pretrained:
            loaded = load_encoder_weights(network, config.pretrained)
            if log:
                log.info("pretrained encoder: %d tensors from %s", len(loaded), config.pretrained)
        network.to(device).train()
        optimiser = torch.optim.AdamW(
            network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        for epoch in range(1, config.epochs + 1):
            started = time.perf_counter()
            samples = epoch_samples(volumes, config, rng)
            totals = np.zeros(3)
            for batch in batches(samples, config.batch_size):
                images, labels, target, carries = make_batch(volumes, batch, y, config, rng)
                images, labels = images.to(device), labels.to(device)
                target, carries = target.to(device), carries.to(device)
                logits, response = network(images)
                segmentation_loss = dice_ce(logits, labels)
                response_loss = (
                    bce(response[carries], target[carries])
                    if bool(carries.any())
                    else response.sum() * 0.0
                )
                loss = segmentation_loss + response_weight * response_loss
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                n = len(batch)
                totals += (
                    np.array([loss.item(), segmentation_loss.item(), response_loss.item()]) * n
                )
            means = totals / len(samples)
            rows.append(
                {
                    "epoch": epoch,
                    "slices": len(samples),
                    "loss": means[0],
                    "segmentation_loss": means[1],
                    "response_loss": means[2],
                }
            )
            if log:
                log.info(
                    "epoch %d: %d slices, loss %.4f (%.1f s)",
                    epoch,
                    len(samples),
                    means[0],
                    time.perf_counter() - started,
                )
        recalibrate_batch_norm(network, volumes, y, config, rng, device)
    network.cpu().eval()
    return Segmenter(network, config, pd.DataFrame(rows))


def recalibrate_batch_norm(
    network: nn.Module,
    volumes: Sequence[Volume],
    outcomes: np.ndarray,
    config: SegmentConfig,
    rng: np.random.Generator,
    device: torch.device,
) -> None:
    """Recompute batch-norm statistics over one epoch of training slices (torch's update_bn).

    A few hundred CPU steps leave EfficientNet's running averages (momentum 0.01) far from the
    final weights' statistics, and the network in eval mode then predicts background everywhere.
    """
    samples = epoch_samples(volumes, config, rng)
    images = [
        make_batch(volumes, batch, outcomes, config, rng)[0].to(device)
        for batch in batches(samples, config.batch_size)
    ]
    torch.optim.swa_utils.update_bn(images, network)


def save_segmenter(model: Segmenter, weights_path: str | Path, config_path: str | Path) -> None:
    """Write the weights (state_dict) and the settings (JSON) of a trained segmenter."""
    torch.save(model.network.state_dict(), weights_path)
    settings = asdict(model.config) | {"encoder": ENCODER, "classes": CLASSES}
    Path(config_path).write_text(json.dumps(settings, indent=1, default=list) + "\n")


def load_segmenter(weights_path: str | Path, config_path: str | Path) -> Segmenter:
    """Read a segmenter written by ``save_segmenter``."""
    settings = json.loads(Path(config_path).read_text())
    config = segment_config(settings)
    network = build_network(config)
    network.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return Segmenter(network.eval(), config)
