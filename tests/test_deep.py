"""Tests of hccrad.deep: crops, networks, reproducibility, selection, outputs and Grad-CAM.

The cohort is a small simulated one: phantom livers rendered at 4 mm, z-scored over the liver
and cropped by hccrad.imaging.crops to 64 mm (16^3 voxels), with a planted signal: responders'
tumours enhance strongly in the arterial phase, non-responders' barely.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from hccrad.cohorts import phantom, simulate
from hccrad.core.labels import TUMOUR_LABEL
from hccrad.core.seeding import rng_for
from hccrad.deep import augment, tumour_pooled
from hccrad.deep.cam_panels import GradCamPanels
from hccrad.deep.config import ARCHITECTURES, DeepConfig, NetworkConfig
from hccrad.deep.crops import CropSet, crops_from_arrays, load_crops
from hccrad.deep.explain import CAM_LAYERS, grad_cam, grad_cam_layer, grad_cam_panels
from hccrad.deep.networks import DeepModel, build_network, load_model, load_pretrained, save_model
from hccrad.deep.predict import (
    clipped_tumour_fraction,
    deep_features,
    network_input,
    predict_ensemble,
    predict_scores,
    tumour_region,
    warn_if_tumour_clipped,
)
from hccrad.deep.select import SELECTION_COLUMNS, choose_winner, cross_validate, select_and_refit
from hccrad.deep.train import fit_model
from hccrad.figures.deep import grad_cam_figure
from hccrad.figures.style import save_figure
from hccrad.imaging.crops import TumourCrop, crop_tumours, write_crops
from hccrad.imaging.transform import normalise_patient
from hccrad.imaging.volumes import PatientVolumes

SEED = 3
N_PATIENTS = 72
N_TRAIN = 48
CROP_VOXELS = 16
# Label permutations of the no-leakage test.
PERMUTATIONS = 4
IMAGE_CFG = {"fov_mm": [240, 240, 120], "texture_scale_mm": 2.5}
CENTRE = {
    "spacing_mm": [4.0, 4.0, 4.0],
    "gain": 1.0,
    "offset": 0.0,
    "noise_sd": 0.04,
    "bias_field": 0.08,
    "arterial_timing": 1.0,
}
# Small and quick: a quarter-width ResNet-18 with a stride-1 stem sees 16^3 crops the way the
# default (stride-2 stem) sees 32^3 ones.
FAST = {
    "architectures": ("resnet18",),
    "spatial_size": CROP_VOXELS,
    "width": 0.25,
    "stem_stride": 1,
    "intensity_clip": (-5.0, 10.0),
    "learning_rate": 3e-3,
    "progress": False,
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine OpenMP spinning makes 2 threads slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _as_sitk(array_xyz: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A phantom (x, y, z) array as an LPS SimpleITK image (the phantom's affine is RAS)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz.transpose(2, 1, 0)))
    image.SetSpacing(tuple(CENTRE["spacing_mm"]))
    image.SetOrigin((-affine[0, 3], -affine[1, 3], affine[2, 3]))
    return image


def simulated_cohort(n_patients: int, seed: int) -> tuple[list[TumourCrop], pd.DataFrame]:
    """Tumour crops of every tumour and a training sheet with a planted arterial signal."""
    traits = simulate.simulate_traits(n_patients, rng_for(seed, "traits"))
    appearance = simulate.trait_appearance(traits, rng_for(seed, "appearance"))
    response = rng_for(seed, "response").permutation(np.arange(n_patients) % 2)
    appearance["arterial_gain"] = np.where(response == 1, 0.6, 0.1)
    # Tumours that fit the 64 mm crop, and at most two of them (room in a coarse liver).
    appearance["largest_diameter_mm"] = appearance["largest_diameter_mm"].clip(16, 40)
    appearance["n_tumours"] = np.minimum(appearance["n_tumours"], 2)
    ids = [f"SIM{i:03d}" for i in range(n_patients)]
    crops: list[TumourCrop] = []
    for i, patient in enumerate(ids):
        images, mask, affine, _ = phantom.render_patient(
            appearance.iloc[i], CENTRE, "mri", IMAGE_CFG, rng_for(seed, "image", i)
        )
        volumes = PatientVolumes(
            patient,
            {p: _as_sitk(a.astype(np.float32), affine) for p, a in images.items()},
            _as_sitk(mask, affine),
        )
        volumes = normalise_patient(volumes, "zscore")
        crops += crop_tumours(volumes, (64.0, 64.0, 64.0), instances="all")
    sheet = pd.DataFrame(
        {
            "split": "train",
            "centre": np.where(np.arange(n_patients) % 3 == 0, "B", "A"),
            "response": response,
        },
        index=pd.Index(ids, name="patient_id"),
    )
    return crops, sheet


def to_cropset(crops: list[TumourCrop], top_k: int = 1) -> CropSet:
    """A CropSet from hccrad.imaging.crops crops."""
    return crops_from_arrays(
        [c.patient_id for c in crops],
        [c.image for c in crops],
        spatial_size=CROP_VOXELS,
        phases=crops[0].phases,
        masks=[c.mask for c in crops],
        instances=[c.instance for c in crops],
        tumour_volumes_mm3=[c.tumour_volume_mm3 for c in crops],
        spacing_zyx=[c.spacing_zyx for c in crops],
        top_k=top_k,
    )


@pytest.fixture(scope="module")
def cohort() -> tuple[list[TumourCrop], CropSet, pd.DataFrame]:
    """The simulated cohort: every crop, the largest-tumour CropSet and the sheet."""
    crops, sheet = simulated_cohort(N_PATIENTS, SEED)
    return crops, to_cropset(crops), sheet


@pytest.fixture(scope="module")
def trained(cohort: tuple[list, CropSet, pd.DataFrame]) -> DeepModel:
    """A network fitted on the first 48 patients."""
    _, crops, sheet = cohort
    config = DeepConfig(**FAST, max_epochs=16, patience=6)
    return fit_model(sheet.iloc[:N_TRAIN], crops, config)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """True when every tensor of the two state_dicts is bit-identical."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- config and crops


def test_config_from_mapping_checks_keys() -> None:
    config = DeepConfig.from_mapping({"spatial_size": [24, 32, 32], "architectures": ["resnet50"]})
    assert config.spatial_size == (24, 32, 32)
    assert config.network("resnet50", 3).architecture == "resnet50"
    with pytest.raises(ValueError, match="unknown keys"):
        DeepConfig.from_mapping({"epochs": 3})
    with pytest.raises(ValueError, match="unknown architectures"):
        DeepConfig(architectures=("vgg16",))


def test_load_crops_keeps_largest_tumours(
    cohort: tuple[list[TumourCrop], CropSet, pd.DataFrame], tmp_path: Path
) -> None:
    crops, _, _ = cohort
    patients_with_two = sorted({c.patient_id for c in crops if c.instance == 2})[:2]
    chosen = [c for c in crops if c.patient_id in patients_with_two]
    # Reverse the files so that load_crops has to rank the tumours itself.
    paths = write_crops(chosen[::-1], tmp_path)
    largest = load_crops(paths, 20)
    both = load_crops(paths, 12, top_k=2)
    assert largest.images.shape == (2, 3, 20, 20, 20)
    assert set(largest.instances) == {1}
    assert both.images.shape == (4, 3, 12, 12, 12)
    assert both.masks is not None and both.masks.shape == (4, 12, 12, 12)
    for patient in patients_with_two:
        volumes = [
            v
            for p, v in zip(both.patient_ids, both.tumour_volumes_mm3, strict=True)
            if p == patient
        ]
        assert volumes == sorted(volumes, reverse=True)
    with pytest.raises(ValueError, match="no tumour crop"):
        largest.subset(["nobody"])


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_runs_at_the_default_size(architecture: str) -> None:
    config = DeepConfig().network(architecture, in_channels=3)
    model = DeepModel(build_network(config), config)
    mask = np.zeros((32, 32, 32), np.uint8)
    mask[12:20, 12:20, 12:20] = TUMOUR_LABEL
    crops = crops_from_arrays(
        ["a", "b"],
        np.zeros((2, 3, 32, 32, 32), np.float32),
        spatial_size=config.spatial_size,
        masks=[mask, mask],
    )
    features = deep_features(model, crops, device="cpu")
    scores = predict_scores(model, crops, device="cpu")
    assert features.shape[0] == 2 and features.shape[1] >= 64
    assert scores.between(0, 1).all()
    assert grad_cam_layer(model) in CAM_LAYERS[architecture]


def test_too_small_crop_is_reported() -> None:
    with pytest.raises(ValueError, match="densenet121 cannot take crops"):
        build_network(NetworkConfig("densenet121", 3, (16, 16, 16)))


# --------------------------------------------------------------------------- training


def test_training_is_bit_identical_for_a_seed(
    cohort: tuple[list, CropSet, pd.DataFrame],
) -> None:
    _, crops, sheet = cohort
    small = sheet.iloc[:16]
    # Every augmentation on, elastic included, so that their random states are covered too.
    config = DeepConfig(**FAST, max_epochs=2, patience=2, elastic=True, elastic_prob=1.0)
    first = fit_model(small, crops, config)
    second = fit_model(small, crops, config)
    other = fit_model(small, crops, DeepConfig(**{**FAST, "max_epochs": 2}, seed=1))
    assert same_weights(first.network, second.network)
    assert not same_weights(first.network, other.network)


def test_selection_takes_training_rows_only(
    cohort: tuple[list, CropSet, pd.DataFrame],
) -> None:
    _, crops, sheet = cohort
    leaky = sheet.iloc[:16].copy()
    leaky.loc["SIM003", "split"] = "external_B"
    config = DeepConfig(**FAST, max_epochs=1)
    for call in (cross_validate, select_and_refit, fit_model):
        with pytest.raises(ValueError, match=r"training patients only.*SIM003"):
            call(leaky, crops, config)


def test_network_learns_a_planted_signal(
    cohort: tuple[list, CropSet, pd.DataFrame], trained: DeepModel
) -> None:
    _, crops, sheet = cohort
    held_out = sheet.iloc[N_TRAIN:]
    scores = predict_scores(trained, crops.subset(held_out.index), device="cpu")
    auc = roc_auc_score(held_out["response"], scores)
    logging.getLogger(__name__).info("held-out AUC %.3f", auc)
    assert auc > 0.75
    assert trained.best_epoch >= 1 and len(trained.history) == trained.epochs


def test_permuted_labels_give_chance_cv_and_held_out_auc(
    cohort: tuple[list, CropSet, pd.DataFrame],
) -> None:
    _, crops, sheet = cohort
    held_out = sheet.iloc[N_TRAIN:]
    cv_aucs, held_out_aucs = [], []
    # Several permutations, as one is not enough: under the null a network's held-out AUC
    # spreads far wider than label noise alone (SD about 0.12 for 24 patients) would make it,
    # because its scores follow some image trait, and which way round is chance (one draw gave
    # 0.16 on one CPU type and passed on another). Leakage would push every draw up.
    # Each draw trains with its own seed: under one seed the draws share initial weights and
    # augmentation, so the direction of that trait is shared and the AUCs are not the
    # independent replicates the t-test assumes (one seed's four draws gave 0.64-0.76, p 0.008;
    # seeds 1-3 gave 0.20-0.84, on both sides of 0.5).
    for draw in range(PERMUTATIONS):
        config = DeepConfig(**FAST, max_epochs=4, patience=4, seed=draw)
        permuted = sheet.iloc[:N_TRAIN].copy()
        permuted["response"] = rng_for(SEED, "permutation", draw).permutation(
            permuted["response"].to_numpy()
        )
        selection = select_and_refit(permuted, crops, config)
        scores = predict_scores(selection.model, crops.subset(held_out.index), device="cpu")
        cv_aucs.append(selection.table["auc"].mean())
        held_out_aucs.append(roc_auc_score(held_out["response"], scores))
        # Every training patient has exactly one out-of-fold score, from the winner's folds.
        assert sorted(selection.out_of_fold.index) == sorted(permuted.index)
    print(
        f"permuted-label mean CV AUCs {np.round(cv_aucs, 3).tolist()}; held-out AUCs with the "
        f"true labels {np.round(held_out_aucs, 3).tolist()}"
    )
    assert abs(np.mean(cv_aucs) - 0.5) < 0.15
    assert stats.ttest_1samp(held_out_aucs, 0.5).pvalue > 0.01


def test_endpoint_other_than_response_is_trained_and_checked(
    cohort: tuple[list, CropSet, pd.DataFrame],
) -> None:
    _, crops, sheet = cohort
    train = sheet.iloc[:20].rename(columns={"response": "proliferative"})
    with pytest.raises(ValueError, match="no 'response' column"):
        fit_model(train, crops, DeepConfig(**FAST, max_epochs=1))
    model = fit_model(train, crops, DeepConfig(**FAST, max_epochs=1), endpoint="proliferative")
    assert model.n_train + model.n_validation == 20


def test_fixed_schedule_trains_on_every_patient_to_the_last_epoch(
    cohort: tuple[list, CropSet, pd.DataFrame],
) -> None:
    _, crops, sheet = cohort
    config = DeepConfig(**FAST, max_epochs=3, early_stopping=False)
    model = fit_model(sheet.iloc[:20], crops, config)
    # No inner validation part: all 20 patients train, and the last epoch is the one kept.
    assert (model.n_train, model.n_validation) == (20, 0)
    assert model.epochs == model.best_epoch == 3
    assert model.history["val_auc"].isna().all()
    assert model.history["train_loss"].notna().all()
    # Same config, same data: identical weights on the CPU.
    again = fit_model(sheet.iloc[:20], crops, config)
    for name, tensor in model.network.state_dict().items():
        assert torch.equal(tensor, again.network.state_dict()[name]), name


def test_select_and_refit_reports_folds_and_refits_the_winner(
    cohort: tuple[list, CropSet, pd.DataFrame],
) -> None:
    _, crops, sheet = cohort
    config = DeepConfig(
        **{**FAST, "architectures": ("resnet18", "efficientnet_b0")}, folds=2, max_epochs=1
    )
    selection = select_and_refit(sheet.iloc[:20], crops, config)
    assert list(selection.table.columns) == list(SELECTION_COLUMNS)
    assert len(selection.table) == 4
    assert (selection.table["n_train"] + selection.table["n_val"] == 20).all()
    assert selection.winner == selection.summary["architecture"].iloc[0]
    assert selection.model.config.architecture == selection.winner
    assert selection.model.n_train + selection.model.n_validation == 20
    # The winner's fold networks are kept for the fold ensemble, in fold order.
    assert len(selection.fold_models) == 2
    assert {m.config.architecture for m in selection.fold_models} == {selection.winner}
    assert selection.ensemble_members("refit") == (selection.model,)
    members = selection.ensemble_members("folds_and_refit")
    assert members == (*selection.fold_models, selection.model)
    held = crops.subset(sheet.index[20:26])
    mean = predict_ensemble(members, held, device="cpu")
    each = [predict_scores(m, held, device="cpu") for m in members]
    np.testing.assert_allclose(mean, np.mean(each, axis=0))
    assert predict_ensemble(members[-1:], held, device="cpu").equals(each[-1])
    with pytest.raises(ValueError, match="ensemble must be one of"):
        selection.ensemble_members("bagging")


def test_acquisition_shift_augmentation_is_seeded_and_checked(
    cohort: tuple[list, CropSet, pd.DataFrame],
) -> None:
    _, crops, sheet = cohort
    shifted = {"phase_wise_intensity": True, "blur_prob": 1.0, "noise_prob": 1.0}
    config = DeepConfig(**FAST, max_epochs=1, **shifted)
    # Training draws blur and noise for every crop here, and never with the defaults.
    shifted_draws = augment.draw(config, 8, 3, torch.Generator().manual_seed(0))
    assert shifted_draws.blur.all() and shifted_draws.noise.all()
    default_draws = augment.draw(DeepConfig(**FAST), 8, 3, torch.Generator().manual_seed(0))
    assert not (default_draws.blur.any() or default_draws.noise.any())
    first = fit_model(sheet.iloc[:16], crops, config)
    again = fit_model(sheet.iloc[:16], crops, config)
    assert same_weights(first.network, again.network)
    with pytest.raises(ValueError, match="blur_sigma_z must be"):
        DeepConfig(**FAST, blur_sigma_z=(1.0, 0.5))
    with pytest.raises(ValueError, match="ensemble must be one of"):
        DeepConfig(**FAST, ensemble="bagging")


def test_winner_ties_go_to_lower_sd_then_fewer_parameters() -> None:
    rows = []
    for architecture, aucs, n_parameters in (
        ("resnet50", (0.70, 0.80), 100),
        ("resnet18", (0.74, 0.76), 200),
        ("densenet121", (0.7502, 0.7498), 50),
        ("efficientnet_b0", (0.60, 0.70), 10),
    ):
        rows += [
            {"architecture": architecture, "fold": f, "auc": a, "n_parameters": n_parameters}
            for f, a in enumerate(aucs, start=1)
        ]
    table = pd.DataFrame(rows)
    assert choose_winner(table) == "densenet121"  # same mean, lowest SD
    table.loc[table["architecture"] == "densenet121", "auc"] = [0.74, 0.76]
    assert choose_winner(table) == "densenet121"  # same mean and SD, fewer parameters


# --------------------------------------------------------------------------- outputs


def test_deep_features_are_patients_by_features_averaged_over_tumours(
    cohort: tuple[list[TumourCrop], CropSet, pd.DataFrame], trained: DeepModel
) -> None:
    crops, _, _ = cohort
    two_tumours = to_cropset(crops, top_k=2).subset(
        [*sorted({c.patient_id for c in crops if c.instance == 2})[:3], "SIM000"]
    )
    features = deep_features(trained, two_tumours, device="cpu")
    n_features = trained.network.fc.in_features
    assert features.shape == (4, n_features)
    assert features.index.name == "patient_id"
    assert list(features.columns[:2]) == ["deep_0000", "deep_0001"]
    per_crop = deep_features(
        trained,
        crops_from_arrays(
            [
                f"{p}_{i}"
                for p, i in zip(two_tumours.patient_ids, two_tumours.instances, strict=True)
            ],
            two_tumours.images,
            spatial_size=CROP_VOXELS,
        ),
        device="cpu",
    )
    patient = features.index[0]
    expected = per_crop.loc[[f"{patient}_1", f"{patient}_2"]].mean()
    np.testing.assert_allclose(features.loc[patient].to_numpy(), expected.to_numpy(), rtol=1e-6)


def test_save_and_load_predict_identically(
    cohort: tuple[list, CropSet, pd.DataFrame], trained: DeepModel, tmp_path: Path
) -> None:
    _, crops, sheet = cohort
    held_out = crops.subset(sheet.index[N_TRAIN:])
    paths = save_model(trained, tmp_path / "model.pt", tmp_path / "model.json")
    loaded = load_model(*paths)
    assert loaded.config == trained.config
    pd.testing.assert_series_equal(
        predict_scores(loaded, held_out, device="cpu"),
        predict_scores(trained, held_out, device="cpu"),
        check_exact=True,
    )


def test_predicting_crops_of_another_size_is_an_error(trained: DeepModel) -> None:
    crops = crops_from_arrays(["a"], np.zeros((1, 3, 8, 8, 8), np.float32), spatial_size=8)
    with pytest.raises(ValueError, match="spatial_size"):
        predict_scores(trained, crops)


def test_pretrained_weights_load_from_a_local_file_with_a_report(tmp_path: Path) -> None:
    single_channel = build_network(NetworkConfig("resnet18", 1, 16, 0.25, 1))
    # MedicalNet's layout: {"state_dict": {"module.<key>": tensor}}, one input channel.
    checkpoint = {f"module.{k}": v for k, v in single_channel.state_dict().items()}
    checkpoint["module.extra_head.weight"] = torch.zeros(2)
    del checkpoint["module.fc.bias"]
    torch.save({"state_dict": checkpoint}, tmp_path / "medicalnet.pth")
    network = build_network(NetworkConfig("resnet18", 3, 16, 0.25, 1))
    report = load_pretrained(network, tmp_path / "medicalnet.pth")
    assert report.shape_mismatch == ("conv1.weight",)
    assert report.unexpected == ("extra_head.weight",)
    assert set(report.missing) == {"conv1.weight", "fc.bias"}
    assert torch.equal(network.layer1[0].conv1.weight, single_channel.layer1[0].conv1.weight)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_pretrained(network, tmp_path / "absent.pth")


# --------------------------------------------------------------------------- Grad-CAM


def test_grad_cam_has_the_crop_shape_and_is_finite(
    cohort: tuple[list, CropSet, pd.DataFrame], trained: DeepModel
) -> None:
    _, crops, _ = cohort
    cam = grad_cam(trained, crops.images[0])
    assert cam.shape == crops.spatial_size
    assert np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
    # The explainer works on a copy: no hooks are left on the trained network.
    assert not any(m._forward_hooks or m._backward_hooks for m in trained.network.modules())


def test_grad_cam_panels_round_trip_and_draw(
    cohort: tuple[list, CropSet, pd.DataFrame], trained: DeepModel, tmp_path: Path
) -> None:
    _, crops, sheet = cohort
    scores = predict_scores(trained, crops, device="cpu")
    panels = grad_cam_panels(trained, crops, sheet, scores, patients_per_centre=1)
    assert panels.images.shape == panels.cams.shape == panels.tumour.shape
    assert len(panels.patients) == sheet["centre"].nunique()
    # The figure is drawn from the saved panels alone: what the figures target relies on.
    again = GradCamPanels.load(panels.save(tmp_path / "gradcam.npz"))
    assert again.patients == panels.patients and again.titles == panels.titles
    np.testing.assert_array_equal(again.cams, panels.cams)
    paths = save_figure(grad_cam_figure(again), tmp_path / "gradcam.png")
    assert [p.suffix for p in paths] == [".png", ".pdf", ".tiff"]
    assert all(p.stat().st_size > 1000 for p in paths)


# --------------------------------------------------------------------------- tumour margin


def test_tumour_margin_keeps_voxels_within_it_in_millimetres() -> None:
    mask = np.ones((9, 9, 9), np.uint8)
    mask[4, 4, 4] = 2
    images = np.full((2, 9, 9, 9), 20.0, np.float32)
    config = NetworkConfig("resnet18", 2, 9, 0.25, 1, (-5.0, 10.0), tumour_margin_mm=4.0)
    # 2 mm slices, 1 mm pixels: 4 mm reaches two slices up and down, four pixels sideways.
    shown = network_input(images, config, mask, (2.0, 1.0, 1.0))
    kept = shown[0] != 0
    assert kept[2, 4, 4] and kept[6, 4, 4] and not kept[1, 4, 4] and not kept[7, 4, 4]
    assert kept[4, 4, 0] and kept[4, 4, 8] and not kept[4, 0, 0]
    # Clipped first, blanked second; every phase alike; a stack gives the same as one crop.
    assert set(np.unique(shown)) == {0.0, 10.0} and np.array_equal(shown[0], shown[1])
    stacked = network_input(images[None], config, mask[None], [(2.0, 1.0, 1.0)])
    assert np.array_equal(stacked[0], shown)


def test_a_clip_that_cuts_into_the_tumour_is_reported_per_phase(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mask = np.ones((2, 4, 4, 4), np.uint8)
    mask[:, :2] = TUMOUR_LABEL  # half of each crop is tumour: 64 tumour voxels in all
    images = np.zeros((2, 2, 4, 4, 4), np.float32)
    images[:, 1, :1] = -7.0  # hepatobiliary: half of the tumour below -5
    images[:, 1, 3] = -20.0  # air outside the tumour: clipped, and rightly so
    images[:, 0, 2:] = 30.0  # arterial: only outside the tumour above 10
    crops = crops_from_arrays(
        ["a", "b"], images, spatial_size=4, phases=["arterial", "hepatobiliary"], masks=mask
    )
    with caplog.at_level(logging.INFO, logger="hccrad.deep.predict"):
        shares = warn_if_tumour_clipped(crops, (-5.0, 10.0))
    assert shares.to_dict() == {"arterial": 0.0, "hepatobiliary": 0.5}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "hepatobiliary (50%)" in warnings[0]
    assert "arterial" not in warnings[0] and "widen deep.intensity_clip" in warnings[0]
    assert clipped_tumour_fraction(crops, (-10.0, 10.0)).eq(0.0).all()
    assert clipped_tumour_fraction(crops, None).eq(0.0).all()


def test_tumour_margin_needs_a_mask_with_a_tumour() -> None:
    config = NetworkConfig("resnet18", 1, 8, 0.25, 1, tumour_margin_mm=6.0)
    image = np.zeros((1, 8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="needs the crops' tumour masks"):
        network_input(image, config)
    with pytest.raises(ValueError, match="needs the crops' spacings"):
        network_input(image, config, np.full((8, 8, 8), 2, np.uint8))
    with pytest.raises(ValueError, match="no tumour voxels"):
        network_input(image, config, np.ones((8, 8, 8), np.uint8), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="tumour_margin_mm"):
        DeepConfig(tumour_margin_mm=-1.0)


def test_a_margin_network_ignores_what_lies_beyond_the_margin(
    cohort: tuple[list, CropSet, pd.DataFrame], tmp_path: Path
) -> None:
    _, crops, sheet = cohort
    config = DeepConfig(**FAST, tumour_margin_mm=4.0, max_epochs=2, min_epochs=1, patience=1)
    model = fit_model(sheet.iloc[:N_TRAIN], crops, config)
    loaded = load_model(*save_model(model, tmp_path / "m.pt", tmp_path / "m.json"))
    assert loaded.config.tumour_margin_mm == 4.0
    held_out = crops.subset(sheet.index[N_TRAIN:])
    regions = np.stack(
        [
            tumour_region(mask, spacing, 4.0)
            for mask, spacing in zip(held_out.masks, held_out.spacing_zyx, strict=True)
        ]
    )
    noise = np.random.default_rng(0).normal(0, 3, held_out.images.shape).astype(np.float32)
    disturbed = dataclasses.replace(
        held_out, images=np.where(regions[:, None], held_out.images, noise)
    )
    pd.testing.assert_series_equal(
        predict_scores(loaded, disturbed, device="cpu"),
        predict_scores(model, held_out, device="cpu"),
        check_exact=True,
    )
    panels = grad_cam_panels(model, crops, sheet, predict_scores(model, crops))
    assert np.isfinite(panels.cams).all()


def test_tumour_pooled_network_learns_reproducibly_and_round_trips(
    cohort: tuple[list, CropSet, pd.DataFrame], tmp_path: Path
) -> None:
    _, crops, sheet = cohort
    config = DeepConfig(
        **{**FAST, "architectures": (tumour_pooled.ARCHITECTURE,)}, max_epochs=16, patience=6
    )
    model = fit_model(sheet.iloc[:N_TRAIN], crops, config)
    held_out = sheet.iloc[N_TRAIN:]
    scores = predict_scores(model, crops.subset(held_out.index), device="cpu")
    assert roc_auc_score(held_out["response"], scores) > 0.75
    small = dataclasses.replace(config, max_epochs=2, elastic=True, elastic_prob=1.0)
    first, second = (fit_model(sheet.iloc[:16], crops, small) for _ in range(2))
    assert same_weights(first.network, second.network)
    loaded = load_model(*save_model(model, tmp_path / "m.pt", tmp_path / "m.json"))
    pd.testing.assert_series_equal(
        predict_scores(loaded, crops, device="cpu"),
        predict_scores(model, crops, device="cpu"),
        check_exact=True,
    )
    features = deep_features(model, crops.subset(held_out.index), device="cpu")
    assert features.shape == (len(held_out), 2 * 32)  # mean and SD of 32 channels
    panels = grad_cam_panels(model, crops, sheet, scores)
    assert panels.layer in CAM_LAYERS[tumour_pooled.ARCHITECTURE]
    assert np.isfinite(panels.cams).all() and panels.cams.max() > 0
    # The logit depends on the tumour's activations alone, and so does its map.
    assert not panels.cams[~panels.tumour].any()
