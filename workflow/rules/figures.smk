# Figures drawn from results tables alone (issue 9): no rule here trains, fits or reads images,
# so `snakemake figures --forcerun <the *_figure rules>` redraws every figure in minutes
# (see README, "For reviewers"). Every rule that draws a figure is named *_figure.


include: "figures_common.smk"


rule rule_graph_figure:
    input:
        sheets=[
            f"results/{c}/sheet.tsv" for c in (RESPONSE_COHORT, RADIOGENOMICS_COHORT)
        ],
    output:
        dot="results/workflow/rulegraph.dot",
        png=report(
            "results/workflow/rulegraph.png",
            caption="../report/rulegraph.rst",
            category="Reproducibility",
            labels={"figure": "rule graph"},
        ),
        pdf="results/workflow/rulegraph.pdf",
    log:
        "logs/workflow/rule_graph_figure.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        snakefile=workflow.main_snakefile,
    script:
        "../scripts/rule_graph_figure.py"


rule table_one_figure:
    input:
        tsv="results/{cohort}/table1.tsv",
    output:
        png=report(
            "results/{cohort}/table1.png",
            caption="../report/table1.rst",
            category="Cohorts",
            subcategory="{cohort}",
            labels={"cohort": "{cohort}", "figure": "Table 1"},
        ),
        pdf="results/{cohort}/table1.pdf",
    log:
        "logs/{cohort}/table_one_figure.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/table_one_figure.py"


rule icc_figure:
    input:
        icc="results/{cohort}/radiomics/icc.tsv",
    output:
        png=report(
            "results/{cohort}/radiomics/icc.png",
            caption="../report/icc.rst",
            category="Radiomics",
            labels={"cohort": "{cohort}", "figure": "feature ICC"},
        ),
        pdf="results/{cohort}/radiomics/icc.pdf",
    log:
        "logs/{cohort}/icc_figure.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        threshold=config["radiomics"]["robustness"]["icc_threshold"],
    script:
        "../scripts/icc_figure.py"


rule deep_selection_figure:
    input:
        selection="results/{cohort}/deep/{endpoint}/selection.tsv",
        summary="results/{cohort}/deep/{endpoint}/selection_summary.tsv",
    output:
        png=report(
            "results/{cohort}/deep/{endpoint}/selection.png",
            caption="../report/deep_selection.rst",
            category="Deep learning",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "figure": "architecture selection"},
        ),
        pdf="results/{cohort}/deep/{endpoint}/selection.pdf",
    log:
        "logs/{cohort}/deep_selection_figure/{endpoint}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/deep_selection_figure.py"


rule gradcam_figure:
    input:
        panels="results/{cohort}/deep/{endpoint}/gradcam.npz",
    output:
        png=report(
            "results/{cohort}/deep/{endpoint}/gradcam.png",
            caption="../report/deep_gradcam.rst",
            category="Deep learning",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "figure": "Grad-CAM"},
        ),
        pdf="results/{cohort}/deep/{endpoint}/gradcam.pdf",
    log:
        "logs/{cohort}/gradcam_figure/{endpoint}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/gradcam_figure.py"


rule heatmap_figure:
    input:
        correlations=f"{RG_DIR}/correlations.parquet",
    output:
        png=report(
            f"{RG_DIR}/heatmap.png",
            caption="../report/radiogenomics_heatmap.rst",
            category="Radiogenomics",
            labels={"figure": "feature x gene heatmap"},
        ),
        pdf=f"{RG_DIR}/heatmap.pdf",
    log:
        f"logs/{RADIOGENOMICS_COHORT}/heatmap_figure.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        method=RG_CFG["correlation"]["method"],
        n_genes=40,
    script:
        "../scripts/heatmap_figure.py"


rule volcano_figure:
    input:
        table=f"{RG_DIR}/differential.tsv",
    output:
        png=report(
            f"{RG_DIR}/volcano.png",
            caption="../report/radiogenomics_volcano.rst",
            category="Radiogenomics",
            labels={"figure": "volcano"},
        ),
        pdf=f"{RG_DIR}/volcano.pdf",
    log:
        f"logs/{RADIOGENOMICS_COHORT}/volcano_figure.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=RG_CFG,
    script:
        "../scripts/volcano_figure.py"


rule enrichment_figure:
    input:
        ora=f"{RG_DIR}/ora.tsv",
        gsea=f"{RG_DIR}/gsea.tsv",
        ranking=f"{RG_DIR}/gsea_ranking.tsv",
        gmt=config["gene_sets"],
    output:
        ora=report(
            f"{RG_DIR}/ora_dotplot.png",
            caption="../report/radiogenomics_ora.rst",
            category="Radiogenomics",
            labels={"figure": "ORA dot plot"},
        ),
        ora_pdf=f"{RG_DIR}/ora_dotplot.pdf",
        gsea=report(
            f"{RG_DIR}/gsea_dotplot.png",
            caption="../report/radiogenomics_gsea.rst",
            category="Radiogenomics",
            labels={"figure": "GSEA dot plot"},
        ),
        gsea_pdf=f"{RG_DIR}/gsea_dotplot.pdf",
        running=report(
            f"{RG_DIR}/gsea_running_scores.png",
            caption="../report/radiogenomics_running_scores.rst",
            category="Radiogenomics",
            labels={"figure": "GSEA running scores"},
        ),
        running_pdf=f"{RG_DIR}/gsea_running_scores.pdf",
    log:
        f"logs/{RADIOGENOMICS_COHORT}/enrichment_figure.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=RG_CFG,
    script:
        "../scripts/enrichment_figure.py"


rule figures:
    input:
        figure_targets(),
    localrule: True


rule software_versions:
    input:
        pyproject=str(BASE / "pyproject.toml"),
    output:
        tsv=report(
            "results/workflow/software_versions.tsv",
            caption="../report/software_versions.rst",
            category="Reproducibility",
            labels={"table": "software versions"},
        ),
    log:
        "logs/workflow/software_versions.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/software_versions.py"
