"""A hospital-style `images: sheet` CT cohort with three damaged patients, and its config.

Eight synthetic CT patients (HU, 2 x 2 x 5 mm, a liver with one tumour), a CSV table naming
their files and a column map; ids as a hospital writes them (``001``, ``A-7``, ``12``). One
patient's image is unreadable (a gzip'd CSV named .nii.gz), one is truncated (half the bytes of
an int16 .nii.gz) and one has no tumour in its mask. The workflow runs on the tiny config of
tests/conftest.py with this cohort as the response cohort.
"""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import tiny_config, workflow_command

from hccrad.cohorts.phantom import Grid, ellipsoid, write_nifti

COHORT = "byo_ct"
PHASE = "portal_venous"
SPACING_MM = (2.0, 2.0, 5.0)
FOV_MM = (160.0, 160.0, 100.0)
# Ids as a hospital writes them: leading zeros, a dash, a dot, digits only. The damaged
# patients have such ids too, so that the exclusions table shows them as written.
GOOD = ("001", "A-7", "0042", "P.5", "7")
UNREADABLE, TRUNCATED, NO_TUMOUR = "007", "B-3", "12"
BAD = (UNREADABLE, TRUNCATED, NO_TUMOUR)
PATIENTS = (*GOOD, *BAD)
# What one workflow run of the cohort asks for: every per-cohort imaging output of the default
# target (Table 1, both QC figures, the gather step's three tables, the feature ICC on the first
# robustness.n_patients training patients, the robust features) and their inputs. The models
# and networks need more than eight patients.
TARGETS = (
    f"results/{COHORT}/table1.tsv",
    f"results/{COHORT}/qc/cohort_qc.png",
    f"results/{COHORT}/qc/preprocessing_qc.png",
    f"results/{COHORT}/exclusions.tsv",
    f"results/{COHORT}/radiomics/features.parquet",
    f"results/{COHORT}/radiomics/diagnostics.tsv",
    f"results/{COHORT}/radiomics/icc.tsv",
    f"results/{COHORT}/radiomics/features_robust.parquet",
)


@dataclass(frozen=True)
class SheetCohort:
    """The cohort's working directory, its table and where each patient's files are."""

    workdir: Path
    table: Path
    images: dict[str, Path]
    masks: dict[str, Path]

    @property
    def results(self) -> Path:
        """The cohort's results folder."""
        return self.workdir / "results" / COHORT


def tumour_level(index: int) -> float:
    """The mean tumour intensity (HU) of patient number ``index``: each patient's differs."""
    return 60.0 + 8.0 * index


def patient_volumes(index: int, tumour_hu: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One patient's CT (int16 HU) and label mask (1 liver, 2 tumour); sizes differ per index."""
    grid = Grid.from_fov(FOV_MM, SPACING_MM)
    rng = np.random.default_rng(1000 + index)
    body = ellipsoid(grid, (0.0, 0.0, 0.0), (75.0, 60.0, 60.0)) < 1
    liver = ellipsoid(grid, (-10.0, 5.0, 0.0), (50.0 + 2 * index, 38.0, 32.0)) < 1
    radius = 11.0 + 1.5 * index
    shape = (radius, radius * 0.9, radius * 1.1)
    tumour = (ellipsoid(grid, (-15.0, 8.0, 2.0), shape) < 1) & liver
    ct = np.where(body, 50.0, -1000.0)
    ct[liver] = 110.0
    # A grainy tumour: its level and texture differ per patient so the features do.
    level = tumour_level(index) if tumour_hu is None else tumour_hu
    ct[tumour] = level + rng.normal(0.0, 15.0 + index, int(tumour.sum()))
    ct += rng.normal(0.0, 8.0, ct.shape)
    mask = liver.astype(np.uint8) + tumour.astype(np.uint8)
    return np.round(ct).astype(np.int16), mask


def write_patient(
    folder: Path, index: int, *, tumour: bool = True, tumour_hu: float | None = None
) -> tuple[Path, Path]:
    """Write one patient's CT and mask NIfTI; without ``tumour`` the mask has liver only."""
    ct, mask = patient_volumes(index, tumour_hu)
    if not tumour:
        mask = np.minimum(mask, 1).astype(np.uint8)
    image_path, mask_path = folder / f"{PHASE}.nii.gz", folder / "mask.nii.gz"
    affine = Grid.from_fov(FOV_MM, SPACING_MM).affine
    write_nifti(image_path, ct, affine)
    write_nifti(mask_path, mask, affine)
    return image_path, mask_path


def clinical_row(patient: str, index: int) -> dict[str, Any]:
    """Clinical columns of one table row, in a hospital's spelling (the column map recodes)."""
    return {
        "MRN": patient,
        "Age (y)": 55 + index,
        "Gender": "male" if index % 2 else "female",
        "Virus": "HBV" if index % 3 else "HCV",
        "BCLC stage": "B" if index % 2 else "A",
        "Lesions": 1,
        "Size (cm)": 3.0 + 0.2 * index,
        "AFP": 10.0 * (index + 1),
        "Child-Pugh": "A",
        "ALBI": -2.5,
        "ALBI grade": 1,
        "mRECIST": "PR" if index % 2 else "SD",
        "PFS (months)": 6.0 + index,
        "Progressed": index % 2,
        "OS (months)": 20.0 + index,
        "Died": (index + 1) % 2,
    }


COLUMN_MAP: dict[str, Any] = {
    "patient_id": "MRN",
    "constants": {"centre": "H1"},
    "columns": {
        "age": "Age (y)",
        "sex": {"column": "Gender", "values": {"male": "M", "female": "F"}},
        "aetiology": "Virus",
        "bclc": "BCLC stage",
        "tumour_number": "Lesions",
        "tumour_size_mm": {"column": "Size (cm)", "unit": "cm"},
        "afp": "AFP",
        "child_pugh": "Child-Pugh",
        "albi_score": "ALBI",
        "albi_grade": "ALBI grade",
        "response": {"column": "mRECIST", "values": {"CR": 1, "PR": 1, "SD": 0, "PD": 0}},
        "pfs_time": "PFS (months)",
        "pfs_event": "Progressed",
        "os_time": "OS (months)",
        "os_event": "Died",
        f"image_{PHASE}": "CT file",
        "mask": "Mask file",
    },
    "required": ["response"],
    "split": {"value": "train"},
}


def write_sheet_cohort(workdir: Path) -> SheetCohort:
    """Write the eight patients, the table (relative paths) and the column map into workdir."""
    rows, images, masks = [], {}, {}
    for index, patient in enumerate(PATIENTS):
        folder = workdir / "images" / patient
        image, mask = write_patient(folder, index, tumour=patient != NO_TUMOUR)
        if patient == UNREADABLE:
            # A table exported under an image's name: gzip'd, but no NIfTI header inside.
            with gzip.open(image, "wt") as handle:
                handle.write("x,y,z,hu\n1,2,3,40\n")
        elif patient == TRUNCATED:
            # An interrupted copy: the first half of the bytes of a valid int16 .nii.gz.
            data = image.read_bytes()
            image.write_bytes(data[: len(data) // 2])
        images[patient], masks[patient] = image, mask
        rows.append(
            clinical_row(patient, index)
            | {
                "CT file": str(image.relative_to(workdir)),
                "Mask file": str(mask.relative_to(workdir)),
            }
        )
    table = workdir / "clinical.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    (workdir / "columns.yaml").write_text(yaml.safe_dump(COLUMN_MAP, sort_keys=False))
    return SheetCohort(workdir, table, images, masks)


def sheet_config(on_error: str) -> dict[str, Any]:
    """tiny_config with the sheet cohort as the response cohort (endpoint response)."""
    config = tiny_config()
    config["sheets"] = {
        COHORT: {
            "role": "response",
            "modality": "ct",
            "table": "clinical.csv",
            "column_map": "columns.yaml",
            "images": "sheet",
        }
    }
    config["cohorts"]["response"] = COHORT
    config["endpoints"] = ["response"]
    config["imaging"]["on_error"] = on_error
    # Three per centre: the QC figures' first three patients include an unreadable one.
    config["qc"]["patients_per_centre"] = 3
    # Batches of three (the eight patients in three jobs): a corrected image reruns its batch
    # and no other, which one batch of all eight could not show.
    config["imaging"]["batch_size"] = 3
    return config


def snakemake(
    cohort: SheetCohort, on_error: str, snakemake_bin: str, *options: str
) -> subprocess.CompletedProcess:
    """Run (or, with ``-n``, plan) the cohort's TARGETS with ``on_error``; exit status kept."""
    config_path = cohort.workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(sheet_config(on_error)))
    return subprocess.run(
        [*workflow_command(snakemake_bin, cohort.workdir, *TARGETS), "--cores", "2", *options],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )


@pytest.fixture(scope="module")
def sheet_cohort(tmp_path_factory) -> Callable[[str], SheetCohort]:
    """A factory: the cohort written into a fresh working directory named ``name``."""
    base = tmp_path_factory.mktemp("sheet_cohort")

    def make(name: str) -> SheetCohort:
        return write_sheet_cohort(base / name)

    return make


@pytest.fixture(scope="module")
def exclude_run(sheet_cohort, snakemake_bin) -> SheetCohort:
    """The cohort run once with imaging.on_error: exclude (it must complete)."""
    cohort = sheet_cohort("exclude")
    run = snakemake(cohort, "exclude", snakemake_bin, "--quiet", "rules")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return cohort
