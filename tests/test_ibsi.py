"""IBSI-1 tags of PyRadiomics features, and the committed conformance table (resources/ibsi)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813
import yaml
from conftest import ROOT, SHARED, dry_run_jobs, run_workflow, tiny_config

from hccrad.radiomics.extract import extract_region, make_extractor
from hccrad.radiomics.ibsi import feature_tags, read_tag_map, tag_suffix
from hccrad.radiomics.ibsi_conformance import (
    conformance,
    miss_reason,
    read_configurations,
    summarise,
    within_tolerance,
)

IBSI = SHARED / "ibsi"  # oncoray/mirp test/data: phantoms (CC BY 4.0, CT CC BY-NC) + references
COMMITTED = ROOT / "resources" / "ibsi" / "conformance.tsv"
CT_PARAMS = ROOT / "resources" / "pyradiomics" / "ct_hu_original.yaml"


def committed() -> pd.DataFrame:
    """The committed conformance table."""
    return pd.read_csv(COMMITTED, sep="\t", keep_default_na=False, na_values=[""])


@pytest.mark.parametrize("case", ["digital_phantom", "config_c"])
def test_committed_rows_are_recomputed(case):
    params = yaml.safe_load(CT_PARAMS.read_text())
    fresh = conformance(IBSI, params, [case])
    old = committed().query("configuration == @case").reset_index(drop=True)
    assert list(fresh["ibsi_tag"]) == list(old["ibsi_tag"])
    np.testing.assert_allclose(fresh["value"], old["value"], rtol=1e-6)
    assert list(fresh["within"]) == list(old["within"].astype(bool))
    assert list(fresh["reason"]) == list(old["reason"].fillna(""))


def test_committed_table_ships_no_reference_values():
    # The IBSI reference values come from a folder without a licence file: read, not shipped.
    assert {"reference", "tolerance"}.isdisjoint(committed().columns)


def test_digital_phantom_conformance_is_as_documented():
    table = committed().query("configuration == 'digital_phantom'")
    missed = set(table.loc[~table["within"].astype(bool), "ibsi_tag"])
    # Kurtosis (not excess), Energy/RMS (hccrad's voxelArrayShift), PCA axes (N vs N - 1).
    assert missed == {
        "stat_kurt",
        "stat_energy",
        "stat_rms",
        "morph_pca_least_axis",
        "morph_pca_min_axis",
    }
    assert len(table) == 103


def test_every_miss_has_a_known_reason_and_the_page_its_counts():
    table = committed()
    misses = table[~table["within"].astype(bool)]
    assert misses["reason"].notna().all()
    assert not misses["reason"].str.contains("unexplained").any()
    page = (ROOT / "resources" / "ibsi" / "conformance.md").read_text()
    for row in summarise(table.assign(within=table["within"].astype(bool))).itertuples():
        assert f"| {row.configuration} | {row.computed} | {row.within} | {row.missed} |" in page
    assert set(table["configuration"]) == set(read_configurations()["cases"])


def test_every_feature_pyradiomics_computes_has_a_row_in_the_tag_map():
    folder = IBSI / "ibsi_1_digital_phantom" / "nifti"
    image = sitk.ReadImage(str(folder / "image" / "phantom.nii.gz"))
    mask = sitk.ReadImage(str(folder / "mask" / "mask.nii.gz"))
    extractor = make_extractor({"setting": {"binWidth": 1}})
    extractor.enableAllFeatures()
    features, _ = extract_region(image, mask, extractor)
    tag_map = read_tag_map()
    listed = set(zip(tag_map["feature_class"], tag_map["pyradiomics_feature"], strict=True))
    names = {tuple(name.split("_")[1:]) for name in features}
    assert names - listed == set()
    # Every tag is an IBSI-1 reference tag (of the digital phantom's table, which has them all).
    reference = pd.read_csv(IBSI / "ibsi_1_reference_values" / "ibsi_1_dig_phantom.csv", sep=";")
    bases = {t for t in reference["tag"]} | {
        t.rsplit("_3D", 1)[0] for t in reference["tag"] if "_3D" in t
    }
    tags = set(tag_map["ibsi_tag"]) - {""}
    assert tags <= bases, tags - bases


def test_feature_tags_follow_the_columns_and_the_aggregation_settings():
    columns = [
        "arterial_tumour_original_glcm_Idmn",
        "portal_venous_peritumoural_original_glszm_ZoneEntropy",
        "arterial_tumour_log-sigma-1-0-mm-3D_firstorder_Mean",
        "arterial_tumour_original_shape_Maximum2DDiameterSlice",
        "clinical_age",
    ]
    tags = feature_tags(columns, {}).set_index("column")
    assert tags.loc[columns[0], "ibsi_tag"] == "cm_inv_diff_mom_norm_3D_avg"
    assert tags.loc[columns[1], "ibsi_tag"] == "szm_zs_entr_3D"
    assert tags.loc[columns[1], "prefix"] == "portal_venous_peritumoural"
    assert tags.loc[columns[2], "ibsi_tag"] == "stat_mean"
    assert bool(tags.loc[columns[2], "filtered"])
    assert tags.loc[columns[2], "image_type"] == "log-sigma-1-0-mm-3D"
    assert tags.loc[columns[3], "ibsi_tag"] == ""
    assert tags.loc[columns[4], "ibsi_tag"] == ""
    flat = feature_tags(columns[:2], {"force2D": True, "weightingNorm": "no_weighting"})
    assert list(flat["ibsi_tag"]) == ["cm_inv_diff_mom_norm_2_5D_comb", "szm_zs_entr_2_5D"]
    assert tag_suffix("morph_volume", force2d=True, merged_directions=True) == ""


def test_ibsi_match_rule_uses_tolerance_or_three_significant_digits():
    assert within_tolerance(556.33, 556, 4)
    assert within_tolerance(1494.6, 1490, 0)
    assert within_tolerance(0.0096306, 0.00963, 0)
    assert not within_tolerance(2.6454, -0.355, 0)
    assert not within_tolerance(8.478, 8.54, 0.05)


def test_a_miss_takes_the_feature_reason_before_the_configuration_reason():
    configuration = {
        "deviations": [
            {"reason": "mask by nearest neighbour", "families": ["morph", "texture"]},
            {"reason": "no rounding", "families": ["stat"]},
        ]
    }
    assert miss_reason("stat_kurt", configuration, {"stat_kurt": "not excess"}) == "not excess"
    assert miss_reason("cm_energy_3D_avg", configuration, {}) == "mask by nearest neighbour"
    assert miss_reason("ih_entropy", configuration, {}) == "unexplained"


def test_the_default_run_writes_an_ibsi_tag_sidecar_beside_the_features(tmp_path, snakemake_bin):
    config = tiny_config()
    cohort = config["cohorts"]["response"]
    folder = tmp_path / "results" / cohort / "radiomics"
    folder.mkdir(parents=True)
    columns = ["arterial_tumour_original_glcm_Idmn", "arterial_tumour_original_shape_MeshVolume"]
    table = pd.DataFrame([[0.9, 5000.0]], columns=columns, index=pd.Index(["P1"], name="id"))
    table.to_parquet(folder / "features.parquet")
    # The segmentation network's feature table gets one too.
    (tmp_path / "results" / cohort / "segment").mkdir(parents=True)
    table.to_parquet(tmp_path / "results" / cohort / "segment" / "radiomics_predicted.parquet")
    targets = (
        f"results/{cohort}/radiomics/features_ibsi_tags.tsv",
        f"results/{cohort}/segment/radiomics_predicted_ibsi_tags.tsv",
    )
    run_workflow(tmp_path, config, snakemake_bin, targets, ("ibsi_feature_tags",))
    for target in targets:
        tags = pd.read_csv(tmp_path / target, sep="\t").set_index("column")
        assert tags.loc[columns[0], "ibsi_tag"] == "cm_inv_diff_mom_norm_3D_avg"
        assert tags.loc[columns[1], "ibsi_tag"] == "morph_volume"
    # The default target (rule all) asks for it: both cohorts' tables and the predicted masks'.
    assert dry_run_jobs(tmp_path, config, snakemake_bin)["ibsi_feature_tags"] == 3
