"""Prediction: crops as a network sees them, response scores and deep features per patient.

Internal-test and external patients are only ever predicted. A patient's score and deep
features are the mean over the patient's kept crops.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from torch import nn

from hccrad.core.labels import TUMOUR_LABEL
from hccrad.core.torch_runtime import resolve_device
from hccrad.deep.config import NetworkConfig
from hccrad.deep.crops import CropSet
from hccrad.deep.networks import DeepModel, autocast_dtype, batch_to_device
from hccrad.stats.checks import name_patients

logger = logging.getLogger(__name__)

FEATURE_PREFIX = "deep_"
SCORE_NAME = "deep_score"
# Share of tumour voxels per phase that deep.intensity_clip may saturate before a warning.
CLIPPED_TUMOUR_LIMIT = 0.01


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
                "load the crops with hccrad.deep.crops.load_crops"
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
            "load the crops with hccrad.deep.crops.load_crops"
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


def patient_logits(
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
