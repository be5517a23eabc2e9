"""Reading a patient's image and mask files whole: NIfTI, NRRD or a DICOM series folder.

Every file is read whole and checked before use: a truncated, damaged or non-image file, a
DICOM series with a slice missing, an implausible header geometry or a speck of a tumour is an
ImageQCError naming the patient, the file, the problem and the fix, never zeros read silently.
The checks of what was read (one 3D volume, labels, grids, plausibility) are in
``hccrad.imaging.checks``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)


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


def is_missing(path: object) -> bool:
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
    if is_missing(path):
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
        raise not_3d(patient_id, path, nifti.shape)
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


def not_3d(patient_id: str, path: str | Path, size: Sequence[int]) -> ImageQCError:
    """The error for an image that is not one 3D volume (a slice, or a 4D/time series)."""
    return ImageQCError(
        patient_id,
        path,
        f"the image is not a 3D volume (size {tuple(size)})",
        "export the whole 3D series of this phase, not a single slice or a 4D/time series",
    )
