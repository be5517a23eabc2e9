"""Real-data configs: the HCC-TACE-Seg clinical table end to end, and offline dry runs.

The end-to-end test runs the bring-your-own example (config/byo_example.yaml: the real
HCC-TACE-Seg clinical table, no images) through the sheet import, the clinical model, its
evaluation and the survival rules. The dry runs plan the whole DAG of config/hcc_tace_seg.yaml
and config/tcga_lihc.yaml offline from the shipped IDC index, without the download folder.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)
import torch
import yaml
from conftest import ROOT, dry_run_jobs, load_default_config, run_workflow
from PIL import Image
from pydicom.uid import generate_uid
from snakemake.utils import update_config

from hccrad.core.config import check_config
from hccrad.deep import dltr
from hccrad.deep.networks import build_network, load_pretrained
from hccrad.imaging.batches import batch_chunks

COHORT = "hcc_tace_seg_clinical"


def real_config(name: str) -> dict[str, Any]:
    """config/<name>.yaml over the default config, merged as `--configfile` does."""
    config = copy.deepcopy(load_default_config())
    update_config(config, yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text()))
    return config


def medicalnet_resnet18_checkpoint() -> dict[str, torch.Tensor]:
    """A checkpoint laid out as MedicalNet's ResNet-18 (Chen et al. 2019), from its design.

    One CT channel; a 7^3 stem of 64 channels; two basic blocks per stage of 64, 128, 256 and
    512 channels; parameter-free shortcuts (type A); a segmentation head (conv_seg) in place of
    a classifier; saved from nn.DataParallel under "state_dict".
    """
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 1, 7, 7, 7)}
    batch_norms = ["bn1"]
    in_channels = 64
    for stage, channels in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            shapes[f"{prefix}.conv1.weight"] = (channels, in_channels, 3, 3, 3)
            shapes[f"{prefix}.conv2.weight"] = (channels, channels, 3, 3, 3)
            batch_norms += [f"{prefix}.bn1", f"{prefix}.bn2"]
            in_channels = channels
    for norm in batch_norms:
        channels = shapes[norm.replace("bn", "conv") + ".weight"][0]
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{norm}.{name}"] = (channels,)
    shapes["conv_seg.0.weight"] = (512, 32, 2, 2, 2)
    generator = torch.Generator().manual_seed(0)
    return {f"module.{k}": torch.randn(shape, generator=generator) for k, shape in shapes.items()}


@pytest.mark.parametrize("name", ["hcc_tace_seg", "tcga_lihc"])
def test_real_data_configs_train_full_size_networks(name, tmp_path):
    config = real_config(name)
    check_config(config, ROOT)  # the 96 mm crop at the config's spacing is the network's input
    assert config["imaging"]["spacing_mm"] == [1.5, 1.5, 1.5]
    assert config["deep"]["spatial_size"] == [64, 64, 64] and config["deep"]["width"] == 1.0
    # The segmentation patches keep the default's 192 mm field at the finer spacing.
    assert config["segment"]["patch_size"] == [128, 128]
    # MedicalNet's ResNet-18 weights load whole into the full-size network of a CT phase and
    # into none of the laptop default's quarter-width one.
    torch.save({"state_dict": medicalnet_resnet18_checkpoint()}, tmp_path / "medicalnet.pth")
    full = dltr.deep_config(config["deep"], config["seed"]).network("resnet18", 1)
    report = load_pretrained(build_network(full), tmp_path / "medicalnet.pth")
    assert report.shape_mismatch == ()
    assert report.unexpected == ("conv_seg.0.weight",)
    assert {k for k in report.missing if not k.endswith("num_batches_tracked")} == {
        "fc.weight",
        "fc.bias",
    }
    assert len(report.loaded) == 85  # 17 convolutions, 17 batch norms of 4 tensors each
    laptop = dltr.deep_config(load_default_config()["deep"], 1).network("resnet18", 1)
    report = load_pretrained(build_network(laptop), tmp_path / "medicalnet.pth")
    assert len(report.shape_mismatch) == 85 and report.loaded == ()


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
    # 83 of the 89 have an mRECIST read; all 28 TCGA-LIHC patients are imaged: one job per
    # batch of imaging.batch_size patients, preparation and radiomics in one.
    size = config["imaging"]["batch_size"]
    assert jobs["prepare_radiomics_batch"] == len(batch_chunks(range(83), size))
    # TCGA-LIHC is liver-only: the HCC-TACE-Seg network draws its tumours, radiomics follow.
    liver_only = len(batch_chunks(range(28), size))
    assert jobs["prepare_batch"] == liver_only
    assert jobs["prepare_predicted_tumour_batch"] == jobs["radiomics_batch"] == liver_only
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
    size = real_config("tcga_lihc")["imaging"]["batch_size"]
    assert jobs["prepare_predicted_tumour_batch"] == len(batch_chunks(range(28), size))
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
