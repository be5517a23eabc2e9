"""Survival, age, sex and stage of a GDC project's cases (the /cases endpoint)."""

from hccrad.cohorts.download import RetryPolicy
from hccrad.cohorts.gdc import GDC_CASE_FIELDS, gdc_clinical_table, gdc_filters, gdc_hits
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
policy = RetryPolicy(**snakemake.params.policy)
filters = gdc_filters(snakemake.params.project, {}, project_field="project.project_id")
cases = list(gdc_hits(snakemake.params.base_url, "cases", filters, GDC_CASE_FIELDS, policy=policy))
gdc_clinical_table(cases).to_csv(snakemake.output[0], sep="\t", index=False)
log.info("%s: %d cases", snakemake.params.project, len(cases))
