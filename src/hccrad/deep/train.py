"""Training one network: training labels, the loader, the loop, early stopping.

Every step here sees the training split only (`training_labels` refuses any other row); see
hccrad.deep.select for the procedure that cross-validates and refits with `fit`.

Reproducibility: on the CPU the same config, data and thread count give bit-identical weights
(seeded torch/numpy, seeded generators of the batch augmentation (hccrad.deep.augment) and of the
DataLoader, deterministic algorithms). On CUDA, training is seeded but uses mixed precision and
cuDNN autotuning, so it is fast rather than bit-reproducible.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from hccrad.core.splits import TRAIN
from hccrad.core.torch_runtime import reproducible, resolve_device
from hccrad.deep.augment import BatchAugmentation
from hccrad.deep.config import DeepConfig, NetworkConfig, seed_for
from hccrad.deep.crops import CropSet
from hccrad.deep.networks import (
    DeepModel,
    autocast_dtype,
    batch_to_device,
    build_network,
    load_pretrained,
)
from hccrad.deep.predict import crop_input, patient_logits
from hccrad.stats.checks import check_binary_outcome, name_patients

logger = logging.getLogger(__name__)


def training_labels(train_sheet: pd.DataFrame, endpoint: str = "response") -> pd.Series:
    """The 0/1 `endpoint` of the training patients; ValueError if any row's split is not 'train'."""
    sheet = by_patient(train_sheet)
    if "split" not in sheet.columns:
        raise ValueError("the training sheet needs a 'split' column (train/internal_test/...)")
    other = sheet.index[sheet["split"].astype(str) != TRAIN]
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


def by_patient(sheet: pd.DataFrame) -> pd.DataFrame:
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


def training_loader(
    images: np.ndarray, labels: np.ndarray, config: DeepConfig, seed: int, device: torch.device
) -> DataLoader:
    """A shuffling loader of the un-augmented crops whose order follows the seed.

    Augmentation happens on whole batches in the training loop (`BatchAugmentation`).
    """
    batch_size = min(config.batch_size, len(images))
    workers = config.num_workers
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if device.type == "cuda" else 0
    return DataLoader(
        TensorDataset(
            torch.as_tensor(np.asarray(images, np.float32)),
            torch.as_tensor(np.asarray(labels, np.float32)),
        ),
        batch_size=batch_size,
        shuffle=True,
        # A last batch of one would break batch norm at 1-voxel feature maps.
        drop_last=len(images) % batch_size == 1,
        generator=torch.Generator().manual_seed(seed),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


def train_epoch(
    network: nn.Module,
    loader: DataLoader,
    augment: Callable[[torch.Tensor], torch.Tensor] | None,
    optimiser: torch.optim.Optimizer,
    loss_fn: nn.Module,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[float, int]:
    """One pass over `loader` (augmented on the device by `augment`); (summed loss, crops seen)."""
    amp_dtype = autocast_dtype(device)
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    network.train()
    train_loss, seen = 0.0, 0
    for images, targets in augmented_batches(loader, augment, device):
        images = batch_to_device(images, device)
        targets = targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(network(images).squeeze(1).float(), targets)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        train_loss += float(loss.detach()) * len(targets)
        seen += len(targets)
    return train_loss, seen


def augmented_batches(
    loader: DataLoader,
    augment: Callable[[torch.Tensor], torch.Tensor] | None,
    device: torch.device,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's (images, targets) on the device, images augmented by `augment`.

    On the CPU the next batch is augmented on a background thread while the network trains on
    this one (torch ops release the GIL): off the training thread, yet in the same order from
    the same generator, so the batches are those of augmenting inline, bit for bit. On CUDA the
    augmentation is queued on the device with the training.
    """
    if augment is None or device.type != "cpu":
        for images, targets in loader:
            images = images.to(device, non_blocking=True)
            yield (images if augment is None else augment(images)), targets.to(device)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment") as pool:
        pending: tuple[Future[torch.Tensor], torch.Tensor] | None = None
        for images, targets in loader:
            ahead = (pool.submit(augment, images), targets)
            if pending is not None:
                yield pending[0].result(), pending[1]
            pending = ahead
        if pending is not None:
            yield pending[0].result(), pending[1]


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
        loader = training_loader(crop_input(crops, network_config), y_train, config, seed, device)
        augment = BatchAugmentation(config, seed, with_mask=network_config.takes_mask)
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
        scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype(device) == torch.float16)
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
            train_loss, seen = train_epoch(
                network, loader, augment, optimiser, loss_fn, device, scaler
            )
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
    val_logits = patient_logits(network, validation_input, validation, device)
    val_loss = float(
        loss_fn(
            torch.as_tensor(val_logits, dtype=torch.float32, device=device),
            torch.as_tensor(y_val, device=device),
        )
    )
    return val_loss, auc_or_nan(y_val, val_logits)


def auc_or_nan(y_true: np.ndarray, scores: np.ndarray) -> float:
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


def fit(
    architecture: str, labels: pd.Series, crops: CropSet, config: DeepConfig, label: str
) -> DeepModel:
    """The whole fitting procedure on given patients: inner split, training, early stopping."""
    fit_labels, val_labels, validation = labels, None, None
    if config.early_stopping:
        fit_labels, val_labels = _inner_split(
            labels, config, seed_for(config.seed, "inner", architecture, label)
        )
        validation = crops.subset(val_labels.index)
    return _train_network(
        config.network(architecture, crops.images.shape[1]),
        crops.subset(fit_labels.index),
        fit_labels,
        validation,
        val_labels,
        config,
        seed_for(config.seed, "train", architecture, label),
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
    return fit(architecture, labels, crops.subset(labels.index), config, "refit")
