"""Load, check, resample, normalise and crop a patient's multi-phase liver images and mask.

Data contract (docs/architecture.md): one 3D volume per contrast phase (NIfTI, NRRD or a
DICOM series folder) and one integer label map per patient: 0 background, 1 liver, 2 tumour;
several tumours are several connected components of label 2.

Assumption: the phases are co-registered and share the mask's voxel grid (size, spacing,
origin, direction). The workflow does not register phases; a sheet whose phases live on
different grids is stopped by `load_patient` with a message that says so. Register the phases
(e.g. with SimpleITK or elastix) before building the sheet.

Every file is read whole and checked before use: a truncated, damaged or non-image file, a
DICOM series with a slice missing, an implausible header geometry or a speck of a tumour is an
ImageQCError naming the patient, the file, the problem and the fix, never zeros read silently.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import nibabel as nib
import numpy as np
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)

from hccrad.core.config import crop_size_voxels
from hccrad.core.labels import ALLOWED_LABELS, BACKGROUND_LABEL, LIVER_LABEL, TUMOUR_LABEL

MRI_PHASES: tuple[str, ...] = ("arterial", "portal_venous", "hepatobiliary")
CT_PHASES: tuple[str, ...] = ("arterial", "portal_venous")
# Orientation the crops and QC figures are put in, so that a network always sees the same axes.
CANONICAL_ORIENTATION = "LPS"
# N4 fits its bias field on a grid of about this spacing: the field is smooth over tens of cm,
# and fitting on the acquisition grid costs 5-20x more for a field that differs by <1%.
N4_FIT_SPACING_MM = 8.0
N4_ITERATIONS: tuple[int, ...] = (20, 20, 20)
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
LIVER_COLOUR = "#56B4E9"
TUMOUR_COLOUR = "#E69F00"

Interpolator = Literal["bspline", "linear", "nearest"]
Normalisation = Literal["zscore", "percentile", "hu_window", "none"]
BiasCorrection = Literal["n4", "none"]
OnError = Literal["raise", "exclude"]
T = TypeVar("T")

_SITK_INTERPOLATORS: dict[str, int] = {
    "bspline": sitk.sitkBSpline,
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
}


class ImageQCError(ValueError):
    """An unusable image or mask: names the patient, the file, the problem and the fix."""

    def __init__(self, patient_id: str, path: str | Path | None, problem: str, fix: str) -> None:
        self.patient_id = str(patient_id)
        self.path = "" if path is None else str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(
            f"patient {self.patient_id}: {self.path or '<no file>'}: {problem}. Fix: {fix}"
        )


@dataclass(frozen=True)
class Exclusion:
    """One row of the exclusions table: who was left out, which file, and why."""

    patient_id: str
    file: str
    reason: str
    fix: str

    def as_row(self) -> dict[str, str]:
        """The exclusion as a dict with the exclusions table's columns."""
        return {
            "patient_id": self.patient_id,
            "file": self.file,
            "reason": self.reason,
            "fix": self.fix,
        }


EXCLUSION_COLUMNS: tuple[str, ...] = ("patient_id", "file", "reason", "fix")


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


@dataclass(frozen=True)
class TumourCrop:
    """A tumour-centred box of every phase, as arrays in (z, y, x) order, plus its geometry."""

    patient_id: str
    instance: int
    phases: tuple[str, ...]
    image: np.ndarray  # (phases, z, y, x) float32
    mask: np.ndarray  # (z, y, x) uint8 labels
    spacing_zyx: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    centre_xyz: tuple[float, float, float]
    tumour_volume_mm3: float


def call_or_exclude(
    step: Callable[..., T], *args: object, on_error: OnError = "raise", **kwargs: object
) -> tuple[T | None, Exclusion | None]:
    """Run a step; on ImageQCError re-raise, or with on_error='exclude' return the reason."""
    if on_error not in ("raise", "exclude"):
        raise ValueError(f"on_error must be 'raise' or 'exclude', not {on_error!r}")
    try:
        return step(*args, **kwargs), None
    except ImageQCError as error:
        if on_error == "raise":
            raise
        return None, Exclusion(error.patient_id, error.path, error.problem, error.fix)


def _is_missing(path: object) -> bool:
    """True for the ways a sheet spells 'no file': None, NaN, empty string."""
    return path is None or (isinstance(path, float) and math.isnan(path)) or str(path).strip() == ""


# A file that ends early or holds something else is re-exported or fetched again.
_REEXPORT_FIX = (
    "re-export the image from the scanner data or the segmentation tool, or copy / download "
    "it again (an interrupted copy leaves a short file)"
)


def read_image(path: str | Path, patient_id: str, *, column: str | None = None) -> sitk.Image:
    """Read a NIfTI/NRRD file or a folder holding one DICOM series, whole and checked.

    ``column``: the sheet column the path came from, named when the cell is empty.
    """
    if _is_missing(path):
        where = f" (the sheet's `{column}` column is empty)" if column else ""
        raise ImageQCError(
            patient_id,
            None,
            f"no file is given{where}",
            f"fill in the path in the cohort sheet's `{column}` column"
            if column
            else "fill in the path in the cohort sheet",
        )
    path = Path(str(path))
    if not path.exists():
        raise ImageQCError(
            patient_id,
            path,
            "the file does not exist",
            "check the path in the cohort sheet (relative paths are read from the working "
            "directory) or exclude the patient",
        )
    try:
        if path.is_dir():
            return _read_dicom_series(path, patient_id)
        if path.name.endswith((".nii", ".nii.gz")):
            return _read_nifti(path, patient_id)
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise ImageQCError(
            patient_id,
            path,
            f"SimpleITK cannot read it ({str(error).strip().splitlines()[-1]})",
            "give a complete NIfTI (.nii/.nii.gz), NRRD or a folder with one DICOM series; "
            + _REEXPORT_FIX,
        ) from error


# NIfTI-1 and NIfTI-2 headers start with their own size (sizeof_hdr, int32, either byte order).
_NIFTI_CLASSES: dict[int, type[nib.Nifti1Image]] = {348: nib.Nifti1Image, 540: nib.Nifti2Image}
_GZIP_MAGIC = b"\x1f\x8b"
# numpy's type of each scalar SimpleITK pixel type, to build the image from nibabel's array.
_SITK_DTYPES: dict[int, np.dtype] = {
    sitk.sitkUInt8: np.dtype(np.uint8),
    sitk.sitkInt8: np.dtype(np.int8),
    sitk.sitkUInt16: np.dtype(np.uint16),
    sitk.sitkInt16: np.dtype(np.int16),
    sitk.sitkUInt32: np.dtype(np.uint32),
    sitk.sitkInt32: np.dtype(np.int32),
    sitk.sitkUInt64: np.dtype(np.uint64),
    sitk.sitkInt64: np.dtype(np.int64),
    sitk.sitkFloat32: np.dtype(np.float32),
    sitk.sitkFloat64: np.dtype(np.float64),
}


def _gunzip(raw: bytes) -> tuple[bytes, bool]:
    """Every gzip member of a file decompressed, and whether the last one ended properly."""
    # zlib rather than gzip.decompress: on a truncated stream it returns what it did get, and
    # the message gives that count. zlib checks each member's CRC and length on the way.
    parts, rest, complete = [], raw, True
    while rest[:2] == _GZIP_MAGIC:
        member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        parts.append(member.decompress(rest))
        complete = member.eof
        if not complete:
            break
        rest = member.unused_data
    return b"".join(parts), complete


def _read_nifti(path: Path, patient_id: str) -> sitk.Image:
    """A NIfTI file read once, whole: short, damaged or non-NIfTI files and NaNs are refused."""
    # SimpleITK (ITK 5) reads a truncated .nii.gz without a word and fills the rest with 0, and
    # overwrites NaN/inf voxels with 0 (fixed in ITK PR #6683, ITK 6); so the voxels are read
    # here with zlib and nibabel, checked, and handed to SimpleITK, which reads only the header
    # (its geometry: qform/sform choice, LPS). One decompression a file: float images were
    # decompressed twice before (nibabel's NaN check, then ITK). Measured: a 512 x 512 x 100
    # int16 CT 0.36 s (0.21 s with SimpleITK alone: Python's zlib is slower than ITK's), a
    # default-cohort 128 x 128 x 30 float32 phase 0.013 s (0.025 s before).
    raw = path.read_bytes()
    data, complete = raw, True
    if raw[:2] == _GZIP_MAGIC:
        try:
            data, complete = _gunzip(raw)
        except zlib.error as error:
            raise ImageQCError(
                patient_id, path, f"the gzip stream is damaged ({error})", _REEXPORT_FIX
            ) from error
    nifti = _nifti_from_bytes(data, path, patient_id)
    shape = nifti.shape
    expected = int(np.prod(shape)) * nifti.get_data_dtype().itemsize
    available = len(data) - int(nifti.dataobj.offset)
    gzip_note = "; the gzip stream ends early" if not complete else ""
    if available < expected:
        raise ImageQCError(
            patient_id,
            path,
            f"the file is truncated: {max(available, 0)} of {expected} bytes of voxel data "
            f"for its header's {shape} voxels{gzip_note}",
            _REEXPORT_FIX,
        )
    if not complete:
        raise ImageQCError(
            patient_id,
            path,
            "the file is truncated: the gzip stream ends before its checksum",
            _REEXPORT_FIX,
        )
    # A few bytes of padding after the voxels are harmless; a whole slice or more means the
    # header's dimensions leave data out (e.g. a wrong slice count).
    slice_bytes = expected // shape[-1] if shape and shape[-1] else expected
    if available - expected >= max(slice_bytes, 1):
        raise ImageQCError(
            patient_id,
            path,
            f"the header's {shape} voxels need {expected} bytes but the file holds {available} "
            "bytes of voxel data",
            "the header does not match the data: " + _REEXPORT_FIX,
        )
    values = np.asanyarray(nifti.dataobj)
    if values.dtype.kind in "fc":
        n_bad = int(np.count_nonzero(~np.isfinite(values)))
        if n_bad:
            raise ImageQCError(
                patient_id,
                path,
                f"the image has {n_bad} NaN or infinite voxels",
                "re-export the image from the scanner data, or replace the NaNs before running",
            )
    return _sitk_from_nifti(path, values)


def _nifti_from_bytes(data: bytes, path: Path, patient_id: str) -> nib.Nifti1Image:
    """The NIfTI image (header and lazy voxels) in a file's uncompressed bytes."""
    sizes = {int.from_bytes(data[:4], order) for order in ("little", "big")} if data else set()
    image_class = next((_NIFTI_CLASSES[s] for s in sizes if s in _NIFTI_CLASSES), None)
    if image_class is None or len(data) < image_class.header_class.template_dtype.itemsize:
        raise ImageQCError(
            patient_id,
            path,
            f"the file is not a NIfTI image (it starts with {data[:16]!r}, and is {len(data)} "
            "bytes uncompressed)",
            "point the sheet at the image itself (NIfTI, NRRD or a DICOM folder), not at a "
            "table or another file; " + _REEXPORT_FIX,
        )
    header_size = image_class.header_class.template_dtype.itemsize
    # The magic as written: the image class rewrites a pair's (ni1) as a single file's (n+1).
    magic = bytes(image_class.header_class(data[:header_size], check=False)["magic"])
    magic = magic.rstrip(b"\x00")[:3]
    if magic in (b"ni1", b"ni2"):
        raise ImageQCError(
            patient_id,
            path,
            "the file is the header of a NIfTI pair: its voxels are in a separate .img file",
            "convert the .hdr/.img pair to one .nii.gz (nibabel or SimpleITK) and name that "
            "in the sheet",
        )
    if magic == b"n+2":
        raise ImageQCError(
            patient_id,
            path,
            "the file is NIfTI-2, which SimpleITK (ITK 5) cannot read",
            "save it as NIfTI-1 (e.g. nibabel: nib.save(nib.Nifti1Image(image.dataobj, "
            "image.affine), path)) and name that in the sheet",
        )
    if magic != b"n+1":
        raise ImageQCError(
            patient_id, path, f"the NIfTI header's magic is {magic!r}, not n+1", _REEXPORT_FIX
        )
    try:
        nifti = image_class.from_bytes(data)
    except (nib.spatialimages.HeaderDataError, nib.wrapstruct.WrapStructError) as error:
        raise ImageQCError(
            patient_id, path, f"the NIfTI header is unreadable ({error})", _REEXPORT_FIX
        ) from error
    if nifti.dataobj.offset < nifti.header.sizeof_hdr:
        raise ImageQCError(
            patient_id,
            path,
            f"the NIfTI header's vox_offset ({nifti.dataobj.offset}) points into the header",
            _REEXPORT_FIX,
        )
    # Trailing axes of length 1 (a 3D volume stored as 4D with one time point) are harmless.
    core = nifti.shape[:3] if all(n == 1 for n in nifti.shape[3:]) else nifti.shape
    if len(core) != 3 or min(core) < 2:
        raise _not_3d(patient_id, path, nifti.shape)
    return nifti


def _sitk_from_nifti(path: Path, values: np.ndarray) -> sitk.Image:
    """The SimpleITK image of checked NIfTI voxels, with the geometry SimpleITK reads."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()  # the header only
    dtype = _SITK_DTYPES.get(reader.GetPixelID())
    if (
        dtype is None
        or reader.GetNumberOfComponents() != 1
        or reader.GetSize() != tuple(values.shape)
    ):
        # Vector, complex or squeezed (4D with one volume) images: SimpleITK's own reading
        # (the file is already known to be whole); check_image judges them.
        return sitk.ReadImage(str(path))
    # Unscaled voxels come in their stored type, as from ITK; scaled ones (scl_slope/inter) are
    # floats, which ITK gives as float32.
    voxels = values.astype(dtype, copy=False)
    # nibabel indexes (x, y, z); SimpleITK's arrays are (z, y, x).
    image = sitk.GetImageFromArray(np.ascontiguousarray(voxels.transpose()))
    image.SetOrigin(reader.GetOrigin())
    image.SetSpacing(reader.GetSpacing())
    image.SetDirection(reader.GetDirection())
    return image


def _read_dicom_series(folder: Path, patient_id: str) -> sitk.Image:
    """Read the single DICOM series in a folder, sorted by GDCM."""
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if len(series_ids) != 1:
        problem = "no DICOM series" if not series_ids else f"{len(series_ids)} DICOM series"
        raise ImageQCError(
            patient_id,
            folder,
            f"the folder holds {problem}",
            "point the sheet at a folder with exactly one series (one phase)",
        )
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0])
    # GDCM leaves out, without a word, a file it cannot parse (e.g. a truncated slice).
    listed = {Path(name).resolve() for name in names}
    damaged = sorted(
        p.name
        for p in folder.iterdir()
        if p.resolve() not in listed and _is_damaged_slice(p, series_ids[0])
    )
    if damaged:
        raise ImageQCError(
            patient_id,
            folder,
            f"{len(damaged)} DICOM file(s) in the folder cannot be read (e.g. {damaged[0]})",
            "download or export the series again; " + _REEXPORT_FIX,
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    reader.MetaDataDictionaryArrayUpdateOn()
    image = reader.Execute()
    _check_slice_positions(image, reader, folder, patient_id)
    return image


# Slice gaps may differ by this fraction of the median gap: DICOM positions are written with
# a few decimals (rounding ~1e-3 mm), while a missing slice changes a gap by 100%.
DICOM_GAP_TOLERANCE = 0.01


def _is_damaged_slice(path: Path, series_uid: str) -> bool:
    """True for a DICOM file left out of its series: unparseable, or of the series itself."""
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        if handle.read(132)[128:] != b"DICM":  # the DICOM Part 10 marker
            return False  # not DICOM at all (notes, thumbnails): not a slice
    # Imported here: only a folder with files GDCM skipped needs it.
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError):
        return True  # DICOM, but its header cannot be read
    # Another object in the folder (DICOMDIR, a structured report) is none of the series.
    return str(header.get("SeriesInstanceUID", "")) == series_uid


def _check_slice_positions(
    image: sitk.Image, reader: sitk.ImageSeriesReader, folder: Path, patient_id: str
) -> None:
    """Refuse a series whose slices are unevenly spaced (a slice missing or damaged)."""
    # ITK only warns ("Non uniform sampling or missing slices") and spaces the slices evenly.
    key = "0020|0032"  # Image Position (Patient)
    n = image.GetDepth()
    if n < 3 or not all(reader.HasMetaDataKey(k, key) for k in range(n)):
        return
    positions = np.array(
        [[float(v) for v in reader.GetMetaData(k, key).split("\\")] for k in range(n)]
    )
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    gaps = np.diff(positions @ normal)
    median = float(np.median(gaps))
    worst = float(np.max(np.abs(gaps - median)))
    if worst > DICOM_GAP_TOLERANCE * abs(median):
        raise ImageQCError(
            patient_id,
            folder,
            f"the series' slices are unevenly spaced (gaps {gaps.min():.3g} to "
            f"{gaps.max():.3g} mm, median {median:.3g} mm): a slice is missing or damaged",
            "download or export the complete series again",
        )


def _not_3d(patient_id: str, path: str | Path, size: Sequence[int]) -> ImageQCError:
    """The error for an image that is not one 3D volume (a slice, or a 4D/time series)."""
    return ImageQCError(
        patient_id,
        path,
        f"the image is not a 3D volume (size {tuple(size)})",
        "export the whole 3D series of this phase, not a single slice or a 4D/time series",
    )


def check_image(image: sitk.Image, patient_id: str, path: str | Path) -> None:
    """Require a scalar 3D volume with more than one slice per axis and no NaN/inf."""
    size = image.GetSize()
    if image.GetDimension() != 3 or min(size) < 2:
        raise _not_3d(patient_id, path, size)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageQCError(
            patient_id,
            path,
            f"the image has {image.GetNumberOfComponentsPerPixel()} components per voxel",
            "convert it to a single-channel (grey-value) volume",
        )
    values = sitk.GetArrayViewFromImage(image)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        n_bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ImageQCError(
            patient_id,
            path,
            f"the image has {n_bad} NaN or infinite voxels",
            "re-export the image from the scanner data, or replace the NaNs before running",
        )


def check_mask(
    mask: sitk.Image,
    patient_id: str,
    path: str | Path,
    *,
    tumour_label: int = TUMOUR_LABEL,
    liver_only: bool = False,
) -> sitk.Image:
    """Check the label map (integer labels 0/1/2; tumour, or liver_only: liver, present)."""
    check_image(mask, patient_id, path)
    values = sitk.GetArrayViewFromImage(mask)
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise ImageQCError(
            patient_id,
            path,
            "the mask has non-integer values",
            "save the segmentation as an integer label map (0 background, 1 liver, 2 tumour)",
        )
    labels = {int(v) for v in np.unique(values)}
    if not labels <= ALLOWED_LABELS:
        raise ImageQCError(
            patient_id,
            path,
            f"the mask has labels {sorted(labels - ALLOWED_LABELS)} besides 0/1/2",
            "relabel it: 0 background, 1 liver, 2 tumour (all tumours share label 2)",
        )
    if liver_only and not labels - {BACKGROUND_LABEL}:
        raise ImageQCError(
            patient_id,
            path,
            "the mask has no liver voxels (label 1)",
            "segment the liver with label 1 (a liver model such as BAMF AIMI's will do), or "
            "exclude the patient",
        )
    if not liver_only and tumour_label not in labels:
        raise ImageQCError(
            patient_id,
            path,
            f"the mask has no tumour voxels (label {tumour_label})",
            "segment the tumour(s) with label 2, exclude the patient, or set the cohort's "
            "`masks: liver_only` to have the segmentation model draw the tumours",
        )
    return sitk.Cast(mask, sitk.sitkUInt8)


def as_liver_only(mask: sitk.Image) -> sitk.Image:
    """The mask with every labelled voxel as liver (label 1): any tumour contour is ignored."""
    # The whole organ, tumours included, as a liver model (e.g. BAMF AIMI) would draw it.
    return sitk.Cast(sitk.Greater(mask, BACKGROUND_LABEL), sitk.sitkUInt8) * LIVER_LABEL


def geometry_mismatch(image: sitk.Image, reference: sitk.Image, tolerance: float) -> str | None:
    """Describe how two grids differ (size, spacing, origin, direction), or None if they agree."""
    if image.GetSize() != reference.GetSize():
        return f"size {image.GetSize()} differs from {reference.GetSize()}"
    checks = (
        ("spacing", image.GetSpacing(), reference.GetSpacing()),
        ("origin", image.GetOrigin(), reference.GetOrigin()),
        ("direction", image.GetDirection(), reference.GetDirection()),
    )
    for name, value, expected in checks:
        if not np.allclose(value, expected, rtol=0.0, atol=tolerance):
            rounded = tuple(round(v, 4) for v in value)
            expected_rounded = tuple(round(v, 4) for v in expected)
            return f"{name} {rounded} differs from {expected_rounded} (tolerance {tolerance})"
    return None


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


@dataclass(frozen=True)
class Plausible:
    """Ranges a human abdominal CT/MR's header geometry and tumour fall in (config: plausible)."""

    spacing_mm: tuple[float, float]
    extent_mm: tuple[float, float]
    tumour_volume_ml: tuple[float, float]

    @classmethod
    def from_config(cls, plausible: Mapping[str, Sequence[float]]) -> Plausible:
        """The ranges of the config's ``imaging: plausible`` map."""
        return cls(
            spacing_mm=_pair(plausible["spacing_mm"]),
            extent_mm=_pair(plausible["extent_mm"]),
            tumour_volume_ml=_pair(plausible["tumour_volume_ml"]),
        )


def _pair(values: Sequence[float]) -> tuple[float, float]:
    """A [min, max] config range as a tuple of floats."""
    low, high = values
    return float(low), float(high)


def _outside(values: Sequence[float], limits: tuple[float, float]) -> list[float]:
    """The values that fall outside [min, max]."""
    return [v for v in values if not limits[0] <= v <= limits[1]]


def check_plausible(
    image: sitk.Image,
    patient_id: str,
    path: str | Path,
    plausible: Plausible,
    *,
    tumour_label: int | None = TUMOUR_LABEL,
) -> None:
    """Refuse a header spacing/extent, or (masks) a tumour volume, no abdominal scan can have."""
    spacing = tuple(round(s, 4) for s in image.GetSpacing())
    extent = tuple(round(n * s, 1) for n, s in zip(image.GetSize(), spacing, strict=True))
    widen = "widen imaging: plausible: {key} in the config only if such scans are real"
    for key, values, limits in (
        ("spacing_mm", spacing, plausible.spacing_mm),
        ("extent_mm", extent, plausible.extent_mm),
    ):
        if _outside(values, limits):
            what = "voxel spacing" if key == "spacing_mm" else "field of view (size x spacing)"
            raise ImageQCError(
                patient_id,
                path,
                f"the header's {what} {values} mm is outside the plausible {list(limits)} mm "
                "of an abdominal CT/MR",
                "check the header's pixdim / slice thickness (e.g. a spacing in cm, or a slice "
                "gap taken for the thickness) and re-export the image; " + widen.format(key=key),
            )
    if tumour_label is None:
        return
    n_tumour = int(np.count_nonzero(sitk.GetArrayViewFromImage(image) == tumour_label))
    volume_ml = n_tumour * float(np.prod(image.GetSpacing())) / 1000.0
    if n_tumour and _outside([volume_ml], plausible.tumour_volume_ml):
        raise ImageQCError(
            patient_id,
            path,
            f"the tumour (label {tumour_label}) is {volume_ml:.4g} ml, outside the plausible "
            f"{list(plausible.tumour_volume_ml)} ml",
            "check the mask (a label-2 speck, or the liver drawn as tumour) and the header's "
            "spacing; " + widen.format(key="tumour_volume_ml"),
        )


def check_tumour_size(
    mask: sitk.Image,
    patient_id: str,
    path: str | Path | None,
    min_voxels: int,
    *,
    grid: str,
    fix: str,
    min_axes: int = 2,
    tumour_label: int = TUMOUR_LABEL,
) -> None:
    """Require at least ``min_voxels`` tumour voxels, spanning ``min_axes`` axes, on a grid."""
    tumour = sitk.GetArrayViewFromImage(mask) == tumour_label
    n_tumour = int(np.count_nonzero(tumour))
    # Axes along which the tumour is more than one voxel thick: PyRadiomics refuses, with
    # minimumROIDimensions: 2 (hccrad's parameter files), a tumour thin in all but one.
    spans = [np.count_nonzero(tumour.any(axis=tuple({0, 1, 2} - {k}))) for k in range(3)]
    n_axes = sum(int(span > 1) for span in spans)
    if n_tumour < min_voxels or n_axes < min_axes:
        voxel_mm3 = float(np.prod(mask.GetSpacing()))
        raise ImageQCError(
            patient_id,
            path,
            f"the tumour (label {tumour_label}) has {n_tumour} voxel(s) "
            f"({n_tumour * voxel_mm3:.4g} mm^3) spanning {n_axes} axis/axes {grid}; preparation "
            f"needs at least {min_voxels} voxels over {min_axes} or more axes",
            fix,
        )


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
) -> PatientVolumes:
    """Read and check every phase and the mask of one patient; raise ImageQCError on bad input.

    ``liver_only``: the mask needs only a liver, and any tumour label in it becomes liver.
    ``plausible`` and ``min_tumour_voxels`` (on the mask's own grid): checked when given.
    ``tolerance``: how far (mm; unitless for direction cosines) phase and mask grids may differ.
    """
    wanted = tuple(phases) if phases is not None else tuple(image_paths)
    mask = check_mask(
        read_image(mask_path, patient_id, column="mask"),
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
        if _is_missing(path):
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


def resampled_grid(
    image: sitk.Image, spacing_mm: Sequence[float]
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Size and origin of a grid with the new spacing covering the same field of view."""
    old_spacing = np.asarray(image.GetSpacing())
    new_spacing = np.asarray(spacing_mm, dtype=float)
    extent = np.asarray(image.GetSize()) * old_spacing
    size = tuple(int(n) for n in np.maximum(1, np.round(extent / new_spacing)))
    # The origin is the centre of the first voxel; keep the field of view's outer corner fixed
    # (as PyRadiomics does), so the first voxel centre moves by half the change in spacing.
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    origin = np.asarray(image.GetOrigin()) + direction @ ((new_spacing - old_spacing) / 2)
    return size, tuple(float(v) for v in origin)


def resample_image(
    image: sitk.Image,
    spacing_mm: Sequence[float],
    interpolator: Interpolator = "bspline",
    *,
    default_value: float | None = None,
) -> sitk.Image:
    """Resample to a spacing over the same field of view; masks with interpolator='nearest'."""
    size, origin = resampled_grid(image, spacing_mm)
    is_label = interpolator == "nearest"
    if default_value is None:
        # Outside the old grid: background label for masks, the darkest value for images.
        default_value = 0.0 if is_label else float(sitk.GetArrayViewFromImage(image).min())
    return sitk.Resample(
        image,
        size,
        sitk.Transform(),
        _SITK_INTERPOLATORS[interpolator],
        origin,
        tuple(float(s) for s in spacing_mm),
        image.GetDirection(),
        default_value,
        image.GetPixelID() if is_label else sitk.sitkFloat32,
    )


# FWHM of a Gaussian over its sigma.
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def harmonisation_sigma_mm(
    spacing_mm: Sequence[float], resolution_mm: Sequence[float]
) -> tuple[float, float, float]:
    """Per-axis sigma (mm) of the Gaussian that takes an acquisition to a coarser resolution."""
    # An acquisition's resolution is taken as its voxel spacing (the FWHM of its point spread);
    # Gaussian blurs add in variance, so FWHM s goes to r with a blur of FWHM sqrt(r^2 - s^2).
    # Axes already as coarse as the target stay as they are.
    spacing, target = np.asarray(spacing_mm, float), np.asarray(resolution_mm, float)
    fwhm = np.sqrt(np.maximum(target**2 - spacing**2, 0.0))
    return tuple(float(v) for v in fwhm / _FWHM_PER_SIGMA)


def harmonise_resolution(image: sitk.Image, resolution_mm: Sequence[float]) -> sitk.Image:
    """Blur an image to a coarser effective resolution (mm per axis, x y z), on its own grid."""
    sigma = np.asarray(harmonisation_sigma_mm(image.GetSpacing(), resolution_mm))
    if not sigma.any():
        return image
    blur = sitk.DiscreteGaussianImageFilter()
    blur.SetVariance((sigma**2).tolist())
    blur.SetUseImageSpacing(True)
    # A tight truncation error: a 1% cut of the tails took 8% off the blur's variance.
    blur.SetMaximumError(1e-4)
    # A kernel wide enough for the largest sigma (ITK truncates at 32 voxels by default).
    blur.SetMaximumKernelWidth(int(2 * np.ceil(4 * sigma.max() / min(image.GetSpacing())) + 1))
    return blur.Execute(sitk.Cast(image, sitk.sitkFloat32))


def harmonise_patient(
    volumes: PatientVolumes, resolution_mm: Sequence[float] | None
) -> PatientVolumes:
    """Every phase at one effective resolution across centres (None: unchanged); mask as is."""
    if resolution_mm is None:
        return volumes
    return map_phases(
        volumes,
        lambda image: harmonise_resolution(image, resolution_mm),
        f"blurring to {tuple(resolution_mm)} mm",
        "check the image's spacing in its header, or set imaging: resolution_mm: null",
        errors=(RuntimeError,),
    )


def resample_patient(
    volumes: PatientVolumes,
    spacing_mm: Sequence[float],
    interpolator: Literal["bspline", "linear"] = "bspline",
    *,
    required_label: int = TUMOUR_LABEL,
) -> PatientVolumes:
    """Resample every phase (B-spline or linear) and the mask (nearest neighbour) to a spacing."""
    images = {
        phase: resample_image(image, spacing_mm, interpolator)
        for phase, image in volumes.images.items()
    }
    mask = resample_image(volumes.mask, spacing_mm, "nearest")
    if required_label not in np.unique(sitk.GetArrayViewFromImage(mask)):
        region = "tumour" if required_label == TUMOUR_LABEL else "liver"
        raise ImageQCError(
            volumes.patient_id,
            volumes.sources.get("mask"),
            f"the {region} vanishes when the mask is resampled to {tuple(spacing_mm)} mm",
            f"use a finer resampling spacing, or check that the {region} label is not a speck",
        )
    return PatientVolumes(volumes.patient_id, images, mask, volumes.sources)


def _region_values(image: sitk.Image, mask: sitk.Image, labels: Sequence[int]) -> np.ndarray:
    """Image values at the voxels whose mask label is one of `labels`."""
    inside = np.isin(sitk.GetArrayViewFromImage(mask), labels)
    return sitk.GetArrayViewFromImage(image)[inside].astype(np.float64)


def _from_array(values: np.ndarray, like: sitk.Image) -> sitk.Image:
    """A float32 image with `like`'s geometry."""
    image = sitk.GetImageFromArray(values.astype(np.float32))
    image.CopyInformation(like)
    return image


def zscore_over_liver(
    image: sitk.Image, mask: sitk.Image, *, liver_label: int = LIVER_LABEL
) -> sitk.Image:
    """(I - mean) / sd with mean and sd of the liver parenchyma (label 1, tumour excluded)."""
    # Parenchyma only: including the tumour would make the reference depend on tumour burden.
    reference = _region_values(image, mask, [liver_label])
    if reference.size < 2 or reference.std() == 0:
        raise ValueError("z-score needs liver voxels (label 1) with non-zero spread")
    values = sitk.GetArrayViewFromImage(image).astype(np.float64)
    return _from_array((values - reference.mean()) / reference.std(), image)


def n4_bias_corrected(
    image: sitk.Image,
    mask: sitk.Image,
    *,
    fit_spacing_mm: float = N4_FIT_SPACING_MM,
    iterations: Sequence[int] = N4_ITERATIONS,
) -> sitk.Image:
    """MRI divided by its N4 bias field (SimpleITK), fitted over the liver and tumour."""
    # A multiplicative field (coil sensitivity) stretches the liver's intensity spread, so the
    # z-score over the liver shrinks the tumour's contrast and texture by a scanner-dependent
    # factor; correcting it first makes liver-referenced intensities comparable across centres.
    values = sitk.GetArrayViewFromImage(image)
    region = sitk.Cast(mask > 0, sitk.sitkUInt8)
    liver = values[sitk.GetArrayViewFromImage(region) > 0]
    if liver.size == 0 or np.median(liver) <= 0:
        raise ValueError(
            "N4 needs positive MRI magnitudes over the liver (labels 1 and 2); this image's "
            "liver median is not positive"
        )
    # N4 works on log intensities: lift zeros and negatives (noise floor) just above zero.
    floor = 1e-3 * float(np.median(liver))
    positive = _from_array(np.maximum(values, floor), image)
    shrink = [max(1, round(fit_spacing_mm / s)) for s in image.GetSpacing()]
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(n) for n in iterations])
    with _one_itk_thread():
        corrector.Execute(sitk.Shrink(positive, shrink), sitk.Shrink(region, shrink))
        log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(positive))
    return _from_array(values / np.exp(log_field.astype(np.float64)), image)


@contextmanager
def _one_itk_thread() -> Iterator[None]:
    """Run SimpleITK filters on one thread inside the block, then restore the default."""
    # ITK splits work by the machine's core count, and N4's B-spline fit and reconstruction
    # then round differently (measured: 1e-7 relative between 2 and 4 threads); the field
    # must be the same bit for bit on any machine. Some of N4's inner filters take only the
    # global default, so the default itself is set.
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def correct_bias_patient(volumes: PatientVolumes, method: BiasCorrection) -> PatientVolumes:
    """Every phase bias-field corrected ('n4') or left as it is ('none')."""
    if method == "none":
        return volumes
    if method != "n4":
        raise ValueError(f"unknown bias correction {method!r}; use 'n4' or 'none'")
    return map_phases(
        volumes,
        lambda image: n4_bias_corrected(image, volumes.mask),
        "N4 bias-field correction",
        "check that this is a magnitude MRI with the liver labelled (1) on it, or set "
        "imaging: bias_correction: mri: none",
        errors=(ValueError, RuntimeError),
    )


def map_phases(
    volumes: PatientVolumes,
    transform: Callable[[sitk.Image], sitk.Image],
    step: str,
    fix: str,
    *,
    errors: tuple[type[Exception], ...] = (ValueError,),
) -> PatientVolumes:
    """Apply `transform` to every phase; a failure names the patient, the phase's file and `fix`."""
    images: dict[str, sitk.Image] = {}
    for phase, image in volumes.images.items():
        try:
            images[phase] = transform(image)
        except errors as error:
            raise ImageQCError(
                volumes.patient_id,
                volumes.sources.get(phase),
                f"{step} of the {phase} phase failed: {error}",
                fix,
            ) from error
    return PatientVolumes(volumes.patient_id, images, volumes.mask, volumes.sources)


def clip_to_percentiles(
    image: sitk.Image, mask: sitk.Image, percentiles: tuple[float, float] = (0.5, 99.5)
) -> sitk.Image:
    """Clip to percentiles of the whole liver (labels 1 and 2) and rescale to [0, 1]."""
    # Whole liver, tumour included, so that a bright arterial tumour is not clipped away.
    reference = _region_values(image, mask, [LIVER_LABEL, TUMOUR_LABEL])
    low, high = np.percentile(reference, percentiles)
    if high <= low:
        raise ValueError(f"percentiles {percentiles} of the liver are equal ({low})")
    values = sitk.GetArrayViewFromImage(image).astype(np.float64)
    return _from_array((np.clip(values, low, high) - low) / (high - low), image)


def hu_window(
    image: sitk.Image, window: tuple[float, float] = (-150.0, 250.0), *, rescale: bool = False
) -> sitk.Image:
    """Clip CT to a HU window (default liver window W400/L50); optionally rescale it to [0, 1]."""
    low, high = window
    values = np.clip(sitk.GetArrayViewFromImage(image).astype(np.float64), low, high)
    # Kept in HU by default so that the CT radiomics bin width (in HU) still means what it says.
    return _from_array((values - low) / (high - low) if rescale else values, image)


def normalise_patient(
    volumes: PatientVolumes,
    method: Normalisation,
    *,
    percentiles: tuple[float, float] = (0.5, 99.5),
    window: tuple[float, float] = (-150.0, 250.0),
    rescale_window: bool = False,
) -> PatientVolumes:
    """Normalise every phase separately: MRI 'zscore'/'percentile', CT 'hu_window', or 'none'."""

    def normalised(image: sitk.Image) -> sitk.Image:
        """One phase, normalised by `method`."""
        if method == "zscore":
            return zscore_over_liver(image, volumes.mask)
        if method == "percentile":
            return clip_to_percentiles(image, volumes.mask, percentiles)
        if method == "hu_window":
            return hu_window(image, window, rescale=rescale_window)
        if method == "none":
            return sitk.Cast(image, sitk.sitkFloat32)
        raise ValueError(f"unknown normalisation {method!r}")

    return map_phases(
        volumes,
        normalised,
        f"{method} normalisation",
        "check that the mask has a liver label (1) on this image, or choose another "
        "normalisation method",
    )


def tumour_components(mask: sitk.Image, tumour_label: int = TUMOUR_LABEL) -> sitk.Image:
    """Connected tumour components labelled 1..n, largest first (face connectivity)."""
    components = sitk.ConnectedComponent(sitk.Equal(mask, tumour_label))
    return sitk.RelabelComponent(components, sortByObjectSize=True)


def orient_patient(
    volumes: PatientVolumes, orientation: str = CANONICAL_ORIENTATION
) -> PatientVolumes:
    """Permute/flip axes (no interpolation) so that every volume has the given orientation."""
    images = {p: sitk.DICOMOrient(im, orientation) for p, im in volumes.images.items()}
    mask = sitk.DICOMOrient(volumes.mask, orientation)
    return PatientVolumes(volumes.patient_id, images, mask, volumes.sources)


def _crop_on_grid(
    image: sitk.Image, start_index: Sequence[int], size: Sequence[int], pad: float
) -> sitk.Image:
    """Copy a box starting at a voxel index; voxels outside the image get `pad`."""
    origin = image.TransformIndexToPhysicalPoint([int(i) for i in start_index])
    # The box lies on the image's own grid, so nearest neighbour copies voxels unchanged.
    return sitk.Resample(
        image,
        [int(n) for n in size],
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        origin,
        image.GetSpacing(),
        image.GetDirection(),
        pad,
        image.GetPixelID(),
    )


def crop_tumours(
    volumes: PatientVolumes,
    box_mm: Sequence[float],
    *,
    instances: Literal["largest", "all"] = "largest",
    tumour_label: int = TUMOUR_LABEL,
) -> list[TumourCrop]:
    """Tumour-centred boxes of `box_mm` (x, y, z mm): the largest tumour, or every tumour."""
    oriented = orient_patient(volumes)
    components = tumour_components(oriented.mask, tumour_label)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(components)
    labels = sorted(stats.GetLabels())
    if not labels:
        raise ImageQCError(
            volumes.patient_id,
            volumes.sources.get("mask"),
            f"the mask has no tumour voxels (label {tumour_label})",
            "segment the tumour(s) with label 2, or exclude the patient",
        )
    chosen = labels[:1] if instances == "largest" else labels
    size = crop_size_voxels(box_mm, oriented.mask.GetSpacing())
    crops = []
    for label in chosen:
        centre = stats.GetCentroid(label)
        centre_index = np.round(oriented.mask.TransformPhysicalPointToContinuousIndex(centre))
        start = (centre_index - np.asarray(size) // 2).astype(int)
        phase_arrays = [
            sitk.GetArrayFromImage(
                _crop_on_grid(image, start, size, float(sitk.GetArrayViewFromImage(image).min()))
            )
            for image in oriented.images.values()
        ]
        mask_crop = _crop_on_grid(oriented.mask, start, size, BACKGROUND_LABEL)
        crops.append(
            TumourCrop(
                patient_id=volumes.patient_id,
                instance=label,
                phases=oriented.phases,
                image=np.stack(phase_arrays).astype(np.float32),
                mask=sitk.GetArrayFromImage(mask_crop).astype(np.uint8),
                spacing_zyx=tuple(float(s) for s in reversed(mask_crop.GetSpacing())),
                origin_xyz=tuple(float(v) for v in mask_crop.GetOrigin()),
                centre_xyz=tuple(float(v) for v in centre),
                tumour_volume_mm3=float(stats.GetPhysicalSize(label)),
            )
        )
    return crops


def write_crop(crop: TumourCrop, path: str | Path) -> Path:
    """Save one crop as .npz: image (phases, z, y, x) float32, mask (z, y, x) and metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        image=crop.image,
        mask=crop.mask,
        phases=np.asarray(crop.phases),
        patient_id=np.asarray(crop.patient_id),
        instance=np.asarray(crop.instance),
        spacing_zyx=np.asarray(crop.spacing_zyx),
        origin_xyz=np.asarray(crop.origin_xyz),
        centre_xyz=np.asarray(crop.centre_xyz),
        orientation=np.asarray(CANONICAL_ORIENTATION),
        tumour_volume_mm3=np.asarray(crop.tumour_volume_mm3),
    )
    return path


def write_crops(crops: Sequence[TumourCrop], out_dir: str | Path) -> list[Path]:
    """Save every crop as <out_dir>/<patient_id>_tumour<k>.npz (k = 1 is the largest)."""
    return [
        write_crop(crop, Path(out_dir) / f"{crop.patient_id}_tumour{crop.instance}.npz")
        for crop in crops
    ]


def write_preprocessed(
    volumes: PatientVolumes,
    image_paths: Mapping[str, str | Path],
    mask_path: str | Path,
) -> None:
    """Write each phase (scaled int16) and the mask (uint8) as compressed NIfTI."""
    for phase, image in volumes.images.items():
        write_int16_nifti(image, image_paths[phase])
    _write(sitk.Cast(volumes.mask, sitk.sitkUInt8), mask_path)


def _write(image: sitk.Image, path: str | Path) -> None:
    """Write an image, creating the folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def write_qc_png(
    volumes: PatientVolumes,
    path: str | Path,
    *,
    tumour_label: int = TUMOUR_LABEL,
    intensity_label: str = "intensity",
    dpi: int = 200,
) -> Path:
    """Axial slice through the largest tumour's centre (else the liver's), every phase, contours."""
    oriented = orient_patient(volumes)
    components = tumour_components(oriented.mask, tumour_label)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(components)
    through = "the largest tumour"
    if not stats.GetLabels():
        # A liver-only mask (tumours still to be segmented): centre on the liver instead.
        stats.Execute(sitk.Cast(sitk.Greater(oriented.mask, BACKGROUND_LABEL), sitk.sitkUInt8))
        through = "the liver (no tumour label)"
    if not stats.GetLabels():
        raise ImageQCError(
            volumes.patient_id,
            volumes.sources.get("mask"),
            "the mask has no liver or tumour voxels to centre the QC slice on",
            "segment the liver (label 1) and tumour(s) (label 2), or exclude the patient",
        )
    centre = stats.GetCentroid(1)
    k = round(oriented.mask.TransformPhysicalPointToContinuousIndex(centre)[2])
    mask_slice = sitk.GetArrayViewFromImage(oriented.mask)[k]
    sx, sy, _ = oriented.mask.GetSpacing()
    ny, nx = mask_slice.shape
    ox, oy, oz = oriented.mask.TransformIndexToPhysicalPoint([0, 0, k])
    # Extent in mm gives the true aspect ratio for anisotropic voxels. In LPS, x grows to the
    # patient's left and y posteriorly: rows top-down = anterior at the top (radiological view).
    extent = (ox - sx / 2, ox + (nx - 0.5) * sx, oy + (ny - 0.5) * sy, oy - sy / 2)

    # Imported here: the radiomics jobs import this module too and never draw (0.6 s a job).
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    n = len(oriented.phases)
    # A fixed layout: constrained layout took 60% of a patient's preparation time.
    fig = Figure(figsize=(3.2 * n, 3.6), dpi=dpi)
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.2, top=0.85, wspace=0.45)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (phase, image) in zip(axes, oriented.images.items(), strict=True):
        values = sitk.GetArrayViewFromImage(image)[k]
        low, high = np.percentile(values, [1, 99])
        shown = ax.imshow(values, cmap="gray", vmin=low, vmax=high, extent=extent)
        ax.contour(
            mask_slice >= LIVER_LABEL,
            levels=[0.5],
            colors=LIVER_COLOUR,
            linewidths=0.8,
            extent=extent,
            origin="upper",
        )
        ax.contour(
            mask_slice == tumour_label,
            levels=[0.5],
            colors=TUMOUR_COLOUR,
            linewidths=1.0,
            extent=extent,
            origin="upper",
        )
        ax.set_title(phase.replace("_", " "), fontsize=10)
        ax.set_xlabel("x (mm, R\u2192L)", fontsize=8)
        ax.tick_params(labelsize=7)
        colorbar = fig.colorbar(shown, ax=ax, shrink=0.8)
        colorbar.set_label(intensity_label, fontsize=8)
        colorbar.ax.tick_params(labelsize=7)
    axes[0].set_ylabel("y (mm, A\u2192P)", fontsize=8)
    handles = [
        Line2D([], [], color=LIVER_COLOUR, label="liver"),
        Line2D([], [], color=TUMOUR_COLOUR, label="tumour"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(
        f"{volumes.patient_id}: axial slice {k} (z = {oz:.1f} mm) through {through}",
        fontsize=10,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def crop_to_liver(volumes: PatientVolumes, margin_mm: float) -> PatientVolumes:
    """Cut every volume to the liver's bounding box plus ``margin_mm`` (labels > 0)."""
    # Everything downstream (resampling, radiomics, crops) looks at the liver and its tumours;
    # the rest of the abdomen only costs time and disk.
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(volumes.mask > 0, sitk.sitkUInt8))
    box = stats.GetBoundingBox(1)
    spacing, size = volumes.mask.GetSpacing(), volumes.mask.GetSize()
    start, stop = [], []
    for axis in range(3):
        pad = int(np.ceil(margin_mm / spacing[axis]))
        start.append(max(box[axis] - pad, 0))
        stop.append(min(box[axis] + box[axis + 3] + pad, size[axis]))
    extent = [b - a for a, b in zip(start, stop, strict=True)]
    images = {
        phase: sitk.RegionOfInterest(image, extent, start)
        for phase, image in volumes.images.items()
    }
    mask = sitk.RegionOfInterest(volumes.mask, extent, start)
    return PatientVolumes(volumes.patient_id, images, mask, volumes.sources)


def sitk_to_ras_affine(image: sitk.Image) -> np.ndarray:
    """The NIfTI (RAS) voxel-to-world affine of a SimpleITK (LPS) image, x-y-z voxel order."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = lps_to_ras @ np.asarray(image.GetOrigin())
    return affine


def write_int16_nifti(image: sitk.Image, path: str | Path) -> None:
    """Write a float image as int16 NIfTI with nibabel's slope/intercept (4x smaller on disk)."""
    # Normalised intensities are floats; int16 with a header slope keeps ~1e-3 of their range
    # (far finer than any radiomics bin) at a quarter of float32's size. Readers (SimpleITK,
    # nibabel) apply the slope and return floats.
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(np.float32)
    nifti = nib.Nifti1Image(array, sitk_to_ras_affine(image))
    nifti.set_data_dtype(np.int16)
    nifti.header.set_xyzt_units(xyz="mm")
    nifti.set_qform(nifti.affine, code=1)
    nifti.set_sform(nifti.affine, code=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nib.save(nifti, str(path))
