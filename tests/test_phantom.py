"""Phantom geometry, labels and the visibility of the planted traits in the images."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from hccrad.cohorts.phantom import LABELS, PHASES, Grid, render_patient, write_nifti
from hccrad.cohorts.simulate import simulate_traits, trait_appearance
from hccrad.core.seeding import rng_for

CENTRE = {
    "name": "A",
    "spacing_mm": [4.0, 4.0, 6.0],
    "gain": 1.0,
    "offset": 0.0,
    "noise_sd": 0.03,
    "bias_field": 0.05,
    "arterial_timing": 1.0,
}
IMAGE = {"fov_mm": [320, 320, 150], "texture_scale_mm": 2.5}


@pytest.fixture(scope="module")
def rendered() -> tuple[pd.DataFrame, list]:
    """Twenty coarse MRI patients with their appearance parameters."""
    traits = simulate_traits(20, rng_for(1, "test", "traits"))
    appearance = trait_appearance(traits, rng_for(1, "test", "appearance"))
    patients = [
        render_patient(appearance.iloc[i], CENTRE, "mri", IMAGE, rng_for(1, "test", i))
        for i in range(len(appearance))
    ]
    return appearance, patients


def test_grid_affine_is_ras_with_the_requested_spacing_and_centred():
    grid = Grid.from_fov((320, 320, 150), (2.5, 2.5, 5.0))
    assert grid.shape == (128, 128, 30)
    assert np.allclose(np.abs(np.diag(grid.affine)[:3]), grid.spacing)
    centre = grid.affine @ np.array([(n - 1) / 2 for n in grid.shape] + [1])
    assert np.allclose(centre[:3], 0)


def test_nifti_keeps_geometry_labels_and_types(tmp_path, rendered):
    _, patients = rendered
    images, mask, affine, _ = patients[0]
    write_nifti(tmp_path / "mask.nii.gz", mask, affine)
    write_nifti(tmp_path / "arterial.nii.gz", images["arterial"], affine)
    loaded_mask = nib.load(tmp_path / "mask.nii.gz")
    loaded_image = nib.load(tmp_path / "arterial.nii.gz")
    assert np.allclose(loaded_mask.affine, affine) and np.allclose(loaded_image.affine, affine)
    assert loaded_mask.header.get_zooms() == pytest.approx((4.0, 4.0, 6.0))
    assert int(loaded_mask.header["qform_code"]) == 1 and int(loaded_mask.header["sform_code"]) == 1
    assert nib.aff2axcodes(affine) == ("L", "P", "S")
    assert loaded_image.get_data_dtype() == np.int16
    assert set(np.unique(np.asarray(loaded_mask.dataobj))) == {0, 1, 2}


def test_every_patient_has_liver_and_tumour_and_all_phases(rendered):
    _, patients = rendered
    for images, mask, _, lesions in patients:
        assert set(images) == set(PHASES["mri"])
        assert (mask == LABELS["liver"]).sum() > 1000
        assert (mask == LABELS["tumour"]).sum() > 0
        assert len(lesions) >= 1
        assert all(v.shape == mask.shape for v in images.values())


def test_tumour_size_in_the_mask_follows_the_planted_diameter(rendered):
    appearance, patients = rendered
    spacing = np.prod(CENTRE["spacing_mm"])
    volume = [(m == LABELS["tumour"]).sum() * spacing for _, m, _, _ in patients]
    rho = spearmanr(appearance["largest_diameter_mm"], volume).statistic
    assert rho > 0.8


def test_arterial_hyperenhancement_follows_the_planted_gain(rendered):
    appearance, patients = rendered
    ratios = []
    for images, mask, _, _ in patients:
        # Rim-free core of viable tumour vs liver in the arterial phase.
        tumour = images["arterial"][mask == LABELS["tumour"]]
        liver = images["arterial"][mask == LABELS["liver"]]
        ratios.append(np.median(tumour) / np.median(liver))
    rho = spearmanr(appearance["arterial_gain"], ratios).statistic
    assert rho > 0.5


def test_hepatobiliary_phase_shows_tumours_hypointense(rendered):
    _, patients = rendered
    for images, mask, _, _ in patients:
        hbp = images["hepatobiliary"]
        assert np.median(hbp[mask == 2]) < np.median(hbp[mask == 1])


def test_ct_mode_writes_hounsfield_units_in_two_phases():
    traits = simulate_traits(1, rng_for(2, "ct"))
    appearance = trait_appearance(traits, rng_for(2, "ct", "a")).iloc[0]
    centre = {**CENTRE, "noise_sd": 0.1}
    images, mask, _, _ = render_patient(appearance, centre, "ct", IMAGE, rng_for(2, "ct", 0))
    assert set(images) == {"arterial", "portal_venous"}
    air = images["portal_venous"][0, 0, :]
    assert np.all(air < -900)
    liver = np.median(images["portal_venous"][mask == 1])
    assert 80 < liver < 150


def test_centres_differ_in_resolution_not_anatomy():
    traits = simulate_traits(1, rng_for(3, "res"))
    appearance = trait_appearance(traits, rng_for(3, "res", "a")).iloc[0]
    coarse = render_patient(appearance, CENTRE, "mri", IMAGE, rng_for(3, "res", 0))
    fine_centre = {**CENTRE, "spacing_mm": [2.0, 2.0, 3.0]}
    fine = render_patient(appearance, fine_centre, "mri", IMAGE, rng_for(3, "res", 0))
    assert fine[1].shape == (160, 160, 50) and coarse[1].shape == (80, 80, 25)
    liver_ml = [
        (m == 1).sum() * np.prod(s) / 1000
        for m, s in ((coarse[1], (4, 4, 6)), (fine[1], (2, 2, 3)))
    ]
    assert liver_ml[0] == pytest.approx(liver_ml[1], rel=0.1)
