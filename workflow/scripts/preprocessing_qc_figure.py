"""Preprocessing QC of a cohort: the tumour crops that deep learning sees, a few per centre."""

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.figures.cohort_qc import crops_figure, qc_patients
from hccrad.figures.style import save_figure
from hccrad.imaging.batches import patient_folders
from hccrad.imaging.prepared import crop_files, read_exclusion

log = log_to(snakemake.log[0])
sheet = read_sheet(snakemake.input.sheet)
# One folder per batch, its patients in its manifest (hccrad.imaging.batches).
folders = patient_folders(snakemake.input.prepared)
# Excluded patients have no crops: the next patient of their centre is shown.
excluded = [patient for patient, folder in folders.items() if len(read_exclusion(folder))]
crops = {
    patient: crop_files(folders[patient])[0]
    for patient in qc_patients(sheet, snakemake.params.per_centre, excluded)
}
save_figure(crops_figure(crops, sheet), snakemake.output.png)
