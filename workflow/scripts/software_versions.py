"""The pinned packages of pyproject.toml and the versions this run had installed."""

from hccrad.core.runlog import log_to
from hccrad.core.versions import pinned_requirements, software_versions

log = log_to(snakemake.log[0])
table = software_versions(pinned_requirements(snakemake.input.pyproject))
table.to_csv(snakemake.output.tsv, sep="\t", index=False)
drift = table.loc[~table["matches_pin"], ["package", "pinned", "installed"]]
if len(drift):
    log.warning("installed versions differ from the pins:\n%s", drift.to_string(index=False))
log.info("%d packages, %d differ from their pin", len(table), len(drift))
