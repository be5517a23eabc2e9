"""Score new patients with a bundle by the workflow's own functions, then annotate the scores.

Every step is the library function that a workflow rule's script calls, with the bundle's copy
of the run's config: preparation (prepare_batch, as prepare_radiomics_batch/prepare_batch), the
segmentation network's tumour (predict_cohort and predicted_tumour_batch, as segment_predict and
prepare_predicted_tumour_batch), radiomics (extract_into, as the batch rules), the DLTR score
(cohort_crops and predict_ensemble, as deep_predict) and the models (predict_all, as
fit_models). Nothing is re-implemented here, so a bundle scores a patient as the run did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hccrad.bundle.manifest import BundleError
from hccrad.bundle.store import CONFORMAL, DLTR, DOMAIN, ROBUST, SEGMENT, Bundle
from hccrad.cohorts.sheet import read_patients
from hccrad.deep import dltr
from hccrad.deep.cam_panels import GradCamPanels
from hccrad.deep.explain import grad_cam_panels
from hccrad.deep.networks import DeepModel, load_model
from hccrad.deep.predict import predict_ensemble
from hccrad.imaging.batches import patient_folders
from hccrad.imaging.geometry import read_raw_geometry
from hccrad.imaging.prepare import QCDrawer
from hccrad.models.conformal import conformal_intervals
from hccrad.models.domain import describe_patients, domain_flags
from hccrad.models.fit import predict_all
from hccrad.models.inputs import DEEP, RADIOMICS, deep_score_table
from hccrad.models.settings import model_settings
from hccrad.radiomics.batch import (
    Extraction,
    extract_into,
    predicted_tumour_batch,
    prepare_batch,
)
from hccrad.reporting.patient_report import SCORE_COLUMNS as REPORT_SCORE_COLUMNS
from hccrad.stats.survival import HIGH, LOW

NEW_SPLIT = "new"
# The folder of intermediate files (prepared patients, masks, radiomics) beside the patients'
# folders: a patient id cannot start with "_" (the sheet schema), so it never clashes.
WORK = "_work"
NEW_CENTRE = "new"
# The per-patient scores that the report reads, with the patient id.
SCORE_COLUMNS: tuple[str, ...] = ("patient_id", *REPORT_SCORE_COLUMNS)
# The workflow's scores.tsv holds the DLTR score with 6 decimals (deep_predict), and the models
# read it back from there: the bundle writes and parses it the same way, so that the models get
# the very float they got in the run (np.round can differ from printf in the last bit).
DLTR_FORMAT = "{:.6f}"
Masks = str  # "reference" (the sheet's mask has the tumour) or "liver_only" (the network's)


# --------------------------------------------------------------------------- preparation


def phases(bundle: Bundle) -> list[str]:
    """The training phases, in the order the crops' channels follow."""
    return list(bundle.manifest["phases"])


def check_new_sheet(bundle: Bundle, sheet: pd.DataFrame) -> pd.DataFrame:
    """The new patients' sheet with split/centre filled in, else BundleError naming the gap."""
    missing = [f"image_{p}" for p in phases(bundle) if f"image_{p}" not in sheet.columns]
    if missing or "mask" not in sheet.columns:
        raise BundleError(
            f"new patients' sheet lacks column(s) {missing + ([] if 'mask' in sheet else ['mask'])}"
            f"; the bundle's models were trained on phases {phases(bundle)}"
        )
    sheet = sheet.copy()
    # A covariate left out is a missing value, as an empty cell of the run's sheet: the
    # clinical model imputes it as it learnt to on training.
    for covariate in bundle.config["models"]["clinical_covariates"]:
        if covariate not in sheet.columns:
            sheet[covariate] = np.nan
    sheet["split"] = NEW_SPLIT
    if "centre" not in sheet.columns:
        sheet["centre"] = NEW_CENTRE
    sheet["centre"] = sheet["centre"].fillna(NEW_CENTRE).astype(str)
    # The crops' channels follow the sheet's image columns: the training order, whatever the
    # order of the new sheet.
    images = [f"image_{p}" for p in phases(bundle)]
    rest = [c for c in sheet.columns if c not in images and c not in ("centre", "split")]
    return sheet[["centre", "split", *images, *rest]]


def prepare_new(
    bundle: Bundle,
    sheet: pd.DataFrame,
    out: str | Path,
    *,
    masks: Masks = "reference",
    draw_qc: QCDrawer | None = None,
    threads: int = 1,
    log: logging.Logger | None = None,
) -> dict[str, Path]:
    """Prepare the new patients into ``out`` as the run prepared its cohort; their folders.

    ``masks="liver_only"``: the sheet's masks hold the liver only and the bundle's
    segmentation network draws the tumour, as for a cohort with ``masks: liver_only``.
    """
    out = Path(out)
    imaging, modality = bundle.config["imaging"], str(bundle.manifest["modality"])
    patients = list(sheet.index)
    log = log or logging.getLogger(__name__)
    prepare_batch(
        sheet, patients, imaging, modality, out / "prepared", masks=masks, draw_qc=draw_qc,
        threads=threads, log=log,
    )  # fmt: skip
    folders = patient_folders([out / "prepared"])
    if masks != "liver_only":
        return folders
    if not bundle.manifest.get("segmentation_network"):
        raise BundleError(
            "no tumour mask given and the bundle has no segmentation network (the run trained "
            "none): give the tumour mask (--mask)"
        )
    # Imported here: torch's segmentation stack is needed only without a tumour mask.
    from hccrad.segment.predict import predict_cohort
    from hccrad.segment.train import load_segmenter

    segmenter = load_segmenter(
        bundle.path(f"{SEGMENT}/model.pt"), bundle.path(f"{SEGMENT}/model.json")
    )
    (out / "masks").mkdir(parents=True, exist_ok=True)
    predicted = predict_cohort(segmenter, folders, sheet, out / "masks", log)
    predicted_tumour_batch(
        sheet, folders, predicted, out / "masks", patients, imaging, modality,
        out / "prepared_auto", draw_qc=draw_qc, threads=threads, log=log,
    )  # fmt: skip
    return patient_folders([out / "prepared_auto"])


def excluded(folders: Mapping[str, Path]) -> dict[str, str]:
    """Patients that preparation excluded, with the reason (their exclusion record)."""
    from hccrad.imaging.prepared import read_exclusion

    reasons = {}
    for patient, folder in folders.items():
        record = read_exclusion(folder)
        if len(record):
            reasons[patient] = f"{record.iloc[0]['file']}: {record.iloc[0]['reason']}"
    return reasons


# --------------------------------------------------------------------------- features


def radiomics_features(
    bundle: Bundle, folders: Mapping[str, Path], out: str | Path
) -> pd.DataFrame:
    """The robust radiomic features of prepared patients, as the run's features_robust table."""
    radiomics_cfg = bundle.config["radiomics"]
    if radiomics_cfg.get("harmonisation", "none") != "none":
        # ComBat adjusts each centre by its batch of patients: one new patient has none.
        raise BundleError(
            f"the run harmonised radiomics across centres ({radiomics_cfg['harmonisation']}); "
            "a new patient's centre has no batch to harmonise with. Rebuild the bundle from a "
            "run with radiomics: harmonisation: none"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    extraction = Extraction(
        str(bundle.path("radiomics_params.yaml")),
        radiomics_cfg,
        bundle.config["imaging"]["spacing_mm"],
        bundle.config["imaging"]["on_error"],
    )
    tables = []
    for patient, folder in folders.items():
        extract_into(patient, folder, extraction, out)
        tables.append(pd.read_parquet(out / f"{patient}.parquet"))
    features = pd.concat(tables)
    robust = list(bundle.table(ROBUST)["feature"])
    return features[robust]


def dltr_networks(bundle: Bundle, device: str = "cpu") -> list[DeepModel]:
    """The refitted DLTR network first, then the fold networks it is averaged with."""
    members = [
        load_model(
            bundle.path(f"{DLTR}/model.pt"), bundle.path(f"{DLTR}/model.json"), device=device
        )
    ]
    for weights in bundle.manifest["dltr_ensemble"]:
        if weights != "model.pt":
            description = weights.removesuffix(".pt") + ".json"
            members.append(
                load_model(
                    bundle.path(f"{DLTR}/{weights}"),
                    bundle.path(f"{DLTR}/{description}"),
                    device=device,
                )
            )
    return members


def dltr_scores(bundle: Bundle, folders: Mapping[str, Path], patients: Sequence[str]) -> pd.Series:
    """The DLTR score of each patient (rounded as the run's scores.tsv), as deep_predict."""
    config = dltr.deep_config(bundle.config["deep"], int(bundle.manifest["created"]["seed"]))
    crops, _ = dltr.cohort_crops(folders, list(patients), config)
    scores = predict_ensemble(dltr_networks(bundle, config.device), crops, device=config.device)
    return scores.map(lambda score: float(DLTR_FORMAT.format(score)))


def feature_tables(
    bundle: Bundle, sheet: pd.DataFrame, folders: Mapping[str, Path], out: str | Path
) -> dict[str, pd.DataFrame]:
    """The models' feature tables of the new patients: radiomics and the DLTR score."""
    settings = model_settings(bundle.config["models"])
    scores = dltr_scores(bundle, folders, list(sheet.index))
    deep = pd.DataFrame({settings.dltr_score_column: scores})
    return {
        RADIOMICS: radiomics_features(bundle, folders, out),
        DEEP: deep_score_table(deep, sheet, settings.dltr_score_column),
    }


def model_scores(
    bundle: Bundle, sheet: pd.DataFrame, features: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """Every model's probability per patient: predict_all, as fit_models writes predictions."""
    table = predict_all(bundle.models, sheet, features)
    return table[["patient_id", "model", "score"]]


# --------------------------------------------------------------------------- annotation


def risk_outcome(bundle: Bundle, outcome: str | None = None) -> str | None:
    """The survival outcome whose cut-off sets the risk group: the one asked, else the first."""
    cutoffs = bundle.table("cutoffs.tsv")
    if cutoffs.empty:
        return None
    known = list(dict.fromkeys(cutoffs["outcome"]))
    if outcome is not None and outcome not in known:
        raise BundleError(f"risk outcome {outcome!r} has no cut-off in the bundle; known {known}")
    return outcome or known[0]


def risk_groups(bundle: Bundle, scores: pd.DataFrame, outcome: str | None = None) -> pd.Series:
    """high/low per score row from the training cut-off, in its training direction."""
    chosen = risk_outcome(bundle, outcome)
    cutoffs = bundle.table("cutoffs.tsv")
    if chosen is None:
        return pd.Series(pd.NA, index=scores.index, dtype="object")
    rows = cutoffs.loc[cutoffs["outcome"] == chosen].set_index("model")
    groups = []
    for model, score in zip(scores["model"], scores["score"], strict=True):
        if model not in rows.index:
            groups.append(pd.NA)
            continue
        above = score > rows.at[model, "cutoff"]
        riskier = bool(rows.at[model, "higher_score_riskier"])
        groups.append(HIGH if above == riskier else LOW)
    return pd.Series(groups, index=scores.index, dtype="object")


def conformal(bundle: Bundle, scores: pd.DataFrame) -> pd.DataFrame:
    """Conformal interval columns of each score, or missing ones where the bundle has none."""
    calibration = bundle.json_or_none(CONFORMAL)
    if calibration is None:
        return scores.assign(
            interval_low=np.nan, interval_high=np.nan, prediction_set=pd.NA,
            coverage_nominal=np.nan,
        )  # fmt: skip
    return conformal_intervals(calibration, scores[["patient_id", "model", "score"]])


def annotate(
    bundle: Bundle, scores: pd.DataFrame, risk_outcome_name: str | None = None
) -> pd.DataFrame:
    """Scores with threshold, risk group and conformal interval: the report's columns."""
    thresholds = bundle.table("thresholds.tsv").set_index("model")["youden_threshold"]
    with_intervals = conformal(bundle, scores).set_index(["patient_id", "model"])
    table = scores.assign(
        probability=scores["score"],
        threshold=scores["model"].map(thresholds),
        risk_group=risk_groups(bundle, scores, risk_outcome_name),
    ).set_index(["patient_id", "model"])
    for column in ("interval_low", "interval_high", "prediction_set", "coverage_nominal"):
        table[column] = with_intervals[column]
    return table.reset_index()[list(SCORE_COLUMNS)]


def raw_geometry(folders: Mapping[str, Path], patients: Sequence[str]) -> pd.DataFrame:
    """Each patient's raw spacing and intensities per phase, as preparation recorded them."""
    return pd.concat([read_raw_geometry(folders[p]) for p in patients], ignore_index=True)


def domain_check(
    bundle: Bundle, geometry: pd.DataFrame | None, radiomics: pd.DataFrame
) -> pd.DataFrame:
    """Out-of-domain flags per patient; without a reference, one row per patient saying so."""
    reference = bundle.json_or_none(DOMAIN)
    if reference is None or geometry is None:
        why = "the bundle has no domain reference"
        return pd.DataFrame(
            {
                "patient_id": list(radiomics.index),
                "check": "overall",
                "value": np.nan,
                "low": np.nan,
                "high": np.nan,
                "out_of_domain": pd.NA,
                "reason": f"not checked: {why}",
            }
        )
    return domain_flags(reference, describe_patients(geometry, radiomics))


# --------------------------------------------------------------------------- explanation


def gradcam(
    bundle: Bundle, folders: Mapping[str, Path], sheet: pd.DataFrame, scores: pd.DataFrame
) -> dict[str, GradCamPanels]:
    """Grad-CAM of the refitted DLTR network per patient (the workflow's deep_gradcam)."""
    config = dltr.deep_config(bundle.config["deep"], int(bundle.manifest["created"]["seed"]))
    gradcam_cfg = bundle.config["deep"].get("gradcam", {})
    network = dltr_networks(bundle, config.device)[0]
    dltr_prob = scores.loc[scores["model"] == "DLTR"].set_index("patient_id")["score"]
    panels = {}
    for patient in sheet.index:
        crops, _ = dltr.cohort_crops(folders, [patient], config)
        panels[patient] = grad_cam_panels(
            network,
            crops,
            sheet.loc[[patient]],
            dltr_prob,
            patients_per_centre=1,
            phase=gradcam_cfg.get("phase"),
            layer=gradcam_cfg.get("layer", "auto"),
            endpoint=bundle.endpoint,
        )
    return panels


# --------------------------------------------------------------------------- one call


PanelDrawer = Callable[[GradCamPanels, Path], object]
# hccrad.figures.patient.render_patient_report: (patient_id, scores, flags, manifest, out_dir,
# gradcam_png) -> report.html; passed in because the library does not import hccrad.figures.
ReportRenderer = Callable[[str, pd.DataFrame, pd.DataFrame, dict, Path, Path | None], Path]


def predict_patients(
    bundle: Bundle,
    sheet: pd.DataFrame,
    out: str | Path,
    *,
    masks: Masks = "reference",
    risk_outcome_name: str | None = None,
    draw_gradcam: PanelDrawer | None = None,
    draw_qc: QCDrawer | None = None,
    render_report: ReportRenderer | None = None,
    threads: int = 1,
    log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Prepare, score, annotate and explain new patients; one folder of outputs per patient.

    ``out/<patient>/``: predictions.tsv (patient_id and the report's score columns),
    domain_flags.tsv, gradcam.png (drawn by ``draw_gradcam``), report.html/.pdf (by
    ``render_report``, none without it); a patient
    that preparation excluded gets exclusion.tsv instead, never a score. ``out/_work/`` keeps
    the prepared patients (with qc.png, drawn by ``draw_qc``), masks and radiomics.
    """
    out, log = Path(out), log or logging.getLogger(__name__)
    sheet = check_new_sheet(bundle, sheet)
    work = out / WORK
    folders = prepare_new(
        bundle, sheet, work, masks=masks, draw_qc=draw_qc, threads=threads, log=log
    )
    dropped = excluded(folders)
    for patient, reason in dropped.items():
        (out / patient).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"patient_id": [patient], "reason": [reason]}).to_csv(
            out / patient / "exclusion.tsv", sep="\t", index=False
        )
        log.warning("%s: excluded in preparation, not scored: %s", patient, reason)
    kept = sheet.drop(index=list(dropped))
    if kept.empty:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    folders = {p: folders[p] for p in kept.index}
    features = feature_tables(bundle, kept, folders, work / "radiomics")
    scores = model_scores(bundle, kept, features)
    annotated = annotate(bundle, scores, risk_outcome_name)
    geometry = raw_geometry(folders, list(kept.index)) if bundle.json_or_none(DOMAIN) else None
    flags = domain_check(bundle, geometry, features[RADIOMICS])
    panels = gradcam(bundle, folders, kept, scores)
    for patient in kept.index:
        write_patient(
            bundle,
            patient,
            annotated,
            flags,
            panels[patient],
            out / patient,
            draw_gradcam,
            render_report,
        )
    return annotated


def write_patient(
    bundle: Bundle,
    patient: str,
    annotated: pd.DataFrame,
    flags: pd.DataFrame,
    panels: GradCamPanels,
    folder: Path,
    draw_gradcam: PanelDrawer | None,
    render_report: ReportRenderer | None,
) -> Path:
    """One patient's outputs: predictions.tsv, domain_flags.tsv, gradcam.png, the report."""
    folder.mkdir(parents=True, exist_ok=True)
    own = annotated.loc[annotated["patient_id"] == patient]
    own.to_csv(folder / "predictions.tsv", sep="\t", index=False, float_format="%.6g")
    own_flags = flags.loc[flags["patient_id"] == patient]
    own_flags.to_csv(folder / "domain_flags.tsv", sep="\t", index=False, float_format="%.6g")
    panels.save(folder / "gradcam.npz")
    png = None
    if draw_gradcam is not None:
        png = folder / "gradcam.png"
        draw_gradcam(panels, png)
    if render_report is not None:
        render_report(
            patient, own.drop(columns="patient_id"), own_flags, bundle.manifest, folder, png
        )
    return folder


def read_new_sheet(path: str | Path) -> pd.DataFrame:
    """A sheet of new patients (TSV, patient_id first), read as the workflow reads sheets."""
    return read_patients(path, dtype={"centre": str, "bclc": str})


def describe(annotated: pd.DataFrame) -> list[str]:
    """One line per patient and model for a log or the console."""
    return [
        f"{r.patient_id} {r.model}: p = {r.probability:.3f} (threshold {r.threshold:.3f}, "
        f"risk {r.risk_group})"
        for r in annotated.itertuples()
    ]


def options(values: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE strings as a mapping (values stay text: the sheet reader types them)."""
    pairs = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise BundleError(f"{value!r} is not KEY=VALUE")
        pairs[key.strip()] = text.strip()
    return pairs
