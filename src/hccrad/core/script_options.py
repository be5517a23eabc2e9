"""Options and report helpers of the benchmark and study scripts that run on the workflow's crops.

One copy for benchmarks/ and studies/ alike (neither folder imports the other); the workflow
itself never uses it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from hccrad.core.versions import cpu_model

if TYPE_CHECKING:
    import torch


def cohort_parser(description: str, report: Path) -> argparse.ArgumentParser:
    """The options every study on the workflow's crops shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--cohort", default="sim_tace")
    parser.add_argument("--endpoint", default="response")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--output", type=Path, default=report)
    return parser


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """--device and the repeatable --set key=value (one deep: setting, YAML value)."""
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one deep: setting (YAML value); repeatable",
    )


def overrides(pairs: list[str]) -> dict[str, object]:
    """`key=value` pairs as a dict of YAML-parsed values."""
    parsed = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"--set takes key=value, not {pair!r}")
        parsed[key.strip()] = yaml.safe_load(value)
    return parsed


def with_row(text: str, row: str) -> str:
    """The report with the row added at the end of its table (prose may follow the table)."""
    lines = text.splitlines(keepends=True)
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    if not table:
        return text + row
    end = table[0]
    while end + 1 < len(lines) and lines[end + 1].startswith("|"):
        end += 1
    return "".join(lines[: end + 1]) + row + "".join(lines[end + 1 :])


def device_name(device: torch.device) -> str:
    """A readable name of the device that ran."""
    if device.type == "cuda":
        import torch  # only a CUDA run asks: the option helpers need no torch

        return torch.cuda.get_device_name(device)
    return f"CPU ({cpu_model()}, {os.cpu_count()} cores)"
