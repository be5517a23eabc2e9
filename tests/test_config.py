"""Config validation: every kind of bad value stops the run before any job, naming the key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from hccrad.core.config import ConfigError, check_config

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def schema_error(config: dict) -> str:
    """The message snakemake.utils.validate raises for ``config``."""
    with pytest.raises(WorkflowError) as caught:
        validate(config, SCHEMA)
    return str(caught.value)


def test_default_config_is_valid(default_config):
    validate(default_config, SCHEMA)
    check_config(default_config, ROOT)


def test_unknown_key_is_named(default_config):
    default_config["simulate"]["response"]["centres"][0]["n_patiens"] = 10
    assert "n_patiens" in schema_error(default_config)


def test_unknown_top_level_key_is_named(default_config):
    default_config["sed"] = 1
    assert "sed" in schema_error(default_config)


def test_wrong_type_is_named(default_config):
    default_config["seed"] = "forty-two"
    message = schema_error(default_config)
    assert "seed" in message and "integer" in message


def test_negative_size_is_named(default_config):
    default_config["simulate"]["response"]["centres"][1]["n_patients"] = -5
    message = schema_error(default_config)
    assert "n_patients" in message and "-5" in message


def test_negative_spacing_is_named(default_config):
    default_config["simulate"]["response"]["centres"][0]["spacing_mm"] = [2.5, -2.5, 5.0]
    assert "spacing_mm" in schema_error(default_config)


def test_unknown_trait_in_effects_is_named(default_config):
    default_config["simulate"]["response"]["endpoints"]["response"]["effects"]["tumor_size"] = 1
    assert "tumor_size" in schema_error(default_config)


def test_unknown_hallmark_pathway_is_named(default_config):
    planted = default_config["simulate"]["radiogenomics"]["planted_pathways"]
    planted[0]["pathway"] = "HALLMARK_ANGIOGENESYS"
    validate(default_config, SCHEMA)  # a string is a valid type; the GMT decides
    with pytest.raises(ConfigError, match=r"planted_pathways\[0\]\.pathway.*HALLMARK_ANGIOGENESYS"):
        check_config(default_config, ROOT)


def test_cohort_role_mismatch_is_named(default_config):
    default_config["cohorts"]["response"] = "sim_lihc"
    with pytest.raises(ConfigError, match=r"cohorts\.response"):
        check_config(default_config, ROOT)


def test_endpoint_not_simulated_is_named(default_config):
    del default_config["simulate"]["response"]["endpoints"]["proliferative"]
    with pytest.raises(ConfigError, match="proliferative"):
        check_config(default_config, ROOT)


def test_deep_min_epochs_above_max_epochs_is_named(default_config):
    default_config["deep"] |= {"min_epochs": 12, "max_epochs": 10}
    with pytest.raises(ConfigError, match=r"deep\.min_epochs = 12 exceeds deep\.max_epochs = 10"):
        check_config(default_config, ROOT)


def test_network_size_other_than_the_crop_is_named(default_config):
    # 96 mm at 1.5 mm is 64 voxels a side; the network would see a centre 32^3 of each crop.
    default_config["imaging"]["spacing_mm"] = [1.5, 1.5, 1.5]
    with pytest.raises(ConfigError, match=r"deep\.spatial_size = \[32, 32, 32\].*\[64, 64, 64\]"):
        check_config(default_config, ROOT)


@pytest.mark.workflow
def test_snakemake_stops_before_any_job(tmp_path, default_config, snakemake_bin):
    """Through the command line: a dry run refuses the config and names the key."""
    default_config["simulate"]["response"]["centres"][0]["n_patients"] = -1
    config_path = tmp_path / "bad.yaml"
    config_path.write_text(yaml.safe_dump(default_config))
    run = subprocess.run(
        [
            snakemake_bin,
            "-n",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(config_path),
            "--cores",
            "1",
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )
    assert run.returncode != 0
    assert "n_patients" in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()
