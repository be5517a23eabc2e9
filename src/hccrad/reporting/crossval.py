"""Tables of a repeated cross-validation (hccrad.models.crossval's out-of-fold predictions).

Each repeat gives every patient one out-of-fold score per model, so a repeat is scored like a
test set: AUC with a DeLong CI, paired DeLong comparisons, Youden-threshold metrics, and
Kaplan-Meier, log-rank and Cox of the out-of-fold risk groups. Across repeats the AUC is
summarised by its mean with a CI over repeats (the 2.5 and 97.5 percentiles of the repeats'
AUCs: the spread due to the fold split; it is not a sampling CI, which the DeLong CI within a
repeat gives). Calibration and decision curves use the out-of-fold predictions of every repeat
pooled. The permuted-label control gets the same discrimination tables. Patients scored without
the endpoint (labels ``unlabelled``) join only the survival tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from hccrad.core.plan import CROSSVAL_TABLES
from hccrad.core.seeding import rng_for
from hccrad.models.crossval import OBSERVED, UNLABELLED
from hccrad.models.settings import higher_score_riskier
from hccrad.reporting.evaluation import EvaluationSettings
from hccrad.stats.agreement import cohen_kappa_table, fleiss_kappa_row
from hccrad.stats.calibration import (
    calibration_curve_table,
    calibration_summary,
    decision_curve,
    loess_calibration_curve,
)
from hccrad.stats.checks import require_columns
from hccrad.stats.cox import fit_cox_checked
from hccrad.stats.discrimination import delong_auc, delong_pairwise_table, threshold_metrics
from hccrad.stats.survival import kaplan_meier_table, logrank, numbers_at_risk

GROUP = ["labels", "model"]


def auc_repeats(oof: pd.DataFrame) -> pd.DataFrame:
    """AUC with its DeLong CI per labelling, model and repeat."""
    rows = []
    for (labels, model, repeat), part in oof.groupby([*GROUP, "repeat"], sort=True):
        result = delong_auc(part["outcome"], part["score"], context=f"{model} repeat {repeat}")
        rows.append(
            {
                "labels": labels,
                "model": model,
                "repeat": repeat,
                "auc": result.auc,
                "se": result.se,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "n_positive": result.n_positive,
                "n_negative": result.n_negative,
            }
        )
    return pd.DataFrame(rows)


def auc_summary(by_repeat: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC per labelling and model, its CI over repeats, and the mean DeLong CI."""
    grouped = by_repeat.groupby(GROUP, sort=True)
    return pd.DataFrame(
        {
            "n_repeats": grouped["auc"].size(),
            "auc_mean": grouped["auc"].mean(),
            "auc_sd": grouped["auc"].std(ddof=1),
            "ci_low": grouped["auc"].quantile(0.025),
            "ci_high": grouped["auc"].quantile(0.975),
            "auc_min": grouped["auc"].min(),
            "auc_max": grouped["auc"].max(),
            "delong_ci_low_mean": grouped["ci_low"].mean(),
            "delong_ci_high_mean": grouped["ci_high"].mean(),
        }
    ).reset_index()


def _wide(part: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """One repeat's outcome and a patients x models score table."""
    scores = part.pivot(index="patient_id", columns="model", values="score")
    outcome = part.drop_duplicates("patient_id").set_index("patient_id")["outcome"]
    return outcome.loc[scores.index], scores


def comparison_repeats(oof: pd.DataFrame) -> pd.DataFrame:
    """Paired DeLong tests of every pair of models within each repeat (Holm within a repeat)."""
    frames = []
    for (labels, repeat), part in oof.groupby(["labels", "repeat"], sort=True):
        outcome, scores = _wide(part)
        if scores.shape[1] < 2:
            continue
        table = delong_pairwise_table(outcome, scores, context=f"repeat {repeat}")
        frames.append(table.assign(labels=labels, repeat=repeat))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def comparison_summary(by_repeat: pd.DataFrame) -> pd.DataFrame:
    """Per pair: mean AUC difference, median P and how many repeats had P < 0.05."""
    if by_repeat.empty:
        return pd.DataFrame(columns=["labels", "model_a", "model_b"])
    grouped = by_repeat.groupby(["labels", "model_a", "model_b"], sort=True)
    return pd.DataFrame(
        {
            "n_repeats": grouped["difference"].size(),
            "difference_mean": grouped["difference"].mean(),
            "difference_min": grouped["difference"].min(),
            "difference_max": grouped["difference"].max(),
            "p_median": grouped["p_value"].median(),
            "p_adjusted_median": grouped["p_adjusted"].median(),
            "n_repeats_p_below_0.05": grouped["p_value"].apply(lambda p: int((p < 0.05).sum())),
        }
    ).reset_index()


def threshold_table(oof: pd.DataFrame) -> pd.DataFrame:
    """Accuracy, sensitivity, ... of each repeat at each fold's training Youden threshold."""
    frames = []
    for (labels, model, repeat), part in oof.groupby([*GROUP, "repeat"], sort=True):
        # Thresholds differ by fold; score - threshold >= 0 applies each fold's own.
        margin = part["score"].to_numpy() - part["youden_threshold"].to_numpy()
        table = threshold_metrics(part["outcome"], margin, 0.0, context=f"{model} {repeat}")
        frames.append(
            table.drop(columns="threshold").assign(labels=labels, model=model, repeat=repeat)
        )
    return pd.concat(frames, ignore_index=True)


def calibration_tables(
    oof: pd.DataFrame, settings: EvaluationSettings | None = None, seed: int | None = None
) -> dict[str, pd.DataFrame]:
    """Calibration summary, binned and loess curves, ROC and decision curves, pooled predictions.

    The loess band resamples the pooled predictions (``settings``' span and resamples, a seed
    stream per labelling and model); the tables have the columns of hccrad.reporting.evaluation
    so that its figures draw them.
    """
    settings = settings or EvaluationSettings()
    summaries, curves, decisions, smoothed, rocs = [], [], [], [], []
    for labels, part in oof.groupby("labels", sort=True):
        for model, rows in part.groupby("model", sort=True):
            context = f"{labels} {model}, pooled out-of-fold"
            y, score = rows["outcome"].astype(int), rows["score"]
            summaries.append(
                {
                    "labels": labels,
                    "model": model,
                    "n": len(rows),
                    **calibration_summary(y, score, context=context),
                }
            )
            curves.append(
                calibration_curve_table(
                    y, score, n_bins=settings.calibration_bins, context=context
                ).assign(labels=labels, model=model)
            )
            stream = int(rng_for(seed or 0, "crossval", "loess", labels, model).integers(2**31 - 1))
            smoothed.append(
                loess_calibration_curve(
                    y,
                    score,
                    frac=settings.calibration_loess_frac,
                    n_resamples=settings.calibration_loess_resamples if seed is not None else 0,
                    seed=stream,
                    alpha=settings.alpha,
                    context=context,
                ).assign(labels=labels, model=model)
            )
            fpr, tpr, cut = roc_curve(y, score)
            rocs.append(
                pd.DataFrame(
                    {"labels": labels, "model": model, "threshold": cut, "fpr": fpr, "tpr": tpr}
                )
            )
        pooled = part.pivot(index=["repeat", "patient_id"], columns="model", values="score")
        outcome = part.drop_duplicates(["repeat", "patient_id"]).set_index(
            ["repeat", "patient_id"]
        )["outcome"]
        decisions.append(
            decision_curve(
                outcome.loc[pooled.index], pooled, thresholds=settings.thresholds()
            ).assign(labels=labels)
        )
    return {
        "calibration": pd.DataFrame(summaries),
        "calibration_curves": pd.concat(curves, ignore_index=True),
        "calibration_loess": pd.concat(smoothed, ignore_index=True),
        "decision_curves": pd.concat(decisions, ignore_index=True),
        "roc_curves": pd.concat(rocs, ignore_index=True),
    }


def survival_tables(
    oof: pd.DataFrame,
    sheet: pd.DataFrame,
    outcomes: Mapping[str, Mapping[str, str]],
    risk_table_times: Sequence[float] = (0.0, 6.0, 12.0, 18.0, 24.0, 36.0, 48.0),
    *,
    riskier: bool,
) -> dict[str, pd.DataFrame]:
    """Log-rank, Cox (high vs low) and Kaplan-Meier of out-of-fold risk groups, per repeat.

    The out-of-fold score is cut at its training fold's median (``risk_cutoff``); the high-risk
    group is the side the endpoint says (``riskier``: a higher score means a higher risk; for a
    favourable endpoint such as response, the patients below the median). The direction is
    fixed by the endpoint, not learnt, so no survival data of a test fold enters it. The
    observed labels are stratified, with every patient scored without
    the endpoint (UNLABELLED), so that survival covers every patient with follow-up.
    """
    observed = oof[oof["labels"].isin([OBSERVED, UNLABELLED])]
    logranks, coxes, curves, groups, at_risk = [], [], [], [], []
    for name, spec in outcomes.items():
        time, event = spec["time"], spec["event"]
        for (model, repeat), part in observed.groupby(["model", "repeat"], sort=True):
            frame = part.set_index("patient_id").join(sheet[[time, event]], how="inner")
            frame = frame[frame[time].notna() & frame[event].notna()]
            above = frame["score"] > frame["risk_cutoff"]
            frame["high_risk"] = (above if riskier else ~above).astype(int)
            frame["risk_group"] = np.where(frame["high_risk"] == 1, "high", "low")
            key = {"outcome": name, "model": model, "repeat": repeat}
            context = f"{name} {model} repeat {repeat}"
            n_high = int(frame["high_risk"].sum())
            row = {**key, "n": len(frame), "n_high": n_high, "n_low": len(frame) - n_high}
            groups.append(
                frame.rename(columns={time: "time", event: "event"})[
                    ["labels", "risk_group", "time", "event"]
                ]
                .reset_index()
                .assign(**key)
            )
            try:
                test = logrank(frame, "risk_group", time, event, context=context)
                logranks.append({**row, "chi2": test.statistic, "p_value": test.p_value})
                fit = fit_cox_checked(frame, time, event, ["high_risk"], context=context)
                summary = fit.model.summary.loc["high_risk"]
                coxes.append(
                    {
                        **row,
                        "hr": float(summary["exp(coef)"]),
                        "ci_low": float(summary["exp(coef) lower 95%"]),
                        "ci_high": float(summary["exp(coef) upper 95%"]),
                        "p_value": float(summary["p"]),
                        "note": fit.model_note,
                    }
                )
                curves.append(
                    kaplan_meier_table(frame, "risk_group", time, event, context=context).assign(
                        **key
                    )
                )
                at_risk.append(
                    numbers_at_risk(
                        frame, "risk_group", time, event, risk_table_times, context=context
                    ).assign(**key)
                )
            except ValueError as error:  # one group only, or no event: said, not dropped
                logranks.append({**row, "chi2": np.nan, "p_value": np.nan, "note": str(error)})

    def stacked(frames: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    return {
        "logrank": pd.DataFrame(logranks),
        "cox": pd.DataFrame(coxes),
        "km_curves": stacked(curves),
        "numbers_at_risk": stacked(at_risk),
        # Each patient's group per repeat; labels say who was scored without the endpoint.
        "risk_groups": stacked(groups),
    }


def crossval_tables(
    oof: pd.DataFrame,
    sheet: pd.DataFrame,
    outcomes: Mapping[str, Mapping[str, str]],
    settings: EvaluationSettings | None = None,
    seed: int | None = None,
    risk_table_times: Sequence[float] = (0.0, 6.0, 12.0, 18.0, 24.0, 36.0, 48.0),
    *,
    endpoint: str,
) -> dict[str, pd.DataFrame]:
    """Every table of CROSSVAL_TABLES from the out-of-fold predictions of one endpoint."""
    labelled = oof[oof["labels"] != UNLABELLED]
    by_repeat = auc_repeats(labelled)
    comparisons = comparison_repeats(labelled)
    tables = {
        "auc": auc_summary(by_repeat),
        "auc_repeats": by_repeat,
        "comparisons": comparison_summary(comparisons),
        "comparisons_repeats": comparisons,
        "threshold_metrics": threshold_table(labelled),
        **calibration_tables(labelled, settings, seed),
        **survival_tables(
            oof, sheet, outcomes, risk_table_times, riskier=higher_score_riskier(endpoint)
        ),
    }
    return {name: tables[name] for name in CROSSVAL_TABLES}


def flow_table(
    patients_in: Sequence[str], steps: Sequence[tuple[str, pd.DataFrame]]
) -> pd.DataFrame:
    """The cohort flow: patients in, and per step how many left and why, down to those analysed.

    ``steps`` are (step, exclusions) in order, each exclusions table with patient_id and
    reason; a patient already excluded at an earlier step is not counted again, and a row for
    a patient not in ``patients_in`` (an id only another table has) is said, not counted.
    """
    source = set(patients_in)
    left: set[str] = set()
    remaining = len(source)
    rows = [
        {
            "step": "source table",
            "n_before": remaining,
            "n_excluded": 0,
            "n_after": remaining,
            "reasons": "",
        }
    ]
    for step, exclusions in steps:
        inside = exclusions["patient_id"].isin(source)
        new = exclusions[inside & ~exclusions["patient_id"].isin(left)]
        reasons = [
            f"{reason} ({n})" for reason, n in new["reason"].value_counts(sort=False).items()
        ]
        if (~inside).any():
            reasons.append(f"{int((~inside).sum())} id(s) not in the source table, not counted")
        rows.append(
            {
                "step": step,
                "n_before": remaining,
                "n_excluded": len(new),
                "n_after": remaining - len(new),
                "reasons": "; ".join(reasons),
            }
        )
        left |= set(new["patient_id"])
        remaining -= len(new)
    return pd.DataFrame(rows, columns=["step", "n_before", "n_excluded", "n_after", "reasons"])


def reader_tables(
    oof: pd.DataFrame, sheet: pd.DataFrame, readers: Sequence[str], seed: int
) -> dict[str, pd.DataFrame]:
    """Reader sensitivity: agreement of the readers' reads, and each model's AUC per reader.

    ``readers`` are sheet columns holding each reader's own 0/1 read of the endpoint; the
    out-of-fold scores (observed labels, fitted on the endpoint as the sheet defines it) are
    scored against each read on the patients that reader read.
    """
    require_columns(sheet, readers, "cohort sheet (crossval.readers: each reader's 0/1 read)")
    patients = oof.loc[oof["labels"] == OBSERVED, "patient_id"].unique()
    reads = sheet.loc[patients, list(readers)].apply(pd.to_numeric, errors="coerce")
    agreement = cohen_kappa_table(reads)
    if len(readers) > 2:
        stream = int(rng_for(seed, "crossval", "readers", "fleiss").integers(2**31 - 1))
        agreement.loc[len(agreement)] = fleiss_kappa_row(reads, seed=stream)
    rows = []
    observed = oof[oof["labels"] == OBSERVED]
    for (model, repeat), part in observed.groupby(["model", "repeat"], sort=True):
        scores = part.set_index("patient_id")["score"]
        for reader in readers:
            read = reads[reader].dropna()
            result = delong_auc(read, scores.loc[read.index], context=f"{model} {reader}")
            rows.append(
                {
                    "model": model,
                    "reader": reader,
                    "repeat": repeat,
                    "n": len(read),
                    "auc": result.auc,
                }
            )
    by_repeat = pd.DataFrame(rows)
    grouped = by_repeat.groupby(["model", "reader"], sort=True)["auc"]
    auc = pd.DataFrame(
        {
            "n": by_repeat.groupby(["model", "reader"], sort=True)["n"].first(),
            "auc_mean": grouped.mean(),
            "auc_min": grouped.min(),
            "auc_max": grouped.max(),
        }
    ).reset_index()
    return {"reader_agreement": agreement, "reader_auc": auc}


# The evaluation figures' panels ("cohorts") of a cross-validation: one per labelling.
FIGURE_COHORTS = {OBSERVED: "out-of-fold", "permuted": "permuted-label control"}


def figure_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Cross-validation tables in the evaluation figures' format: a panel per labelling.

    The ROC legend carries the mean AUC over repeats with the mean DeLong CI (auc.tsv); panel
    sizes are patients, though calibration and decision curves pool every repeat's predictions.
    """
    by_repeat = tables["auc_repeats"]
    first = by_repeat[by_repeat["repeat"] == by_repeat["repeat"].min()]
    n = (first["n_positive"] + first["n_negative"]).groupby(first["labels"]).first()
    out = {}
    for name in ("roc_curves", "calibration", "calibration_curves", "calibration_loess"):
        out[name] = tables[name].assign(cohort=tables[name]["labels"].map(FIGURE_COHORTS))
    out["calibration"] = out["calibration"].assign(n=out["calibration"]["labels"].map(n), note="")
    decisions = tables["decision_curves"]
    out["decision_curves"] = decisions.assign(
        cohort=decisions["labels"].map(FIGURE_COHORTS), n=decisions["labels"].map(n)
    )
    auc = tables["auc"]
    out["auc"] = pd.DataFrame(
        {
            "model": auc["model"],
            "cohort": auc["labels"].map(FIGURE_COHORTS),
            "n": auc["labels"].map(n),
            "auc": auc["auc_mean"],
            "ci_low": auc["delong_ci_low_mean"],
            "ci_high": auc["delong_ci_high_mean"],
            "note": "",
        }
    )
    return out


def km_figure_tables(
    tables: Mapping[str, pd.DataFrame], outcome: str, repeat: int
) -> dict[str, pd.DataFrame]:
    """One outcome's and repeat's survival tables, a Kaplan-Meier panel ("cohort") per model."""
    out = {}
    for name in ("km_curves", "numbers_at_risk", "logrank", "risk_groups"):
        table = tables[name]
        rows = table[(table["outcome"] == outcome) & (table["repeat"] == repeat)]
        out[name] = rows.assign(cohort=rows["model"])
    if "note" not in out["logrank"]:
        out["logrank"] = out["logrank"].assign(note="")
    out["logrank"] = out["logrank"].fillna({"note": ""})
    return out
