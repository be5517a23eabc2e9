"""One patient's one-page report (HTML and PDF) from a model bundle's predictions.

The report says, for a clinician-researcher: each model's probability with its conformal
interval and prediction set (and their coverage), the risk group against the training
threshold, every out-of-domain check in words (a warning block when any is set), the Grad-CAM
panel when there is one, and the bundle's version, intended use and limits. The words and
numbers are built here; the drawings (the probability chart and the A4 PDF page) are made by
`hccrad.figures.patient`, which passes itself in as the `drawer`, because no module outside
`hccrad.figures` imports it (docs/architecture.md, "The library's packages").
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jinja2
import numpy as np
import pandas as pd

SCORE_COLUMNS = (
    "model",
    "probability",
    "threshold",
    "risk_group",
    "interval_low",
    "interval_high",
    "prediction_set",
    "coverage_nominal",
)
MANIFEST_KEYS = ("hccrad_version", "endpoint", "intended_use", "limits")
FLAG_COLUMNS = ("patient_id", "check", "value", "low", "high", "out_of_domain", "reason")
RESEARCH_STATEMENT = (
    "Research tool: not a medical device, not validated for clinical decisions. "
    "Every number here is a model output to be read beside the clinical picture."
)
OUT_OF_DOMAIN_WARNING = "Outside the training data: scored, but not to be trusted."
RISK_GROUP_NOTE = (
    "Risk group: high when the probability is at or above the model's threshold (Youden's "
    "index on the training patients), else low."
)
TEMPLATE = "patient_report.html.j2"


@dataclass(frozen=True)
class ModelRow:
    """One model's output for the patient, as the report prints it."""

    model: str
    probability: float
    interval_low: float
    interval_high: float
    prediction_set: str
    set_words: str
    coverage_nominal: float
    threshold: float
    risk_group: str


@dataclass(frozen=True)
class FlagRow:
    """One out-of-domain check of the patient."""

    check: str
    value: str
    range: str
    out_of_domain: bool
    reason: str


@dataclass(frozen=True)
class PatientReport:
    """Everything the one-page report shows, in words and numbers."""

    patient_id: str
    endpoint: str
    models: tuple[ModelRow, ...]
    flags: tuple[FlagRow, ...]
    coverage: str
    hccrad_version: str
    created: str
    intended_use: str
    limits: tuple[str, ...]

    @property
    def out_of_domain(self) -> bool:
        """Whether any out-of-domain check is set."""
        return any(flag.out_of_domain for flag in self.flags)

    @property
    def flagged(self) -> tuple[FlagRow, ...]:
        """The checks that are set."""
        return tuple(flag for flag in self.flags if flag.out_of_domain)


class ReportDrawer(Protocol):
    """What draws the report's pictures (`hccrad.figures.patient.DRAWER`)."""

    def chart_png(self, report: PatientReport) -> bytes:
        """The probability chart (interval, threshold per model) as PNG bytes."""
        ...

    def page_pdf(self, report: PatientReport, gradcam_png: Path | None, path: Path) -> None:
        """The report as one A4 PDF page at ``path``."""
        ...


def probability_text(value: float) -> str:
    """A probability as the report prints it (three decimals)."""
    return f"{value:.3f}"


def set_words(prediction_set: str, endpoint: str) -> str:
    """A conformal prediction set in words for a binary endpoint."""
    words = {
        "1": f"{endpoint} (1)",
        "0": f"no {endpoint} (0)",
        "0,1": "either outcome (0 or 1): uncertain at this level",
        "": "empty: neither outcome fits at this level",
    }
    if prediction_set not in words:
        raise ValueError(f"prediction_set {prediction_set!r} is not one of {sorted(words)}")
    return words[prediction_set]


def _number(value: Any) -> str:
    """A flag's value or bound as text (empty when missing)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def range_text(low: str, high: str) -> str:
    """A training range in words; one bound may be missing (a one-sided check)."""
    if low and high:
        return f"{low} to {high}"
    if high:
        return f"up to {high}"
    return f"from {low}" if low else ""


def _check_columns(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """Stop with the missing columns of an input table named."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it needs {list(columns)}")


def model_rows(scores: pd.DataFrame, endpoint: str) -> tuple[ModelRow, ...]:
    """The scores table (iface: predictions.tsv columns) as report rows, in its order."""
    _check_columns(scores, SCORE_COLUMNS, "scores")
    if scores.empty:
        raise ValueError("scores has no rows: there is no model output to report")
    rows = []
    for row in scores.itertuples(index=False):
        prediction_set = "" if pd.isna(row.prediction_set) else str(row.prediction_set)
        rows.append(
            ModelRow(
                model=str(row.model),
                probability=float(row.probability),
                interval_low=float(row.interval_low),
                interval_high=float(row.interval_high),
                prediction_set=prediction_set,
                set_words=set_words(prediction_set, endpoint),
                coverage_nominal=float(row.coverage_nominal),
                threshold=float(row.threshold),
                risk_group=str(row.risk_group),
            )
        )
    return tuple(rows)


def flag_rows(flags: pd.DataFrame, patient_id: str) -> tuple[FlagRow, ...]:
    """The patient's domain_flags rows (``overall`` last), with their range as text."""
    _check_columns(flags, FLAG_COLUMNS, "flags")
    own = flags[flags["patient_id"].astype(str) == patient_id]
    own = pd.concat([own[own["check"] != "overall"], own[own["check"] == "overall"]])
    return tuple(
        FlagRow(
            check=str(row.check),
            value=_number(row.value),
            range=range_text(_number(row.low), _number(row.high)),
            out_of_domain=bool(row.out_of_domain),
            reason="" if pd.isna(row.reason) else str(row.reason),
        )
        for row in own.itertuples(index=False)
    )


def coverage_statement(rows: Sequence[ModelRow]) -> str:
    """What the intervals and sets promise, in one sentence."""
    levels = sorted({round(row.coverage_nominal, 4) for row in rows})
    level = " / ".join(f"{100 * c:g}%" for c in levels)
    return (
        f"Intervals and prediction sets are split-conformal at {level} nominal coverage, "
        "calibrated on held-out (out-of-fold) predictions of the training patients: over "
        "patients like the training ones, the true outcome falls in the set at least that often."
    )


def _limits(value: Any) -> tuple[str, ...]:
    """The manifest's limits as a tuple of sentences."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def build_patient_report(
    patient_id: str, scores: pd.DataFrame, flags: pd.DataFrame, manifest: Mapping[str, Any]
) -> PatientReport:
    """The report's content from the patient's scores, domain flags and the bundle manifest."""
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise ValueError(f"the bundle manifest lacks {missing}; the report needs {MANIFEST_KEYS}")
    endpoint = str(manifest["endpoint"])
    rows = model_rows(scores, endpoint)
    return PatientReport(
        patient_id=str(patient_id),
        endpoint=endpoint,
        models=rows,
        flags=flag_rows(flags, str(patient_id)),
        coverage=coverage_statement(rows),
        hccrad_version=str(manifest["hccrad_version"]),
        created=str(manifest.get("created", "")),
        intended_use=str(manifest["intended_use"]),
        limits=_limits(manifest["limits"]),
    )


def data_uri(png: bytes) -> str:
    """PNG bytes as a data URI, so the HTML holds its images."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(report: PatientReport, chart_png: bytes, gradcam_png: Path | None) -> str:
    """The report as one self-contained HTML page (images inlined)."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("hccrad.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["probability"] = probability_text
    return environment.get_template(TEMPLATE).render(
        report=report,
        chart=data_uri(chart_png),
        gradcam=data_uri(gradcam_png.read_bytes()) if gradcam_png is not None else None,
        research_statement=RESEARCH_STATEMENT,
        risk_group_note=RISK_GROUP_NOTE,
        warning=OUT_OF_DOMAIN_WARNING,
    )


def render_patient_report(
    patient_id: str,
    scores: pd.DataFrame,
    flags: pd.DataFrame,
    manifest: dict,
    out_dir: Path,
    gradcam_png: Path | None = None,
    *,
    drawer: ReportDrawer | None = None,
) -> Path:
    """Write out_dir/report.html (self-contained) and out_dir/report.pdf (one A4 page)."""
    if drawer is None:
        # The layering keeps matplotlib out of this package: the caller passes the drawer,
        # or calls hccrad.figures.patient.render_patient_report, which passes it.
        raise ValueError(
            "render_patient_report needs drawer=hccrad.figures.patient.DRAWER "
            "(or call hccrad.figures.patient.render_patient_report)"
        )
    report = build_patient_report(patient_id, scores, flags, manifest)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / "report.html"
    html_path.write_text(
        render_html(report, drawer.chart_png(report), gradcam_png), encoding="utf-8"
    )
    drawer.page_pdf(report, gradcam_png, out_dir / "report.pdf")
    return html_path
