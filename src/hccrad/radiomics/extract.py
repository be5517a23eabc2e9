"""PyRadiomics features per patient, phase and region; mask-perturbation robustness; harmonisation.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import radiomics
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)
from radiomics.featureextractor import RadiomicsFeatureExtractor

from hccrad.cohorts.sheet import read_patients
from hccrad.core.labels import LIVER_LABEL, TUMOUR_LABEL
from hccrad.core.seeding import rng_for
from hccrad.imaging.crops import tumour_components
from hccrad.imaging.read import ImageQCError
from hccrad.imaging.volumes import PatientVolumes

if TYPE_CHECKING:
    # Only the ICC figure draws: per-patient extraction jobs need not import matplotlib.
    from matplotlib.figure import Figure

# PyRadiomics logs every step at INFO; a cohort run would bury the warnings that matter.
radiomics.setVerbosity(logging.WARNING)
logging.getLogger("radiomics").setLevel(logging.WARNING)

PARAMS_DIR = Path(__file__).resolve().parents[3] / "resources" / "pyradiomics"
REGIONS: tuple[str, ...] = ("tumour", "peritumoural")
DIAGNOSTICS_PREFIX = "diagnostics_"
Region = Literal["tumour", "peritumoural"]
Perturbation = Literal["erode", "dilate", "jitter"]
PERTURBATIONS: tuple[Perturbation, ...] = ("erode", "dilate", "jitter")


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
    row: dict[str, float] = {}
    diagnostics = []
    for phase, image in volumes.images.items():
        for region, region_mask in masks.items():
            try:
                features, info = extract_region(image, region_mask, extractor)
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


def perturb_mask(
    mask: sitk.Image,
    kind: Perturbation,
    *,
    seed: int = 0,
    stream: str = "",
    tumour_label: int = TUMOUR_LABEL,
    liver_label: int = LIVER_LABEL,
    jitter_mm: float | None = None,
    smoothing_mm: float | None = None,
) -> sitk.Image:
    """A re-drawn label map: tumour eroded or dilated by one voxel, or its contour jittered.

    The jitter's random field comes from (`seed`, `stream`): pass the patient id as `stream` so
    that patients get different, reproducible fields.
    """
    tumour = sitk.Equal(mask, tumour_label)
    if kind == "erode":
        new_tumour = sitk.BinaryErode(tumour, [1, 1, 1], sitk.sitkBall)
    elif kind == "dilate":
        new_tumour = sitk.BinaryDilate(tumour, [1, 1, 1], sitk.sitkBall)
    elif kind == "jitter":
        new_tumour = _jittered(
            tumour, rng_for(seed, "mask_jitter", stream), jitter_mm, smoothing_mm
        )
    else:
        raise ValueError(f"unknown perturbation {kind!r}; choose from {PERTURBATIONS}")
    if not np.any(sitk.GetArrayViewFromImage(new_tumour)):
        raise ValueError(f"the tumour disappears under {kind}: it is too small to perturb")
    labels = sitk.GetArrayFromImage(mask)
    was_tumour = labels == tumour_label
    is_tumour = sitk.GetArrayViewFromImage(new_tumour).astype(bool)
    labels[was_tumour & ~is_tumour] = liver_label  # a tumour voxel given up is liver
    labels[is_tumour] = tumour_label
    perturbed = sitk.GetImageFromArray(labels)
    perturbed.CopyInformation(mask)
    return perturbed


def _maurer_mm(region: sitk.Image) -> np.ndarray:
    """Maurer distance in mm: 0 on the region's boundary voxels, > 0 outside, < 0 inside."""
    distance = sitk.SignedMaurerDistanceMap(
        region, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.GetArrayFromImage(distance)


def _jittered(
    tumour: sitk.Image,
    rng: np.random.Generator,
    jitter_mm: float | None,
    smoothing_mm: float | None,
) -> sitk.Image:
    """Move the tumour surface by a smooth random field (SD `jitter_mm`, scale `smoothing_mm`)."""
    jitter_mm = min(tumour.GetSpacing()) if jitter_mm is None else jitter_mm
    smoothing_mm = 3 * max(tumour.GetSpacing()) if smoothing_mm is None else smoothing_mm
    # Half the difference of the tumour's and the background's Maurer maps is the signed
    # distance to the surface midway between voxels (-s/2 inside, +s/2 outside the boundary);
    # the tumour's map alone is 0 on the inner boundary and would make the jitter shrink it.
    surface_distance = (_maurer_mm(tumour) - _maurer_mm(sitk.Not(tumour))) / 2
    noise = sitk.GetImageFromArray(rng.standard_normal(surface_distance.shape))
    noise.CopyInformation(tumour)
    field = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(noise, smoothing_mm))
    field *= jitter_mm / field.std()
    # Adding a displacement d to the distance moves the surface inward by d where d > 0.
    jittered = sitk.GetImageFromArray((surface_distance + field < 0).astype(np.uint8))
    jittered.CopyInformation(tumour)
    return jittered


def perturbed_volumes(
    volumes: PatientVolumes, kind: Perturbation, *, seed: int = 0, **kwargs: Any
) -> PatientVolumes:
    """The same patient with a perturbed mask (see perturb_mask)."""
    try:
        mask = perturb_mask(volumes.mask, kind, seed=seed, stream=volumes.patient_id, **kwargs)
    except ValueError as error:
        raise ImageQCError(
            volumes.patient_id,
            volumes.sources.get("mask"),
            str(error),
            "leave this patient out of the robustness analysis, or resample to a finer spacing",
        ) from error
    return PatientVolumes(volumes.patient_id, volumes.images, mask, volumes.sources)


def feature_icc(
    original: pd.DataFrame,
    perturbed: Mapping[str, pd.DataFrame],
    *,
    threshold: float = 0.75,
) -> pd.DataFrame:
    """ICC(3,1) per feature across patients between original and perturbed-mask values.

    Columns: feature, icc, ci95_low, ci95_high, robust (icc >= threshold); one row per feature.
    """
    versions = {"original": original, **perturbed}
    patients = original.index
    for name, table in versions.items():
        if not table.index.sort_values().equals(patients.sort_values()):
            raise ValueError(f"the {name!r} table has other patients than the original table")
    if len(patients) < 3:
        raise ValueError(f"ICC needs at least 3 patients, got {len(patients)}")
    rows = [_icc_row(feature, versions, threshold) for feature in original.columns]
    return pd.DataFrame(rows, columns=["feature", "icc", "ci95_low", "ci95_high", "robust"])


def _icc_row(
    feature: str, versions: Mapping[str, pd.DataFrame], threshold: float
) -> dict[str, Any]:
    """ICC(3,1) of one feature: pingouin's ICC(C,1), two-way mixed, consistency, single."""
    long = (
        pd.concat(
            {name: table[feature] for name, table in versions.items()}, names=["mask", "patient_id"]
        )
        .rename("value")
        .reset_index()
    )
    finite = long["value"].replace([np.inf, -np.inf], np.nan).notna()
    if not finite.all() or long.groupby("mask")["value"].std().eq(0).all():
        # Constant or undefined features carry no between-patient information.
        return {
            "feature": feature,
            "icc": np.nan,
            "ci95_low": np.nan,
            "ci95_high": np.nan,
            "robust": False,
        }
    import pingouin  # slow to import (~0.7 s); only the ICC step needs it

    with np.errstate(divide="ignore", invalid="ignore"):
        table = pingouin.intraclass_corr(long, targets="patient_id", raters="mask", ratings="value")
    icc3 = table.set_index("Type").loc["ICC(C,1)"]
    low, high = (float(v) for v in icc3["CI95"])
    icc = float(icc3["ICC"])
    return {
        "feature": feature,
        "icc": icc,
        "ci95_low": low,
        "ci95_high": high,
        "robust": bool(icc >= threshold),
    }


@dataclass(frozen=True)
class CentreScaler:
    """Per-centre feature means and SDs (centres x features) for per-centre z-scoring."""

    means: pd.DataFrame
    sds: pd.DataFrame


def fit_centre_scaler(
    features: pd.DataFrame, centre: pd.Series, fit_rows: pd.Series
) -> CentreScaler:
    """Per-centre mean and SD of each feature from the fitting (training) rows of each centre."""
    centre = centre.reindex(features.index)
    fit = fit_rows.reindex(features.index).fillna(False).astype(bool)
    grouped = features[fit].groupby(centre[fit])
    return CentreScaler(means=grouped.mean(), sds=grouped.std(ddof=1))


def apply_centre_scaler(
    features: pd.DataFrame,
    centre: pd.Series,
    scaler: CentreScaler,
    *,
    unseen_centre: Literal["own_rows", "error"] = "own_rows",
) -> pd.DataFrame:
    """Z-score each row with its centre's statistics; a centre unseen in fitting uses its own rows.

    An external centre has no training rows; 'own_rows' standardises it with the statistics of
    all its own rows (uses features only, never outcomes), 'error' refuses.
    """
    centre = centre.reindex(features.index)
    if centre.isna().any():
        raise ValueError(f"patients without a centre: {centre.index[centre.isna()].tolist()}")
    harmonised = features.astype(float).copy()
    for name, rows in features.groupby(centre).groups.items():
        if name in scaler.means.index:
            mean, sd = scaler.means.loc[name], scaler.sds.loc[name]
        elif unseen_centre == "own_rows":
            mean, sd = features.loc[rows].mean(), features.loc[rows].std(ddof=1)
        else:
            raise ValueError(f"centre {name!r} has no fitting rows to standardise with")
        # A feature constant within a centre (SD 0 or one row) is only centred, not scaled.
        sd = sd.where(sd > 0, 1.0).fillna(1.0)
        harmonised.loc[rows] = (features.loc[rows] - mean) / sd
    return harmonised


def harmonise_per_centre(
    features: pd.DataFrame,
    centre: pd.Series,
    fit_rows: pd.Series,
    *,
    method: Literal["none", "centre_zscore"] = "none",
) -> pd.DataFrame:
    """Per-centre z-scoring fitted on `fit_rows` (training); 'none' (default) is a copy."""
    if method == "none":
        return features.copy()
    if method != "centre_zscore":
        raise ValueError(f"unknown harmonisation {method!r}; choose 'none' or 'centre_zscore'")
    return apply_centre_scaler(features, centre, fit_centre_scaler(features, centre, fit_rows))


def select_robust(features: pd.DataFrame, icc: pd.DataFrame) -> pd.DataFrame:
    """Keep the features the ICC table marks robust (the others are listed in that table)."""
    robust = icc.loc[icc["robust"].astype(bool), "feature"]
    missing = sorted(set(robust) - set(features.columns))
    if missing:
        raise ValueError(
            f"{len(missing)} robust features are not in the features table (e.g. {missing[:3]}):"
            " the ICC and the features come from different parameter files, phases or regions"
        )
    return features.loc[:, [c for c in features.columns if c in set(robust)]]


def feature_group(name: str) -> str:
    """The phase, region and PyRadiomics class of a feature column, e.g. 'arterial tumour glcm'."""
    phase_region, _, rest = name.partition("_original_")
    if not rest:
        parts = name.split("_")
        return " ".join(parts[:3])
    return f"{phase_region.replace('_', ' ')} {rest.split('_')[0]}"


def icc_figure(icc: pd.DataFrame, threshold: float) -> Figure:
    """Strip plot of every feature's ICC(3,1) by PyRadiomics class, with the threshold."""
    import matplotlib.pyplot as plt

    from hccrad.figures.style import apply_style

    apply_style()
    table = icc.assign(
        feature_class=icc["feature"].map(lambda f: f.split("_")[-2] if "_" in f else f)
    )
    classes = sorted(table["feature_class"].unique())
    figure, axis = plt.subplots(figsize=(6.5, 3.0))
    rng = np.random.default_rng(0)  # jitter for display only
    for position, name in enumerate(classes):
        values = table.loc[table["feature_class"] == name]
        x = position + rng.uniform(-0.3, 0.3, len(values))
        colours = np.where(values["robust"].astype(bool), "#009E73", "#D55E00")
        axis.scatter(x, values["icc"].clip(lower=-0.2), s=5, c=colours, alpha=0.7, linewidths=0)
        kept = int(values["robust"].astype(bool).sum())
        axis.text(position, 1.04, f"{kept}/{len(values)}", ha="center", fontsize=6)
    axis.axhline(threshold, color="black", linestyle="--", linewidth=0.8)
    axis.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    axis.set_ylim(-0.22, 1.1)
    axis.set_ylabel("ICC(3,1), original vs perturbed masks")
    axis.set_xlabel("PyRadiomics feature class (all phases and regions)")
    axis.set_title(
        f"Robustness to the contour: {int(icc['robust'].sum())} of {len(icc)} features "
        f"with ICC >= {threshold} (green kept, vermilion excluded; n robust/n above)"
    )
    return figure
