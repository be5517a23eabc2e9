# Settings, input functions and targets of the radiogenomics rules (radiogenomics.smk).

from hccrad.core.plan import check_radiogenomics_settings

RG_CFG = config["radiogenomics"]
check_radiogenomics_settings(RG_CFG, config["endpoints"])
RG_DIR = f"results/{RADIOGENOMICS_COHORT}/radiogenomics"
RG_EXPRESSION = f"results/{RADIOGENOMICS_COHORT}/expression"
RG_DEEP = f"results/{RADIOGENOMICS_COHORT}/deep/{RG_CFG['endpoint']}"
RESPONSE_DEEP = f"results/{RESPONSE_COHORT}/deep/{RG_CFG['endpoint']}"


def expression_input(wildcards):
    """A counts matrix from the config, or the cohort's GDC sample sheet and STAR files."""
    matrix = RG_CFG["expression"]["counts_matrix"]
    if matrix:
        return {"matrix": resolve(matrix)}
    return {
        "sample_sheet": f"results/{wildcards.cohort}/rnaseq/gdc_sample_sheet.tsv",
        "files": f"results/{wildcards.cohort}/rnaseq/files",
    }


def imaging_input(wildcards):
    """The imaging tables the configured features need (deep, DLTR score, radiomics)."""
    features = RG_CFG["features"]
    inputs = {}
    if features["deep"] != "none":
        inputs |= {
            "deep": f"{RG_DEEP}/deep_features.parquet",
            "train_deep": f"{RESPONSE_DEEP}/deep_features.parquet",
            "train_sheet": f"results/{RESPONSE_COHORT}/sheet.tsv",
        }
    if features["include_dltr_score"]:
        inputs["scores"] = f"{RG_DEEP}/scores.tsv"
    if features["include_radiomics"]:
        inputs["radiomics"] = (
            f"results/{RADIOGENOMICS_COHORT}/radiomics/features_robust.parquet"
        )
    return inputs


def training_cutoff_input(wildcards):
    """The response cohort's training scores, when DE groups use the training cutoff."""
    if RG_CFG["differential"]["grouping"] != "training_cutoff":
        return {}
    return {
        "train_scores": f"{RESPONSE_DEEP}/scores.tsv",
        "train_sheet": f"results/{RESPONSE_COHORT}/sheet.tsv",
    }


def gsea_input(wildcards):
    """The DE table, when GSEA ranks genes by the DESeq2 statistic."""
    if RG_CFG["enrichment"]["ranking"] != "de_stat":
        return {}
    return {"de": f"{RG_DIR}/differential.tsv"}


def radiogenomics_targets():
    """Tables and figures of the radiogenomics rules (truth recovery for simulated cohorts)."""
    expression = [
        f"{RG_EXPRESSION}/{name}"
        for name in ("vst.parquet", "samples.tsv", "sample_exclusions.tsv")
    ]
    analysis = [
        f"{RG_DIR}/{name}"
        for name in (
            "selected_features.tsv",
            "patients.tsv",
            "gene_list.tsv",
            "correlation_summary.tsv",
            "heatmap.png",
            "differential.tsv",
            "volcano.png",
            "ora.tsv",
            "ora_dotplot.png",
            "gsea.tsv",
            "gsea_dotplot.png",
            "gsea_running_scores.png",
        )
    ]
    truth = (
        [f"{RG_DIR}/truth_recovery_summary.tsv"]
        if RADIOGENOMICS_COHORT in SIMULATED
        else []
    )
    return expression + analysis + truth
