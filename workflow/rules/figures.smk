# Every figure of the study, one *_figure rule each, in the order of the stages they draw
# (issue 29: cohort, imaging, radiomics, deep, segment, models, radiogenomics). They draw from
# results tables (or saved maps, masks and the QC panels' images) alone: no rule here trains,
# fits or extracts, so `snakemake figures --forcerun <the *_figure rules>` redraws every figure
# in minutes (see README, "For reviewers"). Each figure is a PNG, a PDF and a TIFF (300 dpi,
# 89 or 183 mm wide: hccrad.figures.style).


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
        tiff="results/workflow/rulegraph.tiff",
    log:
        "logs/workflow/rule_graph_figure.log",
    benchmark:
        "results/benchmarks/rule_graph_figure/workflow/rule_graph_figure.tsv"
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


rule qc_figure:
    input:
        sheet="results/{cohort}/sheet.tsv",
        images=table_images,
        # Excluded patients (their files may be unreadable) are not shown.
        prepared=per_patient("results/{cohort}/prepared/batch_{batch}"),
    output:
        png=report(
            "results/{cohort}/qc/cohort_qc.png",
            caption="../report/cohort_qc.rst",
            category="Cohorts",
            subcategory="{cohort}",
            labels={"cohort": "{cohort}", "figure": "image QC"},
        ),
        pdf="results/{cohort}/qc/cohort_qc.pdf",
        tiff="results/{cohort}/qc/cohort_qc.tiff",
    log:
        "logs/{cohort}/qc_figure.log",
    benchmark:
        "results/benchmarks/qc_figure/{cohort}/qc_figure.tsv"
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
        tiff="results/{cohort}/table1.tiff",
        xlsx="results/{cohort}/table1.xlsx",
    log:
        "logs/{cohort}/table_one_figure.log",
    benchmark:
        "results/benchmarks/table_one_figure/{cohort}/table_one_figure.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/table_one_figure.py"


rule preprocessing_qc_figure:
    input:
        sheet="results/{cohort}/sheet.tsv",
        prepared=per_patient("results/{cohort}/{prepared}/batch_{batch}"),
    output:
        png=report(
            "results/{cohort}/qc/preprocessing_qc.png",
            caption="../report/preprocessing_qc.rst",
            category="Cohorts",
            subcategory="{cohort}",
            labels={"cohort": "{cohort}", "figure": "preprocessing QC"},
        ),
        pdf="results/{cohort}/qc/preprocessing_qc.pdf",
        tiff="results/{cohort}/qc/preprocessing_qc.tiff",
    log:
        "logs/{cohort}/preprocessing_qc_figure.log",
    benchmark:
        "results/benchmarks/preprocessing_qc_figure/{cohort}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        per_centre=config["qc"]["patients_per_centre"],
        modality=lambda wildcards: modality(wildcards.cohort),
    script:
        "../scripts/preprocessing_qc_figure.py"


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
        tiff="results/{cohort}/radiomics/icc.tiff",
    log:
        "logs/{cohort}/icc_figure.log",
    benchmark:
        "results/benchmarks/icc_figure/{cohort}/icc_figure.tsv"
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


rule harmonisation_figure:
    input:
        pca="results/{cohort}/radiomics/harmonisation_pca.tsv",
        features="results/{cohort}/radiomics/harmonisation_features.tsv",
        separation="results/{cohort}/radiomics/harmonisation_separation.tsv",
    output:
        png=report(
            "results/{cohort}/radiomics/harmonisation.png",
            caption="../report/harmonisation.rst",
            category="Radiomics",
            labels={"cohort": "{cohort}", "figure": "harmonisation by centre"},
        ),
        pdf="results/{cohort}/radiomics/harmonisation.pdf",
        tiff="results/{cohort}/radiomics/harmonisation.tiff",
    log:
        "logs/{cohort}/harmonisation_figure.log",
    benchmark:
        "results/benchmarks/harmonisation_figure/{cohort}/harmonisation_figure.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        harmonisation=config["radiomics"]["harmonisation"],
    script:
        "../scripts/harmonisation_figure.py"


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
        tiff="results/{cohort}/deep/{endpoint}/selection.tiff",
    log:
        "logs/{cohort}/deep_selection_figure/{endpoint}.log",
    benchmark:
        "results/benchmarks/deep_selection_figure/{cohort}/deep_selection_figure/{endpoint}.tsv"
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
        tiff="results/{cohort}/deep/{endpoint}/gradcam.tiff",
    log:
        "logs/{cohort}/gradcam_figure/{endpoint}.log",
    benchmark:
        "results/benchmarks/gradcam_figure/{cohort}/gradcam_figure/{endpoint}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/gradcam_figure.py"


rule segment_overlay_figure:
    input:
        metrics="results/{cohort}/segment/metrics.tsv",
        prepared=per_patient("results/{cohort}/prepared/batch_{batch}"),
        masks="results/{cohort}/segment/masks",
    output:
        png=report(
            "results/{cohort}/segment/overlay.png",
            caption="../report/segment_overlay.rst",
            category="Segmentation",
            labels={"figure": "predicted vs reference contours"},
        ),
        pdf="results/{cohort}/segment/overlay.pdf",
        tiff="results/{cohort}/segment/overlay.tiff",
    log:
        "logs/{cohort}/segment_overlay_figure.log",
    benchmark:
        "results/benchmarks/segment_overlay_figure/{cohort}/segment_overlay_figure.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        per_centre=config["segment"]["overlay"]["patients_per_centre"],
        phase=config["segment"]["overlay"]["phase"],
    script:
        "../scripts/segment_overlay_figure.py"


rule segment_icc_figure:
    input:
        icc="results/{cohort}/segment/radiomics_icc.tsv",
    output:
        png=report(
            "results/{cohort}/segment/radiomics_icc.png",
            caption="../report/segment_radiomics.rst",
            category="Segmentation",
            labels={"figure": "ICC reference vs predicted masks"},
        ),
        pdf="results/{cohort}/segment/radiomics_icc.pdf",
        tiff="results/{cohort}/segment/radiomics_icc.tiff",
    log:
        "logs/{cohort}/segment_icc_figure.log",
    benchmark:
        "results/benchmarks/segment_icc_figure/{cohort}/segment_icc_figure.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        threshold=config["radiomics"]["robustness"]["icc_threshold"],
    script:
        "../scripts/segment_icc_figure.py"


rule evaluation_figure:
    input:
        auc=f"{EVALUATION}/auc.tsv",
        roc_curves=f"{EVALUATION}/roc_curves.tsv",
        calibration=f"{EVALUATION}/calibration.tsv",
        calibration_curves=f"{EVALUATION}/calibration_curves.tsv",
        calibration_loess=f"{EVALUATION}/calibration_loess.tsv",
        decision_curves=f"{EVALUATION}/decision_curves.tsv",
    output:
        roc=report(
            f"{EVALUATION}/roc.png",
            caption="../report/model_roc.rst",
            category="Response models",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "figure": "ROC"},
        ),
        roc_pdf=f"{EVALUATION}/roc.pdf",
        roc_tiff=f"{EVALUATION}/roc.tiff",
        calibration=report(
            f"{EVALUATION}/calibration.png",
            caption="../report/model_calibration.rst",
            category="Response models",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "figure": "calibration"},
        ),
        calibration_pdf=f"{EVALUATION}/calibration.pdf",
        calibration_tiff=f"{EVALUATION}/calibration.tiff",
        decision=report(
            f"{EVALUATION}/decision_curves.png",
            caption="../report/model_decision_curves.rst",
            category="Response models",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "figure": "decision curves"},
        ),
        decision_pdf=f"{EVALUATION}/decision_curves.pdf",
        decision_tiff=f"{EVALUATION}/decision_curves.tiff",
    log:
        f"logs/{RESPONSE_COHORT}/evaluation_figure/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/evaluation_figure/{RESPONSE_COHORT}/evaluation_figure/{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/evaluation_figure.py"


rule survival_figure:
    # One job draws an outcome's forest plot and the Kaplan-Meier figure of every figure model,
    # so they share one process's ~2 s of imports (issue 30: 24 jobs became 4).
    input:
        cox=f"{SURVIVAL}/cox.tsv",
        risk_groups=f"{SURVIVAL}/risk_groups.tsv",
        km_curves=f"{SURVIVAL}/km_curves.tsv",
        numbers_at_risk=f"{SURVIVAL}/numbers_at_risk.tsv",
        logrank=f"{SURVIVAL}/logrank.tsv",
    output:
        forest=report(
            f"{SURVIVAL}/forest_{{outcome}}.png",
            caption="../report/survival_forest.rst",
            category="Survival",
            subcategory="{endpoint}",
            labels={
                "endpoint": "{endpoint}",
                "outcome": "{outcome}",
                "figure": "forest plot",
            },
        ),
        km=[
            report(
                f"{SURVIVAL}/km/{{outcome}}/{model}.png",
                caption="../report/survival_km.rst",
                category="Survival",
                subcategory="{endpoint}",
                labels={
                    "endpoint": "{endpoint}",
                    "outcome": "{outcome}",
                    "figure": f"Kaplan-Meier: {model}",
                },
            )
            for model in config["survival"]["figure_models"]
        ],
        vector=[
            f"{SURVIVAL}/{name}.{ext}"
            for name in [
                "forest_{outcome}",
                *(f"km/{{outcome}}/{m}" for m in config["survival"]["figure_models"]),
            ]
            for ext in ("pdf", "tiff")
        ],
    log:
        f"logs/{RESPONSE_COHORT}/survival_figure/{{endpoint}}_{{outcome}}.log",
    benchmark:
        f"results/benchmarks/survival_figure/{RESPONSE_COHORT}/survival_figure/{{endpoint}}_{{outcome}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
        outcome=OUTCOME_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=5,
    params:
        models=config["survival"]["figure_models"],
    script:
        "../scripts/survival_figure.py"


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
        tiff=f"{RG_DIR}/heatmap.tiff",
    log:
        f"logs/{RADIOGENOMICS_COHORT}/heatmap_figure.log",
    benchmark:
        f"results/benchmarks/heatmap_figure/{RADIOGENOMICS_COHORT}/heatmap_figure.tsv"
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
        tiff=f"{RG_DIR}/volcano.tiff",
    log:
        f"logs/{RADIOGENOMICS_COHORT}/volcano_figure.log",
    benchmark:
        f"results/benchmarks/volcano_figure/{RADIOGENOMICS_COHORT}/volcano_figure.tsv"
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
        ora_tiff=f"{RG_DIR}/ora_dotplot.tiff",
        gsea=report(
            f"{RG_DIR}/gsea_dotplot.png",
            caption="../report/radiogenomics_gsea.rst",
            category="Radiogenomics",
            labels={"figure": "GSEA dot plot"},
        ),
        gsea_pdf=f"{RG_DIR}/gsea_dotplot.pdf",
        gsea_tiff=f"{RG_DIR}/gsea_dotplot.tiff",
        running=report(
            f"{RG_DIR}/gsea_running_scores.png",
            caption="../report/radiogenomics_running_scores.rst",
            category="Radiogenomics",
            labels={"figure": "GSEA running scores"},
        ),
        running_pdf=f"{RG_DIR}/gsea_running_scores.pdf",
        running_tiff=f"{RG_DIR}/gsea_running_scores.tiff",
    log:
        f"logs/{RADIOGENOMICS_COHORT}/enrichment_figure.log",
    benchmark:
        f"results/benchmarks/enrichment_figure/{RADIOGENOMICS_COHORT}/enrichment_figure.tsv"
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
    benchmark:
        "results/benchmarks/software_versions/workflow/software_versions.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/software_versions.py"


rule crossval_figure:
    input:
        **{
            name: f"{CROSSVAL}/{name}.tsv"
            for name in (
                "auc",
                "auc_repeats",
                "roc_curves",
                "calibration",
                "calibration_curves",
                "calibration_loess",
                "decision_curves",
            )
        },
        flow=f"{CROSSVAL}/cohort_flow.tsv",
    output:
        roc=report(
            f"{CROSSVAL}/roc.png",
            caption="../report/crossval_roc.rst",
            category="Cross-validation",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "figure": "ROC"},
        ),
        roc_pdf=f"{CROSSVAL}/roc.pdf",
        roc_tiff=f"{CROSSVAL}/roc.tiff",
        calibration=report(
            f"{CROSSVAL}/calibration.png",
            caption="../report/crossval_calibration.rst",
            category="Cross-validation",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "figure": "calibration"},
        ),
        calibration_pdf=f"{CROSSVAL}/calibration.pdf",
        calibration_tiff=f"{CROSSVAL}/calibration.tiff",
        decision=report(
            f"{CROSSVAL}/decision_curves.png",
            caption="../report/crossval_decision_curves.rst",
            category="Cross-validation",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "figure": "decision curves"},
        ),
        decision_pdf=f"{CROSSVAL}/decision_curves.pdf",
        decision_tiff=f"{CROSSVAL}/decision_curves.tiff",
        flow=report(
            f"{CROSSVAL}/cohort_flow.png",
            caption="../report/crossval_cohort_flow_figure.rst",
            category="Cross-validation",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "figure": "cohort flow"},
        ),
        flow_pdf=f"{CROSSVAL}/cohort_flow.pdf",
        flow_tiff=f"{CROSSVAL}/cohort_flow.tiff",
    log:
        f"logs/{RESPONSE_COHORT}/crossval_figure/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/crossval_figure/{RESPONSE_COHORT}/crossval_figure/{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/crossval_figure.py"


rule crossval_km_figure:
    input:
        **{
            name: f"{CROSSVAL}/{name}.tsv"
            for name in ("km_curves", "numbers_at_risk", "logrank", "risk_groups")
        },
    output:
        png=report(
            f"{CROSSVAL}/km_{{outcome}}.png",
            caption="../report/crossval_km.rst",
            category="Cross-validation",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "figure": "KM {outcome}"},
        ),
        pdf=f"{CROSSVAL}/km_{{outcome}}.pdf",
        tiff=f"{CROSSVAL}/km_{{outcome}}.tiff",
    log:
        f"logs/{RESPONSE_COHORT}/crossval_km_figure/{{endpoint}}_{{outcome}}.log",
    benchmark:
        f"results/benchmarks/crossval_km_figure/{RESPONSE_COHORT}/crossval_km_figure/{{endpoint}}_{{outcome}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/crossval_km_figure.py"
