"""Radiomics on the simulated cohort: features follow the planted traits; bad inputs are named."""

from __future__ import annotations

import copy
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from scipy.stats import spearmanr

from hccrad.cohorts.phantom import PHASES, render_patient, write_nifti
from hccrad.cohorts.simulate import simulate_cohort
from hccrad.core.config import radiomics_for
from hccrad.core.seeding import rng_for
from hccrad.imaging.exclusions import gather_exclusions
from hccrad.imaging.prepare import prepare_patient
from hccrad.imaging.read import ImageQCError
from hccrad.radiomics.patient import patient_radiomics

N_PATIENTS = 16


@pytest.fixture(scope="module")
def cohort(
    tmp_path_factory,
) -> dict:
    """Sixteen simulated patients rendered at 4 mm, prepared and their radiomics extracted."""
    from conftest import ROOT, load_default_config

    config = load_default_config()
    spec = copy.deepcopy(config["simulate"]["response"])
    spec["centres"] = spec["centres"][:1]
    spec["centres"][0].update(n_patients=N_PATIENTS, spacing_mm=[4.0, 4.0, 6.0])
    simulated = simulate_cohort(spec, 21)
    sheet, latent = simulated["sheet"], simulated["latent"]
    imaging_cfg = {**config["imaging"], "spacing_mm": [3.0, 3.0, 3.0]}
    radiomics_cfg = radiomics_for(config["radiomics"], "mri")
    params = ROOT / radiomics_cfg["params"]["mri"]
    base = tmp_path_factory.mktemp("cohort")
    rows = []
    for patient in sheet.index:
        images, mask, affine, _ = render_patient(
            latent.loc[patient],
            spec["centres"][0],
            "mri",
            spec["image"],
            rng_for(21, "test", patient),
        )
        paths = {f"image_{p}": str(base / patient / f"{p}.nii.gz") for p in PHASES["mri"]}
        paths["mask"] = str(base / patient / "mask.nii.gz")
        for phase, volume in images.items():
            write_nifti(paths[f"image_{phase}"], volume, affine)
        write_nifti(paths["mask"], mask, affine)
        row = pd.Series(paths)
        folder = base / "prepared" / patient
        prepare_patient(patient, row, imaging_cfg, "mri", folder)
        features, _ = patient_radiomics(
            patient, folder, params, radiomics_cfg, imaging_cfg["spacing_mm"]
        )
        rows.append(features)
    return {
        "features": pd.concat(rows),
        "latent": latent,
        "base": base,
        "imaging": imaging_cfg,
    }


@pytest.mark.parametrize(
    ("feature", "trait", "minimum"),
    [
        ("arterial_tumour_original_shape_MeshVolume", "largest_diameter_mm", 0.7),
        ("arterial_tumour_original_firstorder_Median", "arterial_gain", 0.5),
        ("hepatobiliary_tumour_original_firstorder_Median", "hbp_ratio", 0.5),
        ("portal_venous_tumour_original_firstorder_InterquartileRange", "texture_amplitude", 0.4),
    ],
)
def test_features_follow_the_planted_traits(cohort, feature, trait, minimum):
    features, latent = cohort["features"], cohort["latent"]
    rho = spearmanr(features[feature], latent.loc[features.index, trait]).statistic
    print(f"{feature} vs planted {trait}: Spearman {rho:.2f} (n={len(features)})")
    assert rho > minimum


def test_an_empty_tumour_mask_stops_with_patient_and_file(cohort, tmp_path):
    base = cohort["base"]
    patient = cohort["features"].index[0]
    mask_path = base / patient / "mask.nii.gz"
    mask = nib.load(mask_path)
    no_tumour = np.where(np.asarray(mask.dataobj) == 2, 1, np.asarray(mask.dataobj))
    broken = tmp_path / "mask.nii.gz"
    write_nifti(broken, no_tumour.astype(np.uint8), mask.affine)
    row = pd.Series({f"image_{p}": str(base / patient / f"{p}.nii.gz") for p in PHASES["mri"]})
    row["mask"] = str(broken)
    with pytest.raises(ImageQCError, match=rf"{patient}.*{broken}.*tumour"):
        prepare_patient(
            patient, row, {**cohort["imaging"], "on_error": "stop"}, "mri", tmp_path / "a"
        )
    exclusion = prepare_patient(
        patient, row, {**cohort["imaging"], "on_error": "exclude"}, "mri", tmp_path / "b"
    )
    assert exclusion is not None and "tumour" in exclusion.reason
    table = gather_exclusions([tmp_path / "b"], "test_cohort")
    assert table.loc[patient, "file"] == str(broken)
    assert "tumour" in table.loc[patient, "reason"] and table.loc[patient, "fix"]
    features, _ = patient_radiomics(patient, tmp_path / "b", Path("unused"), {}, [3, 3, 3])
    assert features.empty


def test_resolution_harmonisation_reaches_the_prepared_crops(cohort, tmp_path):
    """imaging.resolution_mm blurs the phases before resampling: same grid, smoother tumour."""
    base = cohort["base"]
    patient = cohort["features"].index[0]
    row = pd.Series({f"image_{p}": str(base / patient / f"{p}.nii.gz") for p in PHASES["mri"]})
    row["mask"] = str(base / patient / "mask.nii.gz")
    # The acquisition is 4 x 4 x 6 mm: 8 x 8 x 12 mm is a clearly coarser target.
    coarse = {**cohort["imaging"], "resolution_mm": [8.0, 8.0, 12.0]}
    assert prepare_patient(patient, row, coarse, "mri", tmp_path / "coarse") is None
    acquired = base / "prepared" / patient

    def tumour_laplacian(folder: Path) -> float:
        """Mean |Laplacian| inside the tumour of the patient's first crop, all phases."""
        with np.load(sorted((folder / "crops").glob("*.npz"))[0]) as crop:
            tumour = crop["mask"] == 2
            return float(
                np.mean([np.abs(ndimage.laplace(phase))[tumour].mean() for phase in crop["image"]])
            )

    with (
        np.load(sorted((acquired / "crops").glob("*.npz"))[0]) as before,
        np.load(sorted((tmp_path / "coarse" / "crops").glob("*.npz"))[0]) as after,
    ):
        assert before["image"].shape == after["image"].shape
        np.testing.assert_array_equal(before["mask"], after["mask"])
    assert tumour_laplacian(tmp_path / "coarse") < 0.7 * tumour_laplacian(acquired)


def test_bias_correction_reaches_the_prepared_crops(cohort, tmp_path):
    """imaging.bias_correction n4 runs in preparation: same grid and mask, other intensities."""
    base = cohort["base"]
    patient = cohort["features"].index[0]
    row = pd.Series({f"image_{p}": str(base / patient / f"{p}.nii.gz") for p in PHASES["mri"]})
    row["mask"] = str(base / patient / "mask.nii.gz")
    corrected = {**cohort["imaging"], "bias_correction": {"mri": "n4", "ct": "none"}}
    assert prepare_patient(patient, row, corrected, "mri", tmp_path / "n4") is None
    with (
        np.load(sorted((base / "prepared" / patient / "crops").glob("*.npz"))[0]) as before,
        np.load(sorted((tmp_path / "n4" / "crops").glob("*.npz"))[0]) as after,
    ):
        np.testing.assert_array_equal(before["mask"], after["mask"])
        assert np.abs(after["image"] - before["image"]).max() > 0.01
