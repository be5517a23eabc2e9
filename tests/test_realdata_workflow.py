"""Real-data configs: the HCC-TACE-Seg clinical table end to end, and offline dry runs.

The end-to-end test runs the bring-your-own example (config/byo_example.yaml: the real
HCC-TACE-Seg clinical table, no images) through the sheet import, the clinical model, its
evaluation and the survival rules. The dry runs plan the whole DAG of config/hcc_tace_seg.yaml
and config/tcga_lihc.yaml offline from the shipped IDC index, without the download folder.
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)
import yaml
from conftest import ROOT, load_default_config, run_workflow, workflow_command
from PIL import Image
from pydicom.uid import generate_uid
from snakemake.utils import update_config

COHORT = "hcc_tace_seg_clinical"


def real_config(name: str) -> dict[str, Any]:
    """config/<name>.yaml over the default config, merged as `--configfile` does."""
    config = copy.deepcopy(load_default_config())
    update_config(config, yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text()))
    return config


def dry_run_jobs(workdir: Path, config: dict[str, Any], snakemake_bin: str) -> dict[str, int]:
    """Jobs per rule of a dry run of the default target (`snakemake -n`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [*workflow_command(snakemake_bin, workdir), "-n"],
        capture_output=True,
        encoding="utf-8",
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stats = run.stdout.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, flags=re.M)}


@pytest.fixture(scope="module")
def byo_run(tmp_path_factory, snakemake_bin) -> Path:
    """The bring-your-own example's clinical model, evaluation and survival outputs."""
    workdir = tmp_path_factory.mktemp("byo")
    prefix = f"results/{COHORT}"
    targets = (
        f"{prefix}/table1.png",
        f"{prefix}/models/response/model_card.md",
        f"{prefix}/evaluation/response/roc.png",
        f"{prefix}/survival/response/km/ttp/clinical.png",
        f"{prefix}/survival/response/km/os/clinical.png",
        f"{prefix}/survival/response/forest_os.png",
    )
    run_workflow(workdir, real_config("byo_example"), snakemake_bin, targets)
    return workdir / prefix


@pytest.mark.workflow
def test_hcc_tace_seg_table_runs_clinical_model_and_survival(byo_run):
    sheet = pd.read_csv(byo_run / "sheet.tsv", sep="\t", index_col="patient_id")
    exclusions = pd.read_csv(byo_run / "sheet_exclusions.tsv", sep="\t")
    assert len(sheet) == 99 and len(exclusions) == 6
    predictions = pd.read_csv(byo_run / "models/response/predictions.tsv", sep="\t")
    assert set(predictions["model"]) == {"clinical"}
    assert predictions["patient_id"].nunique() == 99
    auc = pd.read_csv(byo_run / "evaluation/response/auc.tsv", sep="\t").set_index("cohort")
    assert auc.loc["train", "n"] == 69 and auc.loc["internal_test", "n"] == 30
    assert 0.5 < auc.loc["train", "auc"] < 1.0
    logrank = pd.read_csv(byo_run / "survival/response/logrank.tsv", sep="\t")
    assert set(logrank["outcome"]) == {"ttp", "os"}
    assert logrank["p_value"].between(0, 1).all()
    cox = pd.read_csv(byo_run / "survival/response/cox.tsv", sep="\t")
    univariable = cox[cox["cox_model"] == "univariable"]
    assert len(univariable) == 4 and (univariable["n"] > 0).all()
    # A multivariable fit that cannot work (1 Child-Pugh C patient) is a row with the reason.
    assert (cox["hr"].notna() | cox["note"].notna()).all()
    assert COHORT in (byo_run / "models/response/model_card.md").read_text()
    for figure in (
        "table1",
        "evaluation/response/roc",
        "evaluation/response/calibration",
        "evaluation/response/decision_curves",
        "survival/response/km/ttp/clinical",
        "survival/response/km/os/clinical",
        "survival/response/forest_os",
    ):
        assert (byo_run / f"{figure}.pdf").stat().st_size > 0
        with Image.open(byo_run / f"{figure}.png") as png:
            assert round(png.info["dpi"][0]) == 300, figure


@pytest.mark.workflow
def test_hcc_tace_seg_config_plans_offline(tmp_path, snakemake_bin):
    config = real_config("hcc_tace_seg")
    config["download"]["data_dir"] = str(tmp_path / "not_there")
    jobs = dry_run_jobs(tmp_path / "run", config, snakemake_bin)
    # 89 HCC-TACE-Seg patients have the contrast series and the expert SEG in the shipped
    # index, 28 TCGA-LIHC patients a portal-venous CT and the AIMI liver SEG in one study: one
    # download and conversion each.
    assert jobs["download_idc_patient"] == 89 + 28
    assert jobs["dicom_to_nifti"] == 89 + 28
    # 83 of the 89 have an mRECIST read; all 28 TCGA-LIHC patients are imaged.
    assert jobs["prepare_patient"] == 83 + 28
    # TCGA-LIHC is liver-only: the HCC-TACE-Seg network draws its tumours, radiomics follow.
    assert jobs["prepare_predicted_tumour"] == jobs["patient_radiomics"] - 83 == 28
    assert jobs["segment_predict"] == 2
    assert jobs["import_sheet"] == 2 and jobs["idc_manifest"] == 2
    assert jobs["download_gdc_rnaseq"] == jobs["download_gdc_clinical"] == 1
    assert {"fit_models", "deep_select", "correlate_features", "enrich_gsea"} <= set(jobs)
    assert "simulate_patients" not in jobs
    assert not (tmp_path / "not_there").exists()


@pytest.mark.workflow
def test_tcga_lihc_config_plans_offline(tmp_path, snakemake_bin):
    jobs = dry_run_jobs(tmp_path / "run", real_config("tcga_lihc"), snakemake_bin)
    # Arterial and portal-venous CT and the AIMI liver SEG in one study.
    assert jobs["download_idc_patient"] == jobs["dicom_to_nifti"] == 28
    assert jobs["prepare_predicted_tumour"] == 28
    assert jobs["download_gdc_rnaseq"] == 1
    assert {"simulate_patients", "fit_models", "correlate_features"} <= set(jobs)
    assert "simulate_rnaseq" not in jobs


@pytest.mark.workflow
def test_default_config_plans_no_import_or_download(tmp_path, snakemake_bin):
    jobs = dry_run_jobs(tmp_path / "run", load_default_config(), snakemake_bin)
    assert not {j for j in jobs if j.startswith(("download_", "import_", "idc_"))}
    assert jobs["gather_sheet"] == 2 and jobs["simulate_rnaseq"] == 1


@pytest.mark.workflow
def test_idc_download_conversion_and_import_run_in_the_workflow(
    tmp_path, snakemake_bin, httpserver
):
    # A two-patient index in the shipped index's layout, its series written as tiny DICOM (CT
    # series + expert SEG) and served as the IDC bucket is: S3 listing, then one GET per file.
    from test_dicom import SHAPE, ct_slices, segmentation
    from test_download import s3_listing

    rows, served = [], {}
    for patient in ("HCC_001", "HCC_002"):
        study, frame = generate_uid(), generate_uid()
        sources = ct_slices(tmp_path / "dicom" / patient / "ct", study=study, frame=frame)
        expected = segmentation(sources, tmp_path / "dicom" / patient / "seg")
        for kind, folder, description in (
            ("CT", "ct", "Recon 2: LIVER 3 PHASE (AP)"),
            ("SEG", "seg", "Segmentation"),
        ):
            uuid = str(uuid4())
            files = {
                p.name: p.read_bytes() for p in (tmp_path / "dicom" / patient / folder).iterdir()
            }
            served[uuid] = files
            rows.append(
                {
                    "PatientID": patient,
                    "StudyInstanceUID": study,
                    "StudyDate": "2000-01-01",
                    "SeriesInstanceUID": generate_uid(),
                    "SeriesNumber": 2 if kind == "CT" else 300,
                    "Modality": kind,
                    "SeriesDescription": description,
                    "instanceCount": len(files),
                    "series_size_MB": 0.01,
                    "crdc_series_uuid": uuid,
                    "license_short_name": "CC BY 4.0",
                }
            )
    for uuid, files in served.items():
        httpserver.expect_request(
            "/", query_string={"list-type": "2", "prefix": f"{uuid}/"}
        ).respond_with_data(s3_listing(uuid, files))
        for name, data in files.items():
            httpserver.expect_request(f"/{uuid}/{name}").respond_with_data(data)
    index = tmp_path / "index.csv"
    pd.DataFrame(rows).to_csv(index, index=False)

    config = real_config("hcc_tace_seg")
    config["cohorts"]["radiogenomics"] = "sim_lihc"
    config["sheets"].pop("tcga_lihc")
    config["sheets"]["hcc_tace_seg"]["idc"]["index"] = str(index)
    config["download"] |= {
        "data_dir": str(tmp_path / "data"),
        "idc_base_url": httpserver.url_for("/").rstrip("/"),
        "retries": 1,
        "backoff_s": 0.0,
    }
    run_workflow(tmp_path / "run", config, snakemake_bin, ("results/hcc_tace_seg/sheet.tsv",))
    results = tmp_path / "run" / "results" / "hcc_tace_seg"
    sheet = pd.read_csv(results / "sheet.tsv", sep="\t", index_col="patient_id")
    assert list(sheet.index) == ["HCC_001", "HCC_002"]
    assert len(pd.read_csv(results / "sheet_exclusions.tsv", sep="\t")) == 103
    mask = sitk.GetArrayFromImage(
        sitk.ReadImage(str(tmp_path / "run" / sheet.loc["HCC_002", "mask"]))
    )
    np.testing.assert_array_equal(mask, expected)
    image = sitk.ReadImage(str(tmp_path / "run" / sheet.loc["HCC_002", "image_contrast"]))
    assert image.GetSize() == SHAPE[::-1]
    assert len(list((tmp_path / "data" / "hcc_tace_seg" / "idc").rglob("*.dcm"))) == 2 * (6 + 1)
