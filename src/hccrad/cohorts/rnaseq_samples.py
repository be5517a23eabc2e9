"""GDC sample sheets: one row per counts file, checked, and the STAR files they list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hccrad.cohorts.rnaseq_counts import (
    CountColumn,
    CountsFormatError,
    ParY,
    StarCounts,
    parse_or_raise,
    read_star_counts,
    read_table,
)

SAMPLE_SHEET_COLUMNS = (
    "File ID",
    "File Name",
    "Data Category",
    "Data Type",
    "Project ID",
    "Case ID",
    "Sample ID",
    "Sample Type",
)


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    """Read and validate a GDC sample sheet (TSV); one row per file, indexed by ``File ID``."""
    path = Path(path)
    sheet = read_table(path, "\t", skip_first_line=False, header=True)
    missing = [column for column in SAMPLE_SHEET_COLUMNS if column not in sheet.columns]
    if missing:
        raise CountsFormatError(f"{path}: sample sheet lacks column(s) {missing}")
    for column in ("File ID", "File Name", "Sample ID"):
        if sheet[column].isna().any():
            row = int(np.flatnonzero(sheet[column].isna().to_numpy())[0]) + 2
            raise CountsFormatError(f"{path}: empty {column!r} on line {row}")
    repeated = sheet["File ID"].duplicated(keep=False).to_numpy()
    if repeated.any():
        file_id = sheet["File ID"].to_numpy()[repeated][0]
        lines = [int(i) + 2 for i in np.flatnonzero(sheet["File ID"].to_numpy() == file_id)]
        samples = sorted(set(sheet.loc[sheet["File ID"] == file_id, "Sample ID"]))
        raise CountsFormatError(
            f"{path}: File ID {file_id!r} is on lines {lines} (sample(s) {samples}): one file "
            "listed twice. Fix: remove the repeated row; one row per file"
        )
    pooled = sheet.loc[sheet["Sample ID"].str.contains(","), "File ID"]
    if len(pooled):
        raise CountsFormatError(
            f"{path}: file(s) {list(pooled[:5])} list several samples; expected one per file"
        )
    for case_id, barcode in zip(sheet["Case ID"], sheet["Sample ID"], strict=True):
        parsed = parse_or_raise(barcode, f"{path}: Sample ID")
        if parsed.patient_id != str(case_id).strip().upper():
            raise CountsFormatError(
                f"{path}: Sample ID {barcode!r} does not belong to Case ID {case_id!r}"
            )
    return sheet.set_index("File ID", drop=False)


def locate_sample_sheet_file(
    sheet_row: pd.Series, directory: Path, line: int | None = None
) -> Path:
    """Find a sheet's file where the GDC client puts it (``dir/File ID/File Name``) or flat."""
    nested = directory / str(sheet_row["File ID"]) / str(sheet_row["File Name"])
    flat = directory / str(sheet_row["File Name"])
    for candidate in (nested, flat):
        if candidate.is_file():
            return candidate
    where = f" (sample sheet line {line})" if line is not None else ""
    raise FileNotFoundError(
        f"{nested}: patient {sheet_row.get('Case ID')}, sample {sheet_row['Sample ID']}{where}: "
        f"file {sheet_row['File ID']} not found there nor as {flat}. Fix: download it again "
        "(rerun the download; verified files are kept, only missing ones are fetched) or "
        "remove its row from the sample sheet"
    )


def read_star_files(
    sheet: pd.DataFrame,
    directory: str | Path,
    count_column: CountColumn = "unstranded",
    par_y: ParY = "drop",
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every STAR file of a sample sheet: genes x files counts (columns: File ID), genes."""
    directory = Path(directory)
    columns: list[np.ndarray] = []
    reference: StarCounts | None = None
    reference_path: Path | None = None
    used: dict[Path, int] = {}
    rows = tqdm(sheet.iterrows(), total=len(sheet), desc="STAR files", disable=not progress)
    for position, (_, row) in enumerate(rows):
        line = position + 2  # the header is line 1
        path = locate_sample_sheet_file(row, directory, line)
        where = (
            f"{path}: patient {row.get('Case ID')}, sample {row['Sample ID']} "
            f"(sample sheet line {line})"
        )
        if path.resolve() in used:
            raise CountsFormatError(
                f"{where}: the same file as line {used[path.resolve()]}, so two samples would get "
                "the same counts. Fix: give each row its own file (File Name, File ID)"
            )
        used[path.resolve()] = line
        try:
            star = read_star_counts(path, count_column, par_y)
        except CountsFormatError as error:
            raise CountsFormatError(f"{where}: {str(error).removeprefix(f'{path}: ')}") from error
        if reference is None:
            reference, reference_path = star, path
        elif not star.counts.index.equals(reference.counts.index):
            missing = reference.counts.index.difference(star.counts.index)
            extra = star.counts.index.difference(reference.counts.index)
            raise CountsFormatError(
                f"{where}: gene ids differ from {reference_path} ({len(star.counts)} vs "
                f"{len(reference.counts)} genes, {len(missing)} missing, e.g. "
                f"{list(missing[:3])}, {len(extra)} extra, or a different order): a truncated "
                "file or another gene model. Fix: download or copy the file again, or remove "
                "its row from the sample sheet"
            )
        elif star.gene_model != reference.gene_model:
            raise CountsFormatError(
                f"{where}: gene model {star.gene_model!r} differs from {reference.gene_model!r} "
                f"in {reference_path}. Fix: use files of one gene model (one GDC data release)"
            )
        columns.append(star.counts.to_numpy())
    if reference is None:
        raise CountsFormatError("the sample sheet lists no files")
    counts = pd.DataFrame(
        np.column_stack(columns),
        index=reference.counts.index,
        columns=pd.Index(sheet["File ID"].to_list(), name="sample"),
    )
    return counts, reference.genes
