"""The `benchmark:` files a workflow run writes, read back as one table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_job_benchmarks(folder: str | Path) -> pd.DataFrame:
    """Every benchmark file under ``folder`` (results/benchmarks), one row per job.

    Snakemake's columns (``s`` wall seconds, ``cpu_time``, ``max_rss``, ...) plus ``rule``
    (the first folder below ``folder``: each rule writes under its own name) and ``job`` (the
    file's path below that, without the suffix). Empty when there is none.
    """
    folder = Path(folder)
    frames = []
    for path in sorted(folder.rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        rule = path.relative_to(folder).parts[0]
        table["rule"] = rule
        table["job"] = str(path.relative_to(folder / rule).with_suffix(""))
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["rule", "job"])
