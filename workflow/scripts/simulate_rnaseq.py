"""Simulate the radiogenomics cohort's RNA-seq as GDC STAR-counts files and a sample sheet."""

import json

from hccrad.cohorts.rnaseq_sim import simulate_rnaseq
from hccrad.cohorts.sheet import read_sheet, write_table
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
cohort_cfg = snakemake.params.cohort
latent = read_sheet(snakemake.input.latent)
traits = latent.filter(like="z_").rename(columns=lambda c: c.removeprefix("z_"))
result = simulate_rnaseq(
    traits,
    cohort_cfg["rnaseq"],
    cohort_cfg["planted_pathways"],
    snakemake.input.gmt,
    snakemake.input.tpm,
    snakemake.output.files,
    snakemake.params.seed,
    cohort_cfg["name"],
)
result["sample_sheet"].to_csv(snakemake.output.sample_sheet, sep="\t", index=False)
write_table(result["genes"], snakemake.output.genes)
result["effects"].to_csv(snakemake.output.planted, sep="\t", index=False, float_format="%.6g")
result["plan"].to_csv(snakemake.output.samples, sep="\t", index=False)
log.info(
    "wrote %d RNA-seq files; %d planted gene effects", len(result["plan"]), len(result["effects"])
)
log.info("planted: %s", json.dumps(cohort_cfg["planted_pathways"]))
