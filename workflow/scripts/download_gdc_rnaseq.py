"""Query the GDC for STAR counts, download them (md5-checked), write the GDC sample sheet."""

from pathlib import Path

from hccrad.download import (
    GDC_FILE_FIELDS,
    GDC_STAR_FILTER,
    RetryPolicy,
    gdc_download_files,
    gdc_filters,
    gdc_hits,
    gdc_sample_sheet,
)
from hccrad.runlog import log_to

log = log_to(snakemake.log[0])
policy = RetryPolicy(**snakemake.params.policy)
base = snakemake.params.base_url
filters = gdc_filters(snakemake.params.project, GDC_STAR_FILTER)
hits = list(gdc_hits(base, "files", filters, GDC_FILE_FIELDS, policy=policy))
sheet = gdc_sample_sheet(hits)
gdc_download_files(base, hits, Path(snakemake.output.files), policy=policy)
sheet.to_csv(snakemake.output.sample_sheet, sep="\t", index=False)
log.info("%s: %d STAR counts files", snakemake.params.project, len(sheet))
