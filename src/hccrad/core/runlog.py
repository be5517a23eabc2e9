"""Logging for workflow scripts: everything a job says goes to its Snakemake log file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def log_to(path: str | Path) -> logging.Logger:
    """Send logging, warnings and stderr of this job to ``path``; return the hccrad logger."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w")  # noqa: SIM115 - stays open for the life of the job
    sys.stderr = handle
    logging.basicConfig(
        stream=handle,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    # matplotlib's PDF backend has fontTools log every subsetting step at INFO: noise, not news.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    return logging.getLogger("hccrad")
