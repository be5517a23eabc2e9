"""Write requirements/build.txt and envs/hccrad.yaml from requirements/lock.txt (`make lock`).

Both are derived, never edited by hand: the build step installs exactly the lock's files (same
hashes), and the conda environment names exactly the lock's versions. tests/test_environment.py
regenerates both and fails when a committed copy differs.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
BUILD = ROOT / "requirements" / "build.txt"
CONDA_ENV = ROOT / "envs" / "hccrad.yaml"

# Installed before the rest: PyRadiomics 3.0.1 builds against numpy without build isolation.
BUILD_PACKAGES = ("pip", "setuptools", "wheel", "numpy", "versioneer")
# Not in the conda env's pip section: conda provides pip itself; PyRadiomics needs the build
# step above, which a `pip:` section cannot express, so envs/hccrad.post-deploy.sh installs it.
NOT_IN_CONDA_PIP = ("pip", "pyradiomics")
# PyTorch's CPU build for the platform of the default run; elsewhere PyPI's wheel (CPU-only on
# macOS, Windows and Linux aarch64). PyPI's Linux x86_64 wheel is the multi-GB CUDA build.
TORCH_CPU_WHEEL = (
    "https://download.pytorch.org/whl/cpu/"
    "torch-{version}%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl"
)
LINUX_X86 = "sys_platform == 'linux' and platform_machine == 'x86_64'"
OTHER_PLATFORMS = "sys_platform != 'linux' or platform_machine != 'x86_64'"  # PEP 508 has no `not`

REQUIREMENT_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^ ;\\]+)")


def normalise(name: str) -> str:
    """A package name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_blocks(text: str) -> dict[str, list[str]]:
    """Each locked package's lines (requirement and hashes, no comments), by normalised name."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = REQUIREMENT_LINE.match(line)
        if match:
            current = [line]
            blocks[normalise(match["name"])] = current
        elif current is not None and line.strip().startswith("--hash="):
            current.append(line)
        else:
            current = None
    return blocks


def requirement(block: list[str]) -> str:
    """The requirement specifier of a lock block, without the line continuation."""
    return block[0].rstrip(" \\").strip()


def direct_pins(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Every requirement of pyproject.toml: the dependencies and each optional group."""
    project = tomllib.loads(pyproject.read_text())["project"]
    groups = project.get("optional-dependencies", {}).values()
    return [*project["dependencies"], *(spec for group in groups for spec in group)]


def torch_version(pins: list[str]) -> str:
    """The torch pin of pyproject.toml (the lock leaves torch out: its build is chosen later)."""
    for spec in pins:
        match = REQUIREMENT_LINE.match(spec)
        if match and normalise(match["name"]) == "torch":
            return match["version"]
    raise SystemExit("pyproject.toml pins no torch version")


def other_platform_pins(blocks: dict[str, list[str]], pins: list[str]) -> list[str]:
    """Direct pins the lock lacks because their marker is false here (xgboost on macOS)."""
    return [
        spec
        for spec in pins
        if ";" in spec
        and (match := REQUIREMENT_LINE.match(spec))
        and normalise(match["name"]) not in blocks
    ]


def yaml_quoted(text: str) -> str:
    """A YAML single-quoted scalar (markers hold both kinds of quote)."""
    return "'" + text.replace("'", "''") + "'"


def build_text(blocks: dict[str, list[str]]) -> str:
    """requirements/build.txt: the build packages' lock blocks, hashes included."""
    missing = [name for name in BUILD_PACKAGES if name not in blocks]
    if missing:
        raise SystemExit(f"{LOCK.name} lacks {missing}: add them to pyproject.toml and re-lock")
    lines = [
        "# Written by requirements/derive.py from lock.txt (make lock); do not edit.",
        "# Installed first: PyRadiomics 3.0.1 builds from source against numpy without isolation.",
    ]
    for name in BUILD_PACKAGES:
        lines.extend(blocks[name])
    return "\n".join(lines) + "\n"


def conda_env_text(blocks: dict[str, list[str]], pins: list[str]) -> str:
    """envs/hccrad.yaml: Python from conda-forge, every locked version through pip."""
    torch = torch_version(pins)
    pip_lines = [
        requirement(block) for name, block in sorted(blocks.items()) if name not in NOT_IN_CONDA_PIP
    ]
    pip_lines += other_platform_pins(blocks, pins)
    pip_lines += [
        f"torch @ {TORCH_CPU_WHEEL.format(version=torch)} ; {LINUX_X86}",
        f"torch=={torch} ; {OTHER_PLATFORMS}",
    ]
    header = [
        "# The environment of every rule under --sdm conda. Written by requirements/derive.py from",
        "# requirements/lock.txt (make lock): the same versions as `make setup`; do not edit.",
        "# PyRadiomics (built against numpy without isolation) and hccrad itself are installed by",
        "# hccrad.post-deploy.sh, which Snakemake runs in the new environment.",
        "channels:",
        "  - conda-forge",
        "  - nodefaults",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
    ]
    quoted = [f"      - {yaml_quoted(line)}" for line in pip_lines]
    return "\n".join(header + quoted) + "\n"


def main() -> None:
    """Write both derived files from the lock."""
    blocks = lock_blocks(LOCK.read_text())
    BUILD.write_text(build_text(blocks))
    CONDA_ENV.write_text(conda_env_text(blocks, direct_pins()))
    print(f"wrote {BUILD.relative_to(ROOT)} and {CONDA_ENV.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
