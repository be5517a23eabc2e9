"""Multi-phase liver phantoms: abdomen, liver, vessels and hepatocellular carcinomas as NIfTI.

Shapes are defined in physical millimetres (RAS), then sampled on each centre's grid, so a
centre's resolution changes the image and not the anatomy. Tumour appearance follows the
LI-RADS features of HCC that the studies' models pick up: arterial phase hyperenhancement,
portal-venous washout, hepatobiliary hypointensity, an enhancing capsule, necrosis, internal
heterogeneity and margin irregularity, each driven by one latent trait (hccrad.cohorts.simulate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm import tqdm

from hccrad.core.seeding import rng_for

PHASES: dict[str, tuple[str, ...]] = {
    "mri": ("arterial", "portal_venous", "hepatobiliary"),
    "ct": ("arterial", "portal_venous"),
}
LABELS: dict[str, int] = {"background": 0, "liver": 1, "tumour": 2}

# Signal of each tissue per phase. MRI: arbitrary units of a fat-suppressed contrast-enhanced
# T1 gradient echo, liver about 1000 in the portal-venous phase. CT: Hounsfield units.
TISSUE_SIGNAL: dict[str, dict[str, tuple[float, ...]]] = {
    "mri": {
        "air": (0.0, 0.0, 0.0),
        "fat": (260.0, 280.0, 270.0),
        "soft_tissue": (430.0, 480.0, 460.0),
        "bone": (640.0, 690.0, 670.0),
        "kidney": (1050.0, 1250.0, 900.0),
        "spleen": (950.0, 980.0, 620.0),
        "aorta": (2100.0, 1150.0, 650.0),
        "ivc": (520.0, 1100.0, 650.0),
        "portal_vein": (750.0, 1350.0, 700.0),
        "liver": (640.0, 1000.0, 1150.0),
        "necrosis": (280.0, 300.0, 270.0),
    },
    "ct": {
        "air": (-1000.0, -1000.0),
        "fat": (-100.0, -100.0),
        "soft_tissue": (45.0, 55.0),
        "bone": (450.0, 460.0),
        "kidney": (180.0, 200.0),
        "spleen": (110.0, 120.0),
        "aorta": (320.0, 170.0),
        "ivc": (80.0, 160.0),
        "portal_vein": (130.0, 190.0),
        "liver": (70.0, 115.0),
        "necrosis": (25.0, 30.0),
    },
}
# Reference signal for relative settings (noise, texture): the liver in the portal-venous phase
# for MRI; 100 HU for CT, so that noise_sd 0.12 means 12 HU.
REFERENCE_SIGNAL: dict[str, float] = {"mri": 1000.0, "ct": 100.0}
# Signal changes of tumour against liver per unit of the appearance parameters (CT in HU).
CT_ARTERIAL_HU_PER_GAIN, CT_WASHOUT_HU, CT_CAPSULE_HU = 180.0, 90.0, 80.0


@dataclass(frozen=True)
class Grid:
    """A volume's voxel grid: shape and spacing in mm, centred on the RAS origin."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @classmethod
    def from_fov(cls, fov_mm: tuple[float, ...], spacing: tuple[float, ...]) -> Grid:
        """The grid that covers ``fov_mm`` at ``spacing`` (rounded to whole voxels)."""
        shape = tuple(max(round(f / s), 1) for f, s in zip(fov_mm, spacing, strict=True))
        return cls(shape, tuple(float(s) for s in spacing))  # type: ignore[arg-type]

    @property
    def affine(self) -> np.ndarray:
        """Voxel-to-RAS affine as written by DICOM converters (LPS voxel order, axial slices)."""
        sx, sy, sz = self.spacing
        nx, ny, nz = self.shape
        affine = np.diag([-sx, -sy, sz, 1.0])
        affine[:3, 3] = [sx * (nx - 1) / 2, sy * (ny - 1) / 2, -sz * (nz - 1) / 2]
        return affine

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RAS coordinates (mm) along each voxel axis, shaped to broadcast over the volume."""
        a = self.affine
        i, j, k = (np.arange(n, dtype=np.float32) for n in self.shape)
        x = (a[0, 3] + a[0, 0] * i)[:, None, None]
        y = (a[1, 3] + a[1, 1] * j)[None, :, None]
        z = (a[2, 3] + a[2, 2] * k)[None, None, :]
        return x, y, z


def smooth_noise(
    shape: tuple[int, ...], sigma_mm: float, spacing: tuple[float, ...], rng: np.random.Generator
) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to unit standard deviation."""
    sigma_vox = [sigma_mm / s for s in spacing]
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox)
    return field / max(float(field.std()), 1e-6)


def cosine_field(
    grid: Grid, wavelength_mm: float, n_terms: int, rng: np.random.Generator
) -> np.ndarray:
    """A smooth random field of a few plane cosines (cheap where a Gaussian filter is wide)."""
    x, y, z = grid.axes()
    field = np.zeros(grid.shape, dtype=np.float32)
    for _ in range(n_terms):
        direction = rng.standard_normal(3)
        k = 2 * np.pi / wavelength_mm * direction / np.linalg.norm(direction)
        field += np.cos(k[0] * x + k[1] * y + k[2] * z + rng.uniform(0, 2 * np.pi))
    return field / np.sqrt(n_terms / 2)


def ellipsoid(grid: Grid, centre: tuple[float, ...], semi_axes: tuple[float, ...]) -> np.ndarray:
    """Normalised ellipsoid radius (< 1 inside) over the grid."""
    x, y, z = grid.axes()
    return np.sqrt(
        ((x - centre[0]) / semi_axes[0]) ** 2
        + ((y - centre[1]) / semi_axes[1]) ** 2
        + ((z - centre[2]) / semi_axes[2]) ** 2
    )


def tube(grid: Grid, start: tuple[float, ...], end: tuple[float, ...], radius: float) -> np.ndarray:
    """Mask of a cylinder of ``radius`` mm between two RAS points."""
    x, y, z = grid.axes()
    p0, p1 = np.asarray(start, np.float32), np.asarray(end, np.float32)
    axis = p1 - p0
    length2 = float(axis @ axis)
    t = ((x - p0[0]) * axis[0] + (y - p0[1]) * axis[1] + (z - p0[2]) * axis[2]) / length2
    t = np.clip(t, 0.0, 1.0)
    d2 = (x - p0[0] - t * axis[0]) ** 2 + (y - p0[1] - t * axis[1]) ** 2
    d2 = d2 + (z - p0[2] - t * axis[2]) ** 2
    return d2 < radius**2


def anatomy(grid: Grid, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Boolean masks of the abdominal structures, with a patient-specific liver shape."""
    body_a, body_b = 150.0 * rng.uniform(0.92, 1.08), 110.0 * rng.uniform(0.92, 1.08)
    x, y, _ = grid.axes()
    body_r = np.sqrt((x / body_a) ** 2 + (y / body_b) ** 2) * np.ones(grid.shape, np.float32)
    liver_scale = rng.uniform(0.9, 1.1)
    liver_centre = (55.0 + rng.uniform(-5, 5), 5.0 + rng.uniform(-5, 5), rng.uniform(-5, 5))
    liver_r = ellipsoid(grid, liver_centre, tuple(liver_scale * a for a in (85.0, 70.0, 62.0)))
    # Low-frequency deformation so no two livers are the same ellipsoid.
    liver_r = liver_r + 0.08 * cosine_field(grid, 140.0, 4, rng)
    structures = {
        "body": body_r < 1.0,
        "fat": (body_r >= 0.88) & (body_r < 1.0),
        "bone": tube(grid, (0, -78, -200), (0, -78, 200), 21.0),
        "kidney": (ellipsoid(grid, (70.0, -62.0, -45.0), (28.0, 24.0, 45.0)) < 1)
        | (ellipsoid(grid, (-70.0, -62.0, -35.0), (28.0, 24.0, 45.0)) < 1),
        "spleen": ellipsoid(grid, (-95.0, -30.0, 20.0), (40.0, 30.0, 50.0)) < 1,
        "aorta": tube(grid, (-15, -48, -200), (-15, -48, 200), 11.0),
        "ivc": tube(grid, (28, -38, -200), (28, -38, 200), 10.0),
        "liver": liver_r < 1.0,
    }
    hilum = (liver_centre[0] - 25.0, liver_centre[1] - 10.0, liver_centre[2] - 5.0)
    structures["portal_vein"] = tube(grid, (8.0, -20.0, -25.0), hilum, 7.0)
    return structures


@dataclass(frozen=True)
class Lesion:
    """One tumour's truth: centre (RAS mm), radius (mm) and necrotic core fraction."""

    centre_mm: tuple[float, float, float]
    radius_mm: float
    necrotic_fraction: float


def place_lesions(
    liver: np.ndarray,
    grid: Grid,
    largest_diameter_mm: float,
    n_tumours: int,
    necrotic_fraction: float,
    rng: np.random.Generator,
) -> list[Lesion]:
    """Place the main tumour and its satellites inside the liver without overlap."""
    depth = ndimage.distance_transform_edt(liver, sampling=grid.spacing)
    x, y, z = (np.broadcast_to(a, grid.shape) for a in grid.axes())
    lesions: list[Lesion] = []
    for index in range(n_tumours):
        radius = largest_diameter_mm / 2
        if index > 0:
            radius = max(radius * rng.uniform(0.25, 0.6), 4.0)
        while True:
            allowed = depth >= 0.75 * radius
            for lesion in lesions:
                gap = lesion.radius_mm + radius + 4.0
                allowed &= (
                    (x - lesion.centre_mm[0]) ** 2
                    + (y - lesion.centre_mm[1]) ** 2
                    + (z - lesion.centre_mm[2]) ** 2
                ) > gap**2
            candidates = np.flatnonzero(allowed)
            if candidates.size or radius < 3.0:
                break
            radius *= 0.8  # the liver is too small for this tumour here: shrink and retry
        if not candidates.size:
            raise RuntimeError(
                f"no room in the liver for tumour {index + 1} of {n_tumours}; "
                "lower simulate.*.image.max_tumours or the tumour size settings"
            )
        flat = int(rng.choice(candidates))
        centre = tuple(float(a.flat[flat]) for a in (x, y, z))
        necrosis = necrotic_fraction if index == 0 else necrotic_fraction * 0.5
        lesions.append(Lesion(centre, float(radius), float(necrosis)))  # type: ignore[arg-type]
    return lesions


def tumour_regions(
    grid: Grid, lesion: Lesion, irregularity: float, rng: np.random.Generator
) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Bounding box and the tumour, necrotic-core and capsule masks of one lesion inside it."""
    margin = lesion.radius_mm * (1.0 + 3 * irregularity) + 3.0
    a = grid.affine
    box = []
    for axis in range(3):
        centre_index = (lesion.centre_mm[axis] - a[axis, 3]) / a[axis, axis]
        half = margin / grid.spacing[axis]
        lo = max(int(np.floor(centre_index - half)), 0)
        hi = min(int(np.ceil(centre_index + half)) + 1, grid.shape[axis])
        box.append(slice(lo, hi))
    x, y, z = grid.axes()
    bx, by, bz = x[box[0]], y[:, box[1]], z[:, :, box[2]]
    distance = np.sqrt(
        (bx - lesion.centre_mm[0]) ** 2
        + (by - lesion.centre_mm[1]) ** 2
        + (bz - lesion.centre_mm[2]) ** 2
    )
    shape = distance.shape
    wobble = np.clip(
        smooth_noise(shape, max(lesion.radius_mm * 0.3, 2.0), grid.spacing, rng), -2.5, 2.5
    )
    boundary = lesion.radius_mm * (1.0 + irregularity * wobble)
    tumour = distance < boundary
    necrotic = distance < lesion.necrotic_fraction * boundary
    capsule = tumour & (distance > boundary - 2.0)
    return tuple(box), tumour, necrotic, capsule


def render_patient(
    appearance: Mapping[str, float],
    centre: Mapping[str, Any],
    modality: str,
    image_cfg: Mapping[str, Any],
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[Lesion]]:
    """Render one patient's phases (int16), label mask (uint8), affine and lesion truth."""
    grid = Grid.from_fov(tuple(image_cfg["fov_mm"]), tuple(centre["spacing_mm"]))
    structures = anatomy(grid, rng)
    lesions = place_lesions(
        structures["liver"],
        grid,
        float(appearance["largest_diameter_mm"]),
        int(appearance["n_tumours"]),
        float(appearance["necrotic_fraction"]),
        rng,
    )
    # HCC grows mostly within the liver: keep tumour tissue within 5 mm of the liver surface.
    near_liver = ndimage.distance_transform_edt(~structures["liver"], sampling=grid.spacing) <= 5.0
    regions = []
    for lesion in lesions:
        box, tumour, necrotic, capsule = tumour_regions(
            grid, lesion, float(appearance["margin_irregularity"]), rng
        )
        tumour &= near_liver[box]
        regions.append((box, tumour, necrotic & tumour, capsule & tumour))
    mask = np.zeros(grid.shape, np.uint8)
    mask[structures["liver"]] = LABELS["liver"]
    for box, tumour, _, _ in regions:
        mask[box][tumour] = LABELS["tumour"]

    signal = TISSUE_SIGNAL[modality]
    reference = REFERENCE_SIGNAL[modality]
    liver_texture = smooth_noise(grid.shape, 3.0, grid.spacing, rng)
    bias = cosine_field(grid, 300.0, 3, rng) if modality == "mri" else None
    phases = PHASES[modality]
    images: dict[str, np.ndarray] = {}
    tumour_textures = [
        smooth_noise(t.shape, image_cfg["texture_scale_mm"], grid.spacing, rng)
        for _, t, _, _ in regions
    ]
    for p, phase in enumerate(phases):
        timing = centre["arterial_timing"] if phase == "arterial" else 1.0
        volume = np.full(grid.shape, signal["air"][p], np.float32)
        for tissue in ("soft_tissue", "fat", "bone", "kidney", "spleen", "aorta", "ivc"):
            region = structures["body"] if tissue == "soft_tissue" else structures[tissue]
            value = signal[tissue][p]
            if tissue == "aorta":
                value = signal["soft_tissue"][p] + (value - signal["soft_tissue"][p]) * timing
            volume[region] = value
        liver_value = signal["liver"][p]
        volume[structures["liver"]] = (liver_value * (1 + 0.03 * liver_texture))[
            structures["liver"]
        ]
        volume[structures["portal_vein"]] = signal["portal_vein"][p]
        viable = _viable_tumour_signal(appearance, modality, phase, liver_value, timing)
        for (box, tumour, necrotic, capsule), texture in zip(regions, tumour_textures, strict=True):
            patch = volume[box]
            textured = viable + appearance["texture_amplitude"] * 0.6 * reference * texture
            patch[tumour] = textured[tumour]
            if phase == "portal_venous":
                rim = _capsule_signal(appearance, modality, viable)
                patch[capsule & ~necrotic] = rim
            patch[necrotic & tumour] = signal["necrosis"][p]
        # Partial volume: the scanner's point-spread function, about half a voxel.
        volume = ndimage.gaussian_filter(volume, 0.5)
        images[phase] = _acquire(volume, centre, modality, bias, rng)
    return images, mask, grid.affine, lesions


def _viable_tumour_signal(
    appearance: Mapping[str, float], modality: str, phase: str, liver_value: float, timing: float
) -> float:
    """Viable tumour signal in one phase from its enhancement parameters."""
    gain, washout = appearance["arterial_gain"] * timing, appearance["washout"]
    if modality == "mri":
        return {
            "arterial": liver_value * (1 + gain),
            "portal_venous": liver_value * (1 - washout),
            "hepatobiliary": liver_value * appearance["hbp_ratio"],
        }[phase]
    return {
        "arterial": liver_value + CT_ARTERIAL_HU_PER_GAIN * gain,
        "portal_venous": liver_value - CT_WASHOUT_HU * washout,
    }[phase]


def _capsule_signal(appearance: Mapping[str, float], modality: str, viable: float) -> float:
    """Capsule rim signal in the portal-venous phase (enhancing capsule of LI-RADS)."""
    if modality == "mri":
        return viable * (1 + appearance["capsule_gain"])
    return viable + CT_CAPSULE_HU * appearance["capsule_gain"]


def _acquire(
    volume: np.ndarray,
    centre: Mapping[str, Any],
    modality: str,
    bias: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Scanner effects of a centre: gain, bias field and noise; stored as int16."""
    noise = centre["noise_sd"] * REFERENCE_SIGNAL[modality]
    if modality == "mri":
        volume = volume * centre["gain"] * np.exp(centre["bias_field"] * bias)
        # Magnitude images: Rician noise from two Gaussian channels.
        real = volume + rng.normal(0, noise, volume.shape).astype(np.float32)
        imaginary = rng.normal(0, noise, volume.shape).astype(np.float32)
        volume = np.sqrt(real**2 + imaginary**2)
        return np.clip(np.round(volume), 0, 32767).astype(np.int16)
    volume = volume * centre["gain"] + centre["offset"]
    volume = volume + rng.normal(0, noise, volume.shape).astype(np.float32)
    return np.clip(np.round(volume), -1024, 3071).astype(np.int16)


def write_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray) -> None:
    """Write a volume as NIfTI-1 with scanner-coded qform and sform and mm units."""
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units(xyz="mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))


def render_shard(
    appearance: pd.DataFrame,
    patients: Sequence[str],
    cohort_cfg: Mapping[str, Any],
    image_paths: Mapping[str, Mapping[str, str]],
    seed: int,
) -> pd.DataFrame:
    """Render and write the given patients; return their lesion truth, one row per tumour."""
    centres = {c["name"]: c for c in cohort_cfg["centres"]}
    rows = []
    for patient in tqdm(patients, desc=f"rendering {cohort_cfg['name']}", unit="patient"):
        record = appearance.loc[patient]
        images, mask, affine, lesions = render_patient(
            record,
            centres[record["centre"]],
            cohort_cfg["modality"],
            cohort_cfg["image"],
            rng_for(seed, cohort_cfg["name"], "image", patient),
        )
        for phase, volume in images.items():
            write_nifti(image_paths[patient][f"image_{phase}"], volume, affine)
        write_nifti(image_paths[patient]["mask"], mask, affine)
        for number, lesion in enumerate(lesions, start=1):
            rows.append(
                {
                    "patient_id": patient,
                    "lesion": number,
                    "centre_x_mm": lesion.centre_mm[0],
                    "centre_y_mm": lesion.centre_mm[1],
                    "centre_z_mm": lesion.centre_mm[2],
                    "radius_mm": lesion.radius_mm,
                    "necrotic_fraction": lesion.necrotic_fraction,
                }
            )
    return pd.DataFrame(rows).set_index("patient_id")
