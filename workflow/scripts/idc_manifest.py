"""Select each patient's series from the shipped IDC index: the download manifest."""

from hccrad.cohorts.idc import read_index, select_series
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
manifest, exclusions = select_series(read_index(snakemake.input.index), snakemake.params.selection)
manifest.to_csv(snakemake.output.manifest, sep="\t", index=False)
exclusions.to_csv(snakemake.output.exclusions, sep="\t", index=False)
log.info(
    "%d patients, %d series (%.0f MB); %d patients without the selected series",
    manifest["patient_id"].nunique(),
    len(manifest),
    manifest["series_size_mb"].sum(),
    len(exclusions),
)
