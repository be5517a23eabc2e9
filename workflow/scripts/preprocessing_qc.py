"""Preprocessing QC of a cohort: the tumour crops that deep learning sees, a few per centre."""

from pathlib import Path

from hccrad.cohort import read_sheet
from hccrad.prepared import crop_files
from hccrad.qc import crops_figure, qc_patients
from hccrad.runlog import log_to
from hccrad.style import save_figure

log = log_to(snakemake.log[0])
sheet = read_sheet(snakemake.input.sheet)
folders = {Path(folder).name: folder for folder in snakemake.input.prepared}
crops = {}
for patient in qc_patients(sheet, snakemake.params.per_centre):
    files = crop_files(folders[patient])
    if files:
        crops[patient] = files[0]
    else:
        log.info("patient %s has no crop (excluded); not shown", patient)
save_figure(crops_figure(crops, sheet), snakemake.output.png)
