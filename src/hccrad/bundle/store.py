"""Write a bundle folder from a run's outputs; load one back, checking versions and checksums.

Layout of ``results/<cohort>/bundle/<endpoint>/``: manifest.json, models.joblib, thresholds.tsv,
cutoffs.tsv, calibration.tsv, robust_features.tsv, radiomics_params.yaml, dltr/ (model.pt,
model.json and the fold networks when deep.ensemble uses them), segment/ (model.pt,
model.json) when the run trained the segmentation network, conformal.json and
domain_reference.json when the run wrote them. Files are copied byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from hccrad.bundle.manifest import (
    FORMAT_VERSION,
    INTENDED_USE,
    LIMITS,
    check_versions,
    created,
    hccrad_version,
    read_manifest,
    software,
    training_summary,
    verify_checksums,
    write_manifest,
)
from hccrad.models.fit import ResponseModel

MODELS = "models.joblib"
DLTR = "dltr"
SEGMENT = "segment"
CONFORMAL = "conformal.json"
DOMAIN = "domain_reference.json"
ROBUST = "robust_features.tsv"
PARAMS = "radiomics_params.yaml"
# The config sections that preparation, features and models depend on.
CONFIG_SECTIONS: tuple[str, ...] = (
    "imaging",
    "radiomics",
    "deep",
    "models",
    "segment",
    "survival",
)


@dataclasses.dataclass(frozen=True)
class BundleSources:
    """The run's files and settings that a bundle is made of."""

    endpoint: str
    cohort: str
    seed: int
    modality: str
    phases: Sequence[str]
    config: Mapping[str, Any]  # the sections of CONFIG_SECTIONS (radiomics: the modality's)
    models: str | Path
    thresholds: str | Path
    cutoffs: str | Path
    calibration: str | Path
    robust_features: str | Path  # features_robust.parquet: its columns are the feature list
    radiomics_params: str | Path
    dltr: Mapping[str, str | Path]  # bundle name (model.pt, fold1.json ...) -> run file
    segment: Mapping[str, str | Path]  # model.pt, model.json; empty without the network
    sheet: pd.DataFrame
    software_versions: pd.DataFrame
    conformal: str | Path | None = None
    domain_reference: str | Path | None = None


def _copy(source: str | Path, target: Path) -> None:
    """Copy one file into the bundle, making its folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _rows(table: pd.DataFrame, model: str) -> list[dict[str, Any]]:
    """A table's rows of one model as JSON records (NaN as None)."""
    rows = table.loc[table["model"] == model] if "model" in table.columns else table.iloc[:0]
    return json.loads(rows.to_json(orient="records"))


def model_entries(
    models: Mapping[str, ResponseModel],
    sheet: pd.DataFrame,
    cutoffs: pd.DataFrame,
    calibration: pd.DataFrame,
) -> dict[str, dict[str, Any]]:
    """Per model: training summary, Youden threshold, survival cut-offs and calibration."""
    return {
        name: {
            "training": training_summary(
                sheet, model.endpoint, model.train_patients, model.columns
            ),
            "youden_threshold": float(model.youden_threshold),
            "survival_cutoffs": _rows(cutoffs, name),
            "calibration": _rows(calibration, name),
        }
        for name, model in models.items()
    }


def write_bundle(out: str | Path, sources: BundleSources) -> Path:
    """Copy a run's models and networks into ``out`` and write its manifest last."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    copies: dict[str, str | Path] = {
        MODELS: sources.models,
        "thresholds.tsv": sources.thresholds,
        "cutoffs.tsv": sources.cutoffs,
        "calibration.tsv": sources.calibration,
        PARAMS: sources.radiomics_params,
    }
    copies |= {f"{DLTR}/{name}": path for name, path in sources.dltr.items()}
    copies |= {f"{SEGMENT}/{name}": path for name, path in sources.segment.items()}
    if sources.conformal is not None:
        copies[CONFORMAL] = sources.conformal
    if sources.domain_reference is not None:
        copies[DOMAIN] = sources.domain_reference
    for name, path in copies.items():
        _copy(path, out / name)
    robust = list(pd.read_parquet(sources.robust_features).columns)
    pd.DataFrame({"feature": robust}).to_csv(out / ROBUST, sep="\t", index=False)
    models = joblib.load(sources.models)
    manifest = {
        "bundle_format": FORMAT_VERSION,
        "hccrad_version": hccrad_version(),
        "endpoint": sources.endpoint,
        "created": created(sources.cohort, sources.seed, sources.config),
        "modality": sources.modality,
        "phases": list(sources.phases),
        "config": dict(sources.config),
        "models": model_entries(
            models,
            sources.sheet,
            pd.read_csv(sources.cutoffs, sep="\t"),
            pd.read_csv(sources.calibration, sep="\t"),
        ),
        "robust_features": robust,
        "dltr_ensemble": sorted(name for name in sources.dltr if name.endswith(".pt")),
        "segmentation_network": bool(sources.segment),
        "conformal": sources.conformal is not None,
        "domain_reference": sources.domain_reference is not None,
        "intended_use": INTENDED_USE,
        "limits": LIMITS,
        "software_versions": software(sources.software_versions),
    }
    return write_manifest(out, manifest)


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its folder, manifest and fitted models (networks load on demand)."""

    folder: Path
    manifest: dict[str, Any]
    models: dict[str, ResponseModel]

    @property
    def endpoint(self) -> str:
        """The endpoint the models predict."""
        return str(self.manifest["endpoint"])

    @property
    def config(self) -> dict[str, Any]:
        """The run's config sections (imaging, radiomics, deep, models, segment)."""
        return dict(self.manifest["config"])

    def path(self, name: str) -> Path:
        """A file of the bundle."""
        return self.folder / name

    def json_or_none(self, name: str) -> dict[str, Any] | None:
        """A JSON file of the bundle (conformal, domain reference), None where absent."""
        path = self.folder / name
        return json.loads(path.read_text()) if path.is_file() else None

    def table(self, name: str) -> pd.DataFrame:
        """A TSV table of the bundle."""
        return pd.read_csv(self.folder / name, sep="\t")


def load_bundle(folder: str | Path, installed: str | None = None) -> Bundle:
    """Read a bundle: refuse another format or hccrad release, or a damaged file, by name."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_versions(manifest, installed)
    verify_checksums(folder, manifest)
    models = joblib.load(folder / MODELS)
    return Bundle(folder, manifest, models)
