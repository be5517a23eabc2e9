"""Gene-set collections in the GMT format (MSigDB Hallmark and any other collection)."""

from __future__ import annotations

from pathlib import Path


def read_gmt(path: str | Path) -> dict[str, list[str]]:
    """Read a GMT file into {set name: genes}, keeping the file's gene order."""
    gene_sets: dict[str, list[str]] = {}
    for line_number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) < 3:
            raise ValueError(
                f"{path}, line {line_number}: a GMT line needs a name, a description and at "
                f"least one gene separated by tabs; found {len(fields)} field(s)."
            )
        name, genes = fields[0], [gene.strip() for gene in fields[2:] if gene.strip()]
        if name in gene_sets:
            raise ValueError(f"{path}, line {line_number}: gene set {name!r} appears twice.")
        gene_sets[name] = genes
    if not gene_sets:
        raise ValueError(f"{path}: no gene sets found; is this a GMT file?")
    return gene_sets
