"""The TRIPOD+AI and CLEAR checklist of the run: each item resolved against the run's files."""

from pathlib import Path

from hccrad.core.runlog import log_to
from hccrad.reporting.checklist import (
    STATUS_MISSING,
    checklist_markdown,
    read_checklist,
    resolve_checklist,
)

log = log_to(snakemake.log[0])

resolved = resolve_checklist(
    read_checklist(Path(snakemake.input.checklist)),
    run_dir=Path("."),
    project_dir=Path(snakemake.input.docs[0]).parent,
    cohort=snakemake.params.cohort,
    endpoints=snakemake.params.endpoints,
)
resolved.to_csv(snakemake.output.table, sep="\t", index=False)
Path(snakemake.output.page).write_text(checklist_markdown(resolved), encoding="utf-8")
missing = resolved[resolved["status"] == STATUS_MISSING]
log.info("%d items: %s", len(resolved), resolved["status"].value_counts().to_dict())
for row in missing.itertuples(index=False):
    log.warning("%s %s (%s): missing %s", row.guideline, row.item, row.topic, row.missing)
