"""DICOM series to NIfTI with geometry checks; DICOM SEG to the sheet's label map (highdicom).

A downloaded patient folder holds one sub-folder per manifest role: a phase (CT or MR image
series) or ``segmentation`` (a DICOM SEG). Each phase becomes ``<phase>.nii.gz``; the SEG's
segments are mapped to the sheet's labels (1 liver, 2 tumour) by their descriptions and written
as ``mask.nii.gz`` on the grid of the phase it was drawn on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)

SEGMENTATION_ROLE = "segmentation"
# Relative deviation from the median slice gap that counts as uneven spacing or a gap.
SPACING_TOLERANCE = 0.05
# Direction cosines must be orthonormal to this precision (not sheared or oblique-inconsistent).
ORIENTATION_TOLERANCE = 1e-3


class DicomError(ValueError):
    """A DICOM series that cannot become a volume; the message names the folder and problem."""


@dataclass
class SeriesCheck:
    """What the geometry checks found for one converted series."""

    role: str
    n_slices: int
    slice_spacing_mm: float
    pixel_spacing_mm: tuple[float, float]
    acquisitions: list[int] = field(default_factory=list)
    chosen_acquisition: int | None = None
    sop_instance_uids: list[str] = field(default_factory=list)


def read_headers(folder: Path) -> list[pydicom.Dataset]:
    """Headers (no pixels) of every DICOM file of a folder, DicomError if there is none."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    headers = []
    for path in files:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError as error:
            raise DicomError(f"{path}: not a DICOM file ({error})") from error
        header.filename = str(path)
        headers.append(header)
    if not headers:
        raise DicomError(f"{folder}: no DICOM files; rerun the download of this patient")
    return headers


def slice_normal(header: pydicom.Dataset) -> np.ndarray:
    """Unit normal of an image plane from ImageOrientationPatient."""
    row, col = np.asarray(header.ImageOrientationPatient, dtype=float).reshape(2, 3)
    return np.cross(row, col)


def _check_orientation(headers: Sequence[pydicom.Dataset], where: str) -> np.ndarray:
    """The common orientation of a series' slices, else DicomError."""
    orientations = np.array([h.ImageOrientationPatient for h in headers], dtype=float)
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_TOLERANCE:
        raise DicomError(f"{where}: slices have different orientations (a localiser mixed in?)")
    row, col = orientations[0].reshape(2, 3)
    if abs(row @ col) > ORIENTATION_TOLERANCE or abs(np.linalg.norm(row) - 1) > 1e-2:
        raise DicomError(f"{where}: ImageOrientationPatient is not orthonormal")
    return slice_normal(headers[0])


def split_acquisitions(headers: Sequence[pydicom.Dataset]) -> dict[int, list[pydicom.Dataset]]:
    """A series' headers by AcquisitionNumber (multi-phase series repeat the positions)."""
    groups: dict[int, list[pydicom.Dataset]] = {}
    for header in headers:
        groups.setdefault(int(getattr(header, "AcquisitionNumber", 0) or 0), []).append(header)
    return dict(sorted(groups.items()))


def ordered_slices(
    headers: Sequence[pydicom.Dataset], where: str
) -> tuple[list[pydicom.Dataset], float]:
    """Slices sorted along the normal and their spacing, after the spacing and gap checks."""
    normal = _check_orientation(headers, where)
    positions = np.array([np.asarray(h.ImagePositionPatient, float) @ normal for h in headers])
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    if len(positions) < 2:
        raise DicomError(f"{where}: a single slice is not a volume")
    gaps = np.diff(positions)
    if (gaps < 1e-3).any():
        raise DicomError(
            f"{where}: {int((gaps < 1e-3).sum())} duplicated slice position(s) within one "
            "acquisition; the series mixes volumes"
        )
    spacing = float(np.median(gaps))
    uneven = np.abs(gaps - spacing) > SPACING_TOLERANCE * spacing
    if uneven.any():
        missing = int(np.round(gaps[uneven] / spacing - 1).clip(min=0).sum())
        raise DicomError(
            f"{where}: uneven slice spacing (median {spacing:.3g} mm, gaps "
            f"{sorted({round(float(g), 3) for g in gaps[uneven]})} mm): "
            + (f"{missing} slice(s) missing; " if missing else "")
            + "re-download the series or exclude the patient"
        )
    return [headers[i] for i in order], spacing


def choose_acquisition(groups: Mapping[int, list[pydicom.Dataset]], referenced: set[str]) -> int:
    """The acquisition a SEG refers to; else the last one (portal venous after arterial)."""
    for number, headers in groups.items():
        if referenced & {str(h.SOPInstanceUID) for h in headers}:
            return number
    return max(groups)


def read_volume(slices: Sequence[pydicom.Dataset]) -> sitk.Image:
    """The ordered slices as one SimpleITK volume (rescaled values, LPS geometry)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(h.filename) for h in slices])
    return reader.Execute()


def convert_series(
    folder: Path, role: str, target: Path, referenced: set[str] = frozenset()
) -> SeriesCheck:
    """One image series (folder of DICOM files) to NIfTI, with the geometry checks."""
    where = f"{folder} ({role})"
    groups = split_acquisitions(read_headers(folder))
    chosen = choose_acquisition(groups, referenced) if len(groups) > 1 else next(iter(groups))
    slices, spacing = ordered_slices(groups[chosen], where)
    volume = read_volume(slices)
    target.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume, str(target), useCompression=True)
    return SeriesCheck(
        role=role,
        n_slices=len(slices),
        slice_spacing_mm=spacing,
        pixel_spacing_mm=tuple(float(v) for v in slices[0].PixelSpacing),
        acquisitions=list(groups),
        chosen_acquisition=chosen if len(groups) > 1 else None,
        sop_instance_uids=[str(h.SOPInstanceUID) for h in slices],
    )


def segment_label_map(seg: hd.seg.Segmentation, labels: Mapping[str, int]) -> dict[int, int]:
    """Segment number -> sheet label, matching descriptions against regexes (case-insensitive)."""
    mapping = {}
    for number in seg.segment_numbers:
        description = seg.get_segment_description(number).segment_label
        for pattern, label in labels.items():
            if re.search(pattern, description, flags=re.IGNORECASE):
                mapping[number] = int(label)
                break
    if not mapping:
        names = [seg.get_segment_description(n).segment_label for n in seg.segment_numbers]
        raise DicomError(
            f"no segment of the SEG matches segment_labels {dict(labels)}; its segments are "
            f"{names}. Add their descriptions to segment_labels in the config."
        )
    return mapping


def referenced_instances(seg: hd.seg.Segmentation) -> set[str]:
    """SOPInstanceUIDs of the source images a SEG refers to."""
    return {uid for _, _, uid in seg.get_source_image_uids()}


def seg_to_mask(
    seg: hd.seg.Segmentation,
    source_uids: Sequence[str],
    reference: sitk.Image,
    labels: Mapping[str, int],
) -> sitk.Image:
    """A label map on ``reference``'s grid: later (higher) labels win where segments overlap."""
    mapping = segment_label_map(seg, labels)
    numbers = sorted(mapping, key=lambda n: mapping[n])
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(source_uids),
        segment_numbers=numbers,
        combine_segments=False,
        assert_missing_frames_are_empty=True,
    )
    label_map = np.zeros(pixels.shape[:3], dtype=np.uint8)
    for index, number in enumerate(numbers):
        label_map[pixels[..., index] > 0] = mapping[number]
    mask = sitk.GetImageFromArray(label_map)
    mask.CopyInformation(reference)
    return mask


def convert_patient(
    folder: Path, series: pd.DataFrame, out_dir: Path, labels: Mapping[str, int]
) -> dict[str, Any]:
    """Every manifest series of one patient to NIfTI (+ mask.nii.gz); writes conversion.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    roles = list(series["role"])
    seg = None
    if SEGMENTATION_ROLE in roles:
        seg_files = sorted((folder / SEGMENTATION_ROLE).glob("*"))
        if len(seg_files) != 1:
            raise DicomError(f"{folder / SEGMENTATION_ROLE}: expected 1 SEG file, {len(seg_files)}")
        seg = hd.seg.segread(seg_files[0])
    referenced = referenced_instances(seg) if seg is not None else set()
    checks = {}
    for role in roles:
        if role == SEGMENTATION_ROLE:
            continue
        checks[role] = convert_series(folder / role, role, out_dir / f"{role}.nii.gz", referenced)
    report: dict[str, Any] = {"series": {r: _summary(c) for r, c in checks.items()}}
    if seg is not None:
        drawn_on = [r for r, c in checks.items() if referenced & set(c.sop_instance_uids)]
        if not drawn_on:
            raise DicomError(
                f"{folder}: the SEG refers to none of the converted series; select the series "
                "it was drawn on (idc.phases patterns)"
            )
        reference = sitk.ReadImage(str(out_dir / f"{drawn_on[0]}.nii.gz"))
        mask = seg_to_mask(seg, checks[drawn_on[0]].sop_instance_uids, reference, labels)
        sitk.WriteImage(mask, str(out_dir / "mask.nii.gz"), useCompression=True)
        counts = np.bincount(sitk.GetArrayViewFromImage(mask).ravel(), minlength=3)
        report["mask"] = {"drawn_on": drawn_on[0], "voxels_per_label": counts.tolist()}
    (out_dir / "conversion.json").write_text(json.dumps(report, indent=1))
    return report


def _summary(check: SeriesCheck) -> dict[str, Any]:
    """A SeriesCheck for the conversion report, without the long UID list."""
    summary = asdict(check)
    summary.pop("sop_instance_uids")
    return summary
