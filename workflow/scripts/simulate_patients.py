"""Simulate one cohort's patients, clinical table, endpoints and latent truth."""

import json

from hccrad.cohorts.sheet import write_table
from hccrad.cohorts.simulate import simulate_cohort
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
cohort = simulate_cohort(snakemake.params.cohort, snakemake.params.seed)
write_table(cohort["sheet"], snakemake.output.patients)
write_table(cohort["latent"], snakemake.output.latent)
with open(snakemake.output.truth, "w") as handle:
    json.dump(cohort["truth"], handle, indent=2, sort_keys=True)
log.info("simulated %d patients of %s", len(cohort["sheet"]), snakemake.wildcards.cohort)
