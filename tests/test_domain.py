"""hccrad.imaging.geometry and hccrad.models.domain: raw acquisition and out-of-domain flags."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813

from hccrad.imaging.batches import write_manifest
from hccrad.imaging.geometry import gather_raw_geometry, raw_geometry_table, write_raw_geometry
from hccrad.models.domain import (
    describe_patients,
    domain_flags,
    fit_domain_reference,
    raw_geometry_row,
    training_reference,
)
from hccrad.reporting.conformal import ACQUISITION_CHECK, domain_summary

PHASES = ("arterial", "portal_venous")
N_FEATURES = 12
SPACING = (0.8, 0.8, 2.5)


def scan(rng: np.random.Generator, spacing=SPACING, gain: float = 1.0) -> tuple[dict, sitk.Image]:
    """Two phases and a mask (liver block with a tumour in it), intensities ~ 100 x gain."""
    labels = np.zeros((12, 24, 24), dtype=np.uint8)
    labels[2:10, 4:20, 4:20] = 1
    labels[4:7, 8:12, 8:12] = 2
    mask = sitk.GetImageFromArray(labels)
    mask.SetSpacing(spacing)
    images = {}
    for k, phase in enumerate(PHASES):
        values = gain * (100 + 20 * k + 10 * rng.standard_normal(labels.shape))
        image = sitk.GetImageFromArray(values.astype(np.float32))
        image.CopyInformation(mask)
        images[phase] = image
    return images, mask


def features(rng: np.random.Generator, n: int) -> np.ndarray:
    """Correlated radiomic-like features: two latent factors plus noise."""
    latent = rng.standard_normal((n, 2))
    loadings = np.linspace(-1, 1, 2 * N_FEATURES).reshape(2, N_FEATURES)
    return latent @ loadings + 0.5 * rng.standard_normal((n, N_FEATURES))


def cohort(seed: int, n: int, prefix: str, **scan_args) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw geometry and radiomic features of n simulated patients."""
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}{i:03d}" for i in range(n)]
    tables = []
    gain = scan_args.pop("gain", 1.0)
    for patient in ids:
        # Scanners differ from patient to patient: +-15% in intensity around the cohort's gain.
        images, mask = scan(rng, gain=gain * rng.uniform(0.85, 1.15), **scan_args)
        tables.append(raw_geometry_table(patient, images, mask))
    radiomics = pd.DataFrame(
        features(rng, n), index=ids, columns=[f"arterial_tumour_f{j}" for j in range(N_FEATURES)]
    )
    return pd.concat(tables, ignore_index=True), radiomics


@pytest.fixture(scope="module")
def reference() -> dict:
    """The domain reference of 60 training patients."""
    raw, radiomics = cohort(1, 60, "T")
    return fit_domain_reference(describe_patients(raw, radiomics), seed=7)


def test_raw_geometry_row_against_an_independent_computation():
    images, mask = scan(np.random.default_rng(0))
    row = raw_geometry_row("P1", "arterial", images["arterial"], mask)
    labels = sitk.GetArrayFromImage(mask)
    inside = sitk.GetArrayFromImage(images["arterial"])[labels > 0]
    assert (row["spacing_x"], row["spacing_y"], row["spacing_z"]) == pytest.approx(SPACING)
    assert row["intensity_p50"] == pytest.approx(np.median(inside))
    assert row["intensity_p99"] == pytest.approx(np.percentile(inside, 99))
    assert row["tumour_volume_ml"] == pytest.approx(3 * 4 * 4 * 0.8 * 0.8 * 2.5 / 1000)
    liver_only = sitk.Clamp(mask, upperBound=1)
    assert np.isnan(
        raw_geometry_row("P1", "arterial", images["arterial"], liver_only)["tumour_volume_ml"]
    )
    moved = sitk.Image(images["arterial"])
    moved.SetSpacing((1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="grids differ"):
        raw_geometry_row("P1", "arterial", moved, mask)


def test_describe_patients_has_one_row_per_patient_with_every_part():
    raw, radiomics = cohort(2, 5, "D")
    description = describe_patients(raw, radiomics)
    assert list(description.index) == list(radiomics.index)
    expected = {"spacing_x", "spacing_z", "arterial_intensity_p99", "portal_venous_intensity_p01"}
    assert expected | {"tumour_volume_ml", "arterial_tumour_f0"} <= set(description.columns)


def flags_of(reference: dict, raw: pd.DataFrame, radiomics: pd.DataFrame) -> pd.DataFrame:
    """domain_flags of patients described from their raw geometry and features."""
    return domain_flags(reference, describe_patients(raw, radiomics))


def test_scaled_spacing_is_flagged_with_the_reason(reference):
    raw, radiomics = cohort(3, 1, "S", spacing=(0.8, 0.8, 12.5))
    flags = flags_of(reference, raw, radiomics).set_index("check")
    assert flags.loc["spacing_z", "out_of_domain"]
    reason = flags.loc["spacing_z", "reason"]
    assert reason.startswith("voxel spacing z 12.5 mm outside training 2.5-2.5 mm")
    assert not flags.loc["spacing_x", "out_of_domain"]


def test_scaled_intensity_is_flagged_with_the_reason(reference):
    raw, radiomics = cohort(4, 1, "I", gain=8.0)
    flags = flags_of(reference, raw, radiomics).set_index("check")
    for check in ("arterial_intensity_p50", "portal_venous_intensity_p99"):
        assert flags.loc[check, "out_of_domain"]
        assert "intensity p" in flags.loc[check, "reason"]
        assert "outside training" in flags.loc[check, "reason"]


def test_far_radiomic_features_raise_the_overall_flag(reference):
    raw, radiomics = cohort(5, 1, "R")
    radiomics.iloc[0] = radiomics.iloc[0] * 0 + np.linspace(-6, 6, N_FEATURES)
    flags = flags_of(reference, raw, radiomics).set_index("check")
    assert flags.loc["overall", "out_of_domain"]
    assert "above the training threshold" in flags.loc["overall", "reason"]


def test_training_like_patients_are_not_flagged(reference):
    # New patients from the training distribution: no geometry flag, and the overall flag at
    # about the rate its quantile promises (0.99 of held-out distances), not for most of them.
    raw, radiomics = cohort(6, 200, "N")
    flags = flags_of(reference, raw, radiomics)
    geometry = flags[flags["check"].str.contains("spacing|intensity|tumour_volume")]
    assert not geometry["out_of_domain"].any()
    per_feature = flags[flags["check"].str.startswith("arterial_tumour_f")]
    assert per_feature.groupby("patient_id")["out_of_domain"].any().mean() < 0.05
    overall = flags[flags["check"] == "overall"]
    assert overall["out_of_domain"].mean() < 0.06
    typical = overall.sort_values("value").iloc[100]
    assert not typical["out_of_domain"]
    assert "within the training threshold" in typical["reason"]


def test_missing_values_are_flagged_not_passed(reference):
    raw, radiomics = cohort(7, 1, "M")
    radiomics.iloc[0, 0] = np.nan
    flags = flags_of(reference, raw, radiomics).set_index("check")
    assert flags.loc["arterial_tumour_f0", "out_of_domain"]
    assert flags.loc["overall", "out_of_domain"]


def test_reference_is_fitted_on_training_rows_only():
    raw, radiomics = cohort(8, 40, "P")
    description = describe_patients(raw, radiomics)
    ids = description.index
    sheet = pd.DataFrame({"split": ["train"] * 30 + ["external_B"] * 10}, index=ids)
    reference = training_reference(sheet, description, seed=3)
    assert set(reference["patients"]) == set(ids[:30])
    assert set(reference["overall"]["patients"]) == set(ids[:30])
    # Wild values in the other splits change nothing.
    wild = description.copy()
    wild.iloc[30:] = wild.iloc[30:] * 1000
    assert json.dumps(training_reference(sheet, wild, seed=3)) == json.dumps(reference)
    assert json.loads(json.dumps(reference)) == reference


def test_gather_reads_each_prepared_patient_and_names_a_missing_table(tmp_path):
    batch = tmp_path / "batch_1"
    write_manifest(batch, ["a", "b"])
    for patient in ("a", "b"):
        (batch / patient).mkdir()
        (batch / patient / "exclusion.tsv").write_text("patient_id\tstep\tfile\treason\tfix\n")
    images, mask = scan(np.random.default_rng(9))
    write_raw_geometry(batch / "a", raw_geometry_table("a", images, mask))
    with pytest.raises(ValueError, match=r"\['b'\] have no raw_geometry.tsv"):
        gather_raw_geometry([batch])
    write_raw_geometry(batch / "b", raw_geometry_table("b", images, mask))
    table = gather_raw_geometry([batch])
    assert list(table["patient_id"]) == ["a", "a", "b", "b"]


def test_domain_summary_counts_flagged_patients_per_cohort(reference):
    raw_in, radiomics_in = cohort(10, 3, "A")
    raw_out, radiomics_out = cohort(11, 2, "B", spacing=(0.8, 0.8, 12.5))
    flags = flags_of(
        reference,
        pd.concat([raw_in, raw_out], ignore_index=True),
        pd.concat([radiomics_in, radiomics_out]),
    )
    patients = pd.DataFrame(
        {"split": ["internal_test"] * 3 + ["external_B"] * 2, "centre": ["A"] * 3 + ["B"] * 2},
        index=[*radiomics_in.index, *radiomics_out.index],
    )
    summary = domain_summary(flags, patients).set_index("cohort")
    assert summary.loc["external", "patients"] == 2
    assert summary.loc["external", "acquisition"] == 2
    assert summary.loc["internal_test", "acquisition"] == 0
    # Against an independent count of the flag rows.
    overall = flags[flags["check"] == "overall"].set_index("patient_id")["out_of_domain"]
    assert summary.loc["external", "overall"] == overall[radiomics_out.index].sum()
    features = flags[~flags["check"].str.contains(ACQUISITION_CHECK + "|^overall$")]
    per_patient = features.groupby("patient_id")["out_of_domain"].any()
    assert summary.loc["internal_test", "radiomic_feature"] == per_patient[radiomics_in.index].sum()
