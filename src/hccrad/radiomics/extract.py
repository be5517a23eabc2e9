"""PyRadiomics features per patient, phase and region, and the cohort's table of them.

Regions, from the label map (0 background, 1 liver, 2 tumour):
- ``tumour``: every tumour voxel (all components), or the largest tumour only (option);
- ``peritumoural``: liver voxels (label 1) whose centre lies within ``ring_mm`` of the nearest
  tumour voxel centre, by a physical-distance (Maurer) map; so the ring stays in the liver.

Feature columns are ``<phase>_<region>_<pyradiomics name>``, e.g.
``arterial_tumour_original_firstorder_Mean``; one row per patient, index ``patient_id``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import radiomics
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)
from radiomics.featureextractor import RadiomicsFeatureExtractor

from hccrad.cohorts.sheet import read_patients
from hccrad.core.labels import LIVER_LABEL, TUMOUR_LABEL
from hccrad.imaging.crops import tumour_components
from hccrad.imaging.read import ImageQCError
from hccrad.imaging.volumes import PatientVolumes

# PyRadiomics logs every step at INFO; a cohort run would bury the warnings that matter.
radiomics.setVerbosity(logging.WARNING)
logging.getLogger("radiomics").setLevel(logging.WARNING)

PARAMS_DIR = Path(__file__).resolve().parents[3] / "resources" / "pyradiomics"
REGIONS: tuple[str, ...] = ("tumour", "peritumoural")
DIAGNOSTICS_PREFIX = "diagnostics_"
Region = Literal["tumour", "peritumoural"]


def params_path(modality: Literal["mri", "ct"], *, original_only: bool = False) -> Path:
    """The shipped parameter file for a modality (resources/pyradiomics)."""
    name = {"mri": "mri_zscore", "ct": "ct_hu"}[modality]
    return PARAMS_DIR / f"{name}{'_original' if original_only else ''}.yaml"


def make_extractor(
    params: str | Path | Mapping[str, Any], **setting_overrides: Any
) -> RadiomicsFeatureExtractor:
    """A PyRadiomics extractor from a parameter file or dict; keywords override settings."""
    source = str(params) if isinstance(params, str | Path) else dict(params)
    with warnings.catch_warnings():
        # pykwalify, which validates the parameters, uses a deprecated import hook: not ours.
        warnings.filterwarnings("ignore", message=".*load_module", category=DeprecationWarning)
        return RadiomicsFeatureExtractor(source, **setting_overrides)


def tumour_region(
    mask: sitk.Image, *, tumour_label: int = TUMOUR_LABEL, largest_only: bool = False
) -> sitk.Image:
    """Binary (0/1) tumour region: every tumour voxel, or only the largest connected tumour."""
    if largest_only:
        return sitk.Cast(sitk.Equal(tumour_components(mask, tumour_label), 1), sitk.sitkUInt8)
    return sitk.Cast(sitk.Equal(mask, tumour_label), sitk.sitkUInt8)


def peritumoural_ring(
    mask: sitk.Image,
    tumour: sitk.Image,
    ring_mm: float,
    *,
    liver_label: int = LIVER_LABEL,
) -> sitk.Image:
    """Binary ring of liver voxels within `ring_mm` (physical distance) outside the tumour."""
    # Maurer distance in mm (image spacing), 0 on the tumour's boundary voxels, > 0 outside.
    distance = sitk.SignedMaurerDistanceMap(
        tumour, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    ring = sitk.And(sitk.Greater(distance, 0.0), sitk.LessEqual(distance, float(ring_mm)))
    return sitk.Cast(sitk.And(ring, sitk.Equal(mask, liver_label)), sitk.sitkUInt8)


def region_masks(
    mask: sitk.Image,
    regions: Sequence[Region] = REGIONS,
    *,
    ring_mm: float = 5.0,
    tumour_label: int = TUMOUR_LABEL,
    liver_label: int = LIVER_LABEL,
    largest_only: bool = False,
) -> dict[str, sitk.Image]:
    """Binary masks of the requested regions ('tumour', 'peritumoural'), keyed by region."""
    unknown = set(regions) - set(REGIONS)
    if unknown:
        raise ValueError(f"unknown regions {sorted(unknown)}; choose from {REGIONS}")
    tumour = tumour_region(mask, tumour_label=tumour_label, largest_only=largest_only)
    masks = {"tumour": tumour}
    if "peritumoural" in regions:
        masks["peritumoural"] = peritumoural_ring(mask, tumour, ring_mm, liver_label=liver_label)
    return {region: masks[region] for region in regions}


def extract_region(
    image: sitk.Image, region: sitk.Image, extractor: RadiomicsFeatureExtractor
) -> tuple[dict[str, float], dict[str, Any]]:
    """PyRadiomics on one image and binary region: (features, diagnostics), PyRadiomics names."""
    result = extractor.execute(image, region, label=1)
    # glcm MCC comes from eigenvalues and can carry a zero imaginary part: keep the real one.
    features = {
        k: float(np.real(v)) for k, v in result.items() if not k.startswith(DIAGNOSTICS_PREFIX)
    }
    diagnostics = {k: v for k, v in result.items() if k.startswith(DIAGNOSTICS_PREFIX)}
    return features, diagnostics


def _is_shape(name: str) -> bool:
    """Whether a PyRadiomics feature name is a 3D shape feature (``original_shape_...``)."""
    return name.split("_")[1:2] == ["shape"]


def _without_shape(extractor: RadiomicsFeatureExtractor) -> RadiomicsFeatureExtractor | None:
    """A copy of the extractor without shape features; None when shape must be recomputed.

    Shape features describe the region alone (its voxels and the grid's spacing), so each
    region's are the same on every phase of one grid: computed once per region rather than per
    phase (a quarter of the extraction time with three phases; issue 30). Not when the shape
    follows a resegmentation by intensity (``resegmentShape``), which differs per phase.
    """
    if "shape" not in extractor.enabledFeatures or extractor.settings.get("resegmentShape"):
        return None
    without = deepcopy(extractor)
    without.enableFeatureClassByName("shape", enabled=False)
    return without


def _same_grid(image: sitk.Image, reference: sitk.Image | None) -> bool:
    """Exactly the same size, spacing, origin and direction (then shape features coincide)."""
    return reference is not None and all(
        getattr(image, name)() == getattr(reference, name)()
        for name in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection")
    )


def extract_patient(
    volumes: PatientVolumes,
    params: str | Path | Mapping[str, Any],
    *,
    regions: Sequence[Region] = REGIONS,
    ring_mm: float = 5.0,
    tumour_label: int = TUMOUR_LABEL,
    liver_label: int = LIVER_LABEL,
    largest_only: bool = False,
    setting_overrides: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of every phase x region as one row (index patient_id), and the diagnostics."""
    extractor = make_extractor(params, **dict(setting_overrides or {}))
    masks = region_masks(
        volumes.mask,
        regions,
        ring_mm=ring_mm,
        tumour_label=tumour_label,
        liver_label=liver_label,
        largest_only=largest_only,
    )
    without_shape = _without_shape(extractor)
    shape_of: dict[str, dict[str, float]] = {}
    first_image = next(iter(volumes.images.values()), None)
    row: dict[str, float] = {}
    diagnostics = []
    for phase, image in volumes.images.items():
        reuse_shape = without_shape is not None and _same_grid(image, first_image)
        for region, region_mask in masks.items():
            try:
                if reuse_shape and region in shape_of:
                    features, info = extract_region(image, region_mask, without_shape)
                    # Shape first, as PyRadiomics orders them: the same columns in the same order.
                    features = shape_of[region] | features
                else:
                    features, info = extract_region(image, region_mask, extractor)
                    if reuse_shape:
                        shape_of[region] = {k: v for k, v in features.items() if _is_shape(k)}
            except ValueError as error:
                raise ImageQCError(
                    volumes.patient_id,
                    volumes.sources.get(phase),
                    f"PyRadiomics cannot use the {region} region on the {phase} phase ({error})",
                    "check the mask (the peritumoural ring needs liver label 1 around the "
                    "tumour), or drop the region from the configured regions",
                ) from error
            row |= {f"{phase}_{region}_{name}": value for name, value in features.items()}
            diagnostics.append(
                {"patient_id": volumes.patient_id, "phase": phase, "region": region}
                | {k: str(v) for k, v in info.items()}
            )
    features_frame = pd.DataFrame([row], index=pd.Index([volumes.patient_id], name="patient_id"))
    return features_frame, pd.DataFrame(diagnostics)


def gather_features(tables: Iterable[pd.DataFrame | str | Path]) -> pd.DataFrame:
    """Stack per-patient one-row tables (frames, .parquet or .tsv) into patients x features."""
    frames = [_read_table(t) if isinstance(t, str | Path) else t for t in tables]
    if not frames:
        raise ValueError("no per-patient feature tables to gather")
    columns = frames[0].columns
    for frame in frames[1:]:
        if not frame.columns.equals(columns):
            differing = sorted(set(frame.columns).symmetric_difference(columns))[:5]
            raise ValueError(
                f"patient {list(frame.index)} has other feature columns than "
                f"{list(frames[0].index)} (e.g. {differing}): extract all patients with the same "
                "parameter file, phases and regions"
            )
    table = pd.concat(frames)
    duplicated = table.index[table.index.duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"patients appear more than once: {duplicated}")
    table.index.name = "patient_id"
    return table


def _read_table(path: str | Path) -> pd.DataFrame:
    """Read a per-patient table written as Parquet or TSV (first column patient_id)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return read_patients(path)
