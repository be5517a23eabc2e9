"""Download one patient's selected IDC series (DICOM instances, checked) into its folder.

The folder (under download.data_dir) is no rule's output, so a failed job keeps the verified
instances; the rule's output is the table of what was verified.
"""

from pathlib import Path

from hccrad.cohorts.download import RetryPolicy, verified_table
from hccrad.cohorts.idc import patient_series
from hccrad.cohorts.idc_download import download_patient
from hccrad.cohorts.sheet import read_patients
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
manifest = read_patients(snakemake.input.manifest, index=False)
rows = patient_series(manifest, snakemake.wildcards.patient)
folder = Path(snakemake.params.folder)
files = download_patient(
    snakemake.params.base_url, rows, folder, RetryPolicy(**snakemake.params.policy)
)
verified_table(files, folder).to_csv(snakemake.output[0], sep="\t", index=False)
log.info(
    "%s: %d instances of %d series in %s",
    snakemake.wildcards.patient,
    len(files),
    len(rows),
    folder,
)
