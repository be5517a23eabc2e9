"""hccrad.segment: network, masks on the image grid, empty tumours,
reproducible training, metrics, the threshold baseline and the evaluation tables."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813
import torch
from conftest import load_default_config
from test_models import synthetic_features

from hccrad.cohorts.simulate import simulate_cohort
from hccrad.core.config import radiomics_for
from hccrad.imaging.exclusions import Exclusion, write_exclusion
from hccrad.segment.baseline import (
    METHOD_BASELINE,
    ThresholdBaseline,
    baseline_labels,
    fit_threshold_baseline,
)
from hccrad.segment.config import CLASSES, METHOD_NETWORK, SegmentConfig, segment_config
from hccrad.segment.evaluate import (
    auto_radiomics,
    auto_vs_reference_icc,
    head_auroc,
    icc_summary,
    metrics_summary,
    patient_metrics,
    radiomics_auc_by_mask,
    read_predicted,
)
from hccrad.segment.metrics import label_metrics, overlap_metrics
from hccrad.segment.network import build_network, load_encoder_weights
from hccrad.segment.predict import keep_largest_organ, mask_image, predict_cohort, predict_volume
from hccrad.segment.train import (
    Segmenter,
    epoch_samples,
    load_segmenter,
    save_segmenter,
    train_segmenter,
)
from hccrad.segment.volumes import Volume, pad_to_multiple, slice_stack

PHASES = ("arterial", "portal_venous", "hepatobiliary")
SPACING = (3.0, 2.5, 4.0)  # x, y, z: anisotropic so an axis mix-up shows
ORIGIN = (-12.5, 40.0, 7.25)
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # rotated in-plane


def small_config(**overrides) -> SegmentConfig:
    """Settings for a seconds-long training on the synthetic volumes."""
    values = {
        "phases": PHASES,
        "patch_size": (32, 32),
        "tumour_slices_per_patient": 2,
        "negative_fraction": 0.5,
        "epochs": 1,
        "batch_size": 4,
        "device": "cpu",
    } | overrides
    return SegmentConfig(**values)


def synthetic_arrays(
    seed: int, shape=(6, 37, 45), tumour: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Phases (P, Z, Y, X) and labels: an ellipsoid liver with a tumour dark on hepatobiliary."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    cz, cy, cx = (s / 2 for s in shape)
    liver = ((z - cz) / 4) ** 2 + ((y - cy) / 14) ** 2 + ((x - cx) / 17) ** 2 < 1
    labels = liver.astype(np.uint8)
    if tumour:
        labels[((z - cz) / 2) ** 2 + ((y - cy) / 5) ** 2 + ((x - cx - 4) / 5) ** 2 < 1] = 2
    image = rng.normal(0, 1, (len(PHASES), *shape)).astype(np.float32)
    image[:, ~liver] -= 6.0
    image[0][labels == 2] += 2.0
    image[2][labels == 2] -= 5.0
    return image, labels


def as_image(array: np.ndarray) -> sitk.Image:
    """An array on the test grid (spacing, origin and direction all non-trivial)."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    return image


def synthetic_volume(seed: int, tumour: bool = True) -> Volume:
    """A Volume of the synthetic patient."""
    image, labels = synthetic_arrays(seed, tumour=tumour)
    return Volume(f"P{seed}", image, labels, as_image(labels))


def write_prepared(
    folder: Path, seed: int, tumour: bool = True, phases: tuple[str, ...] = PHASES
) -> Path:
    """A prepared patient folder (phases, mask, empty exclusion record) like prepare_patient's."""
    image, labels = synthetic_arrays(seed, tumour=tumour)
    folder.mkdir(parents=True)
    for phase, values in zip(PHASES, image, strict=True):
        if phase in phases:
            sitk.WriteImage(as_image(values), str(folder / f"{phase}.nii.gz"))
    sitk.WriteImage(as_image(labels), str(folder / "mask.nii.gz"))
    write_exclusion(folder, None)
    return folder


@pytest.fixture(scope="module")
def trained() -> Segmenter:
    """A network trained for one short epoch on three synthetic patients."""
    torch.set_num_threads(1)
    volumes = [synthetic_volume(seed) for seed in range(3)]
    return train_segmenter(volumes, [1.0, 0.0, 1.0], small_config(), seed=5)


def background_only(model: Segmenter) -> Segmenter:
    """A copy of ``model`` whose segmentation head says background everywhere."""
    network = build_network(model.config)
    network.load_state_dict(model.network.state_dict())
    with torch.no_grad():
        network.segmentation_head.weight.zero_()
        network.segmentation_head.bias.copy_(torch.tensor([10.0, 0.0, 0.0]))
    return Segmenter(network.eval(), model.config)


# --------------------------------------------------------------------------- network and inputs


def test_network_gives_label_logits_at_input_size_and_one_response_logit_per_slice():
    torch.manual_seed(0)
    network = build_network(small_config(neighbour_slices=2)).eval()
    with torch.no_grad():
        logits, response = network(torch.randn(2, 15, 64, 96))
    assert logits.shape == (2, CLASSES, 64, 96)
    assert response.shape == (2,)


def test_default_config_block_parses_into_nine_input_channels():
    config = segment_config(load_default_config()["segment"])
    assert config.phases == PHASES
    assert config.in_channels == 9
    assert set(config.loss_weights) == {"dice", "ce", "response"}


def test_negative_neighbour_slices_are_rejected():
    with pytest.raises(ValueError, match="neighbour_slices"):
        segment_config({"neighbour_slices": -1})


def test_slice_stack_repeats_edge_slices_and_orders_phase_major():
    image = np.arange(2 * 3 * 1 * 1, dtype=np.float32).reshape(2, 3, 1, 1)
    stack = slice_stack(image, 0, 1)
    # Phase 0 at z = 0, 0, 1 then phase 1 at z = 0, 0, 1.
    assert stack[:, 0, 0].tolist() == [0, 0, 1, 3, 3, 4]


def test_padding_reaches_the_encoder_stride_and_is_undone_exactly():
    array = np.random.default_rng(0).normal(size=(2, 37, 45)).astype(np.float32)
    padded, crop = pad_to_multiple(array)
    assert padded.shape == (2, 64, 64)
    np.testing.assert_array_equal(padded[(slice(None), *crop)], array)


def test_pretrained_weights_come_from_a_local_file_only(tmp_path):
    network = build_network(small_config())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encoder_weights(network, tmp_path / "missing.pt")
    source = build_network(small_config())
    torch.save(source.encoder.state_dict(), tmp_path / "encoder.pt")
    loaded = load_encoder_weights(network, tmp_path / "encoder.pt")
    assert loaded
    for name in loaded:
        torch.testing.assert_close(
            network.encoder.state_dict()[name], source.encoder.state_dict()[name]
        )


# --------------------------------------------------------------------------- training


def test_training_is_bit_reproducible_on_the_cpu(tmp_path, trained):
    volumes = [synthetic_volume(seed) for seed in range(3)]
    again = train_segmenter(volumes, [1.0, 0.0, 1.0], small_config(), seed=5)
    for name, tensor in trained.network.state_dict().items():
        assert torch.equal(tensor, again.network.state_dict()[name]), name
    pd.testing.assert_frame_equal(trained.history, again.history)
    digests = []
    for run, model in enumerate((trained, again)):
        # torch.save names the archive after the file: same name, other folders.
        (tmp_path / str(run)).mkdir()
        weights, settings = tmp_path / str(run) / "model.pt", tmp_path / str(run) / "model.json"
        save_segmenter(model, weights, settings)
        digests.append(hashlib.md5(weights.read_bytes() + settings.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_another_seed_trains_another_network(trained):
    volumes = [synthetic_volume(seed) for seed in range(3)]
    other = train_segmenter(volumes, [1.0, 0.0, 1.0], small_config(), seed=6)
    weight = "segmentation_head.weight"
    assert not torch.equal(trained.network.state_dict()[weight], other.network.state_dict()[weight])


def test_epoch_samples_take_tumour_slices_and_a_share_of_tumour_free_ones():
    volume = synthetic_volume(0)
    config = small_config(tumour_slices_per_patient=10, negative_fraction=0.5)
    samples = epoch_samples([volume], config, np.random.default_rng(0))
    tumour_slices = set(np.flatnonzero((volume.mask == 2).any(axis=(1, 2))))
    chosen = [z for _, z in samples]
    assert set(chosen) >= tumour_slices
    assert len(chosen) - len(tumour_slices) == round(0.5 * len(tumour_slices))


def test_saved_segmenter_predicts_like_the_trained_one(tmp_path, trained):
    save_segmenter(trained, tmp_path / "m.pt", tmp_path / "m.json")
    loaded = load_segmenter(tmp_path / "m.pt", tmp_path / "m.json")
    volume = synthetic_volume(7)
    first, second = predict_volume(trained, volume), predict_volume(loaded, volume)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.response_score == second.response_score


# --------------------------------------------------------------------------- masks


def test_predicted_masks_keep_the_image_grid_and_the_reference_labels(tmp_path, trained):
    folder = write_prepared(tmp_path / "prepared" / "P7", 7)
    sheet = pd.DataFrame({"split": ["external_B"], "centre": ["B"]}, index=["P7"])
    table = predict_cohort(trained, {"P7": folder}, sheet, tmp_path / "masks")
    predicted = sitk.ReadImage(str(tmp_path / "masks" / "P7.nii.gz"))
    reference = sitk.ReadImage(str(folder / "arterial.nii.gz"))
    assert predicted.GetSize() == reference.GetSize()
    assert predicted.GetSpacing() == pytest.approx(reference.GetSpacing())
    assert predicted.GetOrigin() == pytest.approx(reference.GetOrigin())
    assert predicted.GetDirection() == pytest.approx(reference.GetDirection())
    assert predicted.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(predicted))) <= {0, 1, 2}
    assert table.loc["P7", "status"] == "predicted"
    assert 0.0 <= table.loc["P7", "response_score"] <= 1.0


def test_tumour_outside_the_largest_liver_region_is_removed():
    labels = np.zeros((5, 12, 12), np.uint8)
    labels[1:4, 1:7, 1:7] = 1
    labels[2, 3:5, 3:5] = 2  # tumour inside the liver: kept
    labels[2, 9:11, 9:11] = 2  # a speck in another organ: removed
    kept = keep_largest_organ(labels)
    assert (kept[2, 3:5, 3:5] == 2).all()
    assert (kept[2, 9:11, 9:11] == 0).all()
    assert ((kept == 1) == (labels == 1)).all()


def test_a_mask_that_does_not_fit_the_grid_is_refused():
    with pytest.raises(ValueError, match="do not fit the image grid"):
        mask_image(np.zeros((2, 3, 4), np.uint8), as_image(np.zeros((2, 3, 5), np.uint8)))


def test_a_volume_without_tumour_gives_an_empty_mask_and_a_flag(tmp_path, trained):
    model = background_only(trained)
    folder = write_prepared(tmp_path / "prepared" / "P8", 8, tumour=False)
    sheet = pd.DataFrame({"split": ["train"], "centre": ["A"]}, index=["P8"])
    table = predict_cohort(model, {"P8": folder}, sheet, tmp_path / "masks")
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "masks" / "P8.nii.gz")))
    assert not (mask == 2).any()
    assert bool(table.loc["P8", "tumour_empty"])
    assert table.loc["P8", "tumour_ml"] == 0.0
    assert "no tumour" in table.loc["P8", "note"]
    # The score falls back to every slice instead of failing on an empty selection.
    assert np.isfinite(table.loc["P8", "response_score"])


def test_empty_predictions_are_scored_not_crashed_on(tmp_path, trained):
    folder = write_prepared(tmp_path / "prepared" / "P9", 9)
    sheet = pd.DataFrame({"split": ["internal_test"], "centre": ["A"]}, index=["P9"])
    masks = tmp_path / "masks"
    predictions = predict_cohort(background_only(trained), {"P9": folder}, sheet, masks)
    baseline = ThresholdBaseline("hepatobiliary", tumour_below=True)
    metrics = patient_metrics({"P9": folder}, sheet, predictions, masks, baseline, PHASES)
    tumour = metrics.set_index(["method", "structure"]).loc[(METHOD_NETWORK, "tumour")]
    assert bool(tumour["tumour_empty"])
    assert tumour["dice"] == 0.0
    assert np.isnan(tumour["hd95_mm"])
    assert tumour["volume_error_pct"] == pytest.approx(-100.0)


def test_excluded_patients_are_rows_with_a_status_not_masks(tmp_path, trained):
    folder = write_prepared(tmp_path / "prepared" / "P1", 1)
    write_exclusion(folder, Exclusion("P1", folder / "mask.nii.gz", "bad mask", "fix it"))
    sheet = pd.DataFrame({"split": ["train"], "centre": ["A"]}, index=["P1"])
    table = predict_cohort(trained, {"P1": folder}, sheet, tmp_path / "masks")
    assert table.loc["P1", "status"] == "excluded"
    assert not (tmp_path / "masks" / "P1.nii.gz").exists()


def test_the_networks_training_patients_are_rows_without_masks(tmp_path, trained):
    # segment.predict: held_out: no resubstituted mask, and no Dice from one.
    folder = write_prepared(tmp_path / "prepared" / "P7", 7)
    sheet = pd.DataFrame({"split": ["train"], "centre": ["A"]}, index=["P7"])
    masks = tmp_path / "masks"
    table = predict_cohort(trained, {"P7": folder}, sheet, masks, training={"P7"})
    assert table.loc["P7", "status"] == "training"
    assert "trained on this patient" in table.loc["P7", "note"]
    assert not (masks / "P7.nii.gz").exists()
    baseline = ThresholdBaseline("hepatobiliary", tumour_below=True)
    metrics = patient_metrics({"P7": folder}, sheet, table, masks, baseline, PHASES)
    assert len(metrics) == 4 and (metrics["status"] == "training").all()


def test_a_mask_off_the_grid_is_reported_with_the_patient(tmp_path):
    volume = synthetic_volume(2)
    shifted = as_image(volume.mask)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    (tmp_path / "masks").mkdir()
    sitk.WriteImage(shifted, str(tmp_path / "masks" / "P2.nii.gz"))
    with pytest.raises(ValueError, match=r"P2.*Origin"):
        read_predicted(tmp_path / "masks", "P2", volume)


# --------------------------------------------------------------------------- metrics and baseline


def test_overlap_metrics_of_a_shifted_cube():
    reference = np.zeros((20, 20, 20), bool)
    reference[5:15, 5:15, 5:15] = True
    predicted = np.roll(reference, 2, axis=2)  # 2 voxels along x
    metrics = overlap_metrics(predicted, reference, (4.0, 1.0, 1.5))
    assert metrics["dice"] == pytest.approx(0.8)
    assert metrics["iou"] == pytest.approx(8 / 12)
    assert metrics["hd95_mm"] == pytest.approx(3.0)  # 2 voxels x 1.5 mm
    assert metrics["volume_error_pct"] == pytest.approx(0.0)
    assert metrics["reference_ml"] == pytest.approx(1000 * 6.0 / 1000)


def test_both_masks_empty_is_perfect_overlap_without_a_distance():
    empty = np.zeros((4, 4, 4), bool)
    metrics = overlap_metrics(empty, empty, (1.0, 1.0, 1.0))
    assert metrics["dice"] == 1.0
    assert np.isnan(metrics["hd95_mm"])
    assert np.isnan(metrics["volume_error_pct"])


def test_liver_metrics_count_the_tumour_as_liver():
    labels = np.zeros((3, 3, 3), np.uint8)
    labels[1, 1, :] = [1, 2, 1]
    rows = {r["structure"]: r for r in label_metrics(labels, labels, (1, 1, 1))}
    assert rows["liver"]["reference_ml"] == pytest.approx(3 / 1000)
    assert rows["tumour"]["reference_ml"] == pytest.approx(1 / 1000)


def test_threshold_baseline_finds_the_phase_and_side_of_the_tumour():
    volumes = [synthetic_volume(seed) for seed in range(3)]
    baseline, table = fit_threshold_baseline(volumes, PHASES)
    assert baseline == ThresholdBaseline("hepatobiliary", tumour_below=True)
    assert len(table) == 2 * len(PHASES)
    assert table["train_dice"].max() > 0.5
    labels = baseline_labels(volumes[0], baseline, PHASES)
    liver = np.isin(volumes[0].mask, (1, 2))
    assert ((labels > 0) == liver).all()  # the baseline borrows the reference liver


def test_summary_and_auroc_per_cohort_with_external_centres():
    patients = [f"P{i}" for i in range(12)]
    split = ["train"] * 4 + ["internal_test"] * 4 + ["external_B"] * 2 + ["external_C"] * 2
    centre = ["A"] * 8 + ["B"] * 2 + ["C"] * 2
    sheet = pd.DataFrame({"split": split, "centre": centre, "response": [0, 1] * 6}, index=patients)
    predictions = pd.DataFrame(
        {"status": "predicted", "response_score": np.linspace(0.1, 0.9, 12)}, index=patients
    )
    auroc = head_auroc(predictions, sheet, "response").set_index("cohort")
    assert list(auroc.index) == [
        "train",
        "internal_test",
        "external",
        "external_B",
        "external_C",
    ]
    # Scores rise with the index and every odd patient responds: AUC > 0.5 where defined.
    assert (auroc.loc[["train", "internal_test", "external"], "auc"] > 0.5).all()
    # Two patients per external centre: DeLong is undefined, said in a note, not a crash.
    assert auroc.loc["external_B", "note"].startswith("segmentation head in external_B")
    assert np.isnan(auroc.loc["external_B", "auc"])
    assert auroc.loc["train", "n"] == 4
    rows = [
        {
            "patient_id": p,
            "split": s,
            "centre": c,
            "method": m,
            "structure": "tumour",
            "status": "evaluated",
            "tumour_empty": False,
            "dice": d,
            "iou": d,
            "hd95_mm": 1.0,
            "volume_error_pct": 0.0,
        }
        for p, s, c in zip(patients, split, centre, strict=True)
        for m, d in ((METHOD_NETWORK, 0.9), (METHOD_BASELINE, 0.5))
    ]
    summary = metrics_summary(pd.DataFrame(rows)).set_index(["cohort", "method"])
    assert summary.loc[("external_B", METHOD_NETWORK), "dice_mean"] == pytest.approx(0.9)
    assert summary.loc[("external", METHOD_BASELINE), "n"] == 4


def test_icc_of_identical_features_is_one_and_a_noisy_feature_disagrees():
    rng = np.random.default_rng(0)
    index = pd.Index([f"P{i}" for i in range(10)], name="patient_id")
    reference = pd.DataFrame(
        {
            "arterial_tumour_original_firstorder_Mean": rng.normal(size=10),
            "arterial_peritumoural_original_shape_Sphericity": rng.normal(size=10),
        },
        index=index,
    )
    auto = reference.copy()
    auto.iloc[:, 1] = rng.normal(size=10)
    icc = auto_vs_reference_icc(reference, auto, threshold=0.75)
    assert icc["icc"].iloc[0] == pytest.approx(1.0)
    assert icc["icc"].iloc[1] < 0.75
    assert icc["agrees"].tolist() == [True, False]
    summary = icc_summary(icc, 0.75).set_index("region")
    assert summary.loc["all", "n_icc_ge_0.75"] == 1
    assert summary.loc["tumour", "fraction_agreeing"] == 1.0


def test_too_few_patients_with_a_predicted_tumour_give_a_noted_icc_table():
    index = pd.Index(["P1", "P2"], name="patient_id")
    reference = pd.DataFrame({"arterial_tumour_original_firstorder_Mean": [1.0, 2.0]}, index)
    icc = auto_vs_reference_icc(reference, reference.iloc[:1], threshold=0.75)
    assert icc["feature"].tolist() == list(reference.columns)
    assert icc["icc"].isna().all()
    assert "only 1 patients" in icc["note"].iloc[0]


def test_auto_radiomics_uses_the_predicted_mask_and_lists_who_is_left_out(tmp_path):
    config = load_default_config()
    params = Path(__file__).resolve().parent.parent / config["radiomics"]["params"]["mri"]
    folders, rows = {}, []
    masks = tmp_path / "masks"
    masks.mkdir()
    for seed in range(3):
        patient = f"P{seed}"
        # One phase keeps PyRadiomics quick; the predicted-mask path is the same for all.
        folders[patient] = write_prepared(
            tmp_path / "prepared" / patient, seed, phases=("hepatobiliary",)
        )
        # The "prediction" is the reference mask itself: features must equal the reference ones.
        reference = sitk.ReadImage(str(folders[patient] / "mask.nii.gz"))
        sitk.WriteImage(reference, str(masks / f"{patient}.nii.gz"))
        rows.append({"patient_id": patient, "status": "predicted", "tumour_empty": False})
    folders["P9"] = write_prepared(tmp_path / "prepared" / "P9", 9, phases=("hepatobiliary",))
    rows.append({"patient_id": "P9", "status": "predicted", "tumour_empty": True})
    predictions = pd.DataFrame(rows).set_index("patient_id")
    spacing = [SPACING[0], SPACING[1], SPACING[2]]
    radiomics_cfg = radiomics_for(config["radiomics"], "mri")
    features, left_out = auto_radiomics(folders, predictions, masks, params, radiomics_cfg, spacing)
    assert list(features.index) == ["P0", "P1", "P2"]
    assert left_out.to_dict("records") == [
        {"patient_id": "P9", "reason": "predicted tumour mask is empty"}
    ]
    assert any(c.startswith("hepatobiliary_peritumoural_") for c in features.columns)
    icc = auto_vs_reference_icc(features, features, threshold=0.75)
    defined = icc["icc"].notna()
    assert defined.any()
    assert icc.loc[defined, "icc"].to_numpy() == pytest.approx(1.0)


def test_auc_by_mask_scores_held_out_patients_with_the_reference_training_fit():
    simulated = simulate_cohort(load_default_config()["simulate"]["response"], 3)
    sheet = simulated["sheet"]
    reference = synthetic_features(simulated["latent"], 3)["radiomics"]
    held_out = sheet.index[sheet["split"] != "train"]
    rng = np.random.default_rng(3)
    # The network's masks: held-out patients only, one without a tumour (no features).
    predicted = reference.loc[held_out[1:]] + 0.3 * rng.standard_normal((len(held_out) - 1, 1))
    sets = {"reference": reference, "predicted": predicted}
    auc = radiomics_auc_by_mask(sheet, sets, "response", 3, None)
    assert set(auc["mask"]) == {"reference", "predicted"}
    assert "train" not in set(auc["cohort"])
    # Paired: both masks scored on the same held-out patients, the featureless one left out.
    assert (auc.groupby(["cohort", "model"])["n"].nunique() == 1).all()
    scored = sheet.loc[held_out[1:]]
    for cohort, split in (
        ("internal_test", scored["split"] == "internal_test"),
        ("external", scored["split"].str.startswith("external")),
    ):
        expected = scored.loc[split, "response"].notna().sum()
        assert (auc.loc[auc["cohort"] == cohort, "n"] == expected).all(), cohort
    # The fit reads the reference training rows alone: predicted training rows change nothing,
    # and identical features give identical AUCs.
    noise = pd.DataFrame(
        rng.standard_normal((len(sheet) - len(held_out), reference.shape[1])),
        index=sheet.index[sheet["split"] == "train"],
        columns=reference.columns,
    )
    with_training = radiomics_auc_by_mask(
        sheet,
        {"reference": reference, "predicted": pd.concat([predicted, noise])},
        "response",
        3,
        None,
    )
    pd.testing.assert_frame_equal(auc, with_training)
    same = radiomics_auc_by_mask(
        sheet, {"reference": reference, "predicted": reference.loc[held_out]}, "response", 3, None
    ).set_index(["mask", "cohort", "model"])["auc"]
    np.testing.assert_allclose(same.loc["reference"], same.loc["predicted"])


def test_auc_by_mask_without_a_paired_held_out_patient_is_a_note_per_mask():
    simulated = simulate_cohort(load_default_config()["simulate"]["response"], 3)
    reference = synthetic_features(simulated["latent"], 3)["radiomics"]
    empty = pd.DataFrame(columns=reference.columns, index=pd.Index([], name="patient_id"))
    sets = {"reference": reference, "predicted": empty}
    auc = radiomics_auc_by_mask(simulated["sheet"], sets, "response", 3, None)
    assert auc["mask"].tolist() == ["reference", "predicted"]
    assert (auc["n"] == 0).all() and auc["note"].str.contains("no held-out patient").all()
