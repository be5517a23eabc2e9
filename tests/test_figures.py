"""The journal style of the figures: column widths, text sizes, KM ticks under the risk table.

Figures are drawn from small synthetic tables shaped like the workflow's (seven models, four
cohorts) and measured after drawing: what a reader of the printed figure would see.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text
from PIL import Image
from sklearn.metrics import roc_curve

from hccrad.deep.cam_panels import GradCamPanels
from hccrad.deep.select import selection_summary
from hccrad.figures.deep import grad_cam_figure, selection_figure
from hccrad.figures.differential import plot_volcano
from hccrad.figures.enrichment import format_fdr, plot_enrichment_dots, plot_rho_heatmap
from hccrad.figures.models import calibration_figure, decision_curve_figure, roc_figure
from hccrad.figures.radiomics import icc_figure
from hccrad.figures.style import (
    DOUBLE_COLUMN_MM,
    MIN_FONT_PT,
    MM_PER_INCH,
    MODEL_STYLES,
    SINGLE_COLUMN_MM,
    save_figure,
)
from hccrad.figures.survival import AT_RISK_GID, forest_figure, km_figure, outcome_label
from hccrad.figures.table_one import render_table, write_table_xlsx
from hccrad.figures.workflow_graph import parse_rulegraph, rulegraph_figure
from hccrad.stats.survival import kaplan_meier_table, logrank, numbers_at_risk

MODELS = ["clinical", "radiomics", "radiomics_lasso", "radiomics_ridge", "DLTR", "DLTR_MLP", "DLR"]
COHORTS = ["train", "internal_test", "external", "external_C3"]
RISK_TIMES = [0.0, 6.0, 12.0, 18.0, 24.0, 36.0, 48.0]
TABLE_ONE = Path(__file__).parent / "data" / "figures" / "table1.tsv"
RULES = [
    "fit_models",
    "evaluation_figure",
    "survival_figure",
    "heatmap_figure",
    "volcano_figure",
    "enrichment_figure",
    "preprocessing_qc_figure",
    "table_one_figure",
    "segment_overlay_figure",
    "deep_selection_figure",
]
# A rule graph as wide as the workflow's widest layer (the figure rules, drawn from results).
RULE_GRAPH = (
    'digraph snakemake_dag {\n    0[label = "gather_sheet"];\n'
    + "".join(
        f'    {i}[label = "{name}"];\n    0 -> {i}\n' for i, name in enumerate(RULES, start=1)
    )
    + "}\n"
)


def drawn_texts(figure) -> list[Text]:
    """Every non-empty text that drawing the figure really draws (not stale or hidden ones)."""
    drawn: dict[int, Text] = {}
    draw = Text.draw

    def record(text: Text, renderer) -> None:
        if text.get_visible() and text.get_text().strip():
            drawn[id(text)] = text
        draw(text, renderer)

    with mock.patch.object(Text, "draw", record):
        figure.canvas.draw()
    return list(drawn.values())


def _rng(*names: str) -> np.random.Generator:
    """A generator per table, fixed by name."""
    return np.random.default_rng(sum(map(ord, "".join(names))))


def evaluation_tables() -> dict[str, pd.DataFrame]:
    """AUC, ROC, calibration and decision-curve tables of seven models on four cohorts."""
    auc, roc, calibration, bins, decision = [], [], [], [], []
    for cohort in COHORTS:
        rng = _rng("evaluation", cohort)
        y = rng.integers(0, 2, 80)
        for k, model in enumerate(MODELS):
            score = 1 / (1 + np.exp(-(y * (0.3 + 0.2 * k) + rng.normal(size=80))))
            fpr, tpr, _ = roc_curve(y, score)
            key = {"cohort": cohort, "model": model}
            roc.append(pd.DataFrame({**key, "fpr": fpr, "tpr": tpr}))
            auc.append({**key, "auc": 0.7, "ci_low": 0.58, "ci_high": 0.81, "n": 80, "note": ""})
            fit = {"intercept": -0.12, "intercept_ci_low": -0.55, "intercept_ci_high": 0.31}
            fit |= {"slope": 0.85, "slope_ci_low": 0.41, "slope_ci_high": 1.29}
            calibration.append({**key, "n": 80, "brier": 0.2, **fit, "note": ""})
            predicted = np.linspace(0.1, 0.9, 5)
            bins.append(
                pd.DataFrame(
                    {**key, "mean_predicted": predicted, "observed_fraction": predicted**1.2}
                )
            )
        for model in [*MODELS, "treat_all", "treat_none"]:
            threshold = np.linspace(0.01, 0.99, 50)
            decision.append(
                pd.DataFrame(
                    {
                        "cohort": cohort,
                        "model": model,
                        "threshold": threshold,
                        "net_benefit": 0.5 - threshold,
                        "n": 80,
                        "prevalence": 0.5,
                    }
                )
            )
    return {
        "auc": pd.DataFrame(auc),
        "roc_curves": pd.concat(roc, ignore_index=True),
        "calibration": pd.DataFrame(calibration),
        "calibration_curves": pd.concat(bins, ignore_index=True),
        "decision_curves": pd.concat(decision, ignore_index=True),
    }


def survival_tables() -> dict[str, pd.DataFrame]:
    """One model's KM curves, numbers at risk, log-rank rows and patients on four cohorts."""
    curves, at_risk, tests, patients = [], [], [], []
    for cohort in COHORTS:
        rng = _rng("survival", cohort)
        group = np.repeat(["low", "high"], 40)
        time = rng.exponential(np.where(group == "high", 12.0, 30.0)).clip(0.5, 60.0)
        event = (rng.uniform(size=80) < 0.7).astype(int)
        frame = pd.DataFrame({"risk_group": group, "time": time, "event": event})
        curves.append(
            kaplan_meier_table(frame, "risk_group", "time", "event").assign(cohort=cohort)
        )
        at_risk.append(
            numbers_at_risk(frame, "risk_group", "time", "event", RISK_TIMES).assign(cohort=cohort)
        )
        result = logrank(frame, "risk_group", "time", "event")
        tests.append(
            {"cohort": cohort, "n_low": 40, "n_high": 40, "p_value": result.p_value, "note": ""}
        )
        patients.append(frame.assign(cohort=cohort))
    return {
        "km_curves": pd.concat(curves, ignore_index=True),
        "numbers_at_risk": pd.concat(at_risk, ignore_index=True),
        "logrank": pd.DataFrame(tests),
        "patients": pd.concat(patients, ignore_index=True),
    }


def cox_table(extreme: bool = False) -> pd.DataFrame:
    """Multivariable Cox rows of five models; ``extreme`` gives one sparse level HR 4e-7."""
    rows = []
    for cohort in COHORTS:
        for model in MODELS[:5]:
            for covariate, hr in (("high_risk", 1.8), ("bclc_B", 1.3), ("child_pugh_B", 0.8)):
                low, high = hr / 1.9, hr * 1.9
                if extreme and covariate == "child_pugh_B" and cohort == "train":
                    hr, low, high = 4e-7, 0.0, np.inf
                rows.append(
                    {
                        "cohort": cohort,
                        "model": model,
                        "cox_model": "multivariable",
                        "covariate": covariate,
                        "hr": hr,
                        "ci_low": low,
                        "ci_high": high,
                        "n": 80,
                        "events": 50,
                        "note": "",
                    }
                )
    return pd.DataFrame(rows)


def km() -> object:
    """The KM figure of the synthetic survival tables (TTP)."""
    tables = survival_tables()
    return km_figure(
        tables["km_curves"],
        tables["numbers_at_risk"],
        tables["logrank"],
        tables["patients"],
        outcome="ttp",
        title="TTP by DLTR risk group",
    )


def all_figures() -> dict[str, object]:
    """Every model and survival figure, drawn from the synthetic tables."""
    tables = evaluation_tables()
    return {
        "roc": roc_figure(tables["roc_curves"], tables["auc"], title="ROC: response"),
        "calibration": calibration_figure(tables["calibration_curves"], tables["calibration"]),
        "decision": decision_curve_figure(tables["decision_curves"]),
        "km": km(),
        "forest": forest_figure(cox_table(extreme=True), title="TTP: multivariable Cox"),
        "single_km": km_figure(
            *(survival_tables()[k] for k in ("km_curves", "numbers_at_risk", "logrank")),
            survival_tables()["patients"],
            cohorts=["train"],
        ),
    }


def other_figures() -> dict[str, object]:
    """The stage figures that draw from tables: volcano, enrichment, ICC, selection, Table 1."""
    rng = _rng("other")
    genes = [f"G{i}" for i in range(400)]
    lfc = rng.normal(0, 1.5, 400)
    de = pd.DataFrame(
        {
            "gene": genes,
            "log2FoldChange": lfc,
            "log2FoldChange_shrunk": lfc,
            "padj": np.exp(-np.abs(lfc) * 4 * rng.uniform(size=400)),
        }
    )
    pathways = [f"HALLMARK_PATHWAY_NUMBER_{i}_SIGNALING" for i in range(20)]
    gsea = pd.DataFrame(
        {
            "pathway": pathways,
            "nes": rng.normal(0, 2, 20),
            "fdr": rng.uniform(0, 0.2, 20),
            "p_value": rng.uniform(0, 0.1, 20),
            "leading_edge_size": rng.integers(5, 60, 20),
            "permutations": 1000,
            "collection": "h.all",
            "collection_version": "v2025.1",
        }
    )
    rho = pd.DataFrame(rng.uniform(-0.6, 0.6, (30, 40)), index=[f"deep_{i}" for i in range(30)])
    icc = pd.DataFrame(
        {
            "feature": [
                f"original_{c}_Feature{i}" for c in ("glcm", "firstorder") for i in range(40)
            ],
            "icc": rng.uniform(0.3, 1.0, 80),
        }
    ).assign(robust=lambda t: t["icc"] >= 0.75)
    folds = pd.DataFrame(
        {
            "architecture": np.repeat(["resnet18", "resnet34", "densenet121"], 5),
            "fold": np.tile(np.arange(1, 6), 3),
            "auc": rng.uniform(0.5, 0.8, 15),
            "n_parameters": 10,
        }
    )
    table = pd.read_csv(TABLE_ONE, sep="\t", index_col=0, dtype=str, keep_default_na=False)
    n = 6
    panels = GradCamPanels(
        patients=tuple(f"P{i:03d}" for i in range(n)),
        titles=tuple(f"P{i:03d}\ncentre C1 · p = 0.72\nresponder" for i in range(n)),
        images=rng.normal(size=(n, 48, 48)),
        cams=rng.uniform(size=(n, 48, 48)),
        tumour=np.zeros((n, 48, 48), dtype=bool),
        extents_mm=np.tile([0.0, 48.0, 48.0, 0.0], (n, 1)),
        phase="arterial",
        architecture="resnet18",
        layer="layer4",
        has_spacing=True,
    )
    return {
        "gradcam": grad_cam_figure(panels),
        "volcano": plot_volcano(de, title="DLTR score high vs low"),
        "gsea_dots": plot_enrichment_dots(gsea, x="nes"),
        "heatmap": plot_rho_heatmap(rho),
        "icc": icc_figure(icc, 0.75),
        "selection": selection_figure(folds, selection_summary(folds), "resnet18"),
        "table_one": render_table(table, "Table 1. sim_tace"),
        "rule_graph": rulegraph_figure(parse_rulegraph(RULE_GRAPH)),
    }


def test_km_x_ticks_are_the_at_risk_times_and_each_number_stands_under_its_tick() -> None:
    figure = km()
    figure.canvas.draw()
    numbers = [t for t in figure.findobj(lambda a: a.get_gid() == AT_RISK_GID)]
    km_axes = [ax for ax in figure.axes if ax.get_ylabel()]
    assert len(km_axes) == len(COHORTS)
    for ax in km_axes:
        ticks = list(ax.get_xticks())
        assert ticks == RISK_TIMES
        assert ax.get_xlim() == (0.0, RISK_TIMES[-1])
        # The numbers drawn under this panel: those whose axes share its x axis.
        mine = [
            t for t in numbers if t.axes is not ax and t.axes.get_shared_x_axes().joined(ax, t.axes)
        ]
        assert len(mine) == 2 * len(RISK_TIMES)
        for group_row in (0, 1):
            xs = sorted(t.get_position()[0] for t in mine if t.get_position()[1] == group_row)
            assert xs == ticks
        # On the page, too: each number's centre is under its tick label's centre.
        labels = {float(lab.get_text()): lab for lab in ax.get_xticklabels()}
        for number in mine:
            centre = number.get_window_extent().x0 + number.get_window_extent().width / 2
            label = labels[number.get_position()[0]].get_window_extent()
            assert centre == pytest.approx(label.x0 + label.width / 2, abs=1.0)


def test_outcome_specific_y_labels() -> None:
    figure = km()
    assert {ax.get_ylabel() for ax in figure.axes if ax.get_ylabel()} == {
        "Probability without progression"
    }
    assert outcome_label("os") == "Survival probability"
    assert outcome_label("pfs") == "Progression-free survival probability"


@pytest.fixture(scope="module")
def figures() -> dict[str, object]:
    """Every figure of this module, drawn once."""
    return {**all_figures(), **other_figures()}


SINGLE_COLUMN = {"single_km", "volcano", "selection"}


@pytest.mark.parametrize(
    "name",
    [
        "roc",
        "calibration",
        "decision",
        "km",
        "forest",
        "single_km",
        "volcano",
        "gsea_dots",
        "heatmap",
        "icc",
        "selection",
        "table_one",
        "rule_graph",
        "gradcam",
    ],
)
def test_every_text_is_at_least_7_pt_and_the_width_is_a_journal_column(
    name, figures, tmp_path
) -> None:
    figure = figures[name]
    small = [(t.get_text(), t.get_fontsize()) for t in drawn_texts(figure)]
    assert [s for s in small if s[1] < MIN_FONT_PT] == []
    width_mm = figure.get_figwidth() * MM_PER_INCH
    assert width_mm == pytest.approx(
        SINGLE_COLUMN_MM if name in SINGLE_COLUMN else DOUBLE_COLUMN_MM
    )
    # Nothing is cut off at the edge of the page.
    page = figure.bbox
    for text in drawn_texts(figure):
        box = text.get_window_extent()
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, (name, text.get_text())
        assert page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, (name, text.get_text())
    png, pdf, tiff = save_figure(figure, tmp_path / f"{name}.png")
    # The saved files keep the width: 300 dpi x width in inches (no tight bounding box).
    for path in (png, tiff):
        with Image.open(path) as image:
            assert image.width == round(width_mm / MM_PER_INCH * 300)
    assert pdf.stat().st_size > 1000


def test_the_tiff_holds_the_bytes_savefig_writes(figures, tmp_path) -> None:
    """save_figure writes the TIFF from the PNG's pixels (issue 30): matplotlib's own TIFF."""
    figure = figures["km"]
    figure.savefig(tmp_path / "matplotlib.tiff", pil_kwargs={"compression": "tiff_lzw"})
    _, _, tiff = save_figure(figure, tmp_path / "km.png")
    assert tiff.read_bytes() == (tmp_path / "matplotlib.tiff").read_bytes()


def test_no_two_of_seven_models_look_alike_and_multi_panel_figures_are_lettered(figures) -> None:
    styles = [MODEL_STYLES[m] for m in MODELS]
    assert len({s.colour for s in styles}) == 7
    assert len({(s.linestyle, s.marker) for s in styles}) == 7
    figure = figures["roc"]
    letters = [t.get_text() for t in figure.findobj(lambda a: a.get_gid() == "panel_letter")]
    assert letters == ["a", "b", "c", "d"]


def test_legends_are_outside_every_data_area(figures) -> None:
    for name, figure in figures.items():
        figure.canvas.draw()
        legends = [*figure.legends, *(ax.get_legend() for ax in figure.axes)]
        boxes = [ax.get_window_extent() for ax in figure.axes if ax.axison]
        for legend in filter(None, legends):
            extent = legend.get_window_extent()
            assert not any(extent.overlaps(box) for box in boxes), name


def test_forest_clips_a_degenerate_hazard_ratio_and_prints_it(figures) -> None:
    figure = figures["forest"]
    train = figure.axes[0]
    low, high = train.get_xlim()
    assert low >= 1 / 64 and high <= 64
    assert any(t.get_text() == "HR 4e-07" for t in train.texts)
    assert 5 <= len(train.get_xticks()) <= 7


def test_table_one_xlsx_keeps_every_cell_and_is_byte_reproducible(tmp_path) -> None:
    table = pd.read_csv(TABLE_ONE, sep="\t", index_col=0, dtype=str, keep_default_na=False)
    first = write_table_xlsx(table, tmp_path / "a.xlsx", "Table 1. sim_tace")
    second = write_table_xlsx(table, tmp_path / "b.xlsx", "Table 1. sim_tace")
    assert first.read_bytes() == second.read_bytes()
    back = pd.read_excel(first, sheet_name="Table 1", skiprows=2, index_col=0, dtype=str)
    back = back.fillna("")
    assert list(back.columns) == list(table.columns)
    assert back.to_numpy().tolist() == table.to_numpy().tolist()
    assert pd.read_excel(first, header=None, nrows=1).iat[0, 0] == "Table 1. sim_tace"


def test_forest_says_why_a_cohort_has_no_estimate() -> None:
    cox = cox_table()
    sparse = cox["cohort"] == "external_C3"
    cox.loc[sparse, ["hr", "ci_low", "ci_high", "covariate"]] = np.nan
    cox.loc[sparse, "note"] = (
        "ttp by clinical in external_C3: too few events per variable (3 events, 4 terms); use"
        " fewer covariates; rare levels merged before fitting (< 5 training patients,"
        " survival.min_level_count): bclc D (3 training patients) -> C/D"
    )
    figure = forest_figure(cox)
    last = figure.axes[-1]
    texts = [t.get_text().replace("\n", " ") for t in last.texts]
    # The reason in full words, not the merged-level remark, and no hazard-ratio axis under it.
    reason = "few events per variable (3 events, 4 terms); use fewer covariates"
    assert any(reason in t for t in texts)
    assert not any("rare levels" in t or "C/D" in t for t in texts)
    assert list(last.get_xticks()) == [] and last.get_xlabel() == ""
    notes_only = cox[sparse][["cohort", "model", "cox_model", "note"]]
    figure = forest_figure(notes_only)
    assert any("Not estimated" in t.get_text() for t in figure.axes[0].texts)


def test_a_set_without_fdr_is_labelled_not_judged():
    # GSEA leaves the FDR empty where the sign-matched null is too small to judge.
    assert format_fdr(float("nan"), 0.001) == "not judged"
    assert format_fdr(0.0, 0.001) == "< 0.001"
    assert format_fdr(0.04, 0.001) == "0.04"
