"""Per-patient preparation shared by radiomics and deep learning, and the per-patient features.

One function per workflow step, each reading a sheet row and writing a patient's folder:
``prepare_patient`` (load, check, resample, normalise, crop, QC image) and
``radiomics_or_exclusion`` / ``patient_perturbed_radiomics`` (features on the prepared volumes).
A bad input either raises ``ImageQCError`` or, with ``on_error="exclude"``, is written to the
patient's exclusion record (``exclusion.tsv`` of the prepared folder, then the radiomics step's
``<patient>_exclusion.tsv``) so the gather step lists it; nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from hccrad.cohorts.sheet import read_patients
from hccrad.imaging.prepared import read_exclusion
from hccrad.imaging.read import (
    EXCLUSION_COLUMNS,
    LIVER_LABEL,
    TUMOUR_LABEL,
    Exclusion,
    ImageQCError,
    OnError,
    PatientVolumes,
    Plausible,
    call_or_exclude,
    check_tumour_size,
    correct_bias_patient,
    crop_to_liver,
    crop_tumours,
    harmonise_patient,
    load_patient,
    normalise_patient,
    read_image,
    resample_patient,
    with_predicted_tumour,
    write_crops,
    write_preprocessed,
    write_qc_png,
)
from hccrad.radiomics.extract import extract_patient, gather_features, perturbed_volumes

MODALITY_UNITS: dict[str, str] = {"mri": "z-score over liver", "ct": "HU"}
# Where a cohort's tumour masks come from: its sheet, or the segmentation model (issue 8).
Masks = Literal["reference", "liver_only"]
# The workflow steps that can exclude a patient (the exclusions table's step column).
PREPARE_STEP = "prepare_patient"
PREDICTED_TUMOUR_STEP = "prepare_predicted_tumour"
RADIOMICS_STEP = "patient_radiomics"
# The first columns of a patient's diagnostics table: all that an excluded patient's has.
DIAGNOSTICS_KEYS: tuple[str, ...] = ("patient_id", "phase", "region")
# Errors of PyRadiomics and SimpleITK on one patient's volumes, besides the ValueError that
# extract_patient already names: a C++ exception surfaces as RuntimeError.
EXTRACTION_ERRORS: tuple[type[Exception], ...] = (RuntimeError,)
# config imaging.on_error -> call_or_exclude's on_error.
ON_ERROR: dict[str, OnError] = {"stop": "raise", "exclude": "exclude"}
LOGGER = logging.getLogger(__name__)


def phase_paths(row: pd.Series) -> dict[str, str]:
    """The image path of each phase in a sheet row (columns image_<phase>)."""
    return {c.removeprefix("image_"): row[c] for c in row.index if c.startswith("image_")}


def prepared_paths(folder: str | Path, phases: Sequence[str]) -> dict[str, Path]:
    """Where a patient's prepared volumes live inside its folder."""
    folder = Path(folder)
    return {phase: folder / f"{phase}.nii.gz" for phase in phases} | {
        "mask": folder / "mask.nii.gz"
    }


def exclusion_record(exclusion: Exclusion | None, step: str) -> pd.DataFrame:
    """A patient's exclusion record: one row naming the step, or none when the patient is fine."""
    rows = [exclusion.as_row() | {"step": step}] if exclusion else []
    return pd.DataFrame(rows, columns=[*EXCLUSION_COLUMNS, "step"], dtype=str)


def write_exclusion(
    folder: str | Path, exclusion: Exclusion | None, step: str = PREPARE_STEP
) -> None:
    """Write the patient's exclusion record (a header-only table when the patient is fine)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    exclusion_record(exclusion, step).to_csv(Path(folder) / "exclusion.tsv", sep="\t", index=False)


def write_prepared(
    volumes: PatientVolumes,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    folder: Path,
    *,
    crops: bool = True,
) -> None:
    """Normalise resampled volumes for radiomics and for the crops; write volumes, crops, QC."""
    for_radiomics = normalise_patient(volumes, imaging_cfg["normalisation"][modality])
    paths = prepared_paths(folder, for_radiomics.phases)
    write_preprocessed(for_radiomics, paths, paths["mask"])
    if crops:
        crop_cfg = imaging_cfg["crop"]
        for_crops = normalise_patient(
            volumes,
            crop_cfg["normalisation"][modality],
            window=tuple(crop_cfg["hu_window"]),
            rescale_window=True,
        )
        write_crops(
            crop_tumours(for_crops, crop_cfg["box_mm"], instances=crop_cfg["instances"]),
            folder / "crops",
        )
    write_qc_png(
        for_radiomics, folder / "qc.png", intensity_label=MODALITY_UNITS[modality], dpi=100
    )


def _prepare(
    patient_id: str,
    row: pd.Series,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    folder: Path,
    masks: Masks,
) -> None:
    """Load, check, resample, normalise, crop and draw one patient (raises ImageQCError)."""
    liver_only = masks == "liver_only"
    min_voxels = imaging_cfg["min_tumour_voxels"]
    volumes = load_patient(
        patient_id,
        phase_paths(row),
        row["mask"],
        liver_only=liver_only,
        tolerance=imaging_cfg["geometry_tolerance_mm"],
        plausible=Plausible.from_config(imaging_cfg["plausible"]),
        min_tumour_voxels=min_voxels["original"],
    )
    liver = crop_to_liver(volumes, imaging_cfg["roi_margin_mm"])
    # On the acquisition grid, before resampling: the field is the scanner's, not the grid's;
    # and the blur is defined against each acquisition's own voxel size.
    corrected = correct_bias_patient(
        liver, imaging_cfg.get("bias_correction", {}).get(modality, "none")
    )
    harmonised = harmonise_patient(corrected, imaging_cfg.get("resolution_mm"))
    resampled = resample_patient(
        harmonised,
        imaging_cfg["spacing_mm"],
        interpolator=imaging_cfg["interpolator"],
        required_label=LIVER_LABEL if liver_only else TUMOUR_LABEL,
    )
    if not liver_only:
        # Here rather than in radiomics: the features, the ring around the tumour and the
        # crops all see the tumour on this grid.
        check_tumour_size(
            resampled.mask,
            patient_id,
            row["mask"],
            min_voxels["resampled"],
            grid=f"after resampling to {tuple(imaging_cfg['spacing_mm'])} mm",
            fix="use a finer imaging: spacing_mm, or exclude the patient (imaging: "
            "min_tumour_voxels: resampled sets the minimum)",
        )
    # Liver only: no tumour to crop yet; prepare_with_predicted_tumour crops the model's.
    write_prepared(resampled, imaging_cfg, modality, folder, crops=not liver_only)


def prepare_patient(
    patient_id: str,
    row: pd.Series,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    folder: str | Path,
    masks: Masks = "reference",
) -> Exclusion | None:
    """Prepare one patient into ``folder``; return the exclusion if on_error says exclude.

    ``masks``: ``reference`` (the sheet's mask has the tumour) or ``liver_only`` (only its
    liver is used, tumour labels become liver; the segmentation model draws the tumour later).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    on_error = _on_error(imaging_cfg)
    _, exclusion = call_or_exclude(
        _prepare, patient_id, row, imaging_cfg, modality, folder, masks, on_error=on_error
    )
    write_exclusion(folder, exclusion)
    return exclusion


def _on_error(imaging_cfg: Mapping[str, Any]) -> OnError:
    """The config's on_error as call_or_exclude's: exclude, or raise (config: stop)."""
    return ON_ERROR[imaging_cfg["on_error"]]


def _with_predicted_tumour(
    patient_id: str,
    phases: Sequence[str],
    prepared: Path,
    predicted_path: Path,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    folder: Path,
) -> None:
    """Re-normalise, crop and draw a liver-only prepared patient with its predicted tumour."""
    # The sheet's phase order, not the folder's: it is the crops' channel order.
    volumes = load_prepared(patient_id, prepared, phases)
    mask = with_predicted_tumour(
        volumes.mask, read_image(predicted_path, patient_id), patient_id, predicted_path
    )
    # The prepared volumes are the resampled ones after an affine map (z-score over the whole
    # liver, or none), so normalising them again with the tumour known gives what preparing
    # with this mask from the start would (config.check_config refuses the other settings).
    write_prepared(
        dataclasses.replace(
            volumes, mask=mask, sources=volumes.sources | {"mask": str(predicted_path)}
        ),
        imaging_cfg,
        modality,
        folder,
    )


def prepare_with_predicted_tumour(
    patient_id: str,
    row: pd.Series,
    prepared: str | Path,
    predicted_path: str | Path,
    tumour_found: bool,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    folder: str | Path,
) -> Exclusion | None:
    """A liver-only patient prepared again with the segmentation model's tumour, or its exclusion.

    Patients excluded in preparation stay excluded (their record is carried over); a patient
    in whom the model found no tumour is excluded with the reason, never dropped silently.
    """
    prepared, folder = Path(prepared), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    carried = read_exclusion(prepared)
    if len(carried):
        carried.to_csv(folder / "exclusion.tsv", sep="\t", index=False)
        return Exclusion(*carried.iloc[0][list(EXCLUSION_COLUMNS)])
    if not tumour_found:
        exclusion = Exclusion(
            patient_id,
            str(predicted_path),
            "the segmentation model found no tumour in this patient",
            "check the image (prepared qc.png); draw the tumour (label 2) into the sheet's mask "
            "and set the cohort's masks: reference, or leave the patient out",
        )
    else:
        _, exclusion = call_or_exclude(
            _with_predicted_tumour,
            patient_id,
            list(phase_paths(row)),
            prepared,
            Path(predicted_path),
            imaging_cfg,
            modality,
            folder,
            on_error=_on_error(imaging_cfg),
        )
    write_exclusion(folder, exclusion, step=PREDICTED_TUMOUR_STEP)
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
    try:
        return extract_patient(
            volumes,
            params,
            regions=radiomics_cfg["regions"],
            ring_mm=radiomics_cfg["ring_mm"],
            setting_overrides=radiomics_settings(radiomics_cfg, spacing_mm),
        )
    except EXTRACTION_ERRORS as error:
        # One patient's volumes broke the extraction: name the patient and the prepared mask.
        raise ImageQCError(
            volumes.patient_id,
            volumes.sources.get("mask"),
            f"PyRadiomics failed on this patient ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[-1] if str(error).strip() else 'no message'})",
            "check the patient's prepared volumes and mask (qc.png beside them), or leave the "
            "patient out with imaging: on_error: exclude",
        ) from error


def empty_features() -> pd.DataFrame:
    """The features table of an excluded patient: no row."""
    return pd.DataFrame(index=pd.Index([], name="patient_id", dtype=str))


def empty_diagnostics() -> pd.DataFrame:
    """The diagnostics table of an excluded patient: the key columns only, no row."""
    return pd.DataFrame(columns=list(DIAGNOSTICS_KEYS), dtype=str)


def patient_radiomics(
    patient_id: str,
    folder: str | Path,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One patient's features (one row) and diagnostics; empty frames if it was excluded.

    An extraction failure raises ImageQCError naming the patient, the file and the fix.
    """
    if len(read_exclusion(folder)):
        return empty_features(), empty_diagnostics()
    volumes = load_prepared(patient_id, folder, prepared_phases(folder))
    return _extract(volumes, params, radiomics_cfg, spacing_mm)


@dataclasses.dataclass(frozen=True)
class PatientRadiomics:
    """One patient's radiomics step: features (one row, none if excluded), diagnostics, record."""

    features: pd.DataFrame
    diagnostics: pd.DataFrame
    exclusion: pd.DataFrame

    def write(self, features: str | Path, diagnostics: str | Path, exclusion: str | Path) -> None:
        """Write the three tables (features as Parquet, diagnostics and record as TSV)."""
        self.features.to_parquet(features)
        self.diagnostics.to_csv(diagnostics, sep="\t", index=False)
        self.exclusion.to_csv(exclusion, sep="\t", index=False)


def radiomics_or_exclusion(
    patient_id: str,
    folder: str | Path,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
    on_error: str,
) -> PatientRadiomics:
    """A prepared patient's radiomics, or its exclusion record (config ``on_error``).

    A patient excluded in preparation keeps that record (its step says where); with
    ``on_error="exclude"`` a failed extraction becomes the record, step patient_radiomics; with
    ``stop`` it raises ImageQCError.
    """
    carried = read_exclusion(folder)
    if len(carried):
        return PatientRadiomics(empty_features(), empty_diagnostics(), carried)
    result, exclusion = call_or_exclude(
        patient_radiomics,
        patient_id,
        folder,
        params,
        radiomics_cfg,
        spacing_mm,
        on_error=ON_ERROR[on_error],
    )
    if result is None:
        return PatientRadiomics(
            empty_features(), empty_diagnostics(), exclusion_record(exclusion, RADIOMICS_STEP)
        )
    features, diagnostics = result
    return PatientRadiomics(features, diagnostics, exclusion_record(None, RADIOMICS_STEP))


def _perturbed_features(
    volumes: PatientVolumes,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
    seed: int,
) -> pd.DataFrame:
    """Features of prepared volumes under each configured mask perturbation."""
    rows = []
    for kind in radiomics_cfg["robustness"]["perturbations"]:
        perturbed = perturbed_volumes(volumes, kind, seed=seed)
        features, _ = _extract(perturbed, params, radiomics_cfg, spacing_mm)
        rows.append(features.assign(perturbation=kind))
    return pd.concat(rows)


def patient_perturbed_radiomics(
    patient_id: str,
    folder: str | Path,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
    seed: int,
    *,
    exclusion: str | Path | None = None,
    on_error: str = "stop",
) -> pd.DataFrame:
    """Features of one patient under each mask perturbation (rows: perturbation).

    ``exclusion``: the patient's radiomics exclusion record. An excluded patient (there or in
    preparation) has no rows; so has one whose perturbed masks PyRadiomics cannot use when
    ``on_error`` is ``exclude`` (logged with the reason; the ICC is computed without it).
    """
    empty = empty_features().assign(perturbation=pd.Series(dtype=str))
    if len(read_exclusion(folder)) or (exclusion is not None and len(read_exclusion(exclusion))):
        return empty
    volumes = load_prepared(patient_id, folder, prepared_phases(folder))
    table, failure = call_or_exclude(
        _perturbed_features,
        volumes,
        params,
        radiomics_cfg,
        spacing_mm,
        seed,
        on_error=ON_ERROR[on_error],
    )
    if failure is not None:
        LOGGER.warning(
            "patient %s left out of the ICC: %s: %s", patient_id, failure.file, failure.reason
        )
        return empty
    return table


def split_perturbed(tables: Sequence[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per-patient perturbed tables regrouped as {perturbation: patients x features}.

    Excluded patients' tables are empty and left out; the ICC needs at least one patient.
    """
    kept = [table for table in tables if len(table)]
    if not kept:
        raise ValueError(
            "no robustness patient has perturbed features (each was excluded, or PyRadiomics "
            "could not use its perturbed masks: see logs/<cohort>/patient_perturbed_radiomics/); "
            "fix their images or raise radiomics.robustness.n_patients"
        )
    stacked = pd.concat(kept)
    return {
        kind: group.drop(columns="perturbation")
        for kind, group in stacked.groupby("perturbation", sort=False)
    }


def gather_exclusions(records: Sequence[str | Path], cohort: str) -> pd.DataFrame:
    """Every excluded patient of a cohort with step, file, reason and fix (empty if none).

    ``records``: per-patient exclusion records, files or prepared folders (read_exclusion).
    """
    tables = [table for table in map(read_exclusion, records) if len(table)]
    table = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=[*EXCLUSION_COLUMNS, "step"], dtype=str)
    )
    table = table.reindex(columns=[*EXCLUSION_COLUMNS, "step"])
    # The step that excluded the patient: preparation, the predicted tumour (liver-only), or
    # the extraction; records written before the step column existed are preparation's.
    step = table.pop("step").fillna(PREPARE_STEP)
    table.insert(1, "cohort", cohort)
    table.insert(2, "step", step)
    return table.set_index("patient_id")


def gather_diagnostics(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Every patient's diagnostics stacked; excluded patients' are header-only and add no row."""
    tables = [read_patients(path, index=False) for path in paths]
    kept = [table for table in tables if len(table)]
    return pd.concat(kept, ignore_index=True) if kept else empty_diagnostics()


def gather_radiomics(
    features: Sequence[str | Path],
    diagnostics: Sequence[str | Path],
    exclusions: Sequence[str | Path],
    cohort: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A cohort's features, diagnostics and exclusions from its patients' radiomics outputs.

    Excluded patients' tables are empty and add no row; their records make the exclusions.
    """
    excluded = gather_exclusions(exclusions, cohort)
    tables = [pd.read_parquet(path) for path in features]
    kept = [table for table in tables if len(table)]
    if not kept:
        reasons = "; ".join(f"patient {p}: {r}" for p, r in excluded["reason"].items())
        raise ValueError(
            f"{cohort}: every patient was excluded, so there are no features ({reasons}). "
            f"Fix: correct the files named; each patient's file and fix are in "
            f"results/{cohort}/radiomics/patients/<patient>_exclusion.tsv"
        )
    return gather_features(kept), gather_diagnostics(diagnostics), excluded
