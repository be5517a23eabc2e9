"""The installed environment: the lock, the files derived from it, the conda env, the release."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def _derive() -> ModuleType:
    """requirements/derive.py, the writer of build.txt and the conda env file."""
    spec = importlib.util.spec_from_file_location("derive", ROOT / "requirements" / "derive.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


derive = _derive()


def _locked_versions() -> dict[str, str]:
    """Each locked package's version, by normalised name."""
    return {
        name: str(Requirement(derive.requirement(block)).specifier).removeprefix("==")
        for name, block in derive.lock_blocks(LOCK.read_text()).items()
    }


def _pip_lines(env_file: Path) -> list[str]:
    """The `pip:` section of a conda environment file."""
    dependencies = yaml.safe_load(env_file.read_text())["dependencies"]
    sections = [item["pip"] for item in dependencies if isinstance(item, dict) and "pip" in item]
    assert len(sections) == 1, f"{env_file.name}: expected one pip: section"
    return sections[0]


def test_env_files_exist() -> None:
    """The conda env the rules name is there (the checks below must have something to read)."""
    assert [path.name for path in ENV_FILES] == ["hccrad.yaml"]


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda path: path.name)
def test_pip_lines_are_requirements(env_file: Path) -> None:
    """Conda writes `pip:` lines to a requirements file: options and paths break it."""
    for line in _pip_lines(env_file):
        assert not line.lstrip().startswith("-"), f"{env_file.name}: option line {line!r}"
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            pytest.fail(f"{env_file.name}: {line!r} is not a requirement: {error}")
        pinned = str(requirement.specifier).startswith("==") or requirement.url
        assert pinned, f"{env_file.name}: {line!r} is not pinned"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda path: path.name)
def test_env_names_the_locked_versions(env_file: Path) -> None:
    """Every locked package is in the env at the locked version, and nothing else floats."""
    locked = _locked_versions()
    in_env: dict[str, str] = {}
    for line in _pip_lines(env_file):
        requirement = Requirement(line)
        name = derive.normalise(requirement.name)
        if name == "torch" or name not in locked:
            continue
        in_env[name] = str(requirement.specifier).removeprefix("==")
    expected = {n: v for n, v in locked.items() if n not in derive.NOT_IN_CONDA_PIP}
    assert in_env == expected


def test_derived_files_are_current() -> None:
    """build.txt and envs/hccrad.yaml are what `make lock` writes from today's lock."""
    blocks = derive.lock_blocks(LOCK.read_text())
    assert derive.BUILD.read_text() == derive.build_text(blocks)
    assert derive.CONDA_ENV.read_text() == derive.conda_env_text(blocks, derive.direct_pins())


def test_lock_holds_every_direct_pin() -> None:
    """A pin changed in pyproject.toml without `make lock` fails here, naming the package."""
    locked = _locked_versions()
    stale = []
    for spec in derive.direct_pins():
        requirement = Requirement(spec)
        name = derive.normalise(requirement.name)
        if name == "torch" or (requirement.marker and not requirement.marker.evaluate()):
            continue
        wanted = str(requirement.specifier).removeprefix("==")
        if locked.get(name) != wanted:
            stale.append(f"{name}: pyproject {wanted}, lock {locked.get(name)}")
    assert not stale, "run `make lock`: " + "; ".join(stale)


def test_lock_has_hashes_and_no_gpu_library() -> None:
    """Every locked file is hashed; a CPU install carries no NVIDIA library (NCCL, CUDA)."""
    blocks = derive.lock_blocks(LOCK.read_text())
    assert len(blocks) > 100, "the lock should hold the whole environment"
    assert all(len(block) >= 2 for block in blocks.values()), "a locked package without hash"
    assert not [name for name in blocks if name.startswith("nvidia-")]
    assert "xgboost-cpu" in blocks and "xgboost" not in blocks


def test_post_deploy_installs_the_locked_pyradiomics() -> None:
    """The one package the conda env gets outside its pip: section is the locked version."""
    script = (ROOT / "envs" / "hccrad.post-deploy.sh").read_text()
    versions = re.findall(r"pyradiomics==([\w.]+)", script)
    assert versions == [_locked_versions()["pyradiomics"]]


def test_make_installs_from_the_lock() -> None:
    """`make setup` (and so make run/test) installs the lock with hashes checked, then torch."""
    plan = subprocess.run(
        ["make", "-n", "-B", "setup", "VENV=/nonexistent-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--require-hashes --no-deps -r requirements/build.txt" in plan
    assert "--require-hashes --no-deps --no-build-isolation -r requirements/lock.txt" in plan
    assert "torch==2.13.0+cpu" in plan or sys.platform != "linux"


def test_release_metadata_agree() -> None:
    """One version in pyproject.toml, hccrad.__version__ (bundles record it), CITATION.cff and
    a CHANGELOG section; an SPDX licence."""
    import hccrad

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert project["license"] == citation["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert str(citation["version"]) == project["version"] == hccrad.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(
        rf"^## \[{re.escape(project['version'])}\] - \d{{4}}-\d\d-\d\d$", changelog, re.M
    )


def test_catalog_file_uses_keys_the_catalog_reads() -> None:
    """The keys the Snakemake workflow catalog's generator reads, and nothing else."""
    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    assert set(catalog) == {"usage"}
    usage = catalog["usage"]
    assert set(usage) <= {"mandatory-flags", "software-stack-deployment", "report"}
    assert set(usage["software-stack-deployment"]) <= {"conda", "apptainer", "apptainer+conda"}
    assert set(usage.get("mandatory-flags", {})) <= {"desc", "flags"}


def test_test_config_runs_as_a_configfile(snakemake_bin: str) -> None:
    """A user can dry-run the workflow on .test/config.yaml as the README says."""
    run = subprocess.run(
        [snakemake_bin, "-n", "--nolock", "--quiet", "rules", "--configfile", ".test/config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
