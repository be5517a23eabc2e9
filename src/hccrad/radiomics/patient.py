"""One patient's radiomics step, on its prepared volumes, and the cohort's tables gathered.

``radiomics_or_exclusion`` / ``patient_perturbed_radiomics`` compute a prepared patient's
features (one row) and diagnostics, or its exclusion record: a patient excluded in preparation
keeps that record; a failed extraction raises ``ImageQCError`` or, with ``on_error="exclude"``,
becomes the step's ``<patient>_exclusion.tsv`` so the gather step lists it; nothing is dropped
silently.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hccrad.cohorts.sheet import read_patients
from hccrad.imaging.exclusions import (
    ON_ERROR,
    call_or_exclude,
    exclusion_record,
    gather_exclusions,
)
from hccrad.imaging.prepared import prepared_phases, read_exclusion
from hccrad.imaging.read import ImageQCError
from hccrad.imaging.volumes import PatientVolumes, load_prepared
from hccrad.radiomics.extract import extract_patient, gather_features
from hccrad.radiomics.robustness import perturbed_volumes

# The radiomics step's name in the exclusions table's step column (hccrad.imaging.exclusions).
RADIOMICS_STEP = "patient_radiomics"


# The first columns of a patient's diagnostics table: all that an excluded patient's has.
DIAGNOSTICS_KEYS: tuple[str, ...] = ("patient_id", "phase", "region")
# Errors of PyRadiomics and SimpleITK on one patient's volumes, besides the ValueError that
# extract_patient already names: a C++ exception surfaces as RuntimeError.
EXTRACTION_ERRORS: tuple[type[Exception], ...] = (RuntimeError,)


LOGGER = logging.getLogger(__name__)


def radiomics_settings(
    radiomics_cfg: Mapping[str, Any], spacing_mm: Sequence[float]
) -> dict[str, Any]:
    """PyRadiomics setting overrides: the config's, and resampling to the prepared spacing."""
    # The volumes are already resampled: PyRadiomics must only crop, not interpolate again.
    return {**dict(radiomics_cfg.get("settings", {})), "resampledPixelSpacing": list(spacing_mm)}


def _extract(
    volumes: PatientVolumes,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PyRadiomics on prepared volumes with the configured regions, ring and settings."""
    try:
        return extract_patient(
            volumes,
            params,
            regions=radiomics_cfg["regions"],
            ring_mm=radiomics_cfg["ring_mm"],
            setting_overrides=radiomics_settings(radiomics_cfg, spacing_mm),
        )
    except EXTRACTION_ERRORS as error:
        # One patient's volumes broke the extraction: name the patient and the prepared mask.
        raise ImageQCError(
            volumes.patient_id,
            volumes.sources.get("mask"),
            f"PyRadiomics failed on this patient ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[-1] if str(error).strip() else 'no message'})",
            "check the patient's prepared volumes and mask (qc.png beside them), or leave the "
            "patient out with imaging: on_error: exclude",
        ) from error


def empty_features() -> pd.DataFrame:
    """The features table of an excluded patient: no row."""
    return pd.DataFrame(index=pd.Index([], name="patient_id", dtype=str))


def empty_diagnostics() -> pd.DataFrame:
    """The diagnostics table of an excluded patient: the key columns only, no row."""
    return pd.DataFrame(columns=list(DIAGNOSTICS_KEYS), dtype=str)


def patient_radiomics(
    patient_id: str,
    folder: str | Path,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One patient's features (one row) and diagnostics; empty frames if it was excluded.

    An extraction failure raises ImageQCError naming the patient, the file and the fix.
    """
    if len(read_exclusion(folder)):
        return empty_features(), empty_diagnostics()
    volumes = load_prepared(patient_id, folder, prepared_phases(folder))
    return _extract(volumes, params, radiomics_cfg, spacing_mm)


@dataclasses.dataclass(frozen=True)
class PatientRadiomics:
    """One patient's radiomics step: features (one row, none if excluded), diagnostics, record."""

    features: pd.DataFrame
    diagnostics: pd.DataFrame
    exclusion: pd.DataFrame

    def write(self, features: str | Path, diagnostics: str | Path, exclusion: str | Path) -> None:
        """Write the three tables (features as Parquet, diagnostics and record as TSV)."""
        self.features.to_parquet(features)
        self.diagnostics.to_csv(diagnostics, sep="\t", index=False)
        self.exclusion.to_csv(exclusion, sep="\t", index=False)


def radiomics_or_exclusion(
    patient_id: str,
    folder: str | Path,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
    on_error: str,
) -> PatientRadiomics:
    """A prepared patient's radiomics, or its exclusion record (config ``on_error``).

    A patient excluded in preparation keeps that record (its step says where); with
    ``on_error="exclude"`` a failed extraction becomes the record, step patient_radiomics; with
    ``stop`` it raises ImageQCError.
    """
    carried = read_exclusion(folder)
    if len(carried):
        return PatientRadiomics(empty_features(), empty_diagnostics(), carried)
    result, exclusion = call_or_exclude(
        patient_radiomics,
        patient_id,
        folder,
        params,
        radiomics_cfg,
        spacing_mm,
        on_error=ON_ERROR[on_error],
    )
    if result is None:
        return PatientRadiomics(
            empty_features(), empty_diagnostics(), exclusion_record(exclusion, RADIOMICS_STEP)
        )
    features, diagnostics = result
    return PatientRadiomics(features, diagnostics, exclusion_record(None, RADIOMICS_STEP))


def _perturbed_features(
    volumes: PatientVolumes,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
    seed: int,
) -> pd.DataFrame:
    """Features of prepared volumes under each configured mask perturbation."""
    rows = []
    for kind in radiomics_cfg["robustness"]["perturbations"]:
        perturbed = perturbed_volumes(volumes, kind, seed=seed)
        features, _ = _extract(perturbed, params, radiomics_cfg, spacing_mm)
        rows.append(features.assign(perturbation=kind))
    return pd.concat(rows)


def patient_perturbed_radiomics(
    patient_id: str,
    folder: str | Path,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
    seed: int,
    *,
    exclusion: str | Path | None = None,
    on_error: str = "stop",
) -> pd.DataFrame:
    """Features of one patient under each mask perturbation (rows: perturbation).

    ``exclusion``: the patient's radiomics exclusion record. An excluded patient (there or in
    preparation) has no rows; so has one whose perturbed masks PyRadiomics cannot use when
    ``on_error`` is ``exclude`` (logged with the reason; the ICC is computed without it).
    """
    empty = empty_features().assign(perturbation=pd.Series(dtype=str))
    if len(read_exclusion(folder)) or (exclusion is not None and len(read_exclusion(exclusion))):
        return empty
    volumes = load_prepared(patient_id, folder, prepared_phases(folder))
    table, failure = call_or_exclude(
        _perturbed_features,
        volumes,
        params,
        radiomics_cfg,
        spacing_mm,
        seed,
        on_error=ON_ERROR[on_error],
    )
    if failure is not None:
        LOGGER.warning(
            "patient %s left out of the ICC: %s: %s", patient_id, failure.file, failure.reason
        )
        return empty
    return table


def split_perturbed(tables: Sequence[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per-patient perturbed tables regrouped as {perturbation: patients x features}.

    Excluded patients' tables are empty and left out; the ICC needs at least one patient.
    """
    kept = [table for table in tables if len(table)]
    if not kept:
        raise ValueError(
            "no robustness patient has perturbed features (each was excluded, or PyRadiomics "
            "could not use its perturbed masks: see logs/<cohort>/perturbed_radiomics_batch/); "
            "fix their images or raise radiomics.robustness.n_patients"
        )
    stacked = pd.concat(kept)
    return {
        kind: group.drop(columns="perturbation")
        for kind, group in stacked.groupby("perturbation", sort=False)
    }


def gather_diagnostics(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Every patient's diagnostics stacked; excluded patients' are header-only and add no row."""
    tables = [read_patients(path, index=False) for path in paths]
    kept = [table for table in tables if len(table)]
    return pd.concat(kept, ignore_index=True) if kept else empty_diagnostics()


def gather_radiomics(
    features: Sequence[str | Path],
    diagnostics: Sequence[str | Path],
    exclusions: Sequence[str | Path],
    cohort: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A cohort's features, diagnostics and exclusions from its patients' radiomics outputs.

    Excluded patients' tables are empty and add no row; their records make the exclusions.
    """
    excluded = gather_exclusions(exclusions, cohort)
    tables = [pd.read_parquet(path) for path in features]
    kept = [table for table in tables if len(table)]
    if not kept:
        reasons = "; ".join(f"patient {p}: {r}" for p, r in excluded["reason"].items())
        raise ValueError(
            f"{cohort}: every patient was excluded, so there are no features ({reasons}). "
            f"Fix: correct the files named; each patient's file and fix are in "
            f"results/{cohort}/radiomics/patients/batch_<k>/<patient>_exclusion.tsv"
        )
    return gather_features(kept), gather_diagnostics(diagnostics), excluded
