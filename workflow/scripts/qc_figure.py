"""QC figure of a cohort: mid-tumour slices of every phase with liver and tumour outlined."""

from hccrad.cohorts.sheet import read_sheet
from hccrad.core.runlog import log_to
from hccrad.figures.cohort_qc import qc_figure, qc_patients
from hccrad.figures.style import save_figure
from hccrad.imaging.batches import patient_folders
from hccrad.imaging.exclusions import gather_exclusions

log = log_to(snakemake.log[0])
sheet = read_sheet(snakemake.input.sheet)
# Patients excluded in preparation (imaging.on_error: exclude) may have unreadable files.
folders = patient_folders(snakemake.input.prepared).values()
excluded = gather_exclusions(list(folders), snakemake.wildcards.cohort).index
patients = qc_patients(sheet, snakemake.params.per_centre, excluded)
save_figure(qc_figure(sheet, patients), snakemake.output.png)
log.info("QC figure of %s", ", ".join(patients))
