# Helpers of the segmentation rules (segment.smk): training folders and targets.


def segment_training_prepared(wildcards):
    """Batch folders of the training patients (from the sheet, via its checkpoint)."""
    from hccrad.cohorts.sheet import read_sheet  # pandas: not at parse (common.smk)

    sheet = read_sheet(
        checkpoints.gather_sheet.get(cohort=wildcards.cohort).output.sheet
    )
    # Their batches' folders; the script reads the training patients' folders alone.
    train = sheet.index[sheet["split"] == "train"]
    return batch_folders(wildcards.cohort, train, "prepared")


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
