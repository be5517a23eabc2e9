"""A patient's multi-phase liver images and label mask, loaded and checked onto one grid.

Data contract (docs/architecture.md): one 3D volume per contrast phase (NIfTI, NRRD or a
DICOM series folder) and one integer label map per patient: 0 background, 1 liver, 2 tumour;
several tumours are several connected components of label 2. The mask may also be a DICOM
RTSTRUCT or SEG drawn on the first phase's DICOM series (hccrad.imaging.rtstruct).

Assumption: the phases are co-registered and share the mask's voxel grid (size, spacing,
origin, direction). The workflow does not register phases; a sheet whose phases live on
different grids is stopped by `load_patient` with a message that says so. Register the phases
(e.g. with SimpleITK or elastix) before building the sheet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)

from hccrad.core.labels import BACKGROUND_LABEL, LIVER_LABEL, TUMOUR_LABEL
from hccrad.imaging.checks import (
    Plausible,
    check_image,
    check_mask,
    check_plausible,
    check_tumour_size,
    geometry_mismatch,
)
from hccrad.imaging.prepared import prepared_paths
from hccrad.imaging.read import ImageQCError, is_missing, read_image
from hccrad.imaging.rtstruct import StructureError, structure_modality, structure_to_mask

MRI_PHASES: tuple[str, ...] = ("arterial", "portal_venous", "hepatobiliary")
CT_PHASES: tuple[str, ...] = ("arterial", "portal_venous")


@dataclass(frozen=True)
class PatientVolumes:
    """A patient's phase images (same grid) and label mask, as SimpleITK images."""

    patient_id: str
    images: Mapping[str, sitk.Image]
    mask: sitk.Image
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def phases(self) -> tuple[str, ...]:
        """Phase names in the order they were given."""
        return tuple(self.images)


def as_liver_only(mask: sitk.Image) -> sitk.Image:
    """The mask with every labelled voxel as liver (label 1): any tumour contour is ignored."""
    # The whole organ, tumours included, as a liver model (e.g. BAMF AIMI) would draw it.
    return sitk.Cast(sitk.Greater(mask, BACKGROUND_LABEL), sitk.sitkUInt8) * LIVER_LABEL


def with_predicted_tumour(
    mask: sitk.Image, predicted: sitk.Image, patient_id: str, predicted_path: str | Path
) -> sitk.Image:
    """The mask's liver with the predicted tumour (label 2) drawn in, on the mask's grid."""
    mismatch = geometry_mismatch(predicted, mask, 1e-3)
    if mismatch is not None:
        raise ImageQCError(
            patient_id,
            predicted_path,
            f"the predicted mask is not on the prepared image's grid: {mismatch}",
            "predict on the prepared folder itself (segment_predict); delete the stale masks",
        )
    tumour = sitk.GetArrayViewFromImage(predicted) == TUMOUR_LABEL
    liver = sitk.GetArrayViewFromImage(mask) > BACKGROUND_LABEL
    # The predicted tumour wins; elsewhere the reference liver (the region the image was
    # cropped and normalised on) stays liver.
    labels = np.where(tumour, TUMOUR_LABEL, np.where(liver, LIVER_LABEL, BACKGROUND_LABEL))
    combined = sitk.GetImageFromArray(labels.astype(np.uint8))
    combined.CopyInformation(mask)
    return combined


def read_mask(
    mask_path: str | Path | None,
    image_paths: Mapping[str, str | Path | None],
    phases: Sequence[str],
    patient_id: str,
    structure_labels: Mapping[str, int] | None = None,
) -> sitk.Image:
    """The sheet's mask: a label-map file, or a DICOM RTSTRUCT/SEG on the first phase's series.

    ``structure_labels``: ROI/segment name regex -> label (default: rtstruct's liver/tumour).
    """
    if is_missing(mask_path) or structure_modality(mask_path) is None:
        return read_image(mask_path, patient_id, column="mask")
    series = image_paths.get(phases[0]) if phases else None
    if is_missing(series) or not Path(str(series)).is_dir():
        raise ImageQCError(
            patient_id,
            mask_path,
            f"the mask is a DICOM {structure_modality(mask_path)}, but the {phases[0]} phase "
            f"({series}) is not a DICOM series folder to draw it on",
            f"point the sheet's `image_{phases[0]}` at the DICOM series the structure was drawn "
            "on, or give a NIfTI mask",
        )
    try:
        return structure_to_mask(mask_path, str(series), patient_id, structure_labels)[1]
    except StructureError as error:
        raise ImageQCError(patient_id, error.path, error.problem, error.fix) from error


def load_patient(
    patient_id: str,
    image_paths: Mapping[str, str | Path | None],
    mask_path: str | Path | None,
    *,
    phases: Sequence[str] | None = None,
    tumour_label: int = TUMOUR_LABEL,
    tolerance: float = 1e-3,
    liver_only: bool = False,
    plausible: Plausible | None = None,
    min_tumour_voxels: int | None = None,
    structure_labels: Mapping[str, int] | None = None,
) -> PatientVolumes:
    """Read and check every phase and the mask of one patient; raise ImageQCError on bad input.

    ``liver_only``: the mask needs only a liver, and any tumour label in it becomes liver.
    ``plausible`` and ``min_tumour_voxels`` (on the mask's own grid): checked when given.
    ``tolerance``: how far (mm; unitless for direction cosines) phase and mask grids may differ.
    ``structure_labels``: which ROIs of a DICOM RTSTRUCT/SEG mask are liver and tumour.
    """
    wanted = tuple(phases) if phases is not None else tuple(image_paths)
    mask = check_mask(
        read_mask(mask_path, image_paths, wanted, patient_id, structure_labels),
        patient_id,
        mask_path,
        tumour_label=tumour_label,
        liver_only=liver_only,
    )
    if min_tumour_voxels is not None and not liver_only:
        check_tumour_size(
            mask,
            patient_id,
            mask_path,
            min_tumour_voxels,
            grid="on the mask's own grid",
            min_axes=1,
            fix="check the mask: a lone label-2 voxel or speck is a stray click, not a tumour "
            "contour; draw the tumour or exclude the patient (imaging: min_tumour_voxels: "
            "original sets the minimum)",
            tumour_label=tumour_label,
        )
    if plausible is not None:
        check_plausible(
            mask,
            patient_id,
            mask_path,
            plausible,
            tumour_label=None if liver_only else tumour_label,
        )
    if liver_only:
        mask = as_liver_only(mask)
    images: dict[str, sitk.Image] = {}
    for phase in wanted:
        path = image_paths.get(phase)
        if is_missing(path):
            raise ImageQCError(
                patient_id,
                None,
                f"the {phase} phase has no file (the sheet's `image_{phase}` column is empty "
                "or absent)",
                f"fill in the sheet's `image_{phase}` column, or drop {phase} from the "
                "configured phases",
            )
        image = read_image(path, patient_id, column=f"image_{phase}")
        check_image(image, patient_id, path)
        mismatch = geometry_mismatch(image, mask, tolerance)
        if mismatch is not None:
            raise ImageQCError(
                patient_id,
                path,
                f"image and mask {mask_path} are on different grids: {mismatch}",
                "phases and mask must be co-registered on one grid: resample the mask (nearest "
                "neighbour) or register the phase; raise imaging: geometry_tolerance_mm in the "
                "config only for rounding noise",
            )
        # Mask and phases agree within tolerance: give them bit-identical geometry so that
        # SimpleITK's own (much stricter) checks downstream do not trip on rounding noise.
        image.CopyInformation(mask)
        images[phase] = image
    sources = {phase: str(image_paths[phase]) for phase in wanted} | {"mask": str(mask_path)}
    return PatientVolumes(patient_id, images, mask, sources)


def load_prepared(patient_id: str, folder: str | Path, phases: Sequence[str]) -> PatientVolumes:
    """Read a prepared patient back (phases and mask share one grid by construction)."""
    paths = prepared_paths(folder, phases)
    images = {phase: read_image(paths[phase], patient_id) for phase in phases}
    mask = read_image(paths["mask"], patient_id)
    sources = {k: str(v) for k, v in paths.items()}
    return PatientVolumes(patient_id, images, mask, sources)
