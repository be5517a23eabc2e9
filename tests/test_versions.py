"""The software-versions table: pins from pyproject.toml against the installed versions."""

from __future__ import annotations

import numpy as np

from hccrad.core import versions


def test_pins_are_read_and_compared_with_what_is_installed(tmp_path, monkeypatch) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = [\n'
        f'  "numpy=={np.__version__}",\n  "torch==2.13.0",\n  "nopkg-hccrad-test==1.0",\n'
        '  "loose>=1",\n  "onlyelsewhere==2.0; sys_platform == \'no-such-platform\'",\n]\n'
        '[project.optional-dependencies]\nworkflow = ["snakemake==9.27.1"]\ndev = ["pytest==1"]\n'
    )
    pins = versions.pinned_requirements(pyproject)
    # Markers false here are left out; the workflow group is part of a run, dev is not.
    assert pins == {
        "numpy": np.__version__,
        "torch": "2.13.0",
        "nopkg-hccrad-test": "1.0",
        "snakemake": "9.27.1",
    }
    installed = {"torch": "2.13.0+cpu", "numpy": np.__version__}
    monkeypatch.setattr(
        versions, "installed_version", lambda name: installed.get(name, "not installed")
    )
    table = versions.software_versions(pins).set_index("package")
    assert table.loc["numpy", "matches_pin"]
    assert table.loc["torch", "matches_pin"]  # the +cpu build label is not another release
    assert not table.loc["nopkg-hccrad-test", "matches_pin"]
    assert table.loc["nopkg-hccrad-test", "installed"] == "not installed"
    assert table.index[-1] == "Python"


def test_a_missing_distribution_is_reported_not_raised() -> None:
    assert versions.installed_version("nopkg-hccrad-test") == "not installed"


def test_cpu_model_reads_cpuinfo_and_falls_back_without_it(tmp_path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t: avx\n")
    assert versions.cpu_model(cpuinfo) == "Test CPU 9000"
    assert versions.cpu_model(tmp_path / "absent")  # the platform's guess, never empty
    description = versions.machine_description()
    assert "cores" in description and versions.cpu_model() in description
