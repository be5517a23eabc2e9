"""DICOM RTSTRUCT or SEG beside a DICOM series: the sheet's label map on the series' grid.

RTSTRUCT contours are read with pydicom and rasterised with scikit-image. Rasterisation rule:
each CLOSED_PLANAR contour lies on one image slice (its points' slice index within
``SLICE_TOLERANCE`` of an integer); a voxel is inside when its centre lies inside the polygon
(``skimage.draw.polygon``); several contours of one ROI on one slice combine by the even-odd
rule (XOR), so an inner contour is a hole. ROIs map to the sheet's labels (1 liver, 2 tumour)
by case-insensitive regexes on their names; where ROIs overlap the higher label wins. A DICOM
SEG goes through hccrad.cohorts.dicom (highdicom) on the same series.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)
from pydicom.sr.codedict import codes
from skimage.draw import polygon

from hccrad.cohorts.dicom import (
    DicomError,
    ordered_slices,
    read_headers,
    read_volume,
    seg_to_mask,
    split_acquisitions,
)
from hccrad.imaging.checks import geometry_mismatch

# ROI name (regex, case-insensitive) -> sheet label, when the config names none.
DEFAULT_STRUCTURE_LABELS: dict[str, int] = {
    r"^liver": 1,
    r"gtv|tumou?r|lesion|mass": 2,
}
# A contour's points may lie this far (in slices) from a slice centre: DICOM writes positions
# with a few decimals, while a contour between two slices is a wrong grid.
SLICE_TOLERANCE = 0.1
# In-plane, points may lie this far (in voxels) outside the outermost voxel centres.
EDGE_TOLERANCE = 0.5
STRUCTURE_MODALITIES = ("RTSTRUCT", "SEG")


class StructureError(DicomError):
    """An RTSTRUCT or SEG that cannot become the mask: names patient, file, problem and fix."""

    def __init__(self, patient_id: str, path: str | Path, problem: str, fix: str) -> None:
        self.patient_id = str(patient_id)
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"patient {patient_id}: {path}: {problem}. Fix: {fix}")


def structure_modality(path: str | Path) -> str | None:
    """'RTSTRUCT' or 'SEG' for a DICOM structure file, None for anything else."""
    path = Path(path)
    if not path.is_file() or path.name.endswith((".nii", ".nii.gz", ".nrrd")):
        return None
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except (pydicom.errors.InvalidDicomError, OSError):
        return None
    modality = str(getattr(header, "Modality", ""))
    return modality if modality in STRUCTURE_MODALITIES else None


def with_instance_uids(header: pydicom.Dataset) -> pydicom.Dataset:
    """The header with SOP class and instance UIDs, from its file meta where they are blank."""
    # Some anonymisers blank the dataset's UIDs but keep the file meta's copies of them.
    meta = getattr(header, "file_meta", None)
    if not str(getattr(header, "SOPInstanceUID", "")) and meta is not None:
        header.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    if not str(getattr(header, "SOPClassUID", "")) and meta is not None:
        header.SOPClassUID = meta.MediaStorageSOPClassUID
    return header


def read_series(folder: str | Path, patient_id: str) -> tuple[sitk.Image, list[pydicom.Dataset]]:
    """A DICOM series folder as a volume and its slice headers in volume order."""
    folder = Path(folder)
    try:
        groups = split_acquisitions(read_headers(folder))
        if len(groups) > 1:
            raise DicomError(f"{folder}: {len(groups)} acquisitions in one folder")
        slices, _ = ordered_slices(next(iter(groups.values())), str(folder))
    except DicomError as error:
        raise StructureError(
            patient_id, folder, str(error), "point the sheet at a folder with one CT/MR series"
        ) from error
    return read_volume(slices), [with_instance_uids(s) for s in slices]


def roi_labels(
    names: Mapping[int, str], labels: Mapping[str, int], patient_id: str, path: str | Path
) -> dict[int, int]:
    """ROI number -> sheet label by the first matching regex; StructureError if none matches."""
    mapping = {}
    for number, name in names.items():
        for pattern, label in labels.items():
            if re.search(pattern, name, flags=re.IGNORECASE):
                mapping[number] = int(label)
                break
    if not mapping:
        raise StructureError(
            patient_id,
            path,
            f"no ROI matches the structure labels {dict(labels)}; its ROIs are "
            f"{sorted(names.values())}",
            "name the ROI to use (its name or a regex) in imaging.structure_labels of the config, "
            "or contour it in the RTSTRUCT",
        )
    return mapping


def check_reference(
    rtstruct: pydicom.Dataset, slices: Sequence[pydicom.Dataset], patient_id: str, path: Path
) -> None:
    """StructureError unless the RTSTRUCT refers to this series (frame of reference, UIDs)."""
    series_uid = str(slices[0].SeriesInstanceUID)
    frame_uid = str(getattr(slices[0], "FrameOfReferenceUID", ""))
    referenced_series, referenced_frames = set(), set()
    for frame in getattr(rtstruct, "ReferencedFrameOfReferenceSequence", []):
        referenced_frames.add(str(frame.FrameOfReferenceUID))
        for study in getattr(frame, "RTReferencedStudySequence", []):
            for series in getattr(study, "RTReferencedSeriesSequence", []):
                referenced_series.add(str(series.SeriesInstanceUID))
    for roi in getattr(rtstruct, "StructureSetROISequence", []):
        referenced_frames.add(str(roi.ReferencedFrameOfReferenceUID))
    if (referenced_series and series_uid not in referenced_series) or (
        referenced_frames and frame_uid and frame_uid not in referenced_frames
    ):
        raise StructureError(
            patient_id,
            path,
            f"the RTSTRUCT refers to series {sorted(referenced_series)} (frame of reference "
            f"{sorted(referenced_frames)}), not to the image series {series_uid} (frame "
            f"{frame_uid}) it is paired with",
            "pair the RTSTRUCT with the series it was drawn on in the sheet",
        )


def contour_indices(reference: sitk.Image, points_mm: np.ndarray) -> np.ndarray:
    """Continuous (x, y, z) voxel indices of LPS points (n x 3) on the reference grid."""
    direction = np.asarray(reference.GetDirection()).reshape(3, 3)
    offset = points_mm - np.asarray(reference.GetOrigin())
    return (direction.T @ offset.T).T / np.asarray(reference.GetSpacing())


def rasterise_roi(
    contours: Sequence[np.ndarray], reference: sitk.Image, where: str, patient_id: str
) -> np.ndarray:
    """One ROI's contours (LPS points, n x 3 each) as a boolean (z, y, x) array, even-odd."""
    size = np.asarray(reference.GetSize())
    filled = np.zeros(size[::-1], dtype=bool)
    for points in contours:
        index = contour_indices(reference, points)
        slice_index = np.round(index[:, 2])
        off_plane = np.abs(index[:, 2] - slice_index).max()
        outside = (index[:, :2] < -EDGE_TOLERANCE) | (index[:, :2] > size[:2] - 1 + EDGE_TOLERANCE)
        if (
            off_plane > SLICE_TOLERANCE
            or len(set(slice_index)) != 1
            or outside.any()
            or not 0 <= slice_index[0] < size[2]
        ):
            raise StructureError(
                patient_id,
                where,
                "a contour lies off the image grid (outside the series' field of view or "
                f"between its slices; slice index {index[0, 2]:.2f} of {size[2]} slices)",
                "pair the RTSTRUCT with the series it was drawn on, or re-export the contours "
                "on that series' slices",
            )
        rows, cols = polygon(index[:, 1], index[:, 0], shape=tuple(size[1::-1]))
        plane = np.zeros(tuple(size[1::-1]), dtype=bool)
        plane[rows, cols] = True
        filled[int(slice_index[0])] ^= plane
    return filled


def rtstruct_to_mask(
    path: str | Path,
    reference: sitk.Image,
    slices: Sequence[pydicom.Dataset],
    labels: Mapping[str, int],
    patient_id: str,
) -> sitk.Image:
    """An RTSTRUCT's chosen ROIs as a label map on the series' grid (higher label wins)."""
    path = Path(path)
    rtstruct = pydicom.dcmread(path)
    check_reference(rtstruct, slices, patient_id, path)
    names = {int(r.ROINumber): str(r.ROIName) for r in rtstruct.StructureSetROISequence}
    mapping = roi_labels(names, labels, patient_id, path)
    label_map = np.zeros(reference.GetSize()[::-1], dtype=np.uint8)
    for roi in sorted(
        rtstruct.ROIContourSequence, key=lambda r: mapping.get(int(r.ReferencedROINumber), 0)
    ):
        number = int(roi.ReferencedROINumber)
        if number not in mapping:
            continue
        contours = [
            np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
            for c in getattr(roi, "ContourSequence", [])
            if c.ContourGeometricType in ("CLOSED_PLANAR", "POLYGON")
        ]
        inside = rasterise_roi(contours, reference, str(path), patient_id)
        label_map[inside] = mapping[number]
    if not label_map.any():
        raise StructureError(
            patient_id,
            path,
            f"the ROIs {[names[n] for n in mapping]} have no closed contour",
            "contour the ROI in the RTSTRUCT or name another one",
        )
    mask = sitk.GetImageFromArray(label_map)
    mask.CopyInformation(reference)
    return mask


def structure_to_mask(
    path: str | Path,
    series_folder: str | Path,
    patient_id: str,
    labels: Mapping[str, int] | None = None,
) -> tuple[sitk.Image, sitk.Image]:
    """(image, label map) from a DICOM series folder and its RTSTRUCT or SEG file."""
    labels = DEFAULT_STRUCTURE_LABELS if labels is None else labels
    modality = structure_modality(path)
    if modality is None:
        raise StructureError(
            patient_id,
            path,
            "not a DICOM RTSTRUCT or SEG file",
            "give the RTSTRUCT or SEG file drawn on the series, or a NIfTI mask",
        )
    image, slices = read_series(series_folder, patient_id)
    if modality == "RTSTRUCT":
        return image, rtstruct_to_mask(path, image, slices, labels, patient_id)
    seg = hd.seg.segread(path)
    uids = [str(s.SOPInstanceUID) for s in slices]
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    if not referenced & set(uids):
        raise StructureError(
            patient_id,
            path,
            f"the SEG refers to none of the {len(uids)} images of {series_folder}",
            "pair the SEG with the series it was drawn on in the sheet",
        )
    try:
        return image, seg_to_mask(seg, uids, image, labels)
    except DicomError as error:
        raise StructureError(
            patient_id, path, str(error), "name the segment under the structure labels"
        ) from error


def label_map_to_seg(
    label_map: sitk.Image,
    series_folder: str | Path,
    segments: Mapping[int, str],
    patient_id: str,
) -> hd.seg.Segmentation:
    """A label map on a series' grid as a binary DICOM SEG of that series (one segment a label)."""
    image, slices = read_series(series_folder, patient_id)
    if geometry_mismatch(label_map, image, 1e-3) is not None:
        raise StructureError(
            patient_id,
            series_folder,
            "the label map is not on the series' grid",
            "resample it (nearest neighbour) onto the series first",
        )
    sources = [with_instance_uids(pydicom.dcmread(s.filename)) for s in slices]
    labels = sitk.GetArrayFromImage(label_map)
    numbers = sorted(segments)
    pixels = np.stack([labels == n for n in numbers], axis=-1).astype(np.uint8)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="hccrad", version="1", family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=index + 1,
            segment_label=segments[number],
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Organ,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for index, number in enumerate(numbers)
    ]
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="hccrad",
        manufacturer_model_name="hccrad",
        software_versions="1",
        device_serial_number="0",
    )
