# The reporting checklist of a finished run (issue 33): TRIPOD+AI and the CLEAR radiomics items
# that a run can answer, each pointing at an output of the run or a documentation section, or
# left for the authors. Included last: it waits for every other default target.


include: "reporting_common.smk"


rule reporting_checklist:
    input:
        run=checklist_inputs(),
        checklist=str(BASE / "resources/reporting/checklist.tsv"),
        # README.md first: the project folder the checklist's doc: references are read from.
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
    benchmark:
        "results/benchmarks/reporting_checklist/reporting/reporting_checklist.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        cohort=RESPONSE_COHORT,
        endpoints=config["endpoints"],
    script:
        "../scripts/reporting_checklist.py"
