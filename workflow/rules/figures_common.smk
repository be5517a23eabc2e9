# Helpers of figures.smk: which files are the study's figures.

RULE_GRAPH = "results/workflow/rulegraph.png"
SOFTWARE_VERSIONS = "results/workflow/software_versions.tsv"


def figure_targets():
    """Every figure of the default targets (PNG; the PDF beside each comes with it)."""
    return [RULE_GRAPH] + [t for t in all_targets() if t.endswith(".png")]
