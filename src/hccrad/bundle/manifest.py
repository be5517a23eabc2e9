"""The bundle's manifest: format and versions, what the models were trained on, checksums.

A bundle holds pickled scikit-learn/XGBoost estimators and hccrad classes (models.joblib) and
network weights whose architectures hccrad builds: another hccrad may not rebuild them the same
way, so loading refuses a bundle of an unknown format or of an hccrad release it cannot honour,
and a file whose checksum differs from the manifest's.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from packaging.version import InvalidVersion, Version

import hccrad
from hccrad.core.splits import TRAIN

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INTENDED_USE = (
    "Research use: scoring the response (or the endpoint named) of a patient with "
    "hepatocellular carcinoma to transarterial chemoembolisation from a pre-treatment scan of "
    "the modality and phases the models were trained on, with the clinical values they use. "
    "Not a medical device; no clinical decision may rest on it."
)
LIMITS = (
    "Trained on the cohort, centres and scanners summarised under models; a patient unlike them "
    "(voxel spacing, intensities, tumour size, radiomic values) is flagged out of domain and its "
    "scores are unreliable. Images must be prepared as the training images were (the imaging "
    "section). Thresholds and risk-group cut-offs were fixed on the training split and are not "
    "recalibrated for another population. Probabilities are calibrated only as far as the "
    "calibration table shows."
)


class BundleError(ValueError):
    """A bundle that cannot be used: its format, its hccrad version or a damaged file."""


def hccrad_version() -> str:
    """The version of the hccrad running now (the package's __version__)."""
    return hccrad.__version__


def _release(version: str) -> tuple[int, int]:
    """(major, minor) of a version string, else BundleError."""
    try:
        parsed = Version(version)
    except InvalidVersion as error:
        raise BundleError(f"bundle: {version!r} is not a version number") from error
    return parsed.major, parsed.minor


def can_honour(written: str, installed: str) -> bool:
    """Whether an hccrad of ``installed`` can load models written by ``written``.

    Semantic versioning: before 1.0 a minor release may change the model classes, so the minor
    must match; from 1.0 the major must, and the installed release must not be older.
    """
    (w_major, w_minor), (i_major, i_minor) = _release(written), _release(installed)
    if w_major == 0 or i_major == 0:
        return (w_major, w_minor) == (i_major, i_minor)
    return w_major == i_major and (i_major, i_minor) >= (w_major, w_minor)


def check_versions(manifest: Mapping[str, Any], installed: str | None = None) -> None:
    """Raise BundleError unless this hccrad can honour the bundle's format and version."""
    installed = installed or hccrad_version()
    written = str(manifest.get("hccrad_version", "unknown"))
    fmt = manifest.get("bundle_format")
    if fmt != FORMAT_VERSION:
        raise BundleError(
            f"bundle format {fmt!r} (written by hccrad {written}) cannot be read by hccrad "
            f"{installed}, which reads bundle format {FORMAT_VERSION}. Fix: install hccrad "
            f"{written} to use this bundle, or rebuild the bundle with hccrad {installed} "
            "(snakemake target results/<cohort>/bundle/<endpoint>)."
        )
    if written == "unknown" or not can_honour(written, installed):
        raise BundleError(
            f"bundle written by hccrad {written} cannot be loaded by hccrad {installed}: the "
            "fitted models are pickled hccrad classes of that release. Fix: install hccrad "
            f"{written} (pip install hccrad=={written}) to use this bundle, or rebuild the "
            f"bundle with hccrad {installed} (snakemake target "
            "results/<cohort>/bundle/<endpoint>)."
        )


def sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(folder: str | Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` except the manifest, by relative POSIX path."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def verify_checksums(folder: str | Path, manifest: Mapping[str, Any]) -> None:
    """Raise BundleError naming every file missing from the bundle or changed since writing."""
    folder = Path(folder)
    expected = manifest.get("checksums", {})
    missing = sorted(name for name in expected if not (folder / name).is_file())
    changed = sorted(
        name
        for name in expected
        if (folder / name).is_file() and sha256(folder / name) != expected[name]
    )
    if missing or changed:
        raise BundleError(
            f"bundle {folder}: file(s) missing {missing} or changed since it was written "
            f"{changed} (SHA-256 differs from manifest.json). Fix: copy the bundle again from "
            "where the workflow wrote it, or rebuild it."
        )


def created(cohort: str, seed: int, config: Mapping[str, Any]) -> dict[str, Any]:
    """Creation info: cohort, seed, config digest, and a date only from SOURCE_DATE_EPOCH.

    No wall-clock time: the workflow's outputs are byte-identical across runs of one config.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    config_text = json.dumps(config, sort_keys=True, default=str)
    return {
        "date": (datetime.fromtimestamp(int(epoch), tz=UTC).isoformat() if epoch else None),
        "by": f"hccrad {hccrad_version()} (rule model_bundle)",
        "cohort": cohort,
        "seed": seed,
        "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
    }


def training_summary(
    sheet: pd.DataFrame,
    endpoint: str,
    train_patients: Sequence[str],
    features: Sequence[str],
) -> dict[str, Any]:
    """What a model was trained on: n, events and prevalence, patients per centre, features."""
    train = sheet.loc[list(train_patients)]
    outcome = pd.to_numeric(train[endpoint], errors="coerce")
    events = int(outcome.sum())
    return {
        "split": TRAIN,
        "n": len(train),
        "events": events,
        "prevalence": events / len(train) if len(train) else None,
        "centres": {str(k): int(v) for k, v in train["centre"].value_counts().sort_index().items()},
        "features": list(features),
    }


def software(table: pd.DataFrame) -> dict[str, str]:
    """Installed version per package from the run's software_versions.tsv."""
    return {str(row.package): str(row.installed) for row in table.itertuples()}


def write_manifest(folder: str | Path, manifest: Mapping[str, Any]) -> Path:
    """Write manifest.json with the checksums of every other file now in ``folder``."""
    folder = Path(folder)
    full = {**manifest, "checksums": checksums(folder)}
    path = folder / MANIFEST
    path.write_text(json.dumps(full, indent=1, allow_nan=False, default=str) + "\n")
    return path


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """manifest.json of a bundle folder, else BundleError saying what is wrong."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BundleError(
            f"{folder}: no {MANIFEST}; a bundle is the folder results/<cohort>/bundle/<endpoint>"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from error
