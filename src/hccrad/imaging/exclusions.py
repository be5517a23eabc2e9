"""Exclusion records: who was left out, at which step, which file, why, and the fix.

A step run with ``on_error="exclude"`` turns an ImageQCError into an Exclusion
(``call_or_exclude``) and writes it as the patient's record (``exclusion.tsv``; header only when
the patient is fine), so the gather step lists every excluded patient; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import pandas as pd

from hccrad.imaging.prepared import read_exclusion
from hccrad.imaging.read import ImageQCError


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


OnError = Literal["raise", "exclude"]
T = TypeVar("T")


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


# The workflow steps that can exclude a patient (the exclusions table's step column).
PREPARE_STEP = "prepare_patient"
PREDICTED_TUMOUR_STEP = "prepare_predicted_tumour"


# config imaging.on_error -> call_or_exclude's on_error.
ON_ERROR: dict[str, OnError] = {"stop": "raise", "exclude": "exclude"}


def exclusion_record(exclusion: Exclusion | None, step: str) -> pd.DataFrame:
    """A patient's exclusion record: one row naming the step, or none when the patient is fine."""
    rows = [exclusion.as_row() | {"step": step}] if exclusion else []
    return pd.DataFrame(rows, columns=[*EXCLUSION_COLUMNS, "step"], dtype=str)


def write_exclusion(
    folder: str | Path, exclusion: Exclusion | None, step: str = PREPARE_STEP
) -> None:
    """Write the patient's exclusion record (a header-only table when the patient is fine)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    exclusion_record(exclusion, step).to_csv(Path(folder) / "exclusion.tsv", sep="\t", index=False)


def gather_exclusions(records: Sequence[str | Path], cohort: str) -> pd.DataFrame:
    """Every excluded patient of a cohort with step, file, reason and fix (empty if none).

    ``records``: per-patient exclusion records, files or prepared folders (read_exclusion).
    """
    tables = [table for table in map(read_exclusion, records) if len(table)]
    table = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=[*EXCLUSION_COLUMNS, "step"], dtype=str)
    )
    table = table.reindex(columns=[*EXCLUSION_COLUMNS, "step"])
    # The step that excluded the patient: preparation, the predicted tumour (liver-only), or
    # the extraction; records written before the step column existed are preparation's.
    step = table.pop("step").fillna(PREPARE_STEP)
    table.insert(1, "cohort", cohort)
    table.insert(2, "step", step)
    return table.set_index("patient_id")
