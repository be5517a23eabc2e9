"""The software and machine a run used: pinned packages with installed versions, CPU, memory."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from packaging.requirements import Requirement

PIN = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;]+)")
COLUMNS = ("package", "pinned", "installed", "matches_pin")


# Optional groups whose packages are part of a run's software (Snakemake runs the rules).
RUN_GROUPS = ("workflow",)


def pinned_requirements(pyproject: str | Path) -> dict[str, str]:
    """Package -> pinned version of the run's dependencies that apply on this platform."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    groups = project.get("optional-dependencies", {})
    specs = [*project["dependencies"], *(s for group in RUN_GROUPS for s in groups.get(group, []))]
    pins = {}
    for spec in specs:
        requirement = Requirement(spec)
        # xgboost-cpu on Linux, xgboost on macOS: only the one installed here is the run's.
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        if match := PIN.match(spec):
            pins[match.group(1)] = match.group(2)
    return pins


def installed_version(package: str) -> str:
    """The installed version of a distribution, or 'not installed'."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def software_versions(pins: Mapping[str, str]) -> pd.DataFrame:
    """One row per pinned package (pin, installed version, whether they agree), then Python."""
    rows = [
        {"package": name, "pinned": pin, "installed": installed_version(name)}
        for name, pin in sorted(pins.items(), key=lambda item: item[0].lower())
    ]
    rows.append({"package": "Python", "pinned": "3.11", "installed": platform.python_version()})
    table = pd.DataFrame(rows, columns=list(COLUMNS[:3]))
    python = table["package"] == "Python"
    # A local version label (torch's "+cpu", "+cu128") names the build, not another release.
    table["matches_pin"] = table["pinned"] == table["installed"].str.split("+").str[0]
    # Python is pinned to a minor version: 3.11.x matches 3.11.
    table.loc[python, "matches_pin"] = sys.version_info[:2] == (3, 11)
    return table


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux's cpuinfo), else the platform's guess."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: platform's answer below
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gib() -> float | None:
    """Total physical memory in GiB, or None where the OS does not say (not POSIX)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        return None


def machine_description() -> str:
    """One line for a benchmark report: CPU model, logical cores, memory."""
    memory = memory_gib()
    described = f"{cpu_model()}, {os.cpu_count()} cores"
    return described if memory is None else f"{described}, {memory:.0f} GiB"
