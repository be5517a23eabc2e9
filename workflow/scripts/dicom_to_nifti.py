"""Convert one patient's downloaded DICOM series (and DICOM SEG) to NIfTI, with checks."""

from pathlib import Path

from hccrad.cohorts.dicom import convert_patient
from hccrad.cohorts.idc import patient_series
from hccrad.cohorts.sheet import read_patients
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
manifest = read_patients(snakemake.input.manifest, index=False)
rows = patient_series(manifest, snakemake.wildcards.patient)
report = convert_patient(
    Path(snakemake.params.dicom), rows, Path(snakemake.output[0]), snakemake.params.labels
)
log.info("%s: %s", snakemake.wildcards.patient, report)
