"""Query the GDC for STAR counts, download them (checked), write the GDC sample sheet.

The files go to download.data_dir, which no rule owns; the rule's outputs are links to them,
the table of what was verified and the sample sheet, so a failed job keeps every verified file.
"""

from pathlib import Path

from hccrad.cohorts.download import RetryPolicy, link_files, verified_table
from hccrad.cohorts.gdc import (
    GDC_FILE_FIELDS,
    GDC_STAR_FILTER,
    gdc_download_files,
    gdc_filters,
    gdc_hits,
    gdc_sample_sheet,
)
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
policy = RetryPolicy(**snakemake.params.policy)
base = snakemake.params.base_url
folder = Path(snakemake.params.folder)
filters = gdc_filters(snakemake.params.project, GDC_STAR_FILTER)
hits = list(gdc_hits(base, "files", filters, GDC_FILE_FIELDS, policy=policy))
sheet = gdc_sample_sheet(hits)
files = gdc_download_files(base, hits, folder, policy=policy)
link_files(files, folder, Path(snakemake.output.files))
verified_table(files, folder).to_csv(snakemake.output.verified, sep="\t", index=False)
sheet.to_csv(snakemake.output.sample_sheet, sep="\t", index=False)
log.info("%s: %d STAR counts files verified in %s", snakemake.params.project, len(files), folder)
