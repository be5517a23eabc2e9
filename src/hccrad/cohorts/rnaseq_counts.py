"""RNA-seq count files: GDC STAR tables, counts matrices and HTSeq files, read and validated.

Conventions
-----------
- A counts matrix is genes x samples (or genes x patients), int64, index ``gene_id`` without
  the Ensembl version (``ENSG00000000003.15`` -> ``ENSG00000000003``, also the simulator's
  ``SIMG...``); ids that are not Ensembl-style (``PREFIXG`` + digits) are kept as they are.
- ``_PAR_Y`` rows (GENCODE's chrY copies of the pseudo-autosomal genes, all zero in GDC STAR
  files because reads are assigned to the chrX copy) are dropped by default
  (``par_y="drop"``); ``par_y="keep"`` keeps them as distinct ids ``ENSG..._PAR_Y``.
- The gene annotation frame is indexed by ``gene_id`` with columns ``symbol`` and ``biotype``.
- TCGA barcodes name the patient, sample type and vial of a sample (:func:`parse_tcga_barcode`).
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd

STAR_COLUMNS = (
    "gene_id",
    "gene_name",
    "gene_type",
    "unstranded",
    "stranded_first",
    "stranded_second",
    "tpm_unstranded",
    "fpkm_unstranded",
    "fpkm_uq_unstranded",
)
STAR_COUNT_COLUMNS = ("unstranded", "stranded_first", "stranded_second")
STAR_SUMMARY_ROWS = ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous")
GENE_MODEL_PREFIX = "# gene-model:"
PAR_Y_SUFFIX = "_PAR_Y"

ParY = Literal["drop", "keep"]
CountColumn = Literal["unstranded", "stranded_first", "stranded_second"]

# Ensembl-style stable gene ids (ENSG, ENSMUSG, the simulator's SIMG) with a version; other ids
# (symbols such as AC000061.1, Entrez ids) are never changed.
_VERSIONED_ENSEMBL_ID = re.compile(r"[A-Z]+G\d+\.\d+(?:_PAR_Y)?")
_TCGA_SAMPLE_BARCODE = re.compile(r"^(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})-(\d{2})([A-Z]?)(?:-.*)?$")
_HTSEQ_COUNTER_PREFIX = "__"
_SYMBOL_COLUMNS = ("gene_name", "symbol")
_BIOTYPE_COLUMNS = ("gene_type", "biotype")
_TRUNCATED_FIX = (
    "truncated or corrupt? Fix: download or copy the file again (a GDC download rerun fetches "
    "it again once the damaged file is deleted)"
)
# What each kind of bad count means and how to fix it (one message line per kind).
_COUNT_PROBLEMS = {
    "missing value": f": the file ends early or has empty cells; {_TRUNCATED_FIX}",
    "not a number": ". Fix: counts must be integers; export the raw counts again (no 'NA' or text)",
    "non-integer count": (
        ": TPM, FPKM or normalised values, not read counts. Fix: give raw integer counts "
        "(GDC STAR 'unstranded', 'stranded_first' or 'stranded_second' as "
        "radiogenomics.expression.count_column, or HTSeq counts), never TPM or FPKM"
    ),
    "negative count": (
        ": log-scaled or centred values, not read counts. Fix: give raw integer counts"
    ),
}


class CountsFormatError(ValueError):
    """A counts file or sample sheet that does not have the expected layout or values."""


@dataclass(frozen=True)
class StarCounts:
    """One GDC augmented STAR gene-counts file."""

    counts: pd.Series  # int64 counts of the chosen column, index gene_id (unversioned)
    genes: pd.DataFrame  # index gene_id; symbol, biotype
    summary: pd.Series  # the N_* rows of the chosen column (unmapped, multimapping, ...)
    gene_model: str  # e.g. "GENCODE v36"


@dataclass(frozen=True)
class TcgaBarcode:
    """The parts of a TCGA barcode that sample selection needs."""

    barcode: str
    patient_id: str  # first 12 characters, e.g. TCGA-DD-A1EB
    sample_type: str  # two digits, e.g. "01"
    vial: str  # letter, "" when the barcode stops at the sample type


def _open_text(path: Path) -> IO[str]:
    """Open a plain or gzip-compressed text file."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def read_table(path: Path, sep: str, *, skip_first_line: bool, header: bool) -> pd.DataFrame:
    """Read a delimited file as strings-or-numbers, turning parser failures into format errors."""
    try:
        with _open_text(path) as handle:
            if skip_first_line:
                handle.readline()
            return pd.read_csv(
                handle,
                sep=sep,
                header=0 if header else None,
                dtype={0: str} if not header else None,
                keep_default_na=False,
                na_values=[""],
            )
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as error:
        raise CountsFormatError(f"{path}: cannot be read ({error}); {_TRUNCATED_FIX}") from error
    except pd.errors.EmptyDataError as error:
        raise CountsFormatError(f"{path}: the file is empty; {_TRUNCATED_FIX}") from error
    except pd.errors.ParserError as error:
        raise CountsFormatError(
            f"{path}: malformed table ({error}). Fix: give a tab-separated table (comma for "
            ".csv) with the same number of fields on every line"
        ) from error


def _first_line(path: Path) -> str:
    """The first line of a text file, without its line ending."""
    try:
        with _open_text(path) as handle:
            return handle.readline().rstrip("\r\n")
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as error:
        raise CountsFormatError(f"{path}: cannot be read ({error}); {_TRUNCATED_FIX}") from error


def _validated_counts(
    values: pd.Series, path: Path, column: str, gene_ids: pd.Series
) -> np.ndarray:
    """Return a count column as int64, or raise naming the file, column and first bad gene."""
    numeric = pd.to_numeric(values, errors="coerce")
    problems = (
        ("missing value", numeric.isna() & values.isna()),
        ("not a number", numeric.isna() & values.notna()),
        ("non-integer count", numeric.notna() & (numeric % 1 != 0)),
        ("negative count", numeric < 0),
    )
    for what, bad in problems:
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            value = str(values.iloc[first])  # as written: '12.5', not np.float64(12.5)
            raise CountsFormatError(
                f"{path}: column {column!r} has {int(bad.sum())} {what}(s), first at gene "
                f"{gene_ids.iloc[first]!r} (value {value!r}){_COUNT_PROBLEMS[what]}"
            )
    return numeric.to_numpy(dtype=np.int64)


def _unversioned(gene_id: str) -> str:
    """``ENSG00000000003.15`` -> ``ENSG00000000003``; ``..._PAR_Y`` keeps its suffix."""
    if not _VERSIONED_ENSEMBL_ID.fullmatch(gene_id):
        return gene_id
    base = gene_id.partition(".")[0]
    return base + PAR_Y_SUFFIX if gene_id.endswith(PAR_Y_SUFFIX) else base


def unversioned_gene_ids(
    gene_ids: Iterable[str], par_y: ParY = "drop"
) -> tuple[pd.Index, np.ndarray]:
    """Strip Ensembl versions; return the new ids and a mask of the rows to keep (PAR_Y rule)."""
    # A plain comprehension: 4x faster than pandas' regex replace on 60,000 ids per file.
    ids = [str(gene_id) for gene_id in gene_ids]
    stripped = pd.Index([_unversioned(gene_id) for gene_id in ids], name="gene_id", dtype=object)
    keep = np.array([par_y == "keep" or not gene_id.endswith(PAR_Y_SUFFIX) for gene_id in ids])
    return stripped, keep.astype(bool)


def _raise_on_duplicates(gene_ids: pd.Index, path: Path, what: str) -> None:
    """Raise when gene ids repeat, naming a few of them."""
    duplicated = gene_ids[gene_ids.duplicated()].unique()
    if len(duplicated):
        raise CountsFormatError(
            f"{path}: {len(duplicated)} duplicated gene id(s) {what}, e.g. {list(duplicated[:5])}"
        )


def read_star_counts(
    path: str | Path, count_column: CountColumn = "unstranded", par_y: ParY = "drop"
) -> StarCounts:
    """Read one GDC augmented STAR gene-counts file (``*.augmented_star_gene_counts.tsv``)."""
    path = Path(path)
    if count_column not in STAR_COUNT_COLUMNS:
        raise ValueError(f"count_column must be one of {STAR_COUNT_COLUMNS}, got {count_column!r}")
    first_line = _first_line(path)
    if not first_line.startswith(GENE_MODEL_PREFIX):
        raise CountsFormatError(
            f"{path}: first line should be '{GENE_MODEL_PREFIX} ...', found {first_line[:60]!r}; "
            "not a GDC augmented STAR counts file"
        )
    table = read_table(path, "\t", skip_first_line=True, header=True)
    missing = [column for column in STAR_COLUMNS if column not in table.columns]
    if missing:
        raise CountsFormatError(
            f"{path}: missing column(s) {missing}; "
            f"expected the 9 GDC STAR columns {list(STAR_COLUMNS)}"
        )
    gene_ids = table["gene_id"].astype(str)
    summary_mask = gene_ids.isin(STAR_SUMMARY_ROWS).to_numpy()
    absent_summary = sorted(set(STAR_SUMMARY_ROWS) - set(gene_ids[summary_mask]))
    if absent_summary:
        raise CountsFormatError(f"{path}: missing STAR summary row(s) {absent_summary}")
    genes_table = table.loc[~summary_mask]
    if genes_table.empty:
        raise CountsFormatError(f"{path}: no gene rows after the N_* rows; {_TRUNCATED_FIX}")
    gene_ids = gene_ids[~summary_mask]
    validated = {
        column: _validated_counts(genes_table[column], path, column, gene_ids)
        for column in STAR_COUNT_COLUMNS
    }
    chosen = validated[count_column]
    for column in ("gene_name", "gene_type"):
        if genes_table[column].isna().any():
            first = gene_ids[genes_table[column].isna()].iloc[0]
            raise CountsFormatError(f"{path}: empty {column!r} at gene {first!r}; {_TRUNCATED_FIX}")
    _raise_on_duplicates(pd.Index(gene_ids), path, "in the file")
    ids, keep = unversioned_gene_ids(gene_ids, par_y)
    _raise_on_duplicates(ids[keep], path, "after removing the version")
    summary_table = table.loc[summary_mask]
    summary = pd.Series(
        _validated_counts(
            summary_table[count_column], path, count_column, summary_table["gene_id"]
        ),
        index=pd.Index(summary_table["gene_id"], name="counter"),
        name=count_column,
    )
    genes = pd.DataFrame(
        {
            "symbol": genes_table["gene_name"].to_numpy()[keep],
            "biotype": genes_table["gene_type"].to_numpy()[keep],
        },
        index=ids[keep],
    )
    return StarCounts(
        counts=pd.Series(chosen[keep], index=ids[keep], name=count_column),
        genes=genes,
        summary=summary,
        gene_model=first_line.removeprefix(GENE_MODEL_PREFIX).strip(),
    )


def _sample_name_from_path(path: Path) -> str:
    """A sample name for a headerless single-sample file: the file name without extensions."""
    name = path.name
    for suffix in (".gz", ".txt", ".tsv", ".counts", ".htseq"):
        name = name.removesuffix(suffix)
    return name


def _raise_on_duplicated_samples(path: Path, sep: str) -> None:
    """Raise when a counts matrix names one sample in two columns (read before pandas renames)."""
    # pandas renames a repeated column "X" to "X.1" and has no option to refuse: read the
    # header as a row of values instead.
    header = pd.read_csv(
        io.StringIO(_first_line(path)), sep=sep, header=None, dtype=str, keep_default_na=False
    )
    names = pd.Series(header.iloc[0].to_numpy()[1:])
    repeated = names[names.duplicated(keep=False)]
    if repeated.empty:
        return
    name = str(repeated.iloc[0])
    columns = [int(i) + 2 for i in repeated.index[repeated == name]]
    parsed = parse_tcga_barcode(name)
    patient = f"patient {parsed.patient_id}, " if parsed else ""
    raise CountsFormatError(
        f"{path}: {patient}sample {name!r} is the header of columns {columns}: two columns for "
        "one sample, and which to use is unknown. Fix: keep one column per sample, or give a "
        "re-sequenced aliquot its own barcode (e.g. ...-01A-11R-A28V-07 or vial 01B)"
    )


def read_counts_matrix(path: str | Path, par_y: ParY = "drop") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a genes x samples counts TSV/CSV or a headerless 2-column HTSeq file: counts, genes.

    The first column holds gene ids; optional ``gene_name``/``symbol`` and ``gene_type``/``biotype``
    columns become the annotation; every other column is a sample of integer counts. HTSeq
    counter rows (``__no_feature``, ...) and STAR ``N_*`` rows are not genes and are left out.
    """
    path = Path(path)
    sep = "," if path.name.removesuffix(".gz").endswith(".csv") else "\t"
    first_fields = _first_line(path).split(sep)
    if len(first_fields) < 2:
        raise CountsFormatError(f"{path}: expected a gene id column and at least one sample column")
    # A headerless file (legacy GDC HTSeq counts) starts with a gene id and an integer.
    headerless = first_fields[1].strip().isdigit()
    if not headerless:
        _raise_on_duplicated_samples(path, sep)
    table = read_table(path, sep, skip_first_line=False, header=not headerless)
    if headerless:
        if table.shape[1] != 2:
            raise CountsFormatError(f"{path}: a headerless counts file must have 2 columns")
        table.columns = ["gene_id", _sample_name_from_path(path)]
    gene_ids = table.iloc[:, 0].astype(str)
    if table.iloc[:, 0].isna().any():
        raise CountsFormatError(f"{path}: empty gene id in the first column")
    not_gene = gene_ids.str.startswith(_HTSEQ_COUNTER_PREFIX) | gene_ids.isin(STAR_SUMMARY_ROWS)
    table, gene_ids = table.loc[~not_gene.to_numpy()], gene_ids[~not_gene]
    if table.empty:
        raise CountsFormatError(f"{path}: no gene rows")
    symbol_column = next((c for c in _SYMBOL_COLUMNS if c in table.columns[1:]), None)
    biotype_column = next((c for c in _BIOTYPE_COLUMNS if c in table.columns[1:]), None)
    sample_columns = [c for c in table.columns[1:] if c not in (symbol_column, biotype_column)]
    if not sample_columns:
        raise CountsFormatError(f"{path}: no sample columns")
    _raise_on_duplicates(pd.Index(gene_ids), path, "in the file")
    ids, keep = unversioned_gene_ids(gene_ids, par_y)
    _raise_on_duplicates(ids[keep], path, "after removing the version")
    counts = pd.DataFrame(
        {str(c): _validated_counts(table[c], path, str(c), gene_ids)[keep] for c in sample_columns},
        index=ids[keep],
    )
    counts.columns.name = "sample"
    genes = pd.DataFrame(
        {
            "symbol": table[symbol_column].to_numpy()[keep] if symbol_column else None,
            "biotype": table[biotype_column].to_numpy()[keep] if biotype_column else None,
        },
        index=ids[keep],
    )
    return counts, genes


def parse_tcga_barcode(barcode: str) -> TcgaBarcode | None:
    """Parse a TCGA sample or aliquot barcode (at least ``TCGA-XX-XXXX-NN``); None if not one."""
    match = _TCGA_SAMPLE_BARCODE.match(barcode.strip().upper())
    if match is None:
        return None
    patient_id, sample_type, vial = match.groups()
    return TcgaBarcode(barcode=barcode, patient_id=patient_id, sample_type=sample_type, vial=vial)


def parse_or_raise(barcode: str, where: str) -> TcgaBarcode:
    """Parse a barcode or raise naming where it came from."""
    parsed = parse_tcga_barcode(str(barcode))
    if parsed is None:
        raise CountsFormatError(
            f"{where}: {barcode!r} is not a TCGA sample barcode (expected e.g. TCGA-DD-A1EB-01A)"
        )
    return parsed
