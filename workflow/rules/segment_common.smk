# Helpers of the segmentation rules (segment.smk): training folders and targets.


def segment_training_prepared(wildcards):
    """Prepared folders of the training patients alone (from the sheet, via its checkpoint)."""
    from hccrad.cohorts.sheet import read_sheet  # pandas: not at parse (common.smk)

    sheet = read_sheet(
        checkpoints.gather_sheet.get(cohort=wildcards.cohort).output.sheet
    )
    return [
        f"results/{wildcards.cohort}/prepared/{patient}"
        for patient in sheet.index[sheet["split"] == "train"]
    ]


def segment_targets():
    """Masks, metrics, head AUROC, overlays and the auto-vs-reference radiomics comparison."""
    folder = f"results/{RESPONSE_COHORT}/segment"
    return [
        f"{folder}/predictions.tsv",
        f"{folder}/metrics.tsv",
        f"{folder}/metrics_summary.tsv",
        f"{folder}/auroc.tsv",
        f"{folder}/overlay.png",
        f"{folder}/radiomics_icc.tsv",
        f"{folder}/radiomics_icc_summary.tsv",
        f"{folder}/radiomics_icc.png",
        f"{folder}/radiomics_auc.tsv",
    ]
