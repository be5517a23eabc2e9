"""Grad-CAM: where a network looks, per crop and as the data of the Grad-CAM figure's panels.

hccrad.figures.deep draws the panels (`GradCamPanels`) that `grad_cam_panels` computes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.visualize import GradCAM
from torch import nn

from hccrad.core.labels import TUMOUR_LABEL
from hccrad.deep import tumour_pooled
from hccrad.deep.cam_panels import GradCamPanels
from hccrad.deep.crops import CropSet
from hccrad.deep.networks import DeepModel
from hccrad.deep.predict import crop_input, network_input
from hccrad.deep.train import by_patient

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
PREFERRED_CAM_PHASE = "arterial"  # the phase whose enhancement drives response in the studies


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
    sheet = by_patient(sheet)
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
        image = crop_input(crops.take([row]), model.config)[0]
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
