"""hccrad.deep.dltr (the deep config, a cohort's crops, score tables) and the selection plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hccrad.deep import dltr
from hccrad.deep.config import DeepConfig
from hccrad.deep.predict import SCORE_NAME
from hccrad.deep.select import selection_summary
from hccrad.figures.deep import selection_figure
from hccrad.figures.style import save_figure

PHASES = np.array(["arterial", "portal_venous"])
HEADER = "patient_id\tfile\treason\tfix\n"


def write_prepared(folder: Path, patient: str, n_tumours: int = 1, excluded: bool = False) -> Path:
    """A prepared patient folder with `n_tumours` crop files and an exclusion record."""
    patient_folder = folder / patient
    (patient_folder / "crops").mkdir(parents=True)
    record = HEADER + (f"{patient}\tmask.nii.gz\tempty mask\tredraw\n" if excluded else "")
    (patient_folder / "exclusion.tsv").write_text(record)
    rng = np.random.default_rng(abs(hash(patient)) % 2**32)
    for k in range(1, n_tumours + 1):
        np.savez(
            patient_folder / "crops" / f"{patient}_tumour{k}.npz",
            image=rng.normal(size=(2, 8, 8, 8)).astype(np.float32),
            mask=np.full((8, 8, 8), 2, np.uint8),
            phases=PHASES,
            patient_id=np.array(patient),
            instance=np.array(k),
            tumour_volume_mm3=np.array(1000.0 / k),
            spacing_zyx=np.array([3.0, 3.0, 3.0]),
        )
    return patient_folder


@pytest.fixture
def config() -> DeepConfig:
    """A small DeepConfig from a workflow-style block."""
    block = {"architectures": ["resnet18"], "spatial_size": [8, 8, 8], "threads": 2, "gpus": 0}
    return dltr.deep_config(block | {"gradcam": {"patients_per_centre": 1}}, seed=5)


def test_deep_config_strips_workflow_keys_and_takes_the_seed(config: DeepConfig) -> None:
    assert config.seed == 5 and config.spatial_size == (8, 8, 8) and not config.progress
    with pytest.raises(ValueError, match="unknown"):
        dltr.deep_config({"architectures": ["resnet18"], "epochs": 3}, seed=1)


def test_cohort_crops_lists_excluded_patients_and_rejects_gaps(
    tmp_path: Path, config: DeepConfig
) -> None:
    folders = dltr.prepared_folders(
        [
            write_prepared(tmp_path, "P1", n_tumours=2),
            write_prepared(tmp_path, "P2", excluded=True),
            write_prepared(tmp_path, "P3"),
        ]
    )
    crops, excluded = dltr.cohort_crops(folders, ["P1", "P2", "P3"], config)
    assert excluded == ["P2"]
    assert crops.patient_ids == ("P1", "P3")  # top_k 1: P1's larger tumour only
    with pytest.raises(ValueError, match=r"no prepared folder for 1 patient.*P4"):
        dltr.cohort_crops(folders, ["P1", "P4"], config)
    for crop in (tmp_path / "P3" / "crops").glob("*.npz"):
        crop.unlink()
    with pytest.raises(ValueError, match="no tumour crop for patient P3"):
        dltr.cohort_crops(folders, ["P3"], config)


def sheet_and_scores() -> tuple[pd.DataFrame, pd.Series]:
    """A four-patient sheet (two training) and the refit network's scores."""
    sheet = pd.DataFrame(
        {"split": ["train", "train", "internal_test", "external_B"], "centre": list("AAAB")},
        index=pd.Index(["P1", "P2", "P3", "P4"], name="patient_id"),
    )
    return sheet, pd.Series([0.9, 0.8, 0.3, 0.6], index=sheet.index)


def test_score_table_uses_out_of_fold_scores_for_training_patients() -> None:
    sheet, scores = sheet_and_scores()
    out_of_fold = pd.Series([0.41, 0.52], index=["P2", "P1"])
    table = dltr.score_table(sheet, scores, out_of_fold).set_index("patient_id")
    assert list(table.columns) == list(dltr.SCORE_COLUMNS[1:])
    assert table.loc["P1", "dltr_score"] == 0.52 and table.loc["P2", "dltr_score"] == 0.41
    assert table.loc[["P1", "P2"], "score_source"].eq(dltr.OUT_OF_FOLD).all()
    assert table.loc[["P3", "P4"], "dltr_score"].tolist() == [0.3, 0.6]
    assert table.loc[["P3", "P4"], "score_source"].eq(dltr.REFIT).all()


def test_score_table_without_out_of_fold_keeps_the_refit_scores() -> None:
    sheet, scores = sheet_and_scores()
    table = dltr.score_table(sheet, scores)
    assert table["score_source"].eq(dltr.REFIT).all()
    with pytest.raises(ValueError, match=r"no out-of-fold DLTR score for 1 training patient.*P2"):
        dltr.score_table(sheet, scores, pd.Series([0.5], index=["P1"]))


def test_out_of_fold_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out_of_fold.tsv"
    index = pd.Index(["P1", "P2"], name="patient_id")
    pd.DataFrame({SCORE_NAME: [0.25, 0.75]}, index=index).to_csv(path, sep="\t")
    assert dltr.read_out_of_fold(path).to_dict() == {"P1": 0.25, "P2": 0.75}


def test_selection_figure_is_drawn(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "architecture": ["resnet18"] * 3 + ["resnet50"] * 3,
            "fold": [1, 2, 3] * 2,
            "auc": [0.7, 0.8, 0.75, 0.6, 0.55, 0.65],
            "n_parameters": [10] * 3 + [20] * 3,
        }
    )
    summary = selection_summary(table)
    png, pdf, _tiff = save_figure(
        selection_figure(table, summary, "resnet18"), tmp_path / "sel.png"
    )
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pdf.stat().st_size > 0
    assert pixels.std() > 10  # not a blank canvas
