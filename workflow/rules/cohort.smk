# Descriptions of each cohort: Table 1 (its figure and the image QC figure: figures.smk).


rule table_one:
    input:
        sheet="results/{cohort}/sheet.tsv",
    output:
        tsv=report(
            "results/{cohort}/table1.tsv",
            caption="../report/table1.rst",
            category="Cohorts",
            subcategory="{cohort}",
            labels={"cohort": "{cohort}", "table": "Table 1 (TSV)"},
        ),
    log:
        "logs/{cohort}/table_one.log",
    benchmark:
        "results/benchmarks/table_one/{cohort}/table_one.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/table_one.py"
