"""The workflow's rule graph (the rules this config runs) as a figure."""

from pathlib import Path

from hccrad.core.runlog import log_to
from hccrad.figures.style import save_figure
from hccrad.figures.workflow_graph import parse_rulegraph, rulegraph_dot, rulegraph_figure

log = log_to(snakemake.log[0])
dot = rulegraph_dot(
    snakemake.params.snakefile, Path.cwd(), snakemake.config, Path(snakemake.output.dot + ".yaml")
)
Path(snakemake.output.dot + ".yaml").unlink()
graph = parse_rulegraph(dot)
# Snakemake numbers and colours the nodes differently from run to run: keep the graph itself.
edges = "".join(f'    "{a}" -> "{b}";\n' for a, b in sorted(graph.edges))
nodes = "".join(f'    "{n}";\n' for n in sorted(graph.nodes))
Path(snakemake.output.dot).write_text(f"digraph rules {{\n{nodes}{edges}}}\n")
save_figure(rulegraph_figure(graph), snakemake.output.png)
log.info("%d rules, %d dependencies", graph.number_of_nodes(), graph.number_of_edges())
