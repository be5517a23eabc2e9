"""Render the images and masks of one shard of a simulated cohort."""

from pathlib import Path

from hccrad.cohorts.phantom import PHASES, render_shard
from hccrad.cohorts.sheet import read_sheet, write_table
from hccrad.cohorts.simulate import image_paths
from hccrad.core.plan import shard_members
from hccrad.core.runlog import log_to

log = log_to(snakemake.log[0])
cohort_cfg = snakemake.params.cohort
shard = int(snakemake.wildcards.shard)
patients = read_sheet(snakemake.input.patients)
appearance = read_sheet(snakemake.input.latent).join(patients["centre"])
members = shard_members(list(patients.index), cohort_cfg["n_shards"], shard)
cohort_dir = Path(snakemake.output.images).parent.parent
paths = {p: image_paths(cohort_dir, shard, p, PHASES[cohort_cfg["modality"]]) for p in members}
Path(snakemake.output.images).mkdir(parents=True, exist_ok=True)
lesions = render_shard(appearance, members, cohort_cfg, paths, snakemake.params.seed)
write_table(lesions, snakemake.output.lesions)
log.info(
    "rendered %d patients (%d lesions) into %s", len(members), len(lesions), snakemake.output.images
)
