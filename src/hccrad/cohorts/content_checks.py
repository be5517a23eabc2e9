"""Content checks of a downloaded file without an md5 from the server: STAR counts, gzip, DICOM.

A content check reads the file and returns what it checked, or raises ContentError saying what
is wrong; :func:`hccrad.cohorts.download.fetch_verified` picks one by the file name.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from pathlib import Path

from hccrad.cohorts.rnaseq_counts import CountsFormatError, read_star_counts

CHUNK_BYTES = 1 << 20


class ContentError(ValueError):
    """A downloaded file whose content fails its check (a cut gzip, not a STAR table, ...)."""


# A content check reads a file without md5 from the server and returns what it checked, or
# raises ContentError saying what is wrong.
ContentCheck = Callable[[Path], str]


def check_gzip(path: Path) -> str:
    """Decompress a gzip file to its end: a cut or corrupt stream raises ContentError."""
    total = 0
    try:
        with gzip.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
                total += len(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise ContentError(f"the gzip stream does not decompress to its end ({error})") from error
    return f"gzip decompressed to its end ({total} B)"


def check_star_counts(path: Path) -> str:
    """Parse a GDC STAR counts table (plain or gzip) as the expression import will."""
    try:
        star = read_star_counts(path)
    except CountsFormatError as error:
        problem = str(error).removeprefix(f"{path}: ")
        raise ContentError(f"not a complete GDC STAR counts table: {problem}") from error
    return (
        f"STAR counts table parsed: gene-model line, 9-column header, {len(star.counts)} genes "
        "of integer counts"
    )


def check_dicom(path: Path) -> str:
    """Read a DICOM file with pydicom and its pixel data: a cut file raises ContentError."""
    import pydicom  # only IDC downloads need it
    from pydicom.encaps import generate_frames
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as error:
        raise ContentError(f"pydicom cannot read it as DICOM ({error})") from error
    if "Rows" not in dataset:
        return "DICOM header read by pydicom (no image attributes)"
    if "PixelData" not in dataset:
        # pydicom stops quietly at the end of a cut file: the pixel data, last, are then absent.
        raise ContentError("it has image attributes (Rows, Columns) but no pixel data: cut off")
    syntax = getattr(dataset.file_meta, "TransferSyntaxUID", None)
    try:
        if syntax is not None and syntax.is_compressed:
            # Decoding needs optional codecs; splitting the stream into its frames does not.
            expected = int(dataset.get("NumberOfFrames") or 1)
            frames = sum(1 for _ in generate_frames(dataset.PixelData, number_of_frames=expected))
            if frames != expected:
                raise ValueError(f"{frames} of {expected} compressed frames")
            return f"DICOM read by pydicom, {frames} compressed frame(s) complete"
        shape = dataset.pixel_array.shape
    except (ValueError, AttributeError, EOFError) as error:
        raise ContentError(f"its pixel data are incomplete ({error})") from error
    return f"DICOM read by pydicom, pixel data decoded ({'x'.join(map(str, shape))})"


def check_for(name: str) -> ContentCheck | None:
    """The content check for a file name (STAR counts, gzip, DICOM), or None if unknown."""
    lower = name.lower()
    if lower.endswith(("star_gene_counts.tsv", "star_gene_counts.tsv.gz")):
        return check_star_counts
    if lower.endswith(".gz"):
        return check_gzip
    if lower.endswith(".dcm"):
        return check_dicom
    return None
