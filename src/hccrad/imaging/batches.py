"""Patients in batches: which batch a patient is in, and the folders a batch job writes.

The per-patient stages (preparation, radiomics, perturbed-mask radiomics, the predicted tumour)
run one job per batch of patients rather than one per patient: a job's imports and the
Snakefile parse cost more than one patient's work (issue 30). A batch is a chunk of
``batch_size`` patients in the cohort's planned order (``cohort_patients``: the config's ids,
or the imported sheet's), so the assignment is known before any job runs and never depends on
the machine. Each batch job writes one folder per batch, ``.../batch_<k>/`` (k from 1), holding
one entry per patient, named by its id exactly as written, and ``patients.txt``: the batch's ids
in order, one a line, which is how readers find the patients and their order.

Standard library only: the workflow's parse imports this module (workflow/rules/common.smk).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# The batch's ids in order, one a line, beside its patients' folders or files.
MANIFEST = "patients.txt"
BATCH_PREFIX = "batch_"


def batch_chunks(patients: Sequence[str], batch_size: int) -> list[list[str]]:
    """``patients`` in consecutive chunks of ``batch_size`` (the last may be smaller)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    return [list(patients[i : i + batch_size]) for i in range(0, len(patients), batch_size)]


def batch_of(patient: str, patients: Sequence[str], batch_size: int) -> int:
    """The batch number (from 1) of ``patient`` among ``patients``."""
    return list(patients).index(patient) // batch_size + 1


def batch_members(patients: Sequence[str], batch_size: int, batch: int) -> list[str]:
    """The patients of batch ``batch`` (from 1); ValueError if there is no such batch."""
    chunks = batch_chunks(patients, batch_size)
    if not 1 <= batch <= len(chunks):
        raise ValueError(f"batch {batch} does not exist: {len(chunks)} batch(es) of {batch_size}")
    return chunks[batch - 1]


def write_manifest(folder: str | Path, patients: Sequence[str]) -> None:
    """Write a batch folder's ``patients.txt`` (creating the folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text("".join(f"{p}\n" for p in patients), encoding="utf-8")


def read_manifest(folder: str | Path) -> list[str]:
    """The patient ids of a batch folder, in order."""
    return (Path(folder) / MANIFEST).read_text(encoding="utf-8").splitlines()


def is_batch(path: str | Path) -> bool:
    """Whether ``path`` is a batch folder (it has a manifest)."""
    return (Path(path) / MANIFEST).is_file()


def patient_folders(paths: Sequence[str | Path]) -> dict[str, Path]:
    """Patient folders keyed by id: batch folders opened in manifest order, others as given.

    A plain patient folder (its name is the id) is kept, so that callers accept both.
    """
    folders: dict[str, Path] = {}
    for path in map(Path, paths):
        if is_batch(path):
            folders.update({p: path / p for p in read_manifest(path)})
        else:
            folders[path.name] = path
    return folders


def patient_files(batches: Sequence[str | Path], suffix: str) -> list[Path]:
    """Each patient's ``<id><suffix>`` file of the batch folders, in batch and manifest order."""
    return [Path(b) / f"{p}{suffix}" for b in batches for p in read_manifest(b)]


def robustness_chunks(
    sheet: str | Path, exclusions: str | Path, n_patients: int, batch_size: int
) -> list[list[str]]:
    """The ICC's robustness patients (training patients not excluded) in batches.

    ``sheet``: the cohort's sheet; ``exclusions``: its gathered exclusions.tsv. The same
    function plans the DAG and tells a perturbed batch job its patients.
    """
    # pandas: not at parse (workflow/rules/common.smk), only once the sheet exists.
    from hccrad.cohorts.sheet import read_patients, read_sheet, robustness_patients

    table = read_sheet(sheet)
    kept = table.drop(index=read_patients(exclusions).index)
    return batch_chunks(list(robustness_patients(kept, n_patients)), batch_size)
