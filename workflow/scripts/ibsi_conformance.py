"""hccrad's PyRadiomics on the IBSI-1 phantoms: the conformance table and its page."""

from pathlib import Path

from hccrad.core.config import read_yaml
from hccrad.core.runlog import log_to
from hccrad.radiomics.ibsi_conformance import (
    conformance,
    conformance_page,
    read_configurations,
    summarise,
)

log = log_to(snakemake.log[0])
configurations = read_configurations(snakemake.input.configurations)
table = conformance(snakemake.input.data, read_yaml(snakemake.input.params), None, configurations)
table.to_csv(snakemake.output.table, sep="\t", index=False)
Path(snakemake.output.page).write_text(conformance_page(table, configurations) + "\n")
log.info("IBSI-1 conformance:\n%s", summarise(table).to_string(index=False))
