# RNA-seq of the radiogenomics cohort: import, normalisation, correlation, DE, enrichment (issue 6).
# The imaging side is the DLTR network of radiogenomics.endpoint, trained on the response cohort:
# deep features are selected on its training split, then correlated in the radiogenomics cohort.
# Its figures are drawn by figures.smk.


include: "radiogenomics_common.smk"


rule expression:
    input:
        unpack(expression_input),
    output:
        counts="results/{cohort}/expression/counts.parquet",
        vst="results/{cohort}/expression/vst.parquet",
        genes="results/{cohort}/expression/genes.tsv",
        samples="results/{cohort}/expression/samples.tsv",
        exclusions="results/{cohort}/expression/sample_exclusions.tsv",
    log:
        "logs/{cohort}/expression.log",
    benchmark:
        "results/benchmarks/expression/{cohort}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        expression=RG_CFG["expression"],
    script:
        "../scripts/expression.py"


rule correlate_features:
    input:
        unpack(imaging_input),
        vst=f"{RG_EXPRESSION}/vst.parquet",
        genes=f"{RG_EXPRESSION}/genes.tsv",
        sheet=f"results/{RADIOGENOMICS_COHORT}/sheet.tsv",
    output:
        features=f"{RG_DIR}/features.tsv",
        selection=f"{RG_DIR}/selected_features.tsv",
        patients=f"{RG_DIR}/patients.tsv",
        correlations=f"{RG_DIR}/correlations.parquet",
        gene_list=report(
            f"{RG_DIR}/gene_list.tsv",
            caption="../report/radiogenomics_gene_list.rst",
            category="Radiogenomics",
            labels={"table": "gene list"},
        ),
        summary=report(
            f"{RG_DIR}/correlation_summary.tsv",
            caption="../report/radiogenomics_gene_list.rst",
            category="Radiogenomics",
            labels={"table": "genes per rule"},
        ),
    log:
        f"logs/{RADIOGENOMICS_COHORT}/correlate_features.log",
    benchmark:
        f"results/benchmarks/correlate_features/{RADIOGENOMICS_COHORT}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        settings=RG_CFG,
        seed=config["seed"],
        cohort=RADIOGENOMICS_COHORT,
    script:
        "../scripts/correlate_features.py"


rule differential_expression:
    input:
        unpack(training_cutoff_input),
        counts=f"{RG_EXPRESSION}/counts.parquet",
        genes=f"{RG_EXPRESSION}/genes.tsv",
        scores=f"{RG_DEEP}/scores.tsv",
    output:
        groups=f"{RG_DIR}/dltr_groups.tsv",
        table=report(
            f"{RG_DIR}/differential.tsv",
            caption="../report/radiogenomics_volcano.rst",
            category="Radiogenomics",
            labels={"table": "DESeq2 high vs low DLTR"},
        ),
    log:
        f"logs/{RADIOGENOMICS_COHORT}/differential_expression.log",
    benchmark:
        f"results/benchmarks/differential_expression/{RADIOGENOMICS_COHORT}.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=RG_CFG,
    script:
        "../scripts/differential_expression.py"


rule enrich_ora:
    input:
        gene_list=f"{RG_DIR}/gene_list.tsv",
        correlations=f"{RG_DIR}/correlations.parquet",
        gmt=config["gene_sets"],
    output:
        table=report(
            f"{RG_DIR}/ora.tsv",
            caption="../report/radiogenomics_ora.rst",
            category="Radiogenomics",
            labels={"table": "ORA"},
        ),
    log:
        f"logs/{RADIOGENOMICS_COHORT}/enrich_ora.log",
    benchmark:
        f"results/benchmarks/enrich_ora/{RADIOGENOMICS_COHORT}/enrich_ora.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=RG_CFG,
    script:
        "../scripts/enrich_ora.py"


rule enrich_gsea:
    input:
        unpack(gsea_input),
        correlations=f"{RG_DIR}/correlations.parquet",
        genes=f"{RG_EXPRESSION}/genes.tsv",
        gmt=config["gene_sets"],
    output:
        table=report(
            f"{RG_DIR}/gsea.tsv",
            caption="../report/radiogenomics_gsea.rst",
            category="Radiogenomics",
            labels={"table": "GSEA"},
        ),
        ranking=f"{RG_DIR}/gsea_ranking.tsv",
    log:
        f"logs/{RADIOGENOMICS_COHORT}/enrich_gsea.log",
    benchmark:
        f"results/benchmarks/enrich_gsea/{RADIOGENOMICS_COHORT}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        settings=RG_CFG,
        seed=config["seed"],
    script:
        "../scripts/enrich_gsea.py"


rule enrich_truth:
    input:
        ora=f"{RG_DIR}/ora.tsv",
        gsea=f"{RG_DIR}/gsea.tsv",
        ranking=f"{RG_DIR}/gsea_ranking.tsv",
        gene_list=f"{RG_DIR}/gene_list.tsv",
        correlations=f"{RG_DIR}/correlations.parquet",
        gmt=config["gene_sets"],
        truth=f"results/{RADIOGENOMICS_COHORT}/truth/truth.json",
        planted=f"results/{RADIOGENOMICS_COHORT}/truth/planted_genes.tsv",
    output:
        pathways=f"{RG_DIR}/truth_recovery.tsv",
        summary=report(
            f"{RG_DIR}/truth_recovery_summary.tsv",
            caption="../report/radiogenomics_truth.rst",
            category="Radiogenomics",
            labels={"table": "planted-truth recovery"},
        ),
    log:
        f"logs/{RADIOGENOMICS_COHORT}/enrich_truth.log",
    benchmark:
        f"results/benchmarks/enrich_truth/{RADIOGENOMICS_COHORT}/enrich_truth.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        settings=RG_CFG,
        seed=config["seed"],
    script:
        "../scripts/enrich_truth.py"
