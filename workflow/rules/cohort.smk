# Descriptions of each cohort: QC figure of the images and masks, Table 1.


rule qc_figure:
    input:
        sheet="results/{cohort}/sheet.tsv",
        images=table_images,
        # Excluded patients (their files may be unreadable) are not shown.
        prepared=per_patient("results/{cohort}/prepared/{patient}"),
    output:
        png=report(
            "results/{cohort}/qc/cohort_qc.png",
            caption="../report/cohort_qc.rst",
            category="Cohorts",
            subcategory="{cohort}",
            labels={"cohort": "{cohort}", "figure": "image QC"},
        ),
        pdf="results/{cohort}/qc/cohort_qc.pdf",
    log:
        "logs/{cohort}/qc_figure.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        per_centre=config["qc"]["patients_per_centre"],
    script:
        "../scripts/qc_figure.py"


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
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/table_one.py"
