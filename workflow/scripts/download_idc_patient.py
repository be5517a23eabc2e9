"""Download one patient's selected IDC series (DICOM instances, checked) into its folder."""

from pathlib import Path

import pandas as pd

from hccrad.download import RetryPolicy, download_patient
from hccrad.idc import patient_series
from hccrad.runlog import log_to

log = log_to(snakemake.log[0])
manifest = pd.read_csv(snakemake.input.manifest, sep="\t")
rows = patient_series(manifest, snakemake.wildcards.patient)
paths = download_patient(
    snakemake.params.base_url,
    rows,
    Path(snakemake.output[0]),
    RetryPolicy(**snakemake.params.policy),
)
log.info("%s: %d instances of %d series", snakemake.wildcards.patient, len(paths), len(rows))
