"""A model card per endpoint (markdown): data, splits, selection, settings, metrics, TRIPOD+AI.

Built only from the workflow's own tables and the fitted models' descriptions, so every number
in the card is one a reviewer finds in a TSV beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

# TRIPOD+AI (Collins et al., BMJ 2024;385:e078378) items that the workflow's outputs address,
# with where to find them. Items about the manuscript itself (title, abstract, introduction,
# discussion, ethics, funding, registration, patient involvement) are the authors' to write.
TRIPOD_AI_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("5a", "Source of data", "config (cohorts, simulate or sheet); sheet.tsv"),
    ("6a", "Setting, number and location of centres", "Data section below; table1.tsv"),
    ("7", "Data preparation (imaging, features)", "config imaging/radiomics; icc.tsv"),
    ("8a", "Outcome and how it was assessed", "endpoint column of the sheet (this card)"),
    ("9a", "Predictors: clinical, radiomic, deep", "Selected predictors below; models.json"),
    ("10", "Sample size (patients and events per split)", "Data section below"),
    ("11", "Missing data: imputation inside the fit", "models.json (clinical preprocessing)"),
    ("12", "Analytical methods: model types, selection, tuning", "Models section; models.json"),
    ("12", "Performance measures and their CIs", "auc.tsv, calibration.tsv, threshold_metrics"),
    ("13", "Class imbalance (none applied; prevalence reported)", "Data section below"),
    ("15", "Model output and thresholds (training Youden)", "thresholds.tsv"),
    ("16", "Training versus evaluation data", "Splits below; predictions.tsv split column"),
    ("18f", "Code availability", "this workflow (Snakefile, src/hccrad)"),
    ("20a", "Participant flow, exclusions", "Data section below; exclusions.tsv"),
    ("20b", "Characteristics by split and centre", "table1.tsv"),
    ("21", "Participants and events in model development", "Data section below"),
    ("22", "Full model specification", "models.json, models.joblib, clinical_odds_ratios.tsv"),
    ("23a", "Performance with CIs (discrimination, calibration)", "Metrics below; figures"),
    ("23b", "Performance per centre (heterogeneity)", "auc.tsv rows external_<centre>"),
    ("23a", "Clinical utility (decision curves)", "decision_curves.tsv, decision_curves.png"),
)


def _fmt(value: Any, digits: int = 3) -> str:
    """A number for a markdown table; empty for missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (no index), numbers to 3 significant digits."""
    if table.empty:
        return "_(none)_"
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    rows = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def split_summary(sheet: pd.DataFrame, endpoint: str) -> pd.DataFrame:
    """Patients, events and prevalence of the endpoint per split and centre."""
    outcome = pd.to_numeric(sheet[endpoint], errors="coerce")
    grouped = sheet.assign(_y=outcome).groupby(["split", "centre"], sort=True)["_y"]
    table = grouped.agg(patients="size", events="sum").reset_index()
    table["prevalence"] = table["events"] / table["patients"]
    table["events"] = table["events"].astype(int)
    return table


def _ci(estimate: float, low: float, high: float) -> str:
    """Estimate (low-high) to two decimals."""
    if not np.isfinite(estimate):
        return ""
    return f"{estimate:.2f} ({low:.2f}-{high:.2f})"


def auc_matrix(auc: pd.DataFrame) -> pd.DataFrame:
    """AUC (95% CI) with models as rows and cohorts as columns."""
    cells = auc.assign(
        cell=[
            _ci(a, lo, hi) if pd.notna(a) else f"n/a: {str(n)[:40]}"
            for a, lo, hi, n in zip(
                auc["auc"], auc["ci_low"], auc["ci_high"], auc.get("note", ""), strict=True
            )
        ]
    )
    matrix = cells.pivot(index="model", columns="cohort", values="cell")
    models = list(dict.fromkeys(auc["model"]))
    cohorts = list(dict.fromkeys(auc["cohort"]))
    return matrix.loc[models, cohorts].reset_index()


def _hyperparameters(described: Mapping[str, Any]) -> list[str]:
    """One line per model: its type and the settings a reader needs to refit it."""
    keys = (
        "screening_p",
        "selected",
        "lasso_C",
        "n_selected",
        "ridge_C",
        "xgboost_params",
        "hidden_layer_sizes",
        "alpha",
        "n_iter",
        "score_column",
        "inputs",
        "coefficients_per_sd",
        "youden_threshold",
        "n_train",
    )
    lines = []
    for name, info in described.items():
        chosen = {k: info[k] for k in keys if k in info}
        lines.append(f"- **{name}**: {info.get('model', '')}; `{json.dumps(chosen, default=str)}`")
    return lines


def model_card(
    *,
    endpoint: str,
    cohort: str,
    sheet: pd.DataFrame,
    exclusions: pd.DataFrame,
    described: Mapping[str, Any],
    selected_features: pd.DataFrame,
    auc: pd.DataFrame,
    calibration: pd.DataFrame,
    threshold_metrics: pd.DataFrame,
    delong: pd.DataFrame,
    logrank: pd.DataFrame,
    cox: pd.DataFrame,
    settings: Mapping[str, Any],
    seed: int,
    survival_models: Sequence[str] = (),
    conformal_coverage: pd.DataFrame | None = None,
    domain_summary: pd.DataFrame | None = None,
) -> str:
    """The model card of one endpoint as markdown.

    ``conformal_coverage``: hccrad.reporting.conformal.coverage_table, ``domain_summary``:
    hccrad.reporting.conformal.domain_summary (a section each when given).
    """
    splits = split_summary(sheet, endpoint)
    train = splits[splits["split"] == "train"]
    clinical = described.get("clinical", {})
    lines = [
        f"# Model card: `{endpoint}` ({cohort})",
        "",
        "Generated by the hccrad workflow from its own tables; every number below is in the "
        "TSV files beside this card. Models were fitted on the training split only; every "
        "selection, imputation, scaling, threshold and survival cutoff was learnt there.",
        "",
        "## Data",
        "",
        f"- Cohort `{cohort}`: {len(sheet)} patients analysed, {len(exclusions)} excluded "
        "(exclusions.tsv, with reasons).",
        f"- Endpoint `{endpoint}` (binary, 1 = event). Training: {int(train['patients'].sum())} "
        f"patients, {int(train['events'].sum())} events.",
        f"- Seed {seed}; the same config gives the same tables bit for bit on the CPU.",
        "",
        markdown_table(splits),
        "",
        "## Selected predictors",
        "",
        f"- Clinical (univariable screening P < {clinical.get('screening_p', '')}, then "
        f"multivariable logistic): {', '.join(clinical.get('selected', [])) or 'none'}"
        + (f" ({clinical['fallback']})" if clinical.get("fallback") else ""),
    ]
    for model, rows in selected_features.groupby("model", sort=False):
        shown = ", ".join(f"`{f}`" for f in rows["feature"].head(30))
        more = f" (+{len(rows) - 30} more)" if len(rows) > 30 else ""
        lines.append(f"- {model}: {len(rows)} feature(s): {shown}{more}")
    lines += [
        "",
        "## Models and hyperparameters",
        "",
        *_hyperparameters(described),
        "",
        "Config sections used: "
        + ", ".join(f"`{k}`: `{json.dumps(v, default=str)}`" for k, v in settings.items()),
        "",
        "## Discrimination: AUC (95% DeLong CI)",
        "",
        markdown_table(auc_matrix(auc)),
        "",
        "## Calibration",
        "",
        markdown_table(
            calibration[
                [
                    c
                    for c in (
                        "model",
                        "cohort",
                        "brier",
                        "intercept",
                        "slope",
                        "hosmer_lemeshow_p",
                        "note",
                    )
                    if c in calibration
                ]
            ]
        ),
        "",
        "## Classification at the training Youden threshold",
        "",
        markdown_table(_threshold_matrix(threshold_metrics)),
        "",
        "## Model comparisons (paired DeLong, Holm-adjusted P)",
        "",
        markdown_table(_delong_summary(delong)),
        "",
    ]
    if conformal_coverage is not None:
        lines += _conformal_section(conformal_coverage)
    if domain_summary is not None:
        lines += [
            "## Out-of-domain flags",
            "",
            "Patients per cohort flagged against the training patients (domain_reference.json; "
            "each check and its reason in domain_flags.tsv): `overall` by the Mahalanobis "
            "distance on the robust radiomic features, `acquisition` on voxel spacing, liver "
            "intensities or tumour volume, `radiomic_feature` on at least one feature's range.",
            "",
            markdown_table(domain_summary),
            "",
        ]
    if len(logrank):
        lines += [
            "## Survival stratification (cutoff fixed on training)",
            "",
            markdown_table(_logrank_summary(logrank, survival_models)),
            "",
            markdown_table(_cox_summary(cox, survival_models)),
            "",
        ]
    lines += [
        "## TRIPOD+AI items covered by these outputs",
        "",
        markdown_table(pd.DataFrame(TRIPOD_AI_ITEMS, columns=["item", "topic", "where"])),
        "",
        "Items on the title, abstract, introduction, ethics, funding, registration, patient "
        "involvement and discussion belong to the manuscript and are not covered here.",
        "",
    ]
    return "\n".join(lines)


def _conformal_section(coverage: pd.DataFrame) -> list[str]:
    """Empirical coverage of the conformal sets per model and cohort, beside the nominal level."""
    if coverage.empty:
        return ["## Conformal prediction sets", "", "_(no test or external patients)_", ""]
    nominal = float(coverage["coverage_nominal"].iloc[0])
    shown = coverage.assign(
        covered=[f"{c}/{n}" for c, n in zip(coverage["covered"], coverage["n"], strict=True)],
        sets=[
            f"{a} / {b} / {both} / {e}"
            for a, b, both, e in coverage[["set_0", "set_1", "set_both", "set_empty"]].to_numpy()
        ],
    )
    columns = ["model", "cohort", "covered", "coverage", "coverage_nominal", "sets"]
    return [
        "## Conformal prediction sets: coverage",
        "",
        f"Each patient's prediction set should hold the observed outcome with probability "
        f">= {nominal:.2f} (nominal). Calibrated on out-of-fold scores of the training split "
        "only (held_out_scores.tsv, conformal.json); empirical coverage per cohort below "
        "(conformal_coverage.tsv). Sets: number of {0} / {1} / {0, 1} / empty sets. The "
        "guarantee assumes patients exchangeable with the training ones; an external centre "
        "below nominal is a shift the calibration did not see.",
        "",
        markdown_table(shown[columns].rename(columns={"sets": "sets {0} / {1} / {0,1} / {}"})),
        "",
    ]


def _threshold_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Sensitivity, specificity, PPV, NPV and accuracy per model and cohort (estimate and CI)."""
    rows = table.dropna(subset=["metric"]) if "metric" in table else table.iloc[:0]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(cell=[_ci(*v) for v in rows[["estimate", "ci_low", "ci_high"]].to_numpy()])
    wide = rows.pivot_table(
        index=["model", "cohort"], columns="metric", values="cell", aggfunc="first", sort=False
    )
    order = [m for m in ("sensitivity", "specificity", "ppv", "npv", "accuracy") if m in wide]
    return wide[order].reset_index()


def _delong_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The pairwise DeLong tests that involve DLTR_MLP or DLTR, on the test cohorts."""
    if "model_a" not in table:
        return pd.DataFrame()
    rows = table.dropna(subset=["model_a"])
    rows = rows[rows["cohort"] != "train"]
    focus = rows["model_a"].isin(["DLTR_MLP", "DLTR"]) | rows["model_b"].isin(["DLTR_MLP", "DLTR"])
    rows = rows[focus] if focus.any() else rows
    columns = ["cohort", "model_a", "model_b", "difference", "ci_low", "ci_high", "p_value"]
    return rows[[*columns, "p_adjusted"]]


def _logrank_summary(table: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Log-rank P per outcome, model and cohort for the figure models."""
    rows = table[table["model"].isin(models)] if models else table
    columns = ["outcome", "model", "cohort", "n_low", "n_high", "events_low", "events_high"]
    return rows[[*columns, "p_value", "note"]]


def _cox_summary(table: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Adjusted HR of the high-risk group per outcome, model and cohort."""
    if "covariate" not in table:
        return pd.DataFrame()
    rows = table[(table["cox_model"] == "multivariable") & (table["covariate"] == "high_risk")]
    if models:
        rows = rows[rows["model"].isin(models)]
    rows = rows.assign(hr_ci=[_ci(*v) for v in rows[["hr", "ci_low", "ci_high"]].to_numpy()])
    return rows[["outcome", "model", "cohort", "hr_ci", "p_value", "events"]].rename(
        columns={"hr_ci": "adjusted HR high vs low (95% CI)"}
    )
