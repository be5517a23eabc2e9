"""Per-patient preparation shared by radiomics and deep learning, and the per-patient features.

One function per workflow step, each reading a sheet row and writing a patient's folder:
``prepare_patient`` (load, check, resample, normalise, crop, QC image) and
``patient_radiomics`` / ``patient_perturbed_radiomics`` (features on the prepared volumes).
A bad input either raises ``ImageQCError`` or, with ``on_error="exclude"``, is written to the
patient's ``exclusion.tsv`` so the gather step lists it; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hccrad.imaging import (
    EXCLUSION_COLUMNS,
    Exclusion,
    PatientVolumes,
    call_or_exclude,
    crop_to_liver,
    crop_tumours,
    load_patient,
    normalise_patient,
    read_image,
    resample_patient,
    write_crops,
    write_preprocessed,
    write_qc_png,
)
from hccrad.prepared import read_exclusion
from hccrad.radiomics import extract_patient, perturbed_volumes

MODALITY_UNITS: dict[str, str] = {"mri": "z-score over liver", "ct": "HU"}


def phase_paths(row: pd.Series) -> dict[str, str]:
    """The image path of each phase in a sheet row (columns image_<phase>)."""
    return {c.removeprefix("image_"): row[c] for c in row.index if c.startswith("image_")}


def prepared_paths(folder: str | Path, phases: Sequence[str]) -> dict[str, Path]:
    """Where a patient's prepared volumes live inside its folder."""
    folder = Path(folder)
    return {phase: folder / f"{phase}.nii.gz" for phase in phases} | {
        "mask": folder / "mask.nii.gz"
    }


def write_exclusion(folder: str | Path, exclusion: Exclusion | None) -> None:
    """Write the patient's exclusion record (a header-only table when the patient is fine)."""
    rows = [exclusion.as_row()] if exclusion else []
    table = pd.DataFrame(rows, columns=list(EXCLUSION_COLUMNS))
    Path(folder).mkdir(parents=True, exist_ok=True)
    table.to_csv(Path(folder) / "exclusion.tsv", sep="\t", index=False)


def _prepare(
    patient_id: str, row: pd.Series, imaging_cfg: Mapping[str, Any], modality: str, folder: Path
) -> None:
    """Load, check, resample, normalise, crop and draw one patient (raises ImageQCError)."""
    volumes = load_patient(patient_id, phase_paths(row), row["mask"])
    liver = crop_to_liver(volumes, imaging_cfg["roi_margin_mm"])
    resampled = resample_patient(
        liver, imaging_cfg["spacing_mm"], interpolator=imaging_cfg["interpolator"]
    )
    for_radiomics = normalise_patient(resampled, imaging_cfg["normalisation"][modality])
    crop_cfg = imaging_cfg["crop"]
    for_crops = normalise_patient(
        resampled,
        crop_cfg["normalisation"][modality],
        window=tuple(crop_cfg["hu_window"]),
        rescale_window=True,
    )
    crops = crop_tumours(for_crops, crop_cfg["box_mm"], instances=crop_cfg["instances"])
    paths = prepared_paths(folder, for_radiomics.phases)
    write_preprocessed(for_radiomics, paths, paths["mask"])
    write_crops(crops, folder / "crops")
    write_qc_png(
        for_radiomics, folder / "qc.png", intensity_label=MODALITY_UNITS[modality], dpi=100
    )


def prepare_patient(
    patient_id: str,
    row: pd.Series,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    folder: str | Path,
) -> Exclusion | None:
    """Prepare one patient into ``folder``; return the exclusion if on_error says exclude."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    on_error = "exclude" if imaging_cfg["on_error"] == "exclude" else "raise"
    _, exclusion = call_or_exclude(
        _prepare, patient_id, row, imaging_cfg, modality, folder, on_error=on_error
    )
    write_exclusion(folder, exclusion)
    return exclusion


def load_prepared(patient_id: str, folder: str | Path, phases: Sequence[str]) -> PatientVolumes:
    """Read a prepared patient back (phases and mask share one grid by construction)."""
    paths = prepared_paths(folder, phases)
    images = {phase: read_image(paths[phase], patient_id) for phase in phases}
    mask = read_image(paths["mask"], patient_id)
    sources = {k: str(v) for k, v in paths.items()}
    return PatientVolumes(patient_id, images, mask, sources)


def prepared_phases(folder: str | Path) -> list[str]:
    """Phases present in a prepared folder, in file-name order."""
    return sorted(
        p.name.removesuffix(".nii.gz")
        for p in Path(folder).glob("*.nii.gz")
        if p.name != "mask.nii.gz"
    )


def radiomics_settings(
    radiomics_cfg: Mapping[str, Any], spacing_mm: Sequence[float]
) -> dict[str, Any]:
    """PyRadiomics setting overrides: the config's, and resampling to the prepared spacing."""
    # The volumes are already resampled: PyRadiomics must only crop, not interpolate again.
    return {**dict(radiomics_cfg.get("settings", {})), "resampledPixelSpacing": list(spacing_mm)}


def _extract(
    volumes: PatientVolumes,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PyRadiomics on prepared volumes with the configured regions, ring and settings."""
    return extract_patient(
        volumes,
        params,
        regions=radiomics_cfg["regions"],
        ring_mm=radiomics_cfg["ring_mm"],
        setting_overrides=radiomics_settings(radiomics_cfg, spacing_mm),
    )


def patient_radiomics(
    patient_id: str,
    folder: str | Path,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One patient's features (one row) and diagnostics; empty frames if it was excluded."""
    if len(read_exclusion(folder)):
        empty = pd.DataFrame(index=pd.Index([], name="patient_id"))
        return empty, pd.DataFrame()
    volumes = load_prepared(patient_id, folder, prepared_phases(folder))
    return _extract(volumes, params, radiomics_cfg, spacing_mm)


def patient_perturbed_radiomics(
    patient_id: str,
    folder: str | Path,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
    seed: int,
) -> pd.DataFrame:
    """Features of one patient under each mask perturbation (rows: perturbation)."""
    volumes = load_prepared(patient_id, folder, prepared_phases(folder))
    rows = []
    for kind in radiomics_cfg["robustness"]["perturbations"]:
        perturbed = perturbed_volumes(volumes, kind, seed=seed)
        features, _ = _extract(perturbed, params, radiomics_cfg, spacing_mm)
        rows.append(features.assign(perturbation=kind))
    return pd.concat(rows)


def split_perturbed(tables: Sequence[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per-patient perturbed tables regrouped as {perturbation: patients x features}."""
    stacked = pd.concat(tables)
    return {
        kind: group.drop(columns="perturbation")
        for kind, group in stacked.groupby("perturbation", sort=False)
    }


def gather_exclusions(folders: Sequence[str | Path], cohort: str) -> pd.DataFrame:
    """Every excluded patient of a cohort with file, reason and fix (empty if none)."""
    tables = [read_exclusion(folder) for folder in folders]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    table = table.reindex(columns=list(EXCLUSION_COLUMNS))
    table.insert(1, "cohort", cohort)
    table.insert(2, "step", "prepare_patient")
    return table.set_index("patient_id")
