"""The model bundle (hccrad.bundle) and `hccrad predict`, on the shared tiny run (`runs`).

The bundle must score a patient exactly as the run did: its predictions are compared with the
run's predictions.tsv at the precision that table is written with (fit_models: %.6g), for every
model, from the patients' prepared folders and from one patient's raw images and mask.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

from hccrad.bundle.manifest import (
    FORMAT_VERSION,
    BundleError,
    can_honour,
    check_versions,
    write_manifest,
)
from hccrad.bundle.predict import (
    SCORE_COLUMNS,
    check_new_sheet,
    feature_tables,
    model_scores,
    predict_patients,
)
from hccrad.bundle.store import load_bundle
from hccrad.cohorts.sheet import read_sheet
from hccrad.imaging.batches import patient_folders

# The command runs this clone's hccrad, installed or not.
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
COHORT = "sim_tace"
ENDPOINT = "response"
# predictions.tsv is written with float_format="%.6g" (workflow/scripts/fit_models.py).
PRECISION = "{:.6g}"


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("written", "installed", "ok"),
    [
        ("0.1.0", "0.1.3", True),
        ("0.1.0", "0.2.0", False),
        ("0.2.0", "0.1.0", False),
        ("1.2.0", "1.4.1", True),
        ("1.4.0", "1.2.0", False),
        ("1.0.0", "2.0.0", False),
    ],
)
def test_which_hccrad_releases_can_load_a_bundle(written, installed, ok):
    assert can_honour(written, installed) is ok


def test_another_release_is_refused_naming_both_versions():
    manifest = {"bundle_format": FORMAT_VERSION, "hccrad_version": "0.9.0"}
    with pytest.raises(BundleError) as refused:
        check_versions(manifest, installed="0.1.0")
    message = str(refused.value)
    assert "0.9.0" in message and "0.1.0" in message and "Fix:" in message
    check_versions(manifest, installed="0.9.2")  # a patch release honours it


def test_another_format_is_refused():
    with pytest.raises(BundleError, match=r"bundle format 99 .* reads bundle format 1"):
        check_versions({"bundle_format": 99, "hccrad_version": "0.1.0"}, installed="0.1.0")


def test_a_changed_or_missing_file_is_refused(tmp_path):
    import joblib

    from hccrad import __version__

    joblib.dump({}, tmp_path / "models.joblib")
    (tmp_path / "thresholds.tsv").write_text("model\tyouden_threshold\n")
    write_manifest(tmp_path, {"bundle_format": FORMAT_VERSION, "hccrad_version": __version__})
    assert load_bundle(tmp_path).models == {}
    (tmp_path / "thresholds.tsv").write_text("model\tyouden_threshold\nclinical\t0.1\n")
    with pytest.raises(BundleError, match=r"changed since it was written \['thresholds.tsv'\]"):
        load_bundle(tmp_path)
    (tmp_path / "thresholds.tsv").unlink()
    with pytest.raises(BundleError, match=r"missing \['thresholds.tsv'\]"):
        load_bundle(tmp_path)


# --------------------------------------------------------------------------- the tiny run


@pytest.fixture(scope="module")
def results(runs) -> Path:
    return runs["first"]


@pytest.fixture(scope="module")
def bundle(results):
    return load_bundle(results / COHORT / "bundle" / ENDPOINT)


@pytest.fixture(scope="module")
def run_predictions(results) -> pd.DataFrame:
    path = results / COHORT / "models" / ENDPOINT / "predictions.tsv"
    return pd.read_csv(path, sep="\t", dtype={"patient_id": str})


def external_patients(sheet: pd.DataFrame, n: int) -> list[str]:
    """The first ``n`` external patients of each external centre, in sheet order."""
    external = sheet.loc[sheet["split"].str.startswith("external")]
    return [p for _, group in external.groupby("centre") for p in group.index[:n]]


def expected_scores(run_predictions: pd.DataFrame, patients: list[str]) -> dict:
    rows = run_predictions.loc[run_predictions["patient_id"].isin(patients)]
    return {(r.patient_id, r.model): PRECISION.format(r.score) for r in rows.itertuples()}


def got_scores(table: pd.DataFrame, column: str = "score") -> dict:
    rows = table.itertuples()
    return {(r.patient_id, r.model): PRECISION.format(getattr(r, column)) for r in rows}


@pytest.mark.workflow
def test_manifest_describes_the_models_and_checksums_every_file(bundle):
    manifest = bundle.manifest
    assert manifest["endpoint"] == ENDPOINT and manifest["bundle_format"] == FORMAT_VERSION
    assert set(manifest["models"]) == set(bundle.models) >= {"clinical", "radiomics", "DLTR"}
    clinical = manifest["models"]["clinical"]["training"]
    assert clinical["n"] == len(bundle.models["clinical"].train_patients)
    assert 0 < clinical["events"] < clinical["n"] and set(clinical["centres"]) == {"A"}
    files = {p.relative_to(bundle.folder).as_posix() for p in bundle.folder.rglob("*.*")}
    assert set(manifest["checksums"]) == files - {"manifest.json", ".snakemake_timestamp"}
    assert {"dltr/model.pt", "segment/model.pt", "cutoffs.tsv"} <= files
    assert manifest["software_versions"]["torch"]
    assert {"imaging", "radiomics", "deep", "models"} <= set(manifest["config"])


@pytest.mark.workflow
def test_bundle_of_another_release_is_refused_on_load(bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle.folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["hccrad_version"] = "99.0.0"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"hccrad 99\.0\.0 cannot be loaded by hccrad"):
        load_bundle(copy)


@pytest.mark.workflow
def test_bundle_scores_prepared_external_patients_as_the_run(
    bundle, results, run_predictions, tmp_path
):
    sheet = read_sheet(results / COHORT / "sheet.tsv")
    patients = external_patients(sheet, 2)
    folders = patient_folders(sorted((results / COHORT / "prepared").glob("batch_*")))
    new = check_new_sheet(bundle, sheet.loc[patients])
    features = feature_tables(bundle, new, {p: folders[p] for p in patients}, tmp_path)
    scores = model_scores(bundle, new, features)
    expected = expected_scores(run_predictions, patients)
    assert len(expected) == len(patients) * len(bundle.models)
    assert got_scores(scores) == expected


def raw_patient(results: Path, patient: str) -> pd.DataFrame:
    """One patient's sheet row with its raw images and mask as absolute paths."""
    sheet = read_sheet(results / COHORT / "sheet.tsv").loc[[patient]]
    for column in [c for c in sheet.columns if c.startswith("image_")] + ["mask"]:
        sheet[column] = str(results.parent / sheet.at[patient, column])
    return sheet.drop(columns=["split"])


@pytest.mark.workflow
def test_bundle_scores_a_patient_from_raw_images_as_the_run(
    bundle, results, run_predictions, tmp_path
):
    sheet = read_sheet(results / COHORT / "sheet.tsv")
    patient = external_patients(sheet, 1)[-1]
    drawn = []
    scored = predict_patients(
        bundle,
        raw_patient(results, patient),
        tmp_path,
        draw_gradcam=lambda panels, png: drawn.append(panels),
        render_report=None,
    )
    assert list(scored.columns) == list(SCORE_COLUMNS)
    assert got_scores(scored, "probability") == expected_scores(run_predictions, [patient])
    written = pd.read_csv(tmp_path / patient / "predictions.tsv", sep="\t")
    assert list(written.columns) == list(SCORE_COLUMNS) and len(written) == len(bundle.models)
    # The risk group by the first stratified outcome's training cut-off, as survival_tables.
    groups = pd.read_csv(results / COHORT / "survival" / ENDPOINT / "risk_groups.tsv", sep="\t")
    run_groups = groups.loc[(groups["patient_id"] == patient) & (groups["outcome"] == "pfs")]
    assert dict(zip(written["model"], written["risk_group"], strict=True)) == dict(
        zip(run_groups["model"], run_groups["risk_group"], strict=True)
    )
    assert (tmp_path / patient / "domain_flags.tsv").is_file()
    assert len(drawn) == 1 and drawn[0].patients == (patient,)


def cli(bundle, results, patient: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    sheet = raw_patient(results, patient)
    row = sheet.iloc[0]
    phases = [f"{p}={row[f'image_{p}']}" for p in bundle.manifest["phases"]]
    covariates = bundle.config["models"]["clinical_covariates"]
    clinical = [f"{c}={row[c]}" for c in covariates if pd.notna(row[c])]
    command = [sys.executable, "-m", "hccrad.cli.main", "predict", str(bundle.folder)]
    command += ["--patient-id", patient, "--mask", row["mask"], "--out", str(out)]
    command += [arg for phase in phases for arg in ("--phase", phase)]
    command += ["--clinical", *clinical, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, env=ENV)


@pytest.mark.workflow
def test_hccrad_predict_command_scores_a_patient(bundle, results, run_predictions, tmp_path):
    sheet = read_sheet(results / COHORT / "sheet.tsv")
    patient = external_patients(sheet, 1)[0]
    run = cli(bundle, results, patient, tmp_path, "--no-report")
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{patient} DLTR: p = " in run.stdout
    written = pd.read_csv(tmp_path / patient / "predictions.tsv", sep="\t")
    assert got_scores(written.assign(patient_id=patient), "probability") == expected_scores(
        run_predictions, [patient]
    )
    assert (tmp_path / patient / "gradcam.png").stat().st_size > 0


@pytest.mark.workflow
def test_hccrad_predict_refuses_a_bundle_of_another_release(bundle, results, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle.folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["hccrad_version"] = "99.0.0"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    command = [sys.executable, "-m", "hccrad.cli.main", "predict", str(copy)]
    run = subprocess.run(
        [*command, "--mask", "m.nii.gz", "--patient-id", "X", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert run.returncode == 2 and "hccrad 99.0.0 cannot be loaded" in run.stderr


@pytest.mark.workflow
def test_hccrad_predict_writes_the_report(bundle, results, tmp_path):
    sheet = read_sheet(results / COHORT / "sheet.tsv")
    patient = external_patients(sheet, 1)[0]
    run = cli(bundle, results, patient, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    html = (tmp_path / patient / "report.html").read_text()
    assert patient in html
    assert (tmp_path / patient / "report.pdf").stat().st_size > 0


def test_console_script_and_help():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["hccrad"] == "hccrad.cli.main:main"
    run = subprocess.run(
        [sys.executable, "-m", "hccrad.cli.main", "predict", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert run.returncode == 0
    for words in ("DICOM series folder", "--liver-mask", "RTSTRUCT", "report.html"):
        assert words in run.stdout


@pytest.mark.workflow
def test_predict_target_scores_a_sheet_of_new_patients(
    results, run_predictions, snakemake_bin, tmp_path
):
    import yaml
    from conftest import tiny_config, workflow_command

    sheet = read_sheet(results / COHORT / "sheet.tsv")
    patients = external_patients(sheet, 1)
    new = pd.concat([raw_patient(results, p) for p in patients])
    new.to_csv(tmp_path / "new_patients.tsv", sep="\t")
    # The run's cohort folders seen from a fresh working directory: only the new target runs,
    # and the shared run's results stay as they were (test_workflow compares their checksums).
    (tmp_path / "results").mkdir()
    for name in (COHORT, "workflow"):
        (tmp_path / "results" / name).symlink_to(results / name)
    config = tiny_config()
    config["predict"] |= {"sheet": str(tmp_path / "new_patients.tsv"), "report": False}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = f"results/predict/{ENDPOINT}/predictions.tsv"
    run = subprocess.run(
        [
            *workflow_command(snakemake_bin, tmp_path, target),
            "--cores",
            "1",
            "--allowed-rules",
            "predict_patients",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=ENV,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    scored = pd.read_csv(tmp_path / target, sep="\t", dtype={"patient_id": str})
    assert got_scores(scored, "probability") == expected_scores(run_predictions, patients)
    for patient in patients:
        folder = tmp_path / f"results/predict/{ENDPOINT}/patients/{patient}"
        assert (folder / "gradcam.png").stat().st_size > 0


@pytest.mark.workflow
def test_without_a_tumour_mask_the_bundles_network_draws_it(bundle, results, tmp_path):
    sheet = read_sheet(results / COHORT / "sheet.tsv")
    patient = external_patients(sheet, 1)[0]
    # The sheet's mask read as liver only (its tumour label becomes liver), as for a cohort
    # with masks: liver_only; the tiny run's two-epoch network may find no tumour: then the
    # patient is excluded with the reason, never scored.
    scored = predict_patients(
        bundle, raw_patient(results, patient), tmp_path, masks="liver_only", render_report=None
    )
    assert (tmp_path / "_work" / "masks" / f"{patient}.nii.gz").is_file()
    if scored.empty:
        reason = pd.read_csv(tmp_path / patient / "exclusion.tsv", sep="\t")["reason"].iloc[0]
        assert "segmentation model found no tumour" in reason
    else:
        assert set(scored["model"]) == set(bundle.models)


def write_dicom_series(image, folder: Path, patient: str) -> None:
    """A volume as one int16 MR DICOM file per slice, with what a SEG of it needs."""
    import SimpleITK as sitk  # noqa: N813

    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    orientation = "\\".join(str(v) for v in (*direction[0:7:3], *direction[1:8:3]))
    for k in range(image.GetDepth()):
        slice_ = sitk.Cast(image[:, :, k], sitk.sitkInt16)
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "MR",
            "0010|0020": patient,
            "0020|000d": "1.2.826.0.1.3680043.2.1125.33",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.33.1",
            "0020|0052": "1.2.826.0.1.3680043.2.1125.33.2",
            "0020|0037": orientation,
            "0020|0032": "\\".join(str(v) for v in position),
            "0020|0013": str(k + 1),
            "0018|0050": str(image.GetSpacing()[2]),
        }
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_)


@pytest.mark.workflow
def test_a_dicom_series_with_a_seg_mask_scores_as_the_run(
    bundle, results, run_predictions, tmp_path
):
    import SimpleITK as sitk  # noqa: N813

    from hccrad.imaging.rtstruct import label_map_to_seg

    sheet = read_sheet(results / COHORT / "sheet.tsv")
    patient = external_patients(sheet, 1)[0]
    row = raw_patient(results, patient)
    # The simulated phases are int16 NIfTI: as an int16 DICOM series the arterial phase keeps
    # every value, and the mask as a DICOM SEG of that series every label; the scores must too.
    series = tmp_path / "arterial"
    write_dicom_series(sitk.ReadImage(row.at[patient, "image_arterial"]), series, patient)
    seg = tmp_path / "mask_seg.dcm"
    mask = sitk.ReadImage(row.at[patient, "mask"])
    label_map_to_seg(mask, series, {1: "Liver", 2: "Tumour"}, patient).save_as(seg)
    row["image_arterial"], row["mask"] = str(series), str(seg)
    scored = predict_patients(bundle, row, tmp_path / "out", render_report=None)
    assert got_scores(scored, "probability") == expected_scores(run_predictions, [patient])


@pytest.mark.workflow
def test_a_patient_with_scaled_intensities_is_flagged_out_of_domain(bundle, results, tmp_path):
    """A training patient's own scan is in domain; the same scan at 10x intensity is flagged."""
    import SimpleITK as sitk  # noqa: N813

    sheet = read_sheet(results / COHORT / "sheet.tsv")
    patient = sheet.index[sheet["split"] == "train"][0]
    original = raw_patient(results, patient)
    scaled = original.rename(index={patient: "SCALED-1"})
    for column in [c for c in scaled.columns if c.startswith("image_")]:
        image = sitk.ReadImage(scaled.iloc[0][column])
        path = tmp_path / "scaled" / f"{column}.nii.gz"
        path.parent.mkdir(exist_ok=True)
        sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32) * 10.0, str(path))
        scaled[column] = str(path)
    predict_patients(bundle, pd.concat([original, scaled]), tmp_path / "out", render_report=None)
    flags = {
        p: pd.read_csv(tmp_path / "out" / p / "domain_flags.tsv", sep="\t")
        for p in (patient, "SCALED-1")
    }
    intensity = {p: f[f["check"].str.contains("intensity")] for p, f in flags.items()}
    assert len(intensity[patient]) and not intensity[patient]["out_of_domain"].any()
    flagged = intensity["SCALED-1"][intensity["SCALED-1"]["out_of_domain"]]
    assert len(flagged), intensity["SCALED-1"].to_dict("records")
    assert flagged["reason"].str.contains("outside training").all()
    # The flags reach the predictions as a warning, never a silent score.
    assert set(flags["SCALED-1"]["check"]) >= {"overall"}
