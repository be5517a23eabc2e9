"""The one-page patient report: its content, the A4 PDF, and the HTML opened in Chromium."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chromium import chromium, chromium_path
from PIL import Image
from test_figures import drawn_texts

from hccrad.figures.patient import chart_figure, page_figure, render_patient_report
from hccrad.figures.style import MIN_FONT_PT
from hccrad.reporting.patient_report import (
    OUT_OF_DOMAIN_WARNING,
    build_patient_report,
    probability_text,
    range_text,
    set_words,
)
from hccrad.reporting.patient_report import render_patient_report as render_without_drawer

PATIENT = "TACE-007"
# Appended to a copy of the report: what the browser's DOM holds once it has parsed the page.
PROBE = """
<script>
(() => {
  const text = (selector) => [...document.querySelectorAll(selector)].map(e => e.textContent);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    patient: text("#patient-id"),
    models: [...document.querySelectorAll("#scores tbody tr")].map(r => r.dataset.model),
    probabilities: text("#scores td.probability"),
    warning: text("#ood-warning"),
    images: [...document.images].map(i => [i.src.slice(0, 22), i.naturalWidth]),
  });
  document.body.appendChild(out);
})();
</script>
"""


def scores_table(rng: np.random.Generator) -> pd.DataFrame:
    """A bundle's predictions for one patient (iface33 `scores` columns), random numbers."""
    models = ["clinical", "radiomics_lasso", "DLTR", "DLTR_MLP"]
    probability = rng.uniform(0.05, 0.95, len(models))
    threshold = rng.uniform(0.3, 0.7, len(models))
    return pd.DataFrame(
        {
            "model": models,
            "probability": probability,
            "threshold": threshold,
            "risk_group": np.where(probability >= threshold, "high", "low"),
            "interval_low": probability * 0.6,
            "interval_high": np.minimum(probability * 1.4, 1.0),
            "prediction_set": ["0,1", "1", "0", ""],
            "coverage_nominal": 0.9,
        }
    )


def flags_table(out_of_domain: bool) -> pd.DataFrame:
    """domain_flags rows for the patient: spacing set (or not), a feature, the overall score."""
    spacing = 12.0 if out_of_domain else 3.0
    return pd.DataFrame(
        {
            "patient_id": PATIENT,
            "check": ["spacing_z", "arterial_tumour_original_firstorder_Mean", "overall"],
            "value": [spacing, 0.4, 1.1],
            "low": [1.0, -2.0, 0.0],
            "high": [5.0, 2.0, 3.0],
            "out_of_domain": [out_of_domain, False, False],
            "reason": [
                f"voxel spacing z {spacing} mm outside training 1.0-5.0 mm"
                if out_of_domain
                else "",
                "",
                "",
            ],
        }
    )


MANIFEST = {
    "hccrad_version": "0.2.0",
    "endpoint": "response",
    "created": "2026-12-06T10:00:00Z",
    "models": {"clinical": {}, "radiomics_lasso": {}, "DLTR": {}, "DLTR_MLP": {}},
    "intended_use": "Research: TACE response of adults with HCC, pre-TACE multi-phase MRI.",
    "limits": ["Trained on one simulated cohort.", "Not for patients after prior TACE."],
    "software_versions": {"numpy": "2.4.6"},
}


@pytest.fixture
def gradcam(tmp_path) -> Path:
    """A stand-in Grad-CAM PNG."""
    path = tmp_path / "gradcam.png"
    pixels = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_report_content_in_words():
    scores = scores_table(np.random.default_rng(1))
    report = build_patient_report(PATIENT, scores, flags_table(True), MANIFEST)
    assert [row.model for row in report.models] == scores["model"].tolist()
    assert report.out_of_domain and [f.check for f in report.flagged] == ["spacing_z"]
    assert report.flags[-1].check == "overall"
    assert [f.range for f in report.flags] == ["1 to 5", "-2 to 2", "0 to 3"]
    assert "90% nominal coverage" in report.coverage
    assert report.limits == tuple(MANIFEST["limits"])
    inside = build_patient_report(PATIENT, scores, flags_table(False), MANIFEST)
    assert not inside.out_of_domain and not inside.flagged


def test_bad_inputs_are_refused(tmp_path):
    scores = scores_table(np.random.default_rng(2))
    with pytest.raises(ValueError, match="coverage_nominal"):
        build_patient_report(
            PATIENT, scores.drop(columns="coverage_nominal"), flags_table(False), MANIFEST
        )
    with pytest.raises(ValueError, match="hccrad_version"):
        build_patient_report(PATIENT, scores, flags_table(False), {"endpoint": "response"})
    assert range_text("", "2.5") == "up to 2.5" and range_text("", "") == ""
    with pytest.raises(ValueError, match="prediction_set"):
        set_words("2", "response")
    with pytest.raises(ValueError, match="drawer"):
        render_without_drawer(PATIENT, scores, flags_table(False), MANIFEST, tmp_path)


def test_pdf_is_one_a4_page_and_html_holds_its_images(tmp_path, gradcam):
    scores = scores_table(np.random.default_rng(4))
    page = render_patient_report(
        PATIENT, scores, flags_table(True), MANIFEST, tmp_path, gradcam_png=gradcam
    )
    assert page == tmp_path / "report.html"
    pdf = (tmp_path / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert box and (round(float(box[1])), round(float(box[2]))) == (595, 842)  # A4 in points
    text = page.read_text(encoding="utf-8")
    # Self-contained: two images (chart, Grad-CAM), both inlined; nothing fetched from outside.
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 2
    assert not re.search(r'(src|href)="(?!data:)', text)


def browser_dom(report: Path, tmp_path: Path) -> dict:
    """The report opened in Chromium: what its DOM holds after parsing (the probe's JSON)."""
    probed = report.with_name("report_probe.html")
    probed.write_text(report.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    budget = "--virtual-time-budget=5000"  # lets the inlined images decode
    done = chromium(chromium_path(), tmp_path / "profile", budget, "--dump-dom", probed.as_uri())
    assert done.returncode == 0, done.stderr[-4000:]
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert match, "the probe did not run in Chromium"
    return json.loads(html.unescape(match.group(1)))


@pytest.mark.parametrize("out_of_domain", [True, False])
def test_report_in_chromium(tmp_path, gradcam, out_of_domain):
    scores = scores_table(np.random.default_rng(5 + out_of_domain))
    report = render_patient_report(
        PATIENT, scores, flags_table(out_of_domain), MANIFEST, tmp_path / "out", gradcam
    )
    dom = browser_dom(report, tmp_path)
    assert dom["patient"] == [PATIENT]
    assert dom["models"] == scores["model"].tolist()
    assert dom["probabilities"] == [probability_text(p) for p in scores["probability"]]
    # Both images decoded in the browser (a broken data URI has no width).
    assert [src for src, _ in dom["images"]] == ["data:image/png;base64,"] * 2
    assert all(width > 0 for _, width in dom["images"])
    if out_of_domain:
        assert len(dom["warning"]) == 1
        assert OUT_OF_DOMAIN_WARNING in dom["warning"][0]
        assert "voxel spacing z 12.0 mm outside training" in dom["warning"][0]
    else:
        assert dom["warning"] == []


@pytest.mark.parametrize("out_of_domain", [True, False])
def test_page_and_chart_text_is_at_least_7_pt_and_on_the_page(gradcam, out_of_domain):
    # Many checks and long reasons: the page's tables shorten them rather than run off the page.
    flags = pd.concat([flags_table(out_of_domain)] * 6, ignore_index=True)
    flags["check"] = [f"{c}_{i}" for i, c in enumerate(flags["check"])]
    flags.loc[flags["out_of_domain"], "reason"] += " and the scanner's intensity far outside too"
    report = build_patient_report(PATIENT, scores_table(np.random.default_rng(7)), flags, MANIFEST)
    for figure in (page_figure(report, gradcam), chart_figure(report)):
        page = figure.bbox
        texts = drawn_texts(figure)
        assert texts and min(t.get_fontsize() for t in texts) >= MIN_FONT_PT
        for text in texts:
            box = text.get_window_extent()
            assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, text.get_text()
            assert page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, text.get_text()
