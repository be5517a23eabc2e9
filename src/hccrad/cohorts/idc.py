"""Download manifests from the shipped Imaging Data Commons index, offline.

The index tables in resources/idc are extracts of the series index that idc-index-data 25.0.5
ships (IDC v25); one row per DICOM series. A manifest picks, per patient, one pre-treatment
study and in it one series per contrast phase (series-description patterns from the config)
and optionally the segmentation series; patients without them go to an exclusions table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

INDEX_COLUMNS = (
    "PatientID",
    "StudyInstanceUID",
    "StudyDate",
    "SeriesInstanceUID",
    "SeriesNumber",
    "Modality",
    "SeriesDescription",
    "instanceCount",
    "series_size_MB",
    "crdc_series_uuid",
    "license_short_name",
)
MANIFEST_COLUMNS = (
    "patient_id",
    "study_uid",
    "study_date",
    "role",
    "modality",
    "series_uid",
    "series_number",
    "series_description",
    "crdc_series_uuid",
    "instance_count",
    "series_size_mb",
    "license",
)
SEGMENTATION_ROLE = "segmentation"


class ManifestError(ValueError):
    """An index or selection that cannot give a manifest; the message names the fix."""


def read_index(path: str | Path) -> pd.DataFrame:
    """An IDC series index extract (CSV), checked for the columns the manifest needs."""
    index = pd.read_csv(path, dtype={"SeriesNumber": "Int64", "instanceCount": "Int64"})
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ManifestError(
            f"{path}: IDC index lacks column(s) {missing}; export it from idc-index "
            "(IDCClient().index) with these columns"
        )
    return index


def _matches(descriptions: pd.Series, pattern: str) -> pd.Series:
    """Which series descriptions match a case-insensitive regular expression."""
    return descriptions.fillna("").str.contains(pattern, flags=re.IGNORECASE, regex=True)


def _pick(candidates: pd.DataFrame) -> pd.Series:
    """One series of several candidates: the lowest series number, then the series UID."""
    return candidates.sort_values(["SeriesNumber", "SeriesInstanceUID"]).iloc[0]


def _study_choice(
    study: pd.DataFrame, phases: Mapping[str, str], modalities: list[str], segmentation: str | None
) -> tuple[dict[str, pd.Series], str | None]:
    """Chosen series per role in one study, or what the study lacks."""
    images = study[study["Modality"].isin(modalities)]
    chosen: dict[str, pd.Series] = {}
    for phase, pattern in phases.items():
        candidates = images[_matches(images["SeriesDescription"], pattern)]
        if candidates.empty:
            return {}, f"no {'/'.join(modalities)} series matching {phase}: {pattern!r}"
        chosen[phase] = _pick(candidates)
    if segmentation is not None:
        segs = study[study["Modality"] == "SEG"]
        candidates = segs[_matches(segs["SeriesDescription"], segmentation)]
        if candidates.empty:
            return {}, f"no SEG series matching {segmentation!r}"
        chosen[SEGMENTATION_ROLE] = _pick(candidates)
    return chosen, None


def select_series(
    index: pd.DataFrame, selection: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Manifest (one row per patient and role) and exclusions (patient, reason).

    ``selection`` holds ``modality`` (list), ``phases`` (phase -> description regex),
    ``segmentation`` (SEG description regex or null) and ``study`` (``earliest``: the earliest
    study with every phase, taken as the pre-treatment one).
    """
    modalities = list(selection["modality"])
    phases = dict(selection["phases"])
    segmentation = selection.get("segmentation") or None
    if set(phases) & {SEGMENTATION_ROLE}:
        raise ManifestError(f"phase name {SEGMENTATION_ROLE!r} is reserved; rename the phase")
    rows, exclusions = [], []
    for patient, series in index.groupby("PatientID", sort=True):
        reasons = []
        for study_uid, study in series.sort_values("StudyDate").groupby(
            "StudyInstanceUID", sort=False
        ):
            chosen, reason = _study_choice(study, phases, modalities, segmentation)
            if reason:
                reasons.append(f"study {study['StudyDate'].iloc[0]}: {reason}")
                continue
            for role, row in chosen.items():
                rows.append(
                    {
                        "patient_id": patient,
                        "study_uid": study_uid,
                        "study_date": row["StudyDate"],
                        "role": role,
                        "modality": row["Modality"],
                        "series_uid": row["SeriesInstanceUID"],
                        "series_number": row["SeriesNumber"],
                        "series_description": row["SeriesDescription"],
                        "crdc_series_uuid": row["crdc_series_uuid"],
                        "instance_count": int(row["instanceCount"]),
                        "series_size_mb": row["series_size_MB"],
                        "license": row["license_short_name"],
                    }
                )
            break
        else:
            exclusions.append({"patient_id": patient, "reason": "; ".join(reasons)})
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return manifest, pd.DataFrame(exclusions, columns=["patient_id", "reason"])


def manifest_patients(manifest: pd.DataFrame) -> list[str]:
    """Patients of a manifest, sorted."""
    return sorted(manifest["patient_id"].unique())


def patient_series(manifest: pd.DataFrame, patient: str) -> pd.DataFrame:
    """The manifest rows of one patient (ManifestError if the patient has none)."""
    rows = manifest[manifest["patient_id"] == patient]
    if rows.empty:
        raise ManifestError(f"patient {patient!r} is not in the download manifest")
    return rows
