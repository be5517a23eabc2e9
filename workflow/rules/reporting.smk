# The reporting checklist of a finished run (issue 33): TRIPOD+AI and the CLEAR radiomics items
# that a run can answer, each pointing at an output of the run or a documentation section, or
# left for the authors. Included last: it waits for every other default target.

CHECKLIST = "results/reporting/tripod_ai_checklist"


def checklist_inputs():
    """Every other default target, so that the checklist resolves against a finished run."""
    # A stage whose targets go to `rule all` without all_targets() must be added here too.
    return all_targets() + ibsi_targets() + [RULE_GRAPH, SOFTWARE_VERSIONS]


rule reporting_checklist:
    input:
        run=checklist_inputs(),
        checklist=str(BASE / "resources/reporting/checklist.tsv"),
        docs=[str(BASE / doc) for doc in ("README.md", "config/README.md")],
    output:
        table=report(
            f"{CHECKLIST}.tsv",
            caption="../report/reporting_checklist.rst",
            category="Reproducibility",
            labels={"table": "TRIPOD+AI and CLEAR checklist"},
        ),
        page=f"{CHECKLIST}.md",
    log:
        "logs/reporting/reporting_checklist.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        cohort=RESPONSE_COHORT,
        endpoints=config["endpoints"],
        project=str(BASE),
    script:
        "../scripts/reporting_checklist.py"
