"""Per-patient stages in batches (issue 30): assignment, and results as one job per patient's."""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path

import pandas as pd
import pytest

from hccrad.cohorts.phantom import PHASES, render_patient, write_nifti
from hccrad.cohorts.sheet import read_sheet
from hccrad.cohorts.simulate import simulate_cohort
from hccrad.core.config import radiomics_for
from hccrad.core.seeding import rng_for
from hccrad.figures.imaging import write_qc_png
from hccrad.imaging.batches import (
    batch_chunks,
    batch_members,
    batch_of,
    patient_files,
    patient_folders,
    read_manifest,
    write_manifest,
)
from hccrad.imaging.prepare import prepare_patient
from hccrad.radiomics.batch import Extraction, perturbed_batch, prepare_batch
from hccrad.radiomics.patient import patient_perturbed_radiomics, radiomics_or_exclusion

BAD = "A-0099"


def tree_digests(root: Path) -> dict[str, str]:
    """md5 of every file under ``root``, by path relative to it."""
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- assignment -----------------------------------------------------------------------------


def test_batches_are_chunks_in_order():
    ids = [f"P{i}" for i in range(7)]
    assert batch_chunks(ids, 3) == [["P0", "P1", "P2"], ["P3", "P4", "P5"], ["P6"]]
    assert [batch_of(p, ids, 3) for p in ids] == [1, 1, 1, 2, 2, 2, 3]
    assert batch_members(ids, 3, 3) == ["P6"]
    assert batch_chunks(ids, 100) == [ids]
    with pytest.raises(ValueError, match="batch 4 does not exist"):
        batch_members(ids, 3, 4)
    with pytest.raises(ValueError, match="at least 1"):
        batch_chunks(ids, 0)


def test_batch_folders_open_in_manifest_order(tmp_path):
    # Not sorted: the manifest, not the file system, gives the order.
    write_manifest(tmp_path / "batch_1", ["b", "a", "001"])
    write_manifest(tmp_path / "batch_2", ["NA"])
    plain = tmp_path / "solo"
    plain.mkdir()
    folders = patient_folders([tmp_path / "batch_1", tmp_path / "batch_2", plain])
    assert list(folders) == ["b", "a", "001", "NA", "solo"]
    assert folders["001"] == tmp_path / "batch_1" / "001"
    assert read_manifest(tmp_path / "batch_2") == ["NA"]
    names = [p.name for p in patient_files([tmp_path / "batch_1"], "_exclusion.tsv")]
    assert names == ["b_exclusion.tsv", "a_exclusion.tsv", "001_exclusion.tsv"]


# --- the batch driver against one patient at a time -----------------------------------------


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """Five coarse simulated patients (the tiny config's grid) and one whose mask is missing."""
    from conftest import ROOT, tiny_config

    config = tiny_config()
    spec = copy.deepcopy(config["simulate"]["response"])
    spec["centres"] = spec["centres"][:1]
    spec["centres"][0]["n_patients"] = 5
    simulated = simulate_cohort(spec, 7)
    base = tmp_path_factory.mktemp("batch_cohort")
    rows = {}
    for patient in simulated["sheet"].index:
        images, mask, affine, _ = render_patient(
            simulated["latent"].loc[patient],
            spec["centres"][0],
            "mri",
            spec["image"],
            rng_for(7, "test", patient),
        )
        paths = {f"image_{p}": str(base / patient / f"{p}.nii.gz") for p in PHASES["mri"]}
        paths["mask"] = str(base / patient / "mask.nii.gz")
        for phase, volume in images.items():
            write_nifti(paths[f"image_{phase}"], volume, affine)
        write_nifti(paths["mask"], mask, affine)
        rows[patient] = paths
    # The bad patient: a good patient's images, a mask that is not there.
    first = next(iter(rows.values()))
    rows[BAD] = first | {"mask": str(base / BAD / "mask.nii.gz")}
    radiomics_cfg = radiomics_for(config["radiomics"], "mri")
    return {
        "sheet": pd.DataFrame.from_dict(rows, orient="index"),
        "imaging": config["imaging"],
        "extraction": Extraction(
            str(ROOT / radiomics_cfg["params"]["mri"]),
            radiomics_cfg,
            config["imaging"]["spacing_mm"],
            "exclude",
        ),
        "seed": config["seed"],
    }


def one_at_a_time(cohort: dict, patients: list[str], out: Path) -> None:
    """What the one-patient rules wrote: prepare_patient, then patient_radiomics, each alone."""
    imaging = cohort["imaging"] | {"on_error": "exclude"}
    extraction = cohort["extraction"]
    for patient in patients:
        folder = out / "prepared" / patient
        prepare_patient(
            patient, cohort["sheet"].loc[patient], imaging, "mri", folder, draw_qc=write_qc_png
        )
        radiomics_or_exclusion(
            patient,
            folder,
            extraction.params,
            extraction.radiomics_cfg,
            extraction.spacing_mm,
            extraction.on_error,
        ).write(
            out / "radiomics" / f"{patient}.parquet",
            out / "radiomics" / f"{patient}_diagnostics.tsv",
            out / "radiomics" / f"{patient}_exclusion.tsv",
        )


@pytest.fixture(scope="module")
def batched(cohort, tmp_path_factory) -> dict:
    """The cohort prepared and extracted one patient at a time, and as a batch on 2 workers."""
    patients = list(cohort["sheet"].index)
    base = tmp_path_factory.mktemp("batched")
    (base / "single" / "radiomics").mkdir(parents=True)
    one_at_a_time(cohort, patients, base / "single")
    logger = logging.getLogger("test_batches")
    logger.setLevel(logging.INFO)
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.addHandler(handler)
    try:
        outcomes = prepare_batch(
            cohort["sheet"],
            patients,
            cohort["imaging"] | {"on_error": "exclude"},
            "mri",
            base / "batch" / "prepared",
            draw_qc=write_qc_png,
            extraction=cohort["extraction"],
            radiomics=base / "batch" / "radiomics",
            threads=2,
            log=logger,
        )
    finally:
        logger.removeHandler(handler)
    return {"base": base, "patients": patients, "outcomes": outcomes, "log": lines}


def test_batch_writes_what_one_patient_per_job_wrote(batched):
    single, batch = batched["base"] / "single", batched["base"] / "batch"
    for stage in ("prepared", "radiomics"):
        expected = tree_digests(single / stage)
        got = tree_digests(batch / stage)
        assert got.pop("patients.txt")
        assert got == expected, stage
    first = batched["patients"][0]
    assert {f"{first}/qc.png", f"{first}/mask.nii.gz", f"{first}/exclusion.tsv"} <= set(
        tree_digests(single / "prepared")
    )
    assert read_manifest(batch / "prepared") == batched["patients"]
    assert read_manifest(batch / "radiomics") == batched["patients"]


def test_preparation_records_the_raw_geometry_of_the_images_as_read(cohort, batched):
    # What the out-of-domain checks compare: the sheet's own images, before any resampling.
    import SimpleITK as sitk  # noqa: N813

    from hccrad.imaging.geometry import raw_geometry_table

    first = batched["patients"][0]
    row = cohort["sheet"].loc[first]
    images = {p: sitk.ReadImage(row[f"image_{p}"]) for p in PHASES["mri"]}
    expected = raw_geometry_table(first, images, sitk.ReadImage(row["mask"]))
    for where in ("single", "batch"):
        path = batched["base"] / where / "prepared" / first / "raw_geometry.tsv"
        recorded = pd.read_csv(path, sep="\t", dtype={"patient_id": str})
        pd.testing.assert_frame_equal(recorded, expected, rtol=1e-5, check_dtype=False)
    assert not (batched["base"] / "batch" / "prepared" / BAD / "raw_geometry.tsv").exists()


def test_a_failed_patient_is_its_own_exclusion_row(batched):
    batch = batched["base"] / "batch"
    record = pd.read_csv(batch / "prepared" / BAD / "exclusion.tsv", sep="\t", dtype=str)
    assert list(record["patient_id"]) == [BAD] and "mask.nii.gz" in record["file"].iloc[0]
    fine = [p for p in batched["patients"] if p != BAD]
    for patient in fine:
        assert len(pd.read_parquet(batch / "radiomics" / f"{patient}.parquet")) == 1
    assert len(pd.read_parquet(batch / "radiomics" / f"{BAD}.parquet")) == 0


def test_the_batch_log_names_each_patient_in_order(batched):
    named = [line.split(":")[0] for line in batched["log"] if line.startswith("patient ")]
    assert named == [f"patient {p}" for p in batched["patients"]]
    assert [o.patient for o in batched["outcomes"]] == batched["patients"]
    summary = dict(zip(named, batched["log"], strict=False))
    assert summary[f"patient {batched['patients'][0]}"].endswith("prepared; 636 features")


def test_stop_halts_the_batch_naming_the_patient(cohort, tmp_path):
    patients = [BAD, *list(cohort["sheet"].index[:1])]
    with pytest.raises(RuntimeError, match=f"patient {BAD} failed") as error:
        prepare_batch(
            cohort["sheet"],
            patients,
            cohort["imaging"] | {"on_error": "stop"},
            "mri",
            tmp_path / "prepared",
            threads=2,
        )
    # The worker's own message (ImageQCError: patient, file, fix) comes with it.
    assert "ImageQCError" in str(error.value) and "mask.nii.gz" in str(error.value)


def test_perturbed_batch_writes_what_one_patient_per_job_wrote(cohort, batched, tmp_path):
    batch = batched["base"] / "batch"
    patients = [*batched["patients"][:2], BAD]
    folders = patient_folders([batch / "prepared"])
    records = {p: batch / "radiomics" / f"{p}_exclusion.tsv" for p in patients}
    extraction = cohort["extraction"]
    perturbed_batch(
        folders, records, patients, extraction, cohort["seed"], tmp_path / "b", threads=2
    )
    (tmp_path / "single").mkdir()
    for patient in patients:
        patient_perturbed_radiomics(
            patient,
            folders[patient],
            extraction.params,
            extraction.radiomics_cfg,
            extraction.spacing_mm,
            cohort["seed"],
            exclusion=records[patient],
            on_error=extraction.on_error,
        ).to_parquet(tmp_path / "single" / f"{patient}.parquet")
    got = tree_digests(tmp_path / "b")
    assert got.pop("patients.txt")
    assert got == tree_digests(tmp_path / "single")
    assert len(pd.read_parquet(tmp_path / "b" / f"{BAD}.parquet")) == 0
    assert len(pd.read_parquet(tmp_path / "b" / f"{patients[0]}.parquet")) == 3


# --- the workflow ---------------------------------------------------------------------------


@pytest.mark.workflow
def test_the_default_run_schedules_under_120_jobs(tmp_path, snakemake_bin):
    from conftest import dry_run_jobs, load_default_config

    config = load_default_config()
    jobs = dry_run_jobs(tmp_path, config, snakemake_bin)
    # 180 + 60 patients in batches of 20; after the checkpoint, the 20 robustness patients
    # add one perturbed-mask batch. One job per patient made 590 (issue 30).
    assert jobs["prepare_radiomics_batch"] == 9 + 3
    assert not {"prepare_patient", "patient_radiomics"} & set(jobs)
    assert sum(jobs.values()) + 1 < 120, jobs
    # A cluster run can choose small batches: the jobs follow.
    config["imaging"]["batch_size"] = 7
    assert dry_run_jobs(tmp_path / "small", config, snakemake_bin)[
        "prepare_radiomics_batch"
    ] == len(range(0, 180, 7)) + len(range(0, 60, 7))


@pytest.mark.workflow
def test_the_tiny_run_wrote_what_one_patient_per_job_writes(runs, tmp_path, monkeypatch):
    """A patient of each cohort's last batch, prepared and extracted alone, gives the same bytes."""
    from conftest import ROOT, tiny_config

    config = tiny_config()
    workdir = runs["first"].parent
    # The sheets name images relative to the run's folder.
    monkeypatch.chdir(workdir)
    for cohort in ("sim_tace", "sim_lihc"):
        results = runs["first"] / cohort
        batches = sorted((results / "prepared").iterdir(), key=lambda p: int(p.name[6:]))
        patient = read_manifest(batches[-1])[-1]
        sheet = read_sheet(results / "sheet.tsv")
        radiomics_cfg = radiomics_for(config["radiomics"], "mri")
        out = tmp_path / cohort
        (out / "radiomics").mkdir(parents=True)
        one_at_a_time(
            {
                "sheet": sheet,
                "imaging": config["imaging"],
                "extraction": Extraction(
                    str(ROOT / radiomics_cfg["params"]["mri"]),
                    radiomics_cfg,
                    config["imaging"]["spacing_mm"],
                    config["imaging"]["on_error"],
                ),
            },
            [patient],
            out,
        )
        assert tree_digests(out / "prepared" / patient) == tree_digests(batches[-1] / patient)
        run_radiomics = results / "radiomics/patients" / batches[-1].name
        for suffix in (".parquet", "_diagnostics.tsv", "_exclusion.tsv"):
            name = f"{patient}{suffix}"
            assert tree_digests(out / "radiomics")[name] == tree_digests(run_radiomics)[name]
        # The batch's log names each of its patients.
        log = workdir / f"logs/{cohort}/prepare_radiomics_batch/{batches[-1].name}.log"
        for member in read_manifest(batches[-1]):
            assert f"patient {member}: prepared; " in log.read_text()
