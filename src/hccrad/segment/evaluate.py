"""Evaluation of the multi-task segmenter: overlap metrics, head AUROC, radiomics from its masks.

Every table is per patient first (nothing dropped: excluded and empty predictions are rows with
a status) and summarised per evaluation cohort (train, internal_test, external and each external
centre, as
``hccrad.reporting.evaluation.evaluation_cohorts``). The threshold baseline is fitted on the
training patients and reported in the same tables as the network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk  # noqa: N813

from hccrad.core.labels import TUMOUR_LABEL
from hccrad.core.splits import TRAIN
from hccrad.imaging.prepared import predicted_mask_path
from hccrad.imaging.read import ImageQCError
from hccrad.reporting.evaluation import METRIC_ERRORS, evaluation_cohorts
from hccrad.segment.baseline import (
    METHOD_BASELINE,
    ThresholdBaseline,
    baseline_labels,
    fit_threshold_baseline,
)
from hccrad.segment.config import METHOD_NETWORK
from hccrad.segment.metrics import STRUCTURES, label_metrics
from hccrad.segment.volumes import Volume, is_excluded, read_volume
from hccrad.stats.discrimination import delong_auc

METRICS = ("dice", "iou", "hd95_mm", "volume_error_pct")
MIN_ICC_PATIENTS = 3


def read_predicted(mask_dir: str | Path, patient: str, volume: Volume) -> np.ndarray:
    """A predicted mask as an array, after checking it lies on the prepared image's grid."""
    path = predicted_mask_path(mask_dir, patient)
    mask = sitk.ReadImage(str(path))
    for name in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        if not np.allclose(getattr(mask, name)(), getattr(volume.reference, name)(), atol=1e-4):
            raise ValueError(
                f"patient {patient}: {path} is not on the prepared image's grid ({name[3:]}); "
                "re-run segment_predict"
            )
    return sitk.GetArrayFromImage(mask)


def training_baseline(
    folders: Mapping[str, str | Path], sheet: pd.DataFrame, phases: Sequence[str]
) -> tuple[ThresholdBaseline, pd.DataFrame]:
    """Fit the Otsu baseline (phase and side) on the training patients alone."""
    volumes = [
        read_volume(folder, patient, phases)
        for patient, folder in folders.items()
        if sheet.at[patient, "split"] == TRAIN and not is_excluded(folder)
    ]
    if not volumes:
        raise ValueError("the threshold baseline needs training patients; the sheet has none")
    return fit_threshold_baseline(volumes, phases)


def patient_metrics(
    folders: Mapping[str, str | Path],
    sheet: pd.DataFrame,
    predictions: pd.DataFrame,
    mask_dir: str | Path,
    baseline: ThresholdBaseline,
    phases: Sequence[str],
) -> pd.DataFrame:
    """One row per patient x method x structure: Dice, IoU, HD95, volumes, status and flags."""
    rows = []
    for patient, folder in folders.items():
        info = {
            "patient_id": patient,
            "split": sheet.at[patient, "split"],
            "centre": sheet.at[patient, "centre"],
        }
        status = "excluded" if is_excluded(folder) else predictions.at[patient, "status"]
        if status != "predicted":
            # Excluded in preparation, or a training patient the network did not predict.
            for method in (METHOD_NETWORK, METHOD_BASELINE):
                rows += [
                    info | {"method": method, "structure": s, "status": status} for s in STRUCTURES
                ]
            continue
        volume = read_volume(folder, patient, phases)
        assert volume.mask is not None
        labels = {
            METHOD_NETWORK: read_predicted(mask_dir, patient, volume),
            METHOD_BASELINE: baseline_labels(volume, baseline, phases),
        }
        for method, predicted in labels.items():
            empty = not bool((predicted == TUMOUR_LABEL).any())
            for row in label_metrics(predicted, volume.mask, volume.spacing_zyx):
                rows.append(
                    info | {"method": method, "status": "evaluated", "tumour_empty": empty} | row
                )
    return pd.DataFrame(rows)


def metrics_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD and median of every metric per cohort, method and structure (evaluated rows)."""
    evaluated = metrics[metrics["status"] == "evaluated"]
    patients = evaluated.drop_duplicates("patient_id").set_index("patient_id")
    rows = []
    for cohort, members in evaluation_cohorts(patients).items():
        part = evaluated[evaluated["patient_id"].isin(members)]
        for (method, structure), group in part.groupby(["method", "structure"], sort=False):
            row: dict[str, Any] = {
                "cohort": cohort,
                "method": method,
                "structure": structure,
                "n": len(group),
                "n_tumour_empty": int(group["tumour_empty"].sum()),
            }
            for metric in METRICS:
                values = group[metric].dropna()
                row |= {
                    f"{metric}_mean": values.mean(),
                    f"{metric}_sd": values.std(),
                    f"{metric}_median": values.median(),
                }
            rows.append(row)
    return pd.DataFrame(rows)


def head_auroc(
    predictions: pd.DataFrame, sheet: pd.DataFrame, endpoint: str, alpha: float = 0.05
) -> pd.DataFrame:
    """AUROC of the classification head per cohort, with DeLong CI (a note where undefined)."""
    predicted = predictions[predictions["status"] == "predicted"]
    patients = sheet.loc[predicted.index]
    rows = []
    for cohort, members in evaluation_cohorts(patients).items():
        y = pd.to_numeric(patients.loc[members, endpoint], errors="coerce")
        known = y.notna()
        row: dict[str, Any] = {"cohort": cohort, "endpoint": endpoint, "n": int(known.sum())}
        try:
            result = delong_auc(
                y[known],
                predicted.loc[members[known.to_numpy()], "response_score"],
                alpha=alpha,
                context=f"segmentation head in {cohort}",
            )
            row |= dataclasses.asdict(result) | {"ci_method": "DeLong, Wald", "note": ""}
        except METRIC_ERRORS as error:
            row["note"] = str(error)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- overlay patients


def overlay_patients(metrics: pd.DataFrame, per_centre: int) -> list[str]:
    """Patients to draw: per centre, the first evaluated ones (sorted ids: reproducible)."""
    evaluated = metrics[(metrics["status"] == "evaluated")].drop_duplicates("patient_id")
    chosen = []
    for _, group in evaluated.groupby("centre", sort=True):
        chosen += sorted(group["patient_id"])[:per_centre]
    return chosen


# --------------------------------------------------------------------------- auto radiomics


def auto_radiomics(
    folders: Mapping[str, str | Path],
    predictions: pd.DataFrame,
    mask_dir: str | Path,
    params: str | Path,
    radiomics_cfg: Mapping[str, Any],
    spacing_mm: Sequence[float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Radiomic features from the predicted masks (one job), and the patients left out why."""
    # Imported here: PyRadiomics is slow to import and only this step needs it.
    from hccrad.imaging.prepared import prepared_phases
    from hccrad.imaging.volumes import load_prepared
    from hccrad.radiomics.extract import extract_patient
    from hccrad.radiomics.patient import radiomics_settings

    tables, left_out = [], []
    for patient, folder in folders.items():
        status = predictions.at[patient, "status"]
        if status != "predicted":
            left_out.append({"patient_id": patient, "reason": f"not predicted ({status})"})
            continue
        if bool(predictions.at[patient, "tumour_empty"]):
            left_out.append({"patient_id": patient, "reason": "predicted tumour mask is empty"})
            continue
        volumes = load_prepared(patient, folder, prepared_phases(folder))
        predicted = sitk.ReadImage(str(predicted_mask_path(mask_dir, patient)))
        try:
            # Same parameters, regions, ring and settings as the reference radiomics rules.
            features, _ = extract_patient(
                dataclasses.replace(volumes, mask=predicted),
                params,
                regions=radiomics_cfg["regions"],
                ring_mm=radiomics_cfg["ring_mm"],
                setting_overrides=radiomics_settings(radiomics_cfg, spacing_mm),
            )
        except ImageQCError as error:
            left_out.append({"patient_id": patient, "reason": error.problem})
            continue
        tables.append(features)
    features = pd.concat(tables) if tables else pd.DataFrame(index=pd.Index([], name="patient_id"))
    return features, pd.DataFrame(left_out, columns=["patient_id", "reason"])


def auto_vs_reference_icc(
    reference: pd.DataFrame, auto: pd.DataFrame, threshold: float
) -> pd.DataFrame:
    """ICC(3,1) per feature between reference-mask and predicted-mask values (shared patients)."""
    from hccrad.radiomics.robustness import feature_icc

    shared = reference.index.intersection(auto.index)
    if len(shared) < MIN_ICC_PATIENTS:
        # E.g. a network that found (almost) no tumour: say so in the table, do not stop the run.
        return pd.DataFrame(
            {
                "feature": reference.columns,
                "icc": np.nan,
                "ci95_low": np.nan,
                "ci95_high": np.nan,
                "agrees": False,
                "n_patients": len(shared),
                "note": f"only {len(shared)} patients with a predicted tumour; ICC needs "
                f"{MIN_ICC_PATIENTS}",
            }
        )
    missing = sorted(set(reference.columns) - set(auto.columns))
    if missing:
        raise ValueError(
            f"auto radiomics lacks {len(missing)} reference features (e.g. {missing[:3]}); "
            "extract both with the same PyRadiomics parameters"
        )
    icc = feature_icc(
        reference.loc[shared], {"auto": auto.loc[shared, reference.columns]}, threshold=threshold
    )
    return icc.rename(columns={"robust": "agrees"}).assign(n_patients=len(shared), note="")


def icc_summary(icc: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """How many features agree (ICC >= threshold), and the ICC quartiles, overall and per region."""
    table = icc.assign(region=icc["feature"].str.extract(r"_(tumour|peritumoural)_")[0])
    rows = []
    for region, group in [("all", table), *table.groupby("region", sort=True)]:
        values = group["icc"].dropna()
        rows.append(
            {
                "region": region,
                "n_features": len(group),
                "n_defined": len(values),
                f"n_icc_ge_{threshold:g}": int((values >= threshold).sum()),
                "fraction_agreeing": float((values >= threshold).mean()) if len(values) else np.nan,
                "icc_median": values.median(),
                "icc_q25": values.quantile(0.25),
                "icc_q75": values.quantile(0.75),
            }
        )
    return pd.DataFrame(rows)


def radiomics_auc_by_mask(
    sheet: pd.DataFrame,
    feature_sets: Mapping[str, pd.DataFrame],
    endpoint: str,
    seed: int,
    models_cfg: Mapping[str, Any],
    alpha: float = 0.05,
    fit_on: str = "reference",
) -> pd.DataFrame:
    """AUC per held-out cohort of the radiomics models scoring each mask set's features.

    The models are fitted as the models rules fit them: on the training split of the
    ``fit_on`` set (the reference masks). They then score the held-out patients that every set
    has, from each set's features, so the AUCs are paired: what changes is the mask alone.
    Training patients are not scored (a network's masks of its own training patients are
    resubstitution).
    """
    from hccrad.models.fit import fit_all, predict_all

    fit_table = feature_sets[fit_on]
    fit_sheet = sheet.loc[sheet.index.intersection(fit_table.index)]
    try:
        models = fit_all(
            fit_sheet, {"radiomics": fit_table.loc[fit_sheet.index]}, endpoint, seed, models_cfg
        )
    except METRIC_ERRORS as error:
        return pd.DataFrame(
            [{"mask": mask, "n": 0, "note": f"not fitted: {error}"} for mask in feature_sets]
        )
    radiomics = {name: model for name, model in models.items() if name.startswith("radiomics")}
    shared = sheet.index[sheet["split"] != TRAIN]
    for table in feature_sets.values():
        shared = shared.intersection(table.index)
    patients = sheet.loc[shared]
    rows: list[dict[str, Any]] = []
    for mask, table in feature_sets.items():
        if patients.empty:
            # E.g. a network that found no tumour in any held-out patient: say so, per mask.
            note = "no held-out patient has features from every mask"
            rows.append({"mask": mask, "n": 0, "note": note})
            continue
        scores = predict_all(radiomics, patients, {"radiomics": table.loc[shared]})
        for cohort, members in evaluation_cohorts(patients).items():
            part = scores[scores["patient_id"].isin(members)]
            for model, group in part.groupby("model", sort=False):
                known = group["outcome"].notna()
                row: dict[str, Any] = {
                    "mask": mask,
                    "model": model,
                    "cohort": cohort,
                    "n": int(known.sum()),
                }
                try:
                    result = delong_auc(
                        group.loc[known, "outcome"],
                        group.loc[known, "score"],
                        alpha=alpha,
                        context=f"{model} on {mask} masks in {cohort}",
                    )
                    row |= dataclasses.asdict(result) | {"note": ""}
                except METRIC_ERRORS as error:
                    row["note"] = str(error)
                rows.append(row)
    return pd.DataFrame(rows)
