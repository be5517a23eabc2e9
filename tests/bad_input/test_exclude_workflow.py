"""imaging.on_error end to end on a hospital's `images: sheet` CT cohort with damaged patients.

exclude: the run completes, one exclusions.tsv row per damaged patient (step, file, reason,
fix), features and diagnostics for exactly the others. stop: the run stops naming the patient,
the file and the fix. A corrected image saved at the same path reruns that patient's batch only.
Extraction failures (PyRadiomics) follow the same rule, tested on one prepared patient.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)
from conftest import ROOT

from bad_input.conftest import (
    BAD,
    COHORT,
    GOOD,
    NO_TUMOUR,
    PATIENTS,
    PHASE,
    TRUNCATED,
    UNREADABLE,
    sheet_config,
    snakemake,
    tumour_level,
    write_patient,
    write_sheet_cohort,
)
from hccrad.cohorts.sheet_import import planned_sheet, sheet_files
from hccrad.core.config import radiomics_for
from hccrad.imaging.batches import patient_folders, read_manifest
from hccrad.imaging.exclusions import PREPARE_STEP, Exclusion, write_exclusion
from hccrad.imaging.prepare import prepare_patient
from hccrad.imaging.read import ImageQCError
from hccrad.radiomics.patient import (
    DIAGNOSTICS_KEYS,
    RADIOMICS_STEP,
    gather_radiomics,
    patient_perturbed_radiomics,
    radiomics_or_exclusion,
    split_perturbed,
)

HOSPITAL_IDS = ("001", "A-7", "12")
# What patient_radiomics writes per patient (the rule's outputs).
RADIOMICS_OUTPUTS = (".parquet", "_diagnostics.tsv", "_exclusion.tsv")
# The damaged file of each bad patient: its image (unreadable, truncated) or its mask.
DAMAGED = {UNREADABLE: "image", TRUNCATED: "image", NO_TUMOUR: "mask"}


def _cells(path: Path, column: str = "patient_id") -> list[str]:
    """A TSV column's cells exactly as written in the file (no type inference)."""
    with path.open(newline="") as handle:
        return [row[column] for row in csv.DictReader(handle, delimiter="\t")]


def _damaged_file(cohort, patient: str) -> str:
    """The damaged file of a bad patient as the table names it (relative to the workdir)."""
    files = cohort.images if DAMAGED[patient] == "image" else cohort.masks
    return str(files[patient].relative_to(cohort.workdir))


def planned_jobs(stdout: str) -> set[tuple[str, str]]:
    """(rule, patient or batch) of every job a dry run plans ('' for a cohort-wide job)."""
    jobs = set()
    for block in re.split(r"^(?:local)?(?:rule|checkpoint) ", stdout, flags=re.M)[1:]:
        rule = block.split(":", 1)[0]
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
        values = dict(re.findall(r"(\w+)=([^,\s]+)", wildcards[1])) if wildcards else {}
        jobs.add((rule, values.get("patient", values.get("batch", ""))))
    return jobs


@pytest.mark.workflow
def test_exclude_mode_completes_with_one_row_per_bad_patient(exclude_run):
    results = exclude_run.results
    exclusions = pd.read_csv(results / "exclusions.tsv", sep="\t", dtype=str).set_index(
        "patient_id"
    )
    assert sorted(exclusions.index) == sorted(BAD)
    assert list(exclusions.columns) == ["cohort", "step", "file", "reason", "fix"]
    assert exclusions["cohort"].eq(COHORT).all()
    assert exclusions["step"].eq(PREPARE_STEP).all()
    for patient in BAD:
        record = exclusions.loc[patient]
        assert record["file"].endswith(_damaged_file(exclude_run, patient)), record["file"]
        assert record["reason"].strip() and record["fix"].strip(), record.to_dict()
    # Nothing else dropped: the other five have features and diagnostics, each exactly once.
    features = pd.read_parquet(results / "radiomics/features.parquet")
    assert sorted(features.index) == sorted(GOOD)
    assert features.notna().all(axis=None)
    diagnostics = _cells(results / "radiomics/diagnostics.tsv")
    assert sorted(set(diagnostics)) == sorted(GOOD)
    regions = sheet_config("exclude")["radiomics"]["regions"]
    assert len(diagnostics) == len(GOOD) * len(regions)  # one phase
    sheet = _cells(results / "sheet.tsv")
    assert sorted([*features.index, *exclusions.index]) == sorted(sheet) == sorted(PATIENTS)


@pytest.mark.workflow
def test_figures_and_robust_features_show_only_the_patients_kept(exclude_run):
    results = exclude_run.results
    robust = pd.read_parquet(results / "radiomics/features_robust.parquet")
    assert sorted(robust.index) == sorted(GOOD)
    table1 = pd.read_csv(results / "table1.tsv", sep="\t", dtype=str)
    assert len(table1) > 0
    for figure in ("qc/cohort_qc", "qc/preprocessing_qc"):
        assert (results / f"{figure}.png").stat().st_size > 0
        assert (results / f"{figure}.pdf").stat().st_size > 0
    # Three patients per centre in sheet order are 001, 0042 and 007; 007 is unreadable and the
    # next, 12, has no tumour, so the figure shows 7 instead of either.
    log = (exclude_run.workdir / "logs" / COHORT / "qc_figure.log").read_text()
    assert "QC figure of 001, 0042, 7\n" in log, log


@pytest.mark.workflow
def test_damaged_patients_reasons_say_what_is_wrong(exclude_run):
    exclusions = pd.read_csv(exclude_run.results / "exclusions.tsv", sep="\t", dtype=str)
    reasons = exclusions.set_index("patient_id")["reason"]
    assert "tumour" in reasons[NO_TUMOUR]
    # Engineer I's read_image checks (truncated gzip stream, a table named .nii.gz).
    assert "truncated" in reasons[TRUNCATED]
    assert "not a NIfTI" in reasons[UNREADABLE]


@pytest.mark.workflow
def test_hospital_ids_stay_as_written_in_every_output(exclude_run):
    results = exclude_run.results
    written = {
        "sheet.tsv": _cells(results / "sheet.tsv"),
        "exclusions.tsv": _cells(results / "exclusions.tsv"),
        "diagnostics.tsv": _cells(results / "radiomics/diagnostics.tsv"),
        "features.parquet": list(pd.read_parquet(results / "radiomics/features.parquet").index),
        "prepared folders": list(patient_folders(sorted((results / "prepared").iterdir()))),
    }
    expected = {
        "sheet.tsv": PATIENTS,
        "exclusions.tsv": BAD,
        "diagnostics.tsv": GOOD,
        "features.parquet": GOOD,
        "prepared folders": PATIENTS,
    }
    for where, ids in written.items():
        assert sorted(set(ids)) == sorted(expected[where]), where
        assert all(isinstance(i, str) for i in ids), where
    present = {i for ids in written.values() for i in ids}
    assert set(HOSPITAL_IDS) <= present
    assert not {"1", "12.0", "7.0", "42", "B3"} & present


@pytest.mark.workflow
def test_the_icc_is_computed_on_training_patients_with_features(exclude_run):
    results = exclude_run.results
    n_patients = sheet_config("exclude")["radiomics"]["robustness"]["n_patients"]
    # The first n training patients in sheet order, skipping the excluded ones.
    sheet = _cells(results / "sheet.tsv")  # every patient is a training patient here
    expected = [p for p in sheet if p not in BAD][:n_patients]
    assert set(sheet[:n_patients]) & set(BAD), "the test needs an excluded patient among them"
    perturbed = sorted(p.stem for p in (results / "radiomics/perturbed").glob("*/*.parquet"))
    assert perturbed == sorted(expected)
    assert (results / "radiomics/icc.tsv").stat().st_size > 0


@pytest.mark.workflow
def test_stop_mode_names_the_patient_the_file_and_the_fix(sheet_cohort, snakemake_bin):
    cohort = sheet_cohort("stop")
    run = snakemake(cohort, "stop", snakemake_bin)
    assert run.returncode != 0
    said = run.stdout + run.stderr
    # One log per batch job; a failed patient stops its batch, named with the worker's error.
    logs = sorted((cohort.workdir / f"logs/{COHORT}/prepare_radiomics_batch").glob("*.log"))
    failed = {p: log for log in logs for p in BAD if f"patient {p} failed" in log.read_text()}
    assert failed, said[-3000:]
    for patient, log in failed.items():
        text = log.read_text()
        message = text[text.index(f"patient {patient} failed") :]
        assert f"ImageQCError: patient {patient}:" in message
        assert _damaged_file(cohort, patient) in message
        assert "Fix:" in message
        # Snakemake's own report points at that log and (show-failed-logs) prints it.
        assert str(log.relative_to(cohort.workdir)) in said
    assert f"patient {next(iter(failed))} failed" in said
    assert not (cohort.results / "exclusions.tsv").exists()


@pytest.mark.workflow
def test_a_replaced_image_reruns_only_that_patients_batch(exclude_run, snakemake_bin, tmp_path):
    # A copy of the complete run (times kept; the table's paths are relative), so that the
    # other tests still read the run as it was.
    rerun = dataclasses.replace(exclude_run, workdir=tmp_path / "rerun")
    shutil.copytree(exclude_run.workdir, rerun.workdir, symlinks=True)
    results = rerun.results
    before = pd.read_parquet(results / "radiomics/features.parquet")
    patient = "A-7"
    # A corrected export saved over the old one: same path, other tumour intensities.
    index, corrected_hu = PATIENTS.index(patient), 160.0
    image = rerun.workdir / exclude_run.images[patient].relative_to(exclude_run.workdir)
    write_patient(image.parent, index, tumour_hu=corrected_hu)
    plan = snakemake(rerun, "exclude", snakemake_bin, "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    # The ICC's perturbed-mask jobs are planned once gather_radiomics (a checkpoint: the ICC
    # patients are those not excluded) has run again; the dry run shows the ICC as pending.
    batch = next(
        folder for folder in (results / "prepared").iterdir() if patient in read_manifest(folder)
    )
    mates = read_manifest(batch)
    assert len(mates) > 1 and len(list((results / "prepared").iterdir())) > 1
    assert planned_jobs(plan.stdout) == {
        ("prepare_radiomics_batch", batch.name.removeprefix("batch_")),
        ("gather_radiomics", ""),
        ("radiomics_robustness", ""),
        ("robust_features", ""),
        # The figures that show patients' images: the raw ones and the prepared crops.
        ("qc_figure", ""),
        ("preprocessing_qc_figure", ""),
    }, plan.stdout[-3000:]
    per_patient = sorted(results.glob("radiomics/patients/*/*")) + sorted(
        results.glob("radiomics/perturbed/*/*.parquet")
    )
    written = {path: path.stat().st_mtime_ns for path in per_patient}
    run = snakemake(rerun, "exclude", snakemake_bin, "--quiet", "rules")
    assert run.returncode == 0, run.stderr[-3000:]
    # Only the files of A-7's batch were written again, and of the perturbed-mask batches that
    # hold a patient of it (A-7 is one of the ICC's patients); every other batch's are as they
    # were.
    perturbed = [
        folder
        for folder in (results / "radiomics/perturbed").iterdir()
        if set(read_manifest(folder)) & set(mates)
    ]
    assert any(patient in read_manifest(folder) for folder in perturbed)
    rewritten = {p for p, mtime in written.items() if p.stat().st_mtime_ns != mtime}
    assert rewritten == {
        p
        for p in per_patient
        if p.parent in [results / "radiomics/patients" / batch.name, *perturbed]
    }
    assert results / "radiomics/patients" / batch.name / f"{patient}.parquet" in rewritten
    after = pd.read_parquet(results / "radiomics/features.parquet")
    assert sorted(after.index) == sorted(before.index)
    others = [p for p in before.index if p != patient]
    pd.testing.assert_frame_equal(after.loc[others], before.loc[others])
    # Its tumour's median follows the corrected intensities (resampling blurs the edge a little).
    median = f"{PHASE}_tumour_original_firstorder_Median"
    shift = corrected_hu - tumour_level(index)
    assert after.at[patient, median] - before.at[patient, median] == pytest.approx(shift, rel=0.2)


# --------------------------------------------------------------------------- extraction step


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """One good CT patient prepared with the cohort's config (a folder to copy and damage)."""
    base = tmp_path_factory.mktemp("extraction")
    image, mask = write_patient(base / "images", 2)
    row = pd.Series({f"image_{PHASE}": str(image), "mask": str(mask)})
    folder = base / "prepared" / "E-01"
    assert prepare_patient("E-01", row, sheet_config("exclude")["imaging"], "ct", folder) is None
    return folder


def _with_speck_tumour(prepared: Path, target: Path) -> Path:
    """A copy of the prepared folder whose tumour is one voxel (PyRadiomics refuses it)."""
    shutil.copytree(prepared, target)
    mask = sitk.ReadImage(str(target / "mask.nii.gz"))
    array = sitk.GetArrayFromImage(mask)
    tumour = np.argwhere(array == 2)
    array[array == 2] = 1
    array[tuple(tumour[len(tumour) // 2])] = 2
    speck = sitk.GetImageFromArray(array)
    speck.CopyInformation(mask)
    sitk.WriteImage(speck, str(target / "mask.nii.gz"))
    return target


def _extract(folder: Path, on_error: str):
    """The radiomics step on a prepared folder with the cohort's config."""
    config = sheet_config(on_error)
    return radiomics_or_exclusion(
        folder.name,
        folder,
        ROOT / config["radiomics"]["params"]["ct"],
        radiomics_for(config["radiomics"], "ct"),
        config["imaging"]["spacing_mm"],
        on_error,
    )


def test_an_extraction_failure_is_excluded_with_its_step(prepared, tmp_path):
    folder = _with_speck_tumour(prepared, tmp_path / "E-01")
    result = _extract(folder, "exclude")
    assert len(result.features) == 0
    assert list(result.diagnostics.columns) == list(DIAGNOSTICS_KEYS)
    assert len(result.diagnostics) == 0
    record = result.exclusion.iloc[0]
    assert len(result.exclusion) == 1
    assert record["patient_id"] == "E-01"
    assert record["step"] == RADIOMICS_STEP
    assert record["file"].startswith(str(folder))
    assert "PyRadiomics" in record["reason"] and record["fix"].strip()


def test_an_extraction_failure_stops_naming_patient_file_and_fix(prepared, tmp_path):
    folder = _with_speck_tumour(prepared, tmp_path / "E-01")
    with pytest.raises(ImageQCError) as error:
        _extract(folder, "stop")
    message = str(error.value)
    assert message.startswith("patient E-01: ")
    assert str(folder) in message and "Fix: " in message


def test_a_good_patient_has_features_and_an_empty_record(prepared):
    result = _extract(prepared, "exclude")
    assert list(result.features.index) == ["E-01"]
    assert set(result.diagnostics["patient_id"]) == {"E-01"}
    assert len(result.exclusion) == 0


def _written(results: dict, folder: Path) -> dict[str, list[Path]]:
    """Write each patient's radiomics outputs as patient_radiomics does; their paths."""
    paths = {}
    for name, result in results.items():
        paths[name] = [folder / f"{name}{suffix}" for suffix in RADIOMICS_OUTPUTS]
        result.write(*paths[name])
    return paths


def test_the_gather_step_reads_excluded_patients_records(prepared, tmp_path):
    # One patient fine, one excluded in preparation, one at extraction.
    write_exclusion(tmp_path / "001", Exclusion("001", "a.nii.gz", "bad", "fix it"))
    results = {
        "E-01": _extract(prepared, "exclude"),
        "001": _extract(tmp_path / "001", "exclude"),
        "E-02": _extract(_with_speck_tumour(prepared, tmp_path / "E-02"), "exclude"),
    }
    paths = _written(results, tmp_path)
    features, diagnostics, exclusions = gather_radiomics(*zip(*paths.values(), strict=True), "c")
    assert list(features.index) == ["E-01"]
    assert list(exclusions.index) == ["001", "E-02"]
    assert list(exclusions["step"]) == [PREPARE_STEP, RADIOMICS_STEP]
    assert exclusions.at["001", "file"] == "a.nii.gz"
    assert set(diagnostics["patient_id"]) == {"E-01"}
    assert len(diagnostics) == len(results["E-01"].diagnostics)


def test_a_cohort_with_every_patient_excluded_stops_naming_them(prepared, tmp_path):
    write_exclusion(tmp_path / "001", Exclusion("001", "a.nii.gz", "bad header", "fix it"))
    results = {
        "001": _extract(tmp_path / "001", "exclude"),
        "E-01": _extract(_with_speck_tumour(prepared, tmp_path / "E-01"), "exclude"),
    }
    paths = _written(results, tmp_path)
    with pytest.raises(ValueError, match="every patient was excluded") as error:
        gather_radiomics(*zip(*paths.values(), strict=True), "c")
    message = str(error.value)
    assert "patient 001: bad header" in message and "patient E-01: PyRadiomics" in message
    assert "Fix: " in message


def test_an_excluded_patient_has_no_perturbed_features(prepared, tmp_path):
    record = tmp_path / "E-01_exclusion.tsv"
    _extract(_with_speck_tumour(prepared, tmp_path / "E-01"), "exclude").exclusion.to_csv(
        record, sep="\t", index=False
    )
    config = sheet_config("exclude")
    empty = patient_perturbed_radiomics(
        "E-01",
        prepared,
        ROOT / config["radiomics"]["params"]["ct"],
        radiomics_for(config["radiomics"], "ct"),
        config["imaging"]["spacing_mm"],
        7,
        exclusion=record,
    )
    assert len(empty) == 0
    with pytest.raises(ValueError, match="no robustness patient has perturbed features"):
        split_perturbed([empty])


def test_sheet_files_lists_each_patients_existing_files_as_written(tmp_path, monkeypatch):
    cohort = write_sheet_cohort(tmp_path)
    monkeypatch.chdir(tmp_path)
    cohort.masks["7"].unlink()
    files = sheet_files(planned_sheet("clinical.csv", "columns.yaml", 7))
    assert sorted(files) == sorted(PATIENTS)
    assert files["001"] == ["images/001/portal_venous.nii.gz", "images/001/mask.nii.gz"]
    # A missing file is no input (the run would not start); preparation names it instead.
    assert files["7"] == ["images/7/portal_venous.nii.gz"]
