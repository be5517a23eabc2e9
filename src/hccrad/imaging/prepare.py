"""Preparing one patient for radiomics and deep learning: one function per workflow step.

Each step reads a sheet row and writes a patient's folder: ``prepare_patient`` (load, check,
resample, normalise, crop, QC image) and ``prepare_with_predicted_tumour`` (a liver-only patient
again, with the segmentation model's tumour). A bad input either raises ``ImageQCError`` or,
with ``on_error="exclude"``, is written to the patient's exclusion record (``exclusion.tsv`` of
the prepared folder) so the gather step lists it; nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from hccrad.core.labels import LIVER_LABEL, TUMOUR_LABEL
from hccrad.imaging.checks import Plausible, check_tumour_size
from hccrad.imaging.crops import crop_tumours, write_crops
from hccrad.imaging.exclusions import (
    EXCLUSION_COLUMNS,
    ON_ERROR,
    PREDICTED_TUMOUR_STEP,
    Exclusion,
    OnError,
    call_or_exclude,
    write_exclusion,
)
from hccrad.imaging.geometry import raw_geometry_table, write_raw_geometry
from hccrad.imaging.prepared import prepared_paths, read_exclusion
from hccrad.imaging.read import read_image
from hccrad.imaging.transform import (
    correct_bias_patient,
    crop_to_liver,
    harmonise_patient,
    normalise_patient,
    resample_patient,
)
from hccrad.imaging.volumes import (
    PatientVolumes,
    load_patient,
    load_prepared,
    with_predicted_tumour,
)
from hccrad.imaging.write import write_preprocessed

MODALITY_UNITS: dict[str, str] = {"mri": "z-score over liver", "ct": "HU"}
# Where a cohort's tumour masks come from: its sheet, or the segmentation model (issue 8).
Masks = Literal["reference", "liver_only"]
# Draws a prepared patient's QC image: (volumes, path, intensity_label=..., dpi=...). The
# workflow passes hccrad.figures.imaging.write_qc_png; it comes in as an argument because only
# hccrad.figures imports matplotlib, and a drawing failure must stay the patient's exclusion.
QCDrawer = Callable[..., object]


def phase_paths(row: pd.Series) -> dict[str, str]:
    """The image path of each phase in a sheet row (columns image_<phase>)."""
    return {c.removeprefix("image_"): row[c] for c in row.index if c.startswith("image_")}


def write_prepared(
    volumes: PatientVolumes,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    folder: Path,
    *,
    crops: bool = True,
    draw_qc: QCDrawer | None = None,
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
    if draw_qc is not None:
        draw_qc(for_radiomics, folder / "qc.png", intensity_label=MODALITY_UNITS[modality], dpi=100)


def _prepare(
    patient_id: str,
    row: pd.Series,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    folder: Path,
    masks: Masks,
    draw_qc: QCDrawer | None,
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
        structure_labels=imaging_cfg.get("structure_labels"),
    )
    # The acquisition as read, for the out-of-domain checks (hccrad.models.domain): here,
    # where the raw images are in memory anyway, rather than reading every scan again.
    write_raw_geometry(folder, raw_geometry_table(patient_id, volumes.images, volumes.mask))
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
    write_prepared(resampled, imaging_cfg, modality, folder, crops=not liver_only, draw_qc=draw_qc)


def prepare_patient(
    patient_id: str,
    row: pd.Series,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    folder: str | Path,
    masks: Masks = "reference",
    draw_qc: QCDrawer | None = None,
) -> Exclusion | None:
    """Prepare one patient into ``folder``; return the exclusion if on_error says exclude.

    ``masks``: ``reference`` (the sheet's mask has the tumour) or ``liver_only`` (only its
    liver is used, tumour labels become liver; the segmentation model draws the tumour later).
    ``draw_qc`` draws ``qc.png`` into the folder (none without it).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    on_error = _on_error(imaging_cfg)
    _, exclusion = call_or_exclude(
        _prepare, patient_id, row, imaging_cfg, modality, folder, masks, draw_qc, on_error=on_error
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
    draw_qc: QCDrawer | None,
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
        draw_qc=draw_qc,
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
    draw_qc: QCDrawer | None = None,
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
            draw_qc,
            on_error=_on_error(imaging_cfg),
        )
    write_exclusion(folder, exclusion, step=PREDICTED_TUMOUR_STEP)
    return exclusion
