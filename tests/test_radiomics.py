"""Tests of hccrad.radiomics (extract, robustness, harmonise): PyRadiomics' own baseline,
trait-following features, regions, mask perturbations, ICC and per-centre harmonisation."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813
import yaml

from hccrad.imaging.exclusions import call_or_exclude
from hccrad.imaging.read import ImageQCError
from hccrad.imaging.transform import normalise_patient
from hccrad.imaging.volumes import PatientVolumes
from hccrad.radiomics.extract import (
    PARAMS_DIR,
    extract_patient,
    extract_region,
    gather_features,
    make_extractor,
    params_path,
    region_masks,
)
from hccrad.radiomics.harmonise import harmonise_per_centre
from hccrad.radiomics.robustness import PERTURBATIONS, feature_icc, perturb_mask, perturbed_volumes

PYRADIOMICS_DATA = Path(__file__).parent / "data" / "pyradiomics"
BASELINE_CLASSES = ("firstorder", "glcm", "shape", "glrlm", "glszm", "gldm", "ngtdm")
# PyRadiomics' tests (tests/testUtils.py, RadiomicsTestUtils.checkResult) accept a feature when
# |1 - value / baseline| < 0.03, and require an exact match where the baseline is 0.
PYRADIOMICS_RELATIVE_TOLERANCE = 0.03


def phantom(
    *,
    radius_mm: float = 6.0,
    tumour_mean: float = 150.0,
    tumour_sd: float = 5.0,
    seed: int = 0,
    patient_id: str = "P001",
) -> PatientVolumes:
    """A 40x40x20 (1x1x2 mm) liver ellipsoid holding one spherical tumour, one 'arterial' phase."""
    rng = np.random.default_rng(seed)
    spacing = (1.0, 1.0, 2.0)
    z, y, x = np.meshgrid(np.arange(20) * 2.0, np.arange(40.0), np.arange(40.0), indexing="ij")
    centre = (20.0, 20.0, 20.0)
    liver = ((x - 20) / 17) ** 2 + ((y - 20) / 16) ** 2 + ((z - 20) / 17) ** 2 <= 1
    tumour = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius_mm**2
    labels = np.where(tumour, 2, np.where(liver, 1, 0)).astype(np.uint8)
    values = rng.normal(20.0, 3.0, labels.shape)
    values[liver] = rng.normal(100.0, 10.0, liver.sum())
    values[tumour] = rng.normal(tumour_mean, tumour_sd, tumour.sum())
    image = sitk.GetImageFromArray(values.astype(np.float32))
    mask = sitk.GetImageFromArray(labels)
    for volume in (image, mask):
        volume.SetSpacing(spacing)
    return PatientVolumes(patient_id, {"arterial": image}, mask, {"arterial": "arterial.nii.gz"})


def tumour_features(volumes: PatientVolumes) -> pd.Series:
    """Fast-parameter tumour features of a liver-z-scored phantom (one row)."""
    features, _ = extract_patient(
        normalise_patient(volumes, "zscore"),
        params_path("mri", original_only=True),
        regions=("tumour",),
    )
    return features.iloc[0]


@pytest.fixture(scope="module")
def baselines() -> dict[str, pd.Series]:
    """PyRadiomics' brain1 baseline column per feature class (features and configuration)."""
    return {
        cls: pd.read_csv(PYRADIOMICS_DATA / "baseline" / f"baseline_{cls}.csv", index_col=0)[
            "brain1"
        ]
        for cls in BASELINE_CLASSES
    }


@pytest.mark.parametrize("feature_class", BASELINE_CLASSES)
def test_brain1_matches_pyradiomics_baseline(
    feature_class: str, baselines: dict[str, pd.Series]
) -> None:
    """The project's extraction reproduces PyRadiomics' brain1 baseline with its settings.

    The settings and image types come from the baseline column's diagnostics rows, as in
    PyRadiomics' own tests; a feature passes when |1 - value / baseline| < 0.03 (3 % relative,
    exact where the baseline is 0), PyRadiomics' tolerance in tests/testUtils.py.
    """
    baseline = baselines[feature_class]
    image = sitk.ReadImage(str(PYRADIOMICS_DATA / "brain1_image.nrrd"))
    label = sitk.ReadImage(str(PYRADIOMICS_DATA / "brain1_label.nrrd"), sitk.sitkUInt32)
    # The same hashes PyRadiomics checks: the test data are the baseline's inputs.
    assert sitk.Hash(image) == baseline["diagnostics_Image-original_Hash"]
    assert sitk.Hash(label) == baseline["diagnostics_Mask-original_Hash"]
    params = {
        "imageType": ast.literal_eval(baseline["diagnostics_Configuration_EnabledImageTypes"]),
        "featureClass": {feature_class: []},
        "setting": ast.literal_eval(baseline["diagnostics_Configuration_Settings"]),
    }
    volumes = PatientVolumes("brain1", {"brain": image}, label)
    features, diagnostics = extract_patient(volumes, params, regions=("tumour",), tumour_label=1)

    expected = baseline[~baseline.index.str.startswith("diagnostics_")].dropna().astype(float)
    assert len(expected) >= 5
    observed = features.iloc[0][[f"brain_tumour_{name}" for name in expected.index]].to_numpy()
    relative = np.where(expected == 0, np.abs(observed), np.abs(1 - observed / expected))
    failing = dict(
        zip(
            expected.index[relative >= PYRADIOMICS_RELATIVE_TOLERANCE],
            relative[relative >= PYRADIOMICS_RELATIVE_TOLERANCE],
            strict=True,
        )
    )
    assert not failing, f"features off the baseline by >= 3 %: {failing}"
    assert diagnostics.loc[0, "diagnostics_Mask-original_VoxelNum"] == str(
        int(baseline["diagnostics_Mask-original_VoxelNum"])
    )


@pytest.mark.parametrize("name", ["mri_zscore", "ct_hu", "mri_zscore_original", "ct_hu_original"])
def test_shipped_parameter_files_load(name: str) -> None:
    """Every shipped parameter file passes PyRadiomics' schema and crops before filtering."""
    path = PARAMS_DIR / f"{name}.yaml"
    extractor = make_extractor(path)
    assert extractor.settings["preCrop"] is True
    assert extractor.settings["binWidth"] == (0.1 if name.startswith("mri") else 10)
    expected_types = {"Original"} if name.endswith("original") else {"Original", "LoG", "Wavelet"}
    assert set(extractor.enabledImagetypes) == expected_types
    assert set(extractor.enabledFeatures) == {
        "shape",
        "firstorder",
        "glcm",
        "glrlm",
        "glszm",
        "gldm",
        "ngtdm",
    }
    assert "resampledPixelSpacing" in yaml.safe_load(path.read_text())["setting"]


def test_shape_computed_once_per_region_equals_every_phase_extracted_whole() -> None:
    """Shape features come from the first phase and are reused on the others (issue 30): every
    value, the column order and the diagnostics equal extracting each phase with every class."""
    base = normalise_patient(phantom(), "zscore")
    arterial = base.images["arterial"]
    # A second phase on the same grid with other intensities (its texture features differ).
    portal = sitk.Cast(sitk.Square(arterial) * 0.5 - arterial, sitk.sitkFloat32)
    portal.CopyInformation(arterial)
    volumes = PatientVolumes(base.patient_id, {"arterial": arterial, "portal": portal}, base.mask)
    params = params_path("mri", original_only=True)
    features, diagnostics = extract_patient(volumes, params)

    extractor = make_extractor(params)
    expected, expected_info = {}, []
    for phase, image in volumes.images.items():
        for region, mask in region_masks(volumes.mask).items():
            values, info = extract_region(image, mask, extractor)
            expected |= {f"{phase}_{region}_{name}": value for name, value in values.items()}
            expected_info.append({k: str(v) for k, v in info.items()})
    assert features.columns.tolist() == list(expected)
    assert features.iloc[0].to_dict() == expected
    assert (
        diagnostics.drop(columns=["patient_id", "phase", "region"]).to_dict("records")
        == expected_info
    )
    shape = [c for c in features.columns if "_tumour_original_shape_" in c]
    assert shape and all(
        features.at["P001", c] == features.at["P001", c.replace("arterial", "portal")]
        for c in shape
        if c.startswith("arterial")
    )
    assert (
        features.at["P001", "arterial_tumour_original_glcm_Contrast"]
        != features.at["P001", "portal_tumour_original_glcm_Contrast"]
    )


def test_column_names_follow_phase_region_feature() -> None:
    """Columns are <phase>_<region>_<pyradiomics name>, one row indexed by patient_id."""
    features, diagnostics = extract_patient(
        normalise_patient(phantom(), "zscore"), params_path("mri", original_only=True)
    )
    assert features.index.tolist() == ["P001"]
    assert features.index.name == "patient_id"
    assert "arterial_tumour_original_firstorder_Mean" in features.columns
    assert "arterial_peritumoural_original_glcm_Contrast" in features.columns
    assert not any("diagnostics" in column for column in features.columns)
    assert diagnostics[["phase", "region"]].values.tolist() == [
        ["arterial", "tumour"],
        ["arterial", "peritumoural"],
    ]


def test_larger_tumour_has_larger_mesh_volume() -> None:
    """shape_MeshVolume follows tumour size."""
    small = tumour_features(phantom(radius_mm=5.0))
    large = tumour_features(phantom(radius_mm=8.0))
    column = "arterial_tumour_original_shape_MeshVolume"
    assert large[column] > 2 * small[column]


def test_more_heterogeneous_tumour_has_more_entropy_and_contrast() -> None:
    """firstorder Entropy and GLCM Contrast follow tumour heterogeneity."""
    smooth = tumour_features(phantom(tumour_sd=3.0))
    rough = tumour_features(phantom(tumour_sd=15.0))
    for column in ("original_firstorder_Entropy", "original_glcm_Contrast"):
        assert rough[f"arterial_tumour_{column}"] > smooth[f"arterial_tumour_{column}"]


def test_brighter_tumour_has_larger_mean() -> None:
    """firstorder Mean follows tumour brightness."""
    dark = tumour_features(phantom(tumour_mean=120.0))
    bright = tumour_features(phantom(tumour_mean=180.0))
    column = "arterial_tumour_original_firstorder_Mean"
    assert bright[column] > dark[column] + 3  # 60 units at a liver SD of 10 = 6 SD


def test_peritumoural_ring_is_liver_within_ring_width() -> None:
    """The ring holds exactly the liver voxels within ring_mm (physical) of the tumour."""
    volumes = phantom()
    masks = region_masks(volumes.mask, ring_mm=4.0)
    labels = sitk.GetArrayFromImage(volumes.mask)
    ring = sitk.GetArrayFromImage(masks["peritumoural"]).astype(bool)
    # Brute-force distance from every voxel centre to the nearest tumour voxel centre, in mm.
    grid = np.stack(np.indices(labels.shape), axis=-1) * np.array([2.0, 1.0, 1.0])
    tumour_points = grid[labels == 2]
    liver_points = grid[labels == 1]
    nearest = np.sqrt(((liver_points[:, None, :] - tumour_points[None]) ** 2).sum(-1)).min(1)
    expected = np.zeros_like(ring)
    expected[labels == 1] = nearest <= 4.0
    assert ring.sum() > 0
    np.testing.assert_array_equal(ring, expected)


def test_empty_ring_raises_with_patient_and_exclude_returns_reason() -> None:
    """A mask without liver label gives an empty ring: a clear error, or a reason to exclude."""
    volumes = normalise_patient(phantom(), "zscore")
    no_liver = sitk.GetArrayFromImage(volumes.mask)
    no_liver[no_liver == 1] = 0
    mask = sitk.GetImageFromArray(no_liver)
    mask.CopyInformation(volumes.mask)
    bad = PatientVolumes("P001", volumes.images, mask, volumes.sources)
    params = params_path("mri", original_only=True)
    with pytest.raises(ImageQCError, match=r"P001.*arterial\.nii\.gz.*peritumoural"):
        extract_patient(bad, params)
    result, exclusion = call_or_exclude(extract_patient, bad, params, on_error="exclude")
    assert result is None
    assert exclusion is not None and "peritumoural" in exclusion.reason


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_perturbed_masks_stay_close_and_keep_labels(kind: str) -> None:
    """Erosion shrinks, dilation grows, jitter reshapes without bias; labels stay 0/1/2."""
    mask = phantom(radius_mm=8.0).mask
    before = sitk.GetArrayFromImage(mask) == 2
    perturbed = sitk.GetArrayFromImage(perturb_mask(mask, kind, seed=3))
    after = perturbed == 2
    assert set(np.unique(perturbed)) <= {0, 1, 2}
    dice = 2 * (before & after).sum() / (before.sum() + after.sum())
    assert 0.6 < dice < 1.0
    if kind == "erode":
        assert after.sum() < before.sum() and not (after & ~before).any()
    if kind == "dilate":
        assert after.sum() > before.sum() and not (before & ~after).any()
    if kind == "jitter":
        assert after.sum() == pytest.approx(before.sum(), rel=0.1)


def test_jitter_is_reproducible_from_seed() -> None:
    """The same seed and stream give the same jitter; another seed another one."""
    mask = phantom(radius_mm=8.0).mask

    def jittered(seed: int) -> np.ndarray:
        return sitk.GetArrayFromImage(perturb_mask(mask, "jitter", seed=seed, stream="P001"))

    np.testing.assert_array_equal(jittered(1), jittered(1))
    assert not np.array_equal(jittered(1), jittered(2))


def test_icc_is_one_for_perfect_agreement_and_zero_for_noise() -> None:
    """ICC(3,1) ~1 when perturbation leaves values unchanged, ~0 for unrelated values."""
    rng = np.random.default_rng(0)
    patients = pd.Index([f"P{i:03d}" for i in range(200)], name="patient_id")
    original = pd.DataFrame(rng.normal(size=(200, 3)), index=patients, columns=["a", "b", "c"])
    same = feature_icc(original, {"erode": original + 1e-9 * rng.normal(size=(200, 3))})
    noise = feature_icc(
        original,
        {
            "erode": pd.DataFrame(
                rng.normal(size=(200, 3)), index=patients, columns=original.columns
            )
        },
    )
    assert same.columns.tolist() == ["feature", "icc", "ci95_low", "ci95_high", "robust"]
    np.testing.assert_allclose(same["icc"], 1.0, atol=1e-6)
    assert same["robust"].all()
    assert (noise["icc"].abs() < 0.2).all()
    assert not noise["robust"].any()
    assert (noise["ci95_low"] < noise["icc"]).all() and (noise["icc"] < noise["ci95_high"]).all()


def test_icc_marks_constant_features_not_robust() -> None:
    """A feature with no spread has no ICC and is not robust."""
    patients = pd.Index([f"P{i}" for i in range(5)], name="patient_id")
    table = pd.DataFrame({"flat": 1.0, "ramp": np.arange(5.0)}, index=patients)
    icc = feature_icc(table, {"dilate": table}).set_index("feature")
    assert np.isnan(icc.loc["flat", "icc"]) and not icc.loc["flat", "robust"]
    assert icc.loc["ramp", "robust"]


def test_robustness_pipeline_on_phantoms() -> None:
    """Original vs perturbed-mask features of a few phantoms give a finite ICC table."""
    params = params_path("mri", original_only=True)
    cohort = [
        normalise_patient(phantom(radius_mm=r, tumour_mean=m, seed=i, patient_id=f"P{i}"), "zscore")
        for i, (r, m) in enumerate([(5, 120), (9, 160), (7, 140), (10, 190), (6, 130)])
    ]

    def table(kind: str | None) -> pd.DataFrame:
        return gather_features(
            extract_patient(
                v if kind is None else perturbed_volumes(v, kind, seed=0),
                params,
                regions=("tumour",),
            )[0]
            for v in cohort
        )

    # A few features keep the test quick: pingouin takes ~20 ms per feature.
    columns = [
        f"arterial_tumour_original_{name}"
        for name in ("shape_MeshVolume", "firstorder_Mean", "glcm_Contrast", "glrlm_RunEntropy")
    ]
    original = table(None)[columns]
    icc = feature_icc(original, {kind: table(kind)[columns] for kind in PERTURBATIONS})
    icc = icc.set_index("feature")
    assert icc["icc"].dropna().between(-1, 1).all()
    # Size and brightness differ between these patients far more than one voxel of contour.
    assert icc.loc["arterial_tumour_original_shape_MeshVolume", "robust"]
    assert icc.loc["arterial_tumour_original_firstorder_Mean", "icc"] > 0.9


def test_gather_features_stacks_and_rejects_duplicates(tmp_path: Path) -> None:
    """Per-patient rows (frames or files) stack into patients x features; duplicates fail."""
    one = pd.DataFrame({"f": [1.0]}, index=pd.Index(["A"], name="patient_id"))
    two = pd.DataFrame({"f": [2.0]}, index=pd.Index(["B"], name="patient_id"))
    one.to_parquet(tmp_path / "A.parquet")
    two.to_csv(tmp_path / "B.tsv", sep="\t")
    table = gather_features([tmp_path / "A.parquet", tmp_path / "B.tsv"])
    assert table.index.tolist() == ["A", "B"] and table.index.name == "patient_id"
    with pytest.raises(ValueError, match="more than once"):
        gather_features([one, one])
    with pytest.raises(ValueError, match="other feature columns"):
        gather_features([one, two.rename(columns={"f": "g"})])


def test_per_centre_zscoring_uses_training_rows_and_is_off_by_default() -> None:
    """Training rows of a centre end at mean 0, SD 1; its test rows use that training fit."""
    rng = np.random.default_rng(1)
    index = pd.Index([f"P{i}" for i in range(12)], name="patient_id")
    centre = pd.Series(["A"] * 6 + ["B"] * 4 + ["C"] * 2, index=index)
    train = pd.Series([True] * 4 + [False] * 2 + [True] * 4 + [False] * 2, index=index)
    features = pd.DataFrame(
        {"f": rng.normal(size=12) + np.where(centre == "B", 50.0, 0.0), "g": 3.0}, index=index
    )
    pd.testing.assert_frame_equal(harmonise_per_centre(features, centre, train), features)
    harmonised = harmonise_per_centre(features, centre, train, method="centre_zscore")
    for name in ("A", "B"):
        fitted = harmonised.loc[(centre == name) & train, "f"]
        assert fitted.mean() == pytest.approx(0.0, abs=1e-12)
        assert fitted.std(ddof=1) == pytest.approx(1.0)
    test_rows = (centre == "A") & ~train
    mean_a, sd_a = features.loc[(centre == "A") & train, "f"].agg(["mean", "std"])
    np.testing.assert_allclose(
        harmonised.loc[test_rows, "f"], (features.loc[test_rows, "f"] - mean_a) / sd_a
    )
    # Centre C has no training rows (an external centre): standardised with its own rows.
    assert harmonised.loc[centre == "C", "f"].mean() == pytest.approx(0.0, abs=1e-12)
    assert (harmonised["g"] == 0).all()  # constant: centred, not divided by 0
