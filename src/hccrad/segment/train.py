"""Multi-task segmentation: a 2.5D U-Net++ with an EfficientNet-B0 encoder and a response head.

The network of the multi-task study: one encoder-decoder segments liver and tumour on axial
slices (phases x neighbouring slices as channels, "2.5D") and a classification head on the
encoder's deepest features predicts the endpoint; both are trained jointly (Dice + cross-entropy
for the labels, BCE for the endpoint, weights from the config) on the training split only.

Why MONAI and not segmentation-models-pytorch: smp and timm import torchvision at import time,
and the only torchvision wheel for the pinned torch 2.13 on PyPI is a CUDA build that does not
load against the CPU torch ("operator torchvision::nms does not exist"). MONAI, already a
dependency, ships the EfficientNet-B0 encoder (``EfficientNetEncoder``) and the nested up-and-
concatenate block of its U-Net++ (``UpCat``); only the dense skip wiring of U-Net++ (Zhou et al.
2018) over the encoder's five feature maps is written here.

Why 2.5D and not 3D: the prepared volumes are ~70 x 70 x 50 voxels; slices make a few thousand
training samples from ~70 patients and an EfficientNet-B0 slice pass costs ~30 ms on one CPU
core, so the default cohort trains in minutes on a laptop.

Predicted masks are label maps like the reference ones (0 background, 1 liver, 2 tumour) on the
prepared image's grid (same size, spacing, origin and direction). A volume where the network
finds no tumour gets a mask without label 2 and ``tumour_empty`` set, never an error.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk  # noqa: N813
import torch
from monai.losses import DiceCELoss
from monai.networks.blocks import Convolution, UpSample
from monai.networks.nets import EfficientNetEncoder
from monai.networks.nets.basic_unetplusplus import UpCat
from scipy.special import expit
from torch import nn

from hccrad.core.labels import BACKGROUND_LABEL, LIVER_LABEL, TUMOUR_LABEL
from hccrad.core.seeding import rng_for
from hccrad.core.torch_runtime import reproducible, resolve_device
from hccrad.imaging.prepared import predicted_mask_path, read_exclusion

CLASSES = 3  # background, liver, tumour: the labels of the reference masks
ENCODER = "efficientnet-b0"
ENCODER_CHANNELS = (16, 24, 40, 112, 320)  # EfficientNet-B0 features at strides 2 ... 32
ENCODER_STRIDE = 32
TRAIN_SPLIT = "train"
STRUCTURES: dict[str, tuple[int, ...]] = {
    "tumour": (TUMOUR_LABEL,),
    "liver": (LIVER_LABEL, TUMOUR_LABEL),  # the liver includes its tumours
}
METHOD_NETWORK = "unetplusplus"
METHOD_BASELINE = "otsu_threshold"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SegmentConfig:
    """The ``segment`` section of the config, typed."""

    phases: tuple[str, ...] = ("arterial", "portal_venous", "hepatobiliary")
    neighbour_slices: int = 1
    patch_size: tuple[int, int] = (64, 64)
    intensity_clip: tuple[float, float] = (-10.0, 10.0)
    tumour_slices_per_patient: int = 8
    negative_fraction: float = 0.4
    epochs: int = 6
    batch_size: int = 16
    learning_rate: float = 0.003
    weight_decay: float = 0.0001
    loss_weights: Mapping[str, float] = field(
        default_factory=lambda: {"dice": 1.0, "ce": 1.0, "response": 0.5}
    )
    endpoint: str = "response"
    pretrained: str = ""
    device: str = "auto"

    @property
    def in_channels(self) -> int:
        """Input channels: every phase at each of the 2k+1 neighbouring slices."""
        return len(self.phases) * (2 * self.neighbour_slices + 1)


def segment_config(cfg: Mapping[str, Any]) -> SegmentConfig:
    """The typed settings from the config's ``segment`` block (unknown keys are ignored)."""
    names = SegmentConfig.__dataclass_fields__
    values = {k: v for k, v in cfg.items() if k in names}
    for key in ("phases", "patch_size", "intensity_clip"):
        if key in values:
            values[key] = tuple(values[key])
    if values.get("neighbour_slices", 1) < 0:
        raise ValueError("segment.neighbour_slices must be 0 or more")
    return SegmentConfig(**values)


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


# --------------------------------------------------------------------------- volumes


@dataclass(frozen=True)
class Volume:
    """A prepared patient as arrays: phases (P, Z, Y, X), reference labels and the grid."""

    patient_id: str
    image: np.ndarray
    mask: np.ndarray | None
    reference: sitk.Image  # the grid every predicted mask copies

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel spacing in array order (z, y, x), mm."""
        return tuple(float(s) for s in reversed(self.reference.GetSpacing()))  # type: ignore[return-value]


def read_volume(folder: str | Path, patient_id: str, phases: Sequence[str]) -> Volume:
    """Read a prepared patient folder (phase volumes, reference mask if present)."""
    folder = Path(folder)
    images = []
    reference = None
    for phase in phases:
        path = folder / f"{phase}.nii.gz"
        if not path.is_file():
            raise FileNotFoundError(
                f"patient {patient_id}: {path} is missing; segmentation needs the phases "
                f"{list(phases)} (set segment.phases to the phases the cohort has)"
            )
        image = sitk.ReadImage(str(path), sitk.sitkFloat32)
        reference = reference or image
        images.append(sitk.GetArrayFromImage(image))
    mask_path = folder / "mask.nii.gz"
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path))) if mask_path.is_file() else None
    assert reference is not None
    return Volume(patient_id, np.stack(images).astype(np.float32), mask, reference)


def is_excluded(folder: str | Path) -> bool:
    """Whether preparation excluded the patient (its exclusion.tsv has a row)."""
    return bool(len(read_exclusion(folder)))


def normalise(image: np.ndarray, clip: tuple[float, float]) -> np.ndarray:
    """Clip to the configured range and scale it to [-1, 1] (keeps air and bone from dominating)."""
    low, high = clip
    scale = max(abs(low), abs(high))
    return (np.clip(image, low, high) / scale).astype(np.float32)


def slice_stack(image: np.ndarray, z: int, neighbours: int) -> np.ndarray:
    """The 2.5D input of slice z: every phase at z-k ... z+k (edges repeated), as channels."""
    depth = image.shape[1]
    indices = np.clip(np.arange(z - neighbours, z + neighbours + 1), 0, depth - 1)
    return image[:, indices].reshape(-1, *image.shape[2:])


def pad_to_multiple(array: np.ndarray, multiple: int = ENCODER_STRIDE) -> tuple[np.ndarray, tuple]:
    """Zero-pad the last two axes up to a multiple; return the array and the slices to undo it."""
    height, width = array.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    pads = [(0, 0)] * (array.ndim - 2) + [(pad_h // 2, pad_h - pad_h // 2)]
    pads += [(pad_w // 2, pad_w - pad_w // 2)]
    padded = np.pad(array, pads, mode="minimum" if array.size else "constant")
    crop = (slice(pad_h // 2, pad_h // 2 + height), slice(pad_w // 2, pad_w // 2 + width))
    return padded, crop


# --------------------------------------------------------------------------- training


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
        if sheet.at[patient, "split"] != TRAIN_SPLIT:
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


# --------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class Prediction:
    """A predicted label volume (array order z, y, x) and the patient's endpoint score."""

    labels: np.ndarray
    response_score: float

    @property
    def tumour_empty(self) -> bool:
        """True when the network found no tumour voxel in the volume."""
        return not bool((self.labels == TUMOUR_LABEL).any())


@torch.no_grad()
def predict_volume(model: Segmenter, volume: Volume, batch_size: int = 16) -> Prediction:
    """Labels of every slice (whole slices, padded to the encoder stride) and the score."""
    config = model.config
    device = resolve_device(config.device, "segment.device")
    network = model.network.to(device).eval()
    image = normalise(volume.image, config.intensity_clip)
    depth = image.shape[1]
    stacks = np.stack([slice_stack(image, z, config.neighbour_slices) for z in range(depth)])
    padded, crop = pad_to_multiple(stacks)
    labels, logits = [], []
    for start in range(0, depth, batch_size):
        batch = torch.from_numpy(padded[start : start + batch_size]).to(device)
        segmentation, response = network(batch)
        labels.append(segmentation.argmax(dim=1).cpu().numpy()[(slice(None), *crop)])
        logits.append(response.float().cpu().numpy())
    label_volume = keep_largest_organ(np.concatenate(labels).astype(np.uint8))
    slice_logits = np.concatenate(logits)
    return Prediction(label_volume, patient_score(label_volume, slice_logits))


def keep_largest_organ(labels: np.ndarray) -> np.ndarray:
    """Background outside the largest connected liver-plus-tumour region (SimpleITK components).

    Slice-wise prediction leaves tumour-like specks in kidneys, spleen and vessels; a tumour
    lies in the liver, so only the largest connected region of labels 1 and 2 is kept.
    (MONAI's KeepLargestConnectedComponent would need scikit-image, not a dependency.)
    """
    if not labels.any():
        return labels
    foreground = sitk.GetImageFromArray((labels > 0).astype(np.uint8))
    components = sitk.RelabelComponent(
        sitk.ConnectedComponent(foreground, True), sortByObjectSize=True
    )
    largest = sitk.GetArrayFromImage(components) == 1
    return np.where(largest, labels, BACKGROUND_LABEL).astype(np.uint8)


def patient_score(labels: np.ndarray, slice_logits: np.ndarray) -> float:
    """The endpoint probability: mean logit over predicted tumour slices (else all slices)."""
    tumour_area = (labels == TUMOUR_LABEL).sum(axis=(1, 2))
    chosen = tumour_area > 0 if tumour_area.any() else np.ones(len(labels), dtype=bool)
    # Area-weighted: slices through the bulk of the tumour say more than its edges.
    weights = np.where(tumour_area.any(), tumour_area, 1.0)[chosen]
    logit = float(np.average(slice_logits[chosen], weights=weights))
    return float(expit(logit))


def mask_image(labels: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A label array as a UInt8 image on exactly the reference image's grid."""
    if labels.shape != sitk.GetArrayViewFromImage(reference).shape:
        raise ValueError(
            f"labels of shape {labels.shape} do not fit the image grid "
            f"{sitk.GetArrayViewFromImage(reference).shape}"
        )
    image = sitk.GetImageFromArray(labels.astype(np.uint8))
    image.CopyInformation(reference)
    return image


def write_mask(labels: np.ndarray, reference: sitk.Image, path: str | Path) -> Path:
    """Write a predicted mask as NIfTI on the reference grid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(mask_image(labels, reference), str(path), useCompression=True)
    return path


def predict_cohort(
    model: Segmenter,
    folders: Mapping[str, str | Path],
    sheet: pd.DataFrame,
    mask_dir: str | Path,
    log: Any = None,
) -> pd.DataFrame:
    """Predict every patient: masks into ``mask_dir`` and one table row per patient.

    Patients excluded in preparation get a row with status ``excluded`` and no mask.
    """
    rows = []
    for patient, folder in folders.items():
        row: dict[str, Any] = {
            "patient_id": patient,
            "split": sheet.at[patient, "split"],
            "centre": sheet.at[patient, "centre"],
        }
        if is_excluded(folder):
            rows.append(row | {"status": "excluded", "note": "excluded in preparation"})
            continue
        volume = read_volume(folder, patient, model.config.phases)
        prediction = predict_volume(model, volume)
        write_mask(prediction.labels, volume.reference, predicted_mask_path(mask_dir, patient))
        voxel_ml = float(np.prod(volume.spacing_zyx)) / 1000.0
        rows.append(
            row
            | {
                "status": "predicted",
                "note": "no tumour found: empty tumour mask" if prediction.tumour_empty else "",
                "tumour_empty": prediction.tumour_empty,
                "tumour_ml": float((prediction.labels == TUMOUR_LABEL).sum()) * voxel_ml,
                "response_score": prediction.response_score,
            }
        )
        if log:
            log.info("%s: tumour %.1f ml", patient, rows[-1]["tumour_ml"])
    return pd.DataFrame(rows).set_index("patient_id")


# --------------------------------------------------------------------------- threshold baseline


@dataclass(frozen=True)
class ThresholdBaseline:
    """Otsu's threshold within the reference liver on one phase, tumour on one side of it."""

    phase: str
    tumour_below: bool


def otsu_tumour(image: np.ndarray, liver: np.ndarray, tumour_below: bool) -> np.ndarray:
    """Tumour voxels: the Otsu class (within the liver) on the tumour's side of the threshold."""
    if not liver.any():
        return np.zeros_like(liver, dtype=bool)
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetMaskValue(1)
    otsu.Execute(sitk.GetImageFromArray(image), sitk.GetImageFromArray(liver.astype(np.uint8)))
    threshold = otsu.GetThreshold()
    side = image < threshold if tumour_below else image > threshold
    return side & liver


def baseline_labels(
    volume: Volume, baseline: ThresholdBaseline, phases: Sequence[str]
) -> np.ndarray:
    """Baseline label map: the reference liver, relabelled tumour where Otsu says so."""
    assert volume.mask is not None
    liver = np.isin(volume.mask, STRUCTURES["liver"])
    image = volume.image[list(phases).index(baseline.phase)]
    labels = np.where(liver, LIVER_LABEL, BACKGROUND_LABEL).astype(np.uint8)
    labels[otsu_tumour(image, liver, baseline.tumour_below)] = TUMOUR_LABEL
    return labels


def fit_threshold_baseline(
    volumes: Sequence[Volume], phases: Sequence[str]
) -> tuple[ThresholdBaseline, pd.DataFrame]:
    """The phase and side with the best mean training tumour Dice, and every candidate's Dice."""
    rows = []
    for phase in phases:
        for below in (True, False):
            candidate = ThresholdBaseline(phase, below)
            scores = [
                dice(baseline_labels(v, candidate, phases) == TUMOUR_LABEL, v.mask == TUMOUR_LABEL)
                for v in volumes
                if v.mask is not None
            ]
            rows.append({"phase": phase, "tumour_below": below, "train_dice": np.mean(scores)})
    table = pd.DataFrame(rows)
    best = table.loc[table["train_dice"].idxmax()]
    return ThresholdBaseline(str(best["phase"]), bool(best["tumour_below"])), table


# --------------------------------------------------------------------------- metrics


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1 when both are empty)."""
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * float((prediction & reference).sum()) / total


def hd95_mm(prediction: np.ndarray, reference: np.ndarray, spacing_zyx: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (NaN when either mask is empty)."""
    if not prediction.any() or not reference.any():
        return float("nan")
    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():
        # MONAI's own internal call of get_mask_edges warns about its deprecated argument.
        warnings.simplefilter("ignore", FutureWarning)
        distance = compute_hausdorff_distance(
            torch.from_numpy(prediction[np.newaxis, np.newaxis]),
            torch.from_numpy(reference[np.newaxis, np.newaxis]),
            include_background=True,
            percentile=95,
            spacing=[float(s) for s in spacing_zyx],
        )
    return float(distance.item())


def overlap_metrics(
    prediction: np.ndarray, reference: np.ndarray, spacing_zyx: Sequence[float]
) -> dict[str, float]:
    """Dice, IoU, HD95 (mm) and volumes (ml) with the relative volume error (%) of one structure."""
    both = int((prediction & reference).sum())
    union = int((prediction | reference).sum())
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    reference_ml = float(reference.sum()) * voxel_ml
    predicted_ml = float(prediction.sum()) * voxel_ml
    return {
        "dice": dice(prediction, reference),
        "iou": 1.0 if union == 0 else both / union,
        "hd95_mm": hd95_mm(prediction, reference, spacing_zyx),
        "reference_ml": reference_ml,
        "predicted_ml": predicted_ml,
        "volume_error_pct": (
            100.0 * (predicted_ml - reference_ml) / reference_ml if reference_ml else float("nan")
        ),
    }


def label_metrics(
    predicted: np.ndarray, reference: np.ndarray, spacing_zyx: Sequence[float]
) -> list[dict[str, Any]]:
    """Overlap metrics of tumour and liver between two label maps (one row each)."""
    return [
        {"structure": name}
        | overlap_metrics(np.isin(predicted, labels), np.isin(reference, labels), spacing_zyx)
        for name, labels in STRUCTURES.items()
    ]
