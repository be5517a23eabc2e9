"""Bring-your-own sheets: the real HCC-TACE-Seg clinical table through its column map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hccrad.cohorts.column_map import load_column_map
from hccrad.cohorts.gdc import gdc_clinical_table
from hccrad.cohorts.idc import read_index, select_series
from hccrad.cohorts.sheet import SheetError
from hccrad.cohorts.sheet_import import check_imported, check_sheet, cohort_sheet, import_sheet
from hccrad.cohorts.tables import read_table

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "resources" / "hcc_tace_seg" / "hcc_tace_seg_clinical.csv"
COLUMN_MAP = ROOT / "config" / "hcc_tace_seg_columns.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "sheet.schema.yaml"
SEED = 20251123


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """The real HCC-TACE-Seg clinical table (105 patients)."""
    return read_table(TABLE)


@pytest.fixture(scope="module")
def imported(table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table through the shipped column map."""
    return import_sheet(table, load_column_map(COLUMN_MAP), SEED, str(TABLE))


def test_real_table_maps_to_a_valid_sheet(imported, table):
    sheet, exclusions = imported
    check_sheet(sheet, SCHEMA, str(TABLE))
    assert len(table) == 105
    assert len(sheet) + len(exclusions) == 105
    assert sorted(exclusions["patient_id"]) == [
        "HCC_024", "HCC_045", "HCC_050", "HCC_073", "HCC_085", "HCC_090"
    ]  # fmt: skip
    assert exclusions["reason"].str.contains("no response").all()
    first = sheet.loc["HCC_001"]
    # HCC_001: male, 71, HCV only, BCLC A, multinodular, 0.8 cm, AFP 5, TTP 197 w, OS 350.3 w.
    assert (first["sex"], first["age"], first["aetiology"], first["bclc"]) == ("M", 71, "HCV", "A")
    assert first["tumour_number"] == 2
    assert first["tumour_size_mm"] == pytest.approx(8.0)
    assert first["ttp_time"] == pytest.approx(197 * 7 / (365.25 / 12))
    assert first["os_time"] == pytest.approx(350.2857143 * 7 / (365.25 / 12))
    assert (first["ttp_event"], first["os_event"], first["response"]) == (1, 1, 1)
    assert sheet["tumour_size_mm"].isna().sum() == table["Tr_Size"].isna().sum() - 2


def test_mrecist_codes_follow_the_measurements(table):
    # The column map reads codes 1-4 as CR, PR, SD, PD: check that against each reader's
    # baseline/follow-up sums (mRECIST: FU 0 = CR, <= -30% = PR, >= +20% = PD, else SD).
    # read_table keeps every cell as written (text); the measurements are numbers here.
    numbers = table.apply(pd.to_numeric, errors="coerce")
    for reader in "123":
        baseline, follow_up = numbers[f"{reader}_mRECIST_BL"], numbers[f"{reader}_mRECIST_FU"]
        change = (follow_up - baseline) / baseline
        expected = np.select([follow_up == 0, change <= -0.3, change >= 0.2], [1, 2, 4], 3)
        read = table[f"{reader}_mRECIST"].notna()
        np.testing.assert_array_equal(expected[read], numbers.loc[read, f"{reader}_mRECIST"])


def test_response_is_reader_one_then_the_others(imported, table):
    sheet, _ = imported
    codes = table.set_index("TCIA_ID")[["1_mRECIST", "2_mRECIST", "3_mRECIST"]].astype(float)
    first_read = codes.bfill(axis=1).iloc[:, 0].loc[sheet.index]
    np.testing.assert_array_equal(sheet["response"].to_numpy(), (first_read <= 2).astype(int))
    fallback = codes["1_mRECIST"].isna() & codes.notna().any(axis=1)
    assert fallback.sum() == 3  # patients whose response comes from reader 2 or 3
    assert sheet["response"].sum() == 62


def test_split_is_seeded_and_stratified(table, imported):
    sheet, _ = imported
    again, _ = import_sheet(table, load_column_map(COLUMN_MAP), SEED, "t")
    other, _ = import_sheet(table, load_column_map(COLUMN_MAP), SEED + 1, "t")
    pd.testing.assert_series_equal(sheet["split"], again["split"])
    assert (sheet["split"] != other["split"]).any()
    counts = sheet["split"].value_counts()
    assert counts.to_dict() == {"train": 69, "internal_test": 30}
    rates = sheet.groupby("split")["response"].mean()
    assert abs(rates["train"] - rates["internal_test"]) < 0.05


def test_unmapped_value_stops_naming_patient_and_fix(table):
    column_map = load_column_map(COLUMN_MAP)
    column_map["columns"]["bclc"]["values"].pop("Stage-D")
    with pytest.raises(
        SheetError, match=r"patient HCC_\d+: column 'BCLC' has value 'Stage-D'.*add"
    ):
        import_sheet(table, column_map, SEED, "hcc.csv")


def test_missing_column_and_unknown_keys_are_errors(table, tmp_path):
    column_map = load_column_map(COLUMN_MAP)
    column_map["columns"]["afp"] = "AFP_ngml"
    with pytest.raises(SheetError, match=r"columns.afp names column\(s\) \['AFP_ngml'\]"):
        import_sheet(table, column_map, SEED, "hcc.csv")
    bad = tmp_path / "map.yaml"
    bad.write_text(yaml.safe_dump({"patient_id": "TCIA_ID", "colums": {}}))
    with pytest.raises(SheetError, match=r"unknown key\(s\) \['colums'\]"):
        load_column_map(bad)


def test_schema_violation_names_the_patient(table):
    column_map = load_column_map(COLUMN_MAP)
    column_map["columns"]["sex"]["values"] = {1: "male", 2: "F"}
    sheet, _ = import_sheet(table, column_map, SEED, "hcc.csv")
    with pytest.raises(SheetError, match=r"sex: 'male' is not one of .*patients HCC_001, "):
        check_sheet(sheet, SCHEMA, "hcc.csv")


def test_xlsx_and_tsv_tables_read_the_same(tmp_path, table):
    table.head(5).to_excel(tmp_path / "t.xlsx", index=False)
    table.head(5).to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    column_map = load_column_map(COLUMN_MAP)
    column_map["split"] = {"value": "train"}
    from_xlsx, _ = import_sheet(read_table(tmp_path / "t.xlsx"), column_map, SEED, "t.xlsx")
    from_tsv, _ = import_sheet(read_table(tmp_path / "t.tsv"), column_map, SEED, "t.tsv")
    pd.testing.assert_frame_equal(from_xlsx, from_tsv)
    with pytest.raises(SheetError, match="does not exist"):
        read_table(tmp_path / "missing.csv")


def test_imaged_sheet_excludes_patients_without_series(table):
    index = read_index(ROOT / "resources" / "idc" / "idc_hcc_tace_seg_series.csv")
    spec = yaml.safe_load((ROOT / "config" / "hcc_tace_seg.yaml").read_text())
    spec = spec["sheets"]["hcc_tace_seg"]
    manifest, skipped = select_series(index, spec["idc"])
    column_map = load_column_map(COLUMN_MAP)
    sheet, exclusions = cohort_sheet(
        table, column_map, spec, SEED, "t", "results/hcc_tace_seg", manifest, skipped
    )
    check_sheet(sheet, SCHEMA, "t")
    assert manifest["patient_id"].nunique() == 89
    assert len(sheet) == 83
    assert len(sheet) + len(exclusions) == 105
    assert sheet.loc["HCC_001", "mask"] == "results/hcc_tace_seg/nifti/HCC_001/mask.nii.gz"
    assert sheet.loc["HCC_001", "image_contrast"].endswith("HCC_001/contrast.nii.gz")
    no_series = exclusions[exclusions["reason"].str.startswith("no imaging selected")]
    assert "HCC_027" in set(no_series["patient_id"])
    assert (
        "no CT series matching contrast"
        in no_series.set_index("patient_id").loc["HCC_027", "reason"]
    )


def test_downloaded_clinical_table_keeps_every_imaged_patient():
    # A GDC /cases download that lacks one imaged patient (TCGA-Z9: never-issued site code).
    cases = [
        {
            "submitter_id": "TCGA-Z9-A001",
            "demographic": {"gender": "female", "vital_status": "Dead", "days_to_death": 400},
            "diagnoses": [{"age_at_diagnosis": 20000, "ajcc_pathologic_stage": "Stage I"}],
        }
    ]
    clinical = gdc_clinical_table(cases)
    manifest = pd.DataFrame({"patient_id": ["TCGA-Z9-A001", "TCGA-Z9-A002"]})
    spec = yaml.safe_load((ROOT / "config" / "tcga_lihc.yaml").read_text())["sheets"]["tcga_lihc"]
    column_map = load_column_map(ROOT / "config" / "tcga_lihc_columns.yaml")
    empty = pd.DataFrame(columns=["patient_id", "reason"])
    sheet, exclusions = cohort_sheet(
        clinical, column_map, spec, SEED, "gdc", "r/t", manifest, empty
    )
    check_sheet(sheet, SCHEMA, "gdc")
    assert list(sheet.index) == ["TCGA-Z9-A001", "TCGA-Z9-A002"]
    assert exclusions.empty
    assert (sheet["split"] == "radiogenomics").all()
    assert sheet.loc["TCGA-Z9-A001", "os_event"] == 1
    assert pd.isna(sheet.loc["TCGA-Z9-A002", "os_time"])
    # The AIMI liver SEG, converted beside the images (liver only: masks: liver_only).
    assert sheet.loc["TCGA-Z9-A002", "mask"] == "r/t/nifti/TCGA-Z9-A002/mask.nii.gz"
    assert list(sheet.filter(like="image_").columns) == ["image_arterial", "image_portal_venous"]


def test_check_imported_requires_mapped_endpoints(default_config):
    spec = {
        "role": "response",
        "modality": "ct",
        "table": str(TABLE),
        "column_map": str(COLUMN_MAP),
        "images": "none",
    }
    config = {**default_config, "endpoints": ["response", "proliferative"]}
    with pytest.raises(SheetError, match="'proliferative', which the column map"):
        check_imported("hcc", spec, config)
    config = {**default_config, "endpoints": ["response"]}
    with pytest.raises(SheetError, match=r"set survival.figure_models to \[clinical\]"):
        check_imported("hcc", spec, config)


def test_a_config_may_replace_required_and_keep_patients_without_an_endpoint(table):
    spec = {"images": "none", "required": ["ttp_time", "ttp_event", "os_time", "os_event"]}
    sheet, exclusions = cohort_sheet(table, load_column_map(COLUMN_MAP), spec, SEED, "t", "r")
    check_sheet(sheet, SCHEMA, str(TABLE))
    # Every patient has TTP and OS: nobody is excluded, six have no read.
    assert exclusions.empty and len(sheet) == 105
    assert sheet["response"].isna().sum() == 6
    # The 14-week TTP endpoint, recomputed from the table: TTP in weeks, 1 = progressed.
    raw = table.set_index("TCIA_ID").loc[sheet.index]
    ttp = pd.to_numeric(raw["TTP"])
    progressed = pd.to_numeric(raw["Censored_0_progressed_1"])
    assert (sheet["ttp_response"] == 1).sum() == (ttp >= 14).sum()
    assert (sheet["ttp_response"] == 0).sum() == ((ttp < 14) & (progressed == 1)).sum()
    censored = (ttp < 14) & (progressed == 0)
    assert sheet.loc[censored, "ttp_response"].isna().all()
    assert sheet.loc[censored, "ttp_response_missing"].str.startswith("censored before").all()
    with pytest.raises(SheetError, match="required lists 'pfs_time'"):
        cohort_sheet(
            table, load_column_map(COLUMN_MAP), {**spec, "required": ["pfs_time"]}, 1, "t", "r"
        )
