"""The rule-graph figure: DOT parsing, dependency layers, drawing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PIL import Image

from hccrad.figures.style import save_figure
from hccrad.figures.workflow_graph import _layers, parse_rulegraph, rulegraph_figure

DOT = """digraph snakemake_dag {
    graph[bgcolor=white, margin=0];
    node[shape=box, style=rounded, fontname=sans, fontsize=10, penwidth=2];
    0[label = "all", color = "0.30 0.6 0.85", style="rounded"];
    1[label = "simulate_patients", color = "0.54 0.6 0.85", style="rounded"];
    2[label = "fit_models", color = "0.49 0.6 0.85", style="rounded"];
    3[label = "evaluation_figure", color = "0.28 0.6 0.85", style="rounded"];
    4[label = "deep_select", color = "0.28 0.6 0.85", style="rounded"];
    1 -> 2
    1 -> 4
    4 -> 2
    2 -> 3
    3 -> 0
    2 -> 0
}
"""


def test_rules_and_dependencies_are_parsed() -> None:
    graph = parse_rulegraph(DOT)
    assert set(graph.nodes) == {
        "all",
        "simulate_patients",
        "fit_models",
        "evaluation_figure",
        "deep_select",
    }
    assert ("deep_select", "fit_models") in graph.edges
    assert graph.number_of_edges() == 6


def test_layers_follow_the_longest_path() -> None:
    layers = _layers(parse_rulegraph(DOT))
    # fit_models waits for deep_select, so it sits below it, not beside it.
    assert layers["simulate_patients"] == 0
    assert layers["deep_select"] == 1
    assert layers["fit_models"] == 2
    assert layers["evaluation_figure"] == 3


def test_text_that_is_not_a_rule_graph_is_refused() -> None:
    with pytest.raises(ValueError, match="snakemake --rulegraph"):
        parse_rulegraph("no graph here")


def test_figure_is_drawn_without_the_target_rules(tmp_path) -> None:
    figure = rulegraph_figure(parse_rulegraph(DOT))
    labels = {t.get_text() for t in figure.axes[0].texts}
    assert "all" not in labels and "fit models" in labels
    png, pdf, _tiff = save_figure(figure, tmp_path / "rulegraph.png")
    assert Image.open(png).convert("L").getextrema()[0] < 100
    assert pdf.stat().st_size > 1000


def test_figure_does_not_depend_on_string_hashing(tmp_path) -> None:
    # Sets of rule names iterate in a per-process order: the same graph must draw the same bytes.
    script = (
        "import sys; from pathlib import Path;"
        "from hccrad.figures.style import save_figure;"
        "from hccrad.figures.workflow_graph import parse_rulegraph, rulegraph_figure;"
        "save_figure(rulegraph_figure(parse_rulegraph(Path(sys.argv[1]).read_text())), sys.argv[2])"
    )
    # Five rules in one layer: their order in a set differs between the seeds below.
    wide = "".join(f'    {i}[label = "rule_{i}"];\n    1 -> {i}\n' for i in range(5, 10))
    dot = tmp_path / "rules.dot"
    dot.write_text(DOT.replace("}\n", wide + "}\n"))
    drawn = []
    for seed in ("1", "2", "3"):
        png = tmp_path / f"seed{seed}.png"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", script, dot, png], env=env, check=True)
        drawn.append(png.read_bytes())
    assert drawn[0] == drawn[1] == drawn[2]
