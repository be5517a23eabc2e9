"""The workflow's rule graph as a figure: `snakemake --rulegraph` DOT text, in the house style.

Drawn with networkx and matplotlib rather than Graphviz so that the figure needs no system
package (a laptop or CI without `dot` still regenerates it).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from hccrad.figures.style import journal_subplots

NODE = re.compile(r'^\s*(\d+)\s*\[label\s*=\s*"([^"]+)"')
EDGE = re.compile(r"^\s*(\d+)\s*->\s*(\d+)")
FIGURE_SUFFIX = "_figure"
TARGET_RULES = ("all", "figures")


def parse_rulegraph(dot: str) -> nx.DiGraph:
    """The rule graph of Snakemake's `--rulegraph` DOT output (nodes named by rule)."""
    names: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for line in dot.splitlines():
        if node := NODE.match(line):
            names[node.group(1)] = node.group(2)
        elif edge := EDGE.match(line):
            edges.append((edge.group(1), edge.group(2)))
    if not names:
        raise ValueError("no rule in the DOT text: is it the output of snakemake --rulegraph?")
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(names.values()))
    graph.add_edges_from(sorted((names[a], names[b]) for a, b in edges))
    return graph


def rulegraph_dot(
    snakefile: str | Path, workdir: str | Path, config: Mapping[str, Any], config_path: Path
) -> str:
    """Run `snakemake --rulegraph` on the workflow with this config (no jobs run, no lock)."""
    config_path.write_text(yaml.safe_dump(dict(config), sort_keys=True))
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
        "--rulegraph",
        "--nolock",
        # Other jobs of the same run may be writing outputs right now: plan around them.
        "--ignore-incomplete",
        "--quiet",
        "all",
    ]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"snakemake --rulegraph failed:\n{run.stderr[-3000:]}")
    return run.stdout


def _layers(graph: nx.DiGraph) -> dict[str, int]:
    """Layer of each rule: its longest path from a source, so arrows always point down."""
    depth: dict[str, int] = {}
    for rule in nx.topological_sort(graph):
        depth[rule] = max((depth[p] + 1 for p in graph.predecessors(rule)), default=0)
    return depth


def rulegraph_figure(
    graph: nx.DiGraph, title: str = "Workflow: rules and their dependencies"
) -> Figure:
    """Rules in dependency layers (top to bottom); figure rules and targets coloured apart."""
    graph = graph.copy()
    graph.remove_nodes_from([r for r in TARGET_RULES if r in graph])
    depth = _layers(graph)
    # Rules of a layer in name order: with a node attribute networkx groups them in sets, whose
    # order follows Python's per-process string hashing (the figure changed from run to run).
    layers = {
        layer: sorted(rule for rule, d in depth.items() if d == layer)
        for layer in sorted(set(depth.values()))
    }
    # multipartite_layout puts layers along x; swap to rows so the flow reads downwards.
    position = {
        rule: (x, -y)
        for rule, (y, x) in nx.multipartite_layout(graph, subset_key=layers, scale=1).items()
    }
    # A double column wide, a layer every 13 mm; names wrapped to fit beside their neighbours.
    figure, axes = journal_subplots(2, 13.0 * len(layers) + 25.0)
    axis = axes[0, 0]
    widest = max(map(len, layers.values()))
    wrap = max(8, int(150 / widest))
    colours = {
        rule: "#E69F00" if rule.endswith(FIGURE_SUFFIX) else "#56B4E9" for rule in graph.nodes
    }
    nx.draw_networkx_edges(
        graph, position, ax=axis, edge_color="#9E9E9E", arrowsize=7, width=0.6, node_size=1200
    )
    for rule, (x, y) in position.items():
        axis.text(
            x,
            y,
            textwrap.fill(rule.replace("_", " "), wrap, break_long_words=False),
            ha="center",
            va="center",
            bbox={"boxstyle": "round,pad=0.3", "facecolor": colours[rule], "edgecolor": "none"},
        )
    figure.legend(
        handles=[
            Patch(color="#56B4E9", label="computes results (tables, models, images)"),
            Patch(color="#E69F00", label="draws a figure from results (figures target)"),
        ],
        loc="outside lower center",
        ncol=2,
        frameon=False,
    )
    axis.set_title(f"{title} ({graph.number_of_nodes()} rules)")
    axis.axis("off")
    return figure
