"""The Snakemake HTML report of the tiny run in headless Chromium, and every figure's pixels.

The report is built from the shared tiny run (fixture `runs` of conftest.py). Chromium comes from
tests/chromium.py (Debian's package, installed when missing; the browser tests are skipped with
the reason where it cannot be). The screenshot is written beside the report, in
the test's temporary folder, and its path printed.
"""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chromium import chromium, chromium_path
from conftest import ROOT, load_default_config
from packaging.requirements import Requirement
from PIL import Image

pytestmark = pytest.mark.workflow

CATEGORIES = {"Cohorts", "Radiomics", "Deep learning", "Response models", "Survival"}
CATEGORIES |= {"Radiogenomics", "Reproducibility", "Segmentation"}
# Tables flagged for the report ({endpoint} for each endpoint); figures are every PNG of the run.
TABLES = (
    "workflow/software_versions.tsv",
    "reporting/tripod_ai_checklist.tsv",
    "sim_tace/table1.tsv",
    "sim_lihc/table1.tsv",
    "sim_tace/radiomics/icc.tsv",
    "sim_tace/deep/{endpoint}/selection.tsv",
    "sim_tace/models/{endpoint}/clinical_odds_ratios.tsv",
    "sim_tace/models/{endpoint}/model_card.md",
    "sim_tace/evaluation/{endpoint}/auc.tsv",
    "sim_tace/evaluation/{endpoint}/conformal_coverage.tsv",
    "sim_tace/survival/{endpoint}/logrank.tsv",
    "sim_tace/survival/{endpoint}/cox.tsv",
    "sim_lihc/radiogenomics/gene_list.tsv",
    "sim_lihc/radiogenomics/correlation_summary.tsv",
    "sim_lihc/radiogenomics/differential.tsv",
    "sim_lihc/radiogenomics/ora.tsv",
    "sim_lihc/radiogenomics/gsea.tsv",
    "sim_lihc/radiogenomics/truth_recovery_summary.tsv",
)
# Appended to a copy of the report: list what the page holds (at once, into the DOM, which
# --dump-dom prints), then decode every embedded PNG in the browser and add what decoded.
PROBE = """
<script>
(() => {
  const listed = {};
  for (const [path, res] of Object.entries(results)) {
    listed[path] = {mime: res.mime_type, caption: (res.caption || "").length,
                    data: res.data_uri.slice(res.data_uri.indexOf(",") + 1, 200)};
  }
  const out = document.createElement("pre");
  out.id = "hccrad-probe";
  out.textContent = JSON.stringify({results: listed, categories: Object.keys(categories)});
  document.body.appendChild(out);
  const decoded = document.createElement("pre");
  decoded.id = "hccrad-decoded";
  document.body.appendChild(decoded);
  const sizes = {};
  for (const [path, res] of Object.entries(results)) {
    if (res.mime_type !== "image/png") continue;
    const img = new Image();
    img.onload = () => {
      sizes[path] = [img.naturalWidth, img.naturalHeight];
      decoded.textContent = JSON.stringify(sizes);
    };
    img.onerror = () => { sizes[path] = "error"; decoded.textContent = JSON.stringify(sizes); };
    img.src = res.data_uri;
  }
})();
</script>
"""


def figures(results: Path) -> list[Path]:
    """Every figure PNG of a run (per-patient preparation QC images are not figures)."""
    return sorted(
        p for p in results.rglob("*.png") if "prepared" not in p.relative_to(results).parts
    )


def expected_tables(results: Path) -> list[Path]:
    """The tables flagged for the report, for every endpoint of the default config."""
    endpoints = load_default_config()["endpoints"]
    return sorted({results / t.format(endpoint=e) for t in TABLES for e in endpoints})


@pytest.fixture(scope="module")
def report(runs, snakemake_bin, tmp_path_factory) -> Path:
    """The self-contained HTML report of the tiny run."""
    workdir = runs["first"].parent
    out = tmp_path_factory.mktemp("report") / "report.html"
    done = subprocess.run(
        [
            snakemake_bin,
            "--report",
            str(out),
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            "--nolock",
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def rendered(report, tmp_path_factory) -> dict:
    """The report opened in Chromium: the DOM after rendering, the probe's findings, screenshot."""
    browser = chromium_path()
    folder = tmp_path_factory.mktemp("chromium")
    probed = report.with_name("report_probe.html")
    probed.write_text(report.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    budget = "--virtual-time-budget=20000"  # lets React render and the images decode
    dom = chromium(browser, folder / "profile1", budget, "--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-4000:]
    screenshot = report.with_name("report.png")
    shot = chromium(
        browser,
        folder / "profile2",
        budget,
        "--window-size=1600,1000",
        f"--screenshot={screenshot}",
        report.as_uri(),
    )
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-4000:]
    print(f"report: {report}\nscreenshot: {screenshot}")
    match = re.search(r'<pre id="hccrad-probe">(.*?)</pre>', dom.stdout, re.S)
    assert match, "the probe script did not run: the report's scripts failed in Chromium"
    probe = json.loads(html.unescape(match.group(1)))
    match = re.search(r'<pre id="hccrad-decoded">(.*?)</pre>', dom.stdout, re.S)
    decoded = json.loads(html.unescape(match.group(1))) if match and match.group(1) else {}
    return {"dom": dom.stdout, "probe": probe, "decoded": decoded, "screenshot": screenshot}


def test_report_renders_the_landing_page(rendered):
    # Outside <script> blocks the text exists only once React has rendered the page.
    visible = re.sub(r"<script.*?</script>", "", rendered["dom"], flags=re.S)
    assert "predicts objective response to transarterial chemoembolisation" in visible
    assert set(rendered["probe"]["categories"]) == CATEGORIES


def test_every_figure_and_table_is_in_the_report(rendered, runs):
    results = runs["first"]
    found = rendered["probe"]["results"]
    in_report = {results.parent / path for path in found}
    missing = [p for p in figures(results) + expected_tables(results) if p not in in_report]
    assert not missing, f"figures or tables not in the report: {missing}"
    for path, entry in found.items():
        # The embedded data is the file itself (its base64 starts alike).
        data = base64.b64encode((results.parent / path).read_bytes()).decode()
        assert data.startswith(entry["data"]), f"{path}: the report embeds other content"
        assert entry["caption"] > 0, f"{path} has no caption"


def test_figures_decode_in_the_browser(rendered):
    # Chromium decodes the images while the page's (virtual) time runs: most finish in it.
    decoded = rendered["decoded"]
    pngs = [p for p, e in rendered["probe"]["results"].items() if e["mime"] == "image/png"]
    print(f"{len(decoded)} of {len(pngs)} PNGs decoded in Chromium")
    assert len(decoded) >= len(pngs) // 2, f"only {len(decoded)} of {len(pngs)} PNGs decoded"
    for path, size in decoded.items():
        assert size != "error", f"{path} does not decode in Chromium"
        assert size[0] > 300 and size[1] > 200, (path, size)


def test_screenshot_shows_a_page(rendered):
    pixels = np.asarray(Image.open(rendered["screenshot"]).convert("L"), dtype=float)
    assert pixels.shape == (1000, 1600)
    assert pixels.std() > 5, "the screenshot of the report is blank"


@pytest.mark.parametrize("cohort", ["sim_tace", "sim_lihc"])
def test_every_figure_has_content(runs, cohort):
    results = runs["first"]
    pngs = [p for p in figures(results) if p.relative_to(results).parts[0] == cohort]
    assert pngs, f"no figures under {results / cohort}"
    for png in pngs:
        with Image.open(png) as image:
            dpi = image.info.get("dpi", (0, 0))
            pixels = np.asarray(image.convert("RGB"), dtype=np.int32)
        assert round(dpi[0]) == 300, f"{png}: {dpi} dpi, not 300"
        # A blank canvas is one colour: enough pixels must differ from the background colour.
        packed = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
        counts = np.bincount(packed.ravel(), minlength=1 << 24)
        mode = int(counts.argmax())
        background = np.array([mode >> 16, (mode >> 8) & 255, mode & 255])
        drawn = np.abs(pixels - background).max(axis=-1) > 16
        assert drawn.mean() > 0.01, f"{png}: only {drawn.mean():.2%} of pixels drawn"
        assert np.count_nonzero(counts) > 16 and pixels.std() > 10, f"{png} looks blank"


def test_software_versions_table_lists_every_pin(runs):
    table = pd.read_csv(runs["first"] / "workflow" / "software_versions.tsv", sep="\t")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # The run's software: the dependencies and the workflow group (Snakemake), those whose
    # platform marker holds here (xgboost-cpu on Linux, xgboost on macOS).
    requirements = [
        Requirement(spec)
        for spec in [*project["dependencies"], *project["optional-dependencies"]["workflow"]]
    ]
    pins = {
        r.name: str(r.specifier).removeprefix("==")
        for r in requirements
        if r.marker is None or r.marker.evaluate()
    }
    assert "snakemake" in pins and "xgboost-cpu" in pins
    listed = dict(zip(table["package"], table["pinned"].astype(str), strict=True))
    assert {k: listed.get(k) for k in pins} == pins
    # The test environment is the pinned one (make setup): every package matches its pin.
    drift = table.loc[~table["matches_pin"].astype(bool), "package"].tolist()
    assert not drift, f"installed versions differ from the pins: {drift}"
