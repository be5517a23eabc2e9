"""The per-patient stages run on a batch of patients in one process, with a process pool.

One job per batch instead of one per patient (issue 30): a job's imports cost more than one
patient's work. Each patient is still done by the per-patient functions
(``hccrad.imaging.prepare``, ``hccrad.radiomics.patient``), in a worker process of its own, and
writes the same files as one job per patient would, into the batch's folders
(``hccrad.imaging.batches``): the results are byte-identical whatever the batch size or the
number of workers. A patient's failure is its own exclusion record under
``imaging.on_error: exclude`` (the per-patient functions write it); otherwise it stops the batch
with the patient named.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import multiprocessing
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from hccrad.imaging.batches import write_manifest
from hccrad.imaging.prepare import QCDrawer, prepare_patient, prepare_with_predicted_tumour
from hccrad.imaging.prepared import predicted_mask_path, tumour_predicted
from hccrad.radiomics.patient import patient_perturbed_radiomics, radiomics_or_exclusion

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One patient's result in a worker: a line for the log, what it logged, or its error."""

    patient: str
    summary: str
    logged: tuple[str, ...] = ()
    error: str | None = None


class _Lines(logging.Handler):
    """Collects a worker's log records as lines, so that the batch log keeps patients apart."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _captured(step: Callable[..., str], patient: str, *args: Any) -> Outcome:
    """Run one patient's step in a worker; its log lines and any error come back as text.

    An error comes back as text because an exception object need not survive pickling
    (ImageQCError's constructor takes four arguments, its pickle one).
    """
    root = logging.getLogger()
    handler = _Lines()
    saved = root.handlers[:]
    root.handlers = [handler]
    try:
        return Outcome(patient, step(patient, *args), tuple(handler.lines))
    # Every failure, so that the parent can name its patient.
    except Exception:
        return Outcome(patient, "failed", tuple(handler.lines), traceback.format_exc())
    finally:
        root.handlers = saved


def run_batch(
    step: Callable[..., str],
    tasks: Sequence[tuple[Any, ...]],
    threads: int,
    log: logging.Logger,
) -> list[Outcome]:
    """Run ``step(patient, *rest)`` for each task ``(patient, *rest)`` on ``threads`` workers.

    Results come back in task order, each patient's log lines grouped under its id; the first
    failed patient (in that order) stops the batch with a RuntimeError naming it.
    """
    # fork, not spawn: Snakemake runs the script as __main__ without a main guard, and spawn
    # would run it again in every worker. The parent has run no image filter (no thread pool
    # of ITK to inherit) when it forks.
    context = multiprocessing.get_context("fork")
    workers = max(1, min(threads, len(tasks)))
    outcomes = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_captured, step, *task) for task in tasks]
        for future in futures:
            outcome = future.result()
            log.info("patient %s: %s", outcome.patient, outcome.summary)
            for line in outcome.logged:
                log.info("  %s: %s", outcome.patient, line)
            if outcome.error is not None:
                pool.shutdown(cancel_futures=True)
                raise RuntimeError(f"patient {outcome.patient} failed:\n{outcome.error}")
            outcomes.append(outcome)
    return outcomes


@dataclasses.dataclass(frozen=True)
class Extraction:
    """What every patient's radiomics step takes: parameter file, config, grid, on_error."""

    params: str
    radiomics_cfg: Mapping[str, Any]
    spacing_mm: Sequence[float]
    on_error: str


def extract_into(patient: str, folder: Path, extraction: Extraction, out: Path) -> str:
    """A prepared patient's radiomics written as ``<patient>.parquet``, diagnostics, record."""
    result = radiomics_or_exclusion(
        patient,
        folder,
        extraction.params,
        extraction.radiomics_cfg,
        extraction.spacing_mm,
        extraction.on_error,
    )
    result.write(
        out / f"{patient}.parquet",
        out / f"{patient}_diagnostics.tsv",
        out / f"{patient}_exclusion.tsv",
    )
    if len(result.exclusion):
        record = result.exclusion.iloc[0]
        return f"excluded at {record['step']}: {record['file']}: {record['reason']}"
    return f"{result.features.shape[1]} features"


def _prepare_one(
    patient: str,
    row: pd.Series,
    prepared: Path,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    masks: str,
    draw_qc: QCDrawer | None,
    extraction: Extraction | None,
    radiomics: Path | None,
) -> str:
    """Prepare one patient and, when asked, extract its radiomics from the prepared folder."""
    folder = prepared / patient
    exclusion = prepare_patient(
        patient, row, imaging_cfg, modality, folder, masks=masks, draw_qc=draw_qc
    )
    summary = exclusion.reason if exclusion else "prepared"
    if extraction is None or radiomics is None:
        return summary
    # The extraction reads the volumes back from the folder just written (from the page
    # cache, milliseconds): the phases are stored as scaled int16 with float32 geometry
    # (hccrad.imaging.write), so the in-memory floats are not what the features were always
    # extracted from, and the features must stay byte-identical to one job per patient.
    return f"{summary}; {extract_into(patient, folder, extraction, radiomics)}"


def prepare_batch(
    sheet: pd.DataFrame,
    patients: Sequence[str],
    imaging_cfg: Mapping[str, Any],
    modality: str,
    prepared: str | Path,
    *,
    masks: str = "reference",
    draw_qc: QCDrawer | None = None,
    extraction: Extraction | None = None,
    radiomics: str | Path | None = None,
    threads: int = 1,
    log: logging.Logger | None = None,
) -> list[Outcome]:
    """Prepare a batch of patients into ``prepared/<patient>/``; with ``extraction``, their
    radiomics too into ``radiomics/`` (``<patient>.parquet``, diagnostics, exclusion record).
    """
    prepared = Path(prepared)
    write_manifest(prepared, patients)
    out = None if radiomics is None else Path(radiomics)
    if out is not None:
        write_manifest(out, patients)
    step = functools.partial(
        _prepare_one,
        prepared=prepared,
        imaging_cfg=imaging_cfg,
        modality=modality,
        masks=masks,
        draw_qc=draw_qc,
        extraction=extraction,
        radiomics=out,
    )
    tasks = [(p, sheet.loc[p]) for p in patients]
    return run_batch(step, tasks, threads, log or logging.getLogger(__name__))


def _radiomics_one(patient: str, prepared: Path, extraction: Extraction, out: Path) -> str:
    """One prepared patient's radiomics (the liver-only cohorts' predicted-tumour folders)."""
    return extract_into(patient, prepared / patient, extraction, out)


def radiomics_batch(
    prepared: str | Path,
    patients: Sequence[str],
    extraction: Extraction,
    radiomics: str | Path,
    *,
    threads: int = 1,
    log: logging.Logger | None = None,
) -> list[Outcome]:
    """Radiomics of a batch of prepared patients (``prepared/<patient>/``) into ``radiomics/``."""
    out = Path(radiomics)
    write_manifest(out, patients)
    step = functools.partial(
        _radiomics_one, prepared=Path(prepared), extraction=extraction, out=out
    )
    return run_batch(step, [(p,) for p in patients], threads, log or logging.getLogger(__name__))


def _perturbed_one(
    patient: str,
    folder: Path,
    exclusion: Path,
    extraction: Extraction,
    seed: int,
    out: Path,
) -> str:
    """One patient's perturbed-mask features written as ``<patient>.parquet``."""
    table = patient_perturbed_radiomics(
        patient,
        folder,
        extraction.params,
        extraction.radiomics_cfg,
        extraction.spacing_mm,
        seed,
        exclusion=exclusion,
        on_error=extraction.on_error,
    )
    table.to_parquet(out / f"{patient}.parquet")
    return "perturbations: " + (", ".join(table["perturbation"]) or "none (patient excluded)")


def perturbed_batch(
    folders: Mapping[str, Path],
    exclusions: Mapping[str, Path],
    patients: Sequence[str],
    extraction: Extraction,
    seed: int,
    out: str | Path,
    *,
    threads: int = 1,
    log: logging.Logger | None = None,
) -> list[Outcome]:
    """Perturbed-mask features of a batch of patients into ``out/<patient>.parquet``.

    ``folders``/``exclusions``: each patient's prepared folder and radiomics exclusion record.
    """
    out = Path(out)
    write_manifest(out, patients)
    step = functools.partial(_perturbed_one, extraction=extraction, seed=seed, out=out)
    tasks = [(p, folders[p], exclusions[p]) for p in patients]
    return run_batch(step, tasks, threads, log or logging.getLogger(__name__))


def _predicted_one(
    patient: str,
    row: pd.Series,
    prepared: Path,
    tumour_found: bool,
    masks: Path,
    imaging_cfg: Mapping[str, Any],
    modality: str,
    draw_qc: QCDrawer | None,
    out: Path,
) -> str:
    """One liver-only patient prepared again with the model's tumour into ``out/<patient>``."""
    exclusion = prepare_with_predicted_tumour(
        patient,
        row,
        prepared,
        predicted_mask_path(masks, patient),
        tumour_found,
        imaging_cfg,
        modality,
        out / patient,
        draw_qc=draw_qc,
    )
    return exclusion.reason if exclusion else "prepared"


def predicted_tumour_batch(
    sheet: pd.DataFrame,
    folders: Mapping[str, Path],
    predictions: pd.DataFrame,
    masks: str | Path,
    patients: Sequence[str],
    imaging_cfg: Mapping[str, Any],
    modality: str,
    out: str | Path,
    *,
    draw_qc: QCDrawer | None = None,
    threads: int = 1,
    log: logging.Logger | None = None,
) -> list[Outcome]:
    """Liver-only patients of a batch prepared again with the segmentation model's tumour."""
    out = Path(out)
    write_manifest(out, patients)
    step = functools.partial(
        _predicted_one,
        masks=Path(masks),
        imaging_cfg=imaging_cfg,
        modality=modality,
        draw_qc=draw_qc,
        out=out,
    )
    tasks = [(p, sheet.loc[p], folders[p], tumour_predicted(predictions, p)) for p in patients]
    return run_batch(step, tasks, threads, log or logging.getLogger(__name__))
