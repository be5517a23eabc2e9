"""Bad config and analysis inputs: each stops with one line naming the key or file and the fix.

Config (hccrad.core.config, the schema), YAML syntax (config files, column maps), planted pathways
that would plant nothing, too few patients matched between imaging and RNA-seq
(hccrad.radiogenomics.imaging_features),
an outcome without events (hccrad.reporting.survival) and a training split with
one class (hccrad.models.fit).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, load_default_config
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from hccrad.cohorts.column_map import load_column_map
from hccrad.cohorts.rnaseq_sim import gene_universe, planted_effects
from hccrad.cohorts.sheet import SheetError
from hccrad.cohorts.simulate import simulate_cohort
from hccrad.core.config import ConfigError, check_config, read_yaml
from hccrad.core.genesets import read_gmt
from hccrad.core.plan import RadiogenomicsInputError
from hccrad.models.fit import fit_all, predict_all
from hccrad.radiogenomics.imaging_features import assemble_imaging
from hccrad.reporting.survival import stratify_survival, survival_settings

SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")
GMT = ROOT / "resources/genesets/h.all.v2025.1.Hs.symbols.gmt"
TPM = ROOT / "resources/tcga_lihc/linnorm_LIHC_tpm_10pairs.csv.gz"


@pytest.fixture
def config() -> dict[str, Any]:
    """A fresh copy of the shipped config."""
    return load_default_config()


def schema_error(config: dict[str, Any]) -> str:
    """The message snakemake.utils.validate raises for ``config``."""
    with pytest.raises(WorkflowError) as caught:
        validate(config, SCHEMA)
    return str(caught.value)


def dry_run(workdir: Path, snakemake_bin: str, *options: str) -> subprocess.CompletedProcess:
    """``snakemake -n`` of the repository's workflow in ``workdir``."""
    return subprocess.run(
        [
            snakemake_bin,
            "-n",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            "1",
            *options,
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
    )


def with_tab(text: str, key: str) -> tuple[str, int]:
    """``text`` with the line of ``key`` indented by a tab instead of spaces, and its number."""
    lines = text.splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.lstrip().startswith(f"{key}:"))
    lines[number] = "\t" + lines[number].lstrip(" ")
    return "".join(lines), number + 1


# --------------------------------------------------------------------------- planted pathways


def test_planted_pathway_with_empty_gene_set_stops_config_check(tmp_path, config):
    # A GMT line with a name, a description and only empty gene fields: a set of no gene.
    gmt = tmp_path / "sets.gmt"
    gmt.write_text(GMT.read_text() + "MY_EMPTY_SET\tbuilt by hand\t\t\n")
    config["gene_sets"] = str(gmt)
    config["simulate"]["radiogenomics"]["planted_pathways"][1]["pathway"] = "MY_EMPTY_SET"
    validate(config, SCHEMA)  # a string is a valid pathway; the GMT decides
    with pytest.raises(ConfigError) as caught:
        check_config(config, ROOT)
    message = str(caught.value)
    assert "simulate.radiogenomics.planted_pathways[1].pathway = 'MY_EMPTY_SET'" in message
    assert "no gene" in message and str(gmt) in message and "Fix:" in message
    assert "\n" not in message


def test_every_gmt_gene_is_in_the_simulated_universe_so_a_set_with_genes_plants():
    # The config check's premise: a gene set's genes exist in the simulation iff it has any.
    genes = gene_universe(TPM, GMT, n_genes=6000, n_noncoding=100, seed=3)
    gmt_genes = {gene for members in read_gmt(GMT).values() for gene in members}
    assert gmt_genes <= set(genes["gene_name"])
    assert genes.index.is_unique


def test_zero_responsive_fraction_with_planted_pathways_stops_config_check(config):
    config["simulate"]["radiogenomics"]["rnaseq"]["responsive_fraction"] = 0
    validate(config, SCHEMA)
    with pytest.raises(ConfigError) as caught:
        check_config(config, ROOT)
    message = str(caught.value)
    assert "simulate.radiogenomics.rnaseq.responsive_fraction = 0" in message
    assert "4 planted pathway(s)" in message and "Fix: set it above 0" in message


def test_planted_pathway_that_draws_no_gene_stops_simulation_naming_it():
    genes = pd.DataFrame(
        {"gene_name": ["VEGFA", "KDR", "ALB"]},
        index=pd.Index(["SIMG1", "SIMG2", "SIMG3"], name="gene_id"),
    )
    sets = {"TINY_SET": ["VEGFA"], "PAIR": ["VEGFA", "KDR"]}
    plant = [{"pathway": "PAIR", "trait": "necrosis", "strength": 0.5}]
    effects = planted_effects(genes, sets, plant, np.ones(3), 1.0, np.random.default_rng(1))
    assert len(effects) == 2  # every member planted at fraction 1
    plant = [*plant, {"pathway": "TINY_SET", "trait": "irregularity", "strength": 0.5}]
    with pytest.raises(ValueError) as caught:
        planted_effects(genes, sets, plant, np.ones(3), 1e-12, np.random.default_rng(1))
    message = str(caught.value)
    assert "planted pathway 'PAIR'" in message and "'necrosis'" in message
    assert "Fix: raise simulate.radiogenomics.rnaseq.responsive_fraction" in message


# --------------------------------------------------------------------------- YAML syntax


def test_tab_in_config_yaml_names_file_line_and_fix(tmp_path):
    text, line = with_tab((ROOT / "config/config.yaml").read_text(), "maxstat_min_prop")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}, column 1: a tab character")
    assert f"Fix: replace the tab(s) on line {line}" in message and "\n" not in message


def test_unclosed_bracket_in_yaml_names_line_column_and_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 1\nendpoints: [response, proliferative\ngene_sets: x.gmt\n")
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 3, column 10:")
    assert "flow sequence" in message and "Fix: correct the config file there" in message


def test_config_saved_as_latin1_names_file_byte_and_fix(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes("seed: 1\ngene_sets: café.gmt\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    assert str(caught.value) == (
        f"{path}: not UTF-8 text (byte 22 is 0xe9). Fix: save the config file as UTF-8."
    )


def test_tab_in_column_map_names_file_and_line(tmp_path):
    path = tmp_path / "columns.yaml"
    path.write_text("patient_id: MRN\ncolumns:\n  age: Age\n\tsex: Gender\n")
    with pytest.raises(SheetError) as caught:
        load_column_map(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 4, column 1: a tab character")
    assert "of the column map with spaces" in message


def test_hccrad_config_command_names_file_and_line_of_a_tab(tmp_path):
    text, line = with_tab((ROOT / "config/config.yaml").read_text(), "cutoff")
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(text)
    good.write_text((ROOT / "config/config.yaml").read_text())
    run = subprocess.run(
        [sys.executable, "-m", "hccrad.core.config", str(good), str(bad)],
        capture_output=True,
        encoding="utf-8",
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stdout.strip() == f"{good}: valid YAML"
    assert run.stderr.strip().startswith(f"{bad}, line {line}, column 1: a tab character")


@pytest.mark.workflow
def test_tab_in_workflow_default_config_stops_snakemake_naming_file_and_line(
    tmp_path, snakemake_bin
):
    # The Snakefile's `configfile: config/config.yaml`, read from the working directory.
    text, line = with_tab((ROOT / "config/config.yaml").read_text(), "cutoff")
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(text)
    run = dry_run(tmp_path, snakemake_bin)
    assert run.returncode != 0
    assert f"config/config.yaml, line {line}, column 1: a tab character" in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_tab_in_configfile_option_gets_snakemakes_message_without_file_or_line(
    tmp_path, snakemake_bin
):
    # What config/README.md documents: Snakemake reads --configfile while parsing its command
    # line, before the Snakefile runs, and drops PyYAML's message (file, line). If a Snakemake
    # release names them, this fails and the README's note can go.
    text, line = with_tab((ROOT / "config/config.yaml").read_text(), "cutoff")
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    run = dry_run(tmp_path, snakemake_bin, "--configfile", str(path))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Config file is not valid JSON or YAML" in output
    assert "mine.yaml" not in output and f"line {line}" not in output


# --------------------------------------------------------------------------- matched patients


def imaging_inputs(n: int) -> tuple[list[str], pd.Series]:
    """A cohort sheet's ids and a DLTR score for each (TCGA-like barcodes)."""
    ids = [f"TCGA-Z9-A{i:03d}" for i in range(1, n + 1)]
    score = pd.Series(np.linspace(0.1, 0.9, n), index=ids, name="dltr_score")
    return ids, score


def test_four_matched_patients_stop_radiogenomics_naming_cohort_count_and_ids():
    sheet, score = imaging_inputs(8)
    # RNA-seq for six patients, two of them under ids written another way (lower case).
    rnaseq = [*sheet[:4], sheet[4].lower(), sheet[5].lower()]
    with pytest.raises(RadiogenomicsInputError) as caught:
        assemble_imaging(
            sheet,
            rnaseq,
            deep_selection="none",
            dltr_score=score,
            min_patients=20,
            cohort="cohort 'sim_lihc'",
        )
    message = str(caught.value)
    assert message.startswith("cohort 'sim_lihc': only 4 patient(s) have both imaging")
    assert "radiogenomics.min_matched_patients = 20" in message
    # Every unmatched id with its reason: four without RNA-seq, two not in the sheet.
    assert "Not matched, 6:" in message
    assert "TCGA-Z9-A005 (no RNA-seq)" in message
    assert "tcga-z9-a005 (not in the cohort sheet; no DLTR score)" in message
    assert "Fix:" in message and "\n" not in message


def test_exactly_the_minimum_matched_keeps_every_patient():
    sheet, score = imaging_inputs(20)
    rnaseq = [*sheet, "TCGA-Z9-A999"]  # one RNA-seq sample without imaging
    imaging = assemble_imaging(
        sheet, rnaseq, deep_selection="none", dltr_score=score, min_patients=20
    )
    assert list(imaging.matrix.columns) == sheet
    assert len(imaging.patients) == 21
    assert (
        imaging.patients.loc["TCGA-Z9-A999", "reason"] == "not in the cohort sheet; no DLTR score"
    )
    # One more required: the same inputs stop, the matched ids shortened after ten.
    with pytest.raises(RadiogenomicsInputError, match=r"only 20 .*\(\+10 more\)\); at least 21"):
        assemble_imaging(sheet, rnaseq, deep_selection="none", dltr_score=score, min_patients=21)


def test_simulated_radiogenomics_cohort_below_min_matched_stops_config_check(config):
    config["simulate"]["radiogenomics"]["centres"][0]["n_patients"] = 12
    validate(config, SCHEMA)
    with pytest.raises(ConfigError) as caught:
        check_config(config, ROOT)
    message = str(caught.value)
    assert "cohort 'sim_lihc' simulates 12 patient(s)" in message
    assert "radiogenomics.min_matched_patients = 20" in message and "Fix:" in message


def test_min_matched_patients_below_three_is_refused_by_schema(config):
    config["radiogenomics"]["min_matched_patients"] = 2
    message = schema_error(config)
    assert "min_matched_patients" in message and "minimum of 3" in message


def test_min_matched_patients_absent_gets_the_schema_default(config):
    del config["radiogenomics"]["min_matched_patients"]
    validate(config, SCHEMA)
    assert config["radiogenomics"]["min_matched_patients"] == 20


# --------------------------------------------------------------------------- survival outcomes


def survival_inputs(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One endpoint's predictions (two models) and a sheet with pfs and os, 60 patients."""
    rng = np.random.default_rng(seed)
    n = 60
    ids = [f"P{i:03d}" for i in range(n)]
    split = ["train"] * 40 + ["internal_test"] * 10 + ["external_B"] * 10
    base = pd.DataFrame(
        {
            "patient_id": ids,
            "endpoint": "response",
            "split": split,
            "centre": ["A"] * 50 + ["B"] * 10,
            "outcome": rng.integers(0, 2, n),
        }
    )
    predictions = pd.concat(
        [base.assign(model=model, score=rng.normal(size=n)) for model in ("clinical", "DLTR")],
        ignore_index=True,
    )
    sheet = pd.DataFrame(
        {
            "pfs_time": rng.uniform(1, 30, n),
            "pfs_event": rng.integers(0, 2, n),
            "os_time": rng.uniform(1, 30, n),
            "os_event": rng.integers(0, 2, n),
            "bclc": rng.choice(["A", "B", "C"], n),
            "child_pugh": rng.choice(["A", "B"], n),
        },
        index=pd.Index(ids, name="patient_id"),
    )
    return predictions, sheet


def test_outcome_without_training_events_names_outcome_split_and_fix():
    predictions, sheet = survival_inputs()
    sheet.loc[sheet.index[:40], "os_event"] = 0  # events only outside training
    with pytest.raises(ValueError) as caught:
        stratify_survival(predictions, sheet, ["pfs", "os"])
    message = str(caught.value)
    assert message.startswith("survival outcome 'os': no event (os_event = 1) among the 40")
    assert "split 'train'" in message
    assert "Fix: check os_event in the cohort sheet, or drop 'os' from " in message
    assert "survival.stratify.response" in message


def test_single_training_event_without_comparable_pair_names_outcome_not_zero_division():
    predictions, sheet = survival_inputs()
    train = sheet.index[:40]
    sheet.loc[train, "os_event"] = 0
    # One event, at the longest training time: no pair has an event before another's time.
    last = sheet.loc[train, "os_time"].idxmax()
    sheet.loc[last, "os_event"] = 1
    with pytest.raises(ValueError) as caught:
        stratify_survival(predictions, sheet, ["os"])
    message = str(caught.value)
    assert message.startswith("survival outcome 'os', clinical in split 'train': no comparable")
    assert "1 event(s) in os_event among 40 patient(s)" in message


def test_cohort_without_events_is_a_note_naming_outcome_and_the_rest_is_kept():
    predictions, sheet = survival_inputs()
    internal = sheet.index[40:50]
    sheet.loc[internal, "os_event"] = 0
    tables = stratify_survival(predictions, sheet, ["pfs", "os"])
    concordance = tables["concordance"].set_index(["outcome", "model", "cohort"])
    # Two outcomes x two models x four cohorts (train, internal test, external, external_B).
    cohorts = concordance.index.get_level_values("cohort").unique()
    assert len(concordance) == 2 * 2 * len(cohorts)
    for model in ("clinical", "DLTR"):
        row = concordance.loc[("os", model, "internal_test")]
        assert np.isnan(row["c_index"])
        assert row["note"].startswith(f"os by {model} in internal_test: no comparable pair")
        assert "0 event(s) in os_event among 10 patient(s)" in row["note"]
    others = concordance.drop(index=[("os", m, "internal_test") for m in ("clinical", "DLTR")])
    assert others["c_index"].notna().all()


# --------------------------------------------------------------------------- model training


@pytest.fixture(scope="module")
def response_sheet() -> pd.DataFrame:
    """The default simulated response cohort's sheet (70 training patients)."""
    return simulate_cohort(load_default_config()["simulate"]["response"], 1)["sheet"]


def test_one_class_training_split_names_endpoint_split_and_fix(response_sheet):
    sheet = response_sheet.copy()
    train = sheet.index[sheet["split"] == "train"]
    sheet.loc[train, "proliferative"] = 0
    with pytest.raises(ValueError) as caught:
        fit_all(sheet, {}, "proliferative", 1, None)
    message = str(caught.value)
    assert message.startswith(
        f"endpoint 'proliferative' in split 'train': all {len(train)} training patient(s) "
        "have proliferative = 0 (a single class)"
    )
    assert "Fix: check the 'proliferative' column" in message
    assert "drop 'proliferative' from endpoints" in message


def dltr_table(sheet: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A deep feature table with a DLTR score for every patient (DLTR and DLTR_MLP models)."""
    rng = np.random.default_rng(2)
    return {"deep": pd.DataFrame({"dltr_score": rng.uniform(size=len(sheet))}, sheet.index)}


def test_rarer_class_below_cv_folds_names_counts_and_fix(response_sheet):
    sheet = response_sheet.copy()
    train = sheet.index[sheet["split"] == "train"]
    sheet.loc[train, "response"] = 0
    sheet.loc[train[:2], "response"] = 1
    with pytest.raises(ValueError) as caught:
        fit_all(sheet, dltr_table(sheet), "response", 1, {"cv_folds": 5})
    message = str(caught.value)
    assert message.startswith(
        f"endpoint 'response' in split 'train': 2 patient(s) with response = 1 and "
        f"{len(train) - 2} with 0; models.cv_folds = 5 needs at least 5 of each class"
    )
    assert "Fix: lower models.cv_folds to 2 or add training patients with response = 1" in message


def test_rarer_class_equal_to_cv_folds_fits_every_model_on_every_training_patient(
    response_sheet,
):
    sheet = response_sheet.copy()
    train = sheet.index[sheet["split"] == "train"]
    sheet.loc[train, "response"] = 0
    sheet.loc[train[:3], "response"] = 1
    features = dltr_table(sheet)
    fitted = fit_all(sheet, features, "response", 1, {"cv_folds": 3})
    assert list(fitted) == ["clinical", "DLTR", "DLTR_MLP"]
    assert all(model.train_patients == list(train) for model in fitted.values())
    predictions = predict_all(fitted, sheet, features)
    assert len(predictions) == 3 * len(sheet)


def test_clinical_model_alone_needs_no_cv_folds_of_each_class(response_sheet):
    sheet = response_sheet.copy()
    train = sheet.index[sheet["split"] == "train"]
    sheet.loc[train, "response"] = 0
    sheet.loc[train[:4], "response"] = 1
    # A cohort without images: the clinical model alone, fitted without cross-validation.
    fitted = fit_all(sheet, {}, "response", 1, {"cv_folds": 5})
    assert list(fitted) == ["clinical"]
    assert len(predict_all(fitted, sheet, {})) == len(sheet)


# --------------------------------------------------------------------------- already clear


def test_unknown_config_key_is_named_by_schema(config):
    config["radiogenomics"]["min_matched_patient"] = 10
    message = schema_error(config)
    assert "min_matched_patient" in message and "Additional properties" in message


def test_unknown_gene_set_name_is_named_with_examples(config):
    config["simulate"]["radiogenomics"]["planted_pathways"][2]["pathway"] = "HALLMARK_HYPOXIA2"
    validate(config, SCHEMA)
    with pytest.raises(ConfigError) as caught:
        check_config(config, ROOT)
    message = str(caught.value)
    assert "simulate.radiogenomics.planted_pathways[2].pathway = 'HALLMARK_HYPOXIA2'" in message
    assert "is not a gene set of" in message and "HALLMARK_ADIPOGENESIS" in message


def test_wrong_type_in_config_is_named_by_schema(config):
    config["survival"]["min_events_per_variable"] = "five"
    message = schema_error(config)
    assert "'five' is not of type 'number'" in message
    assert "min_events_per_variable" in message


def test_unknown_survival_key_is_named_by_survival_settings(config):
    # Scripts read the survival section through survival_settings, which names unknown keys.
    settings = copy.deepcopy(config["survival"]) | {"cut_off": "median"}
    with pytest.raises(ValueError) as caught:
        survival_settings(settings)
    message = str(caught.value)
    assert "survival config: unknown keys ['cut_off']" in message and "'cutoff'" in message


@pytest.mark.workflow
def test_snakemake_dry_run_refuses_unknown_key_before_any_job(tmp_path, config, snakemake_bin):
    config["radiogenomics"]["min_matched_patient"] = 10
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config))
    run = dry_run(tmp_path, snakemake_bin, "--configfile", str(path))
    assert run.returncode != 0
    assert "min_matched_patient" in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()


def test_plausible_range_written_backwards_names_the_key_and_fix(config):
    config["imaging"]["plausible"]["spacing_mm"] = [20.0, 0.1]
    validate(config, SCHEMA)
    with pytest.raises(ConfigError) as caught:
        check_config(config, ROOT)
    message = str(caught.value)
    assert "imaging.plausible.spacing_mm = [20.0, 0.1]" in message
    assert "Fix: write it as [min, max]" in message


def test_ring_thinner_than_the_prepared_voxels_names_both_keys(config):
    config["imaging"]["spacing_mm"] = [3.0, 3.0, 3.0]
    config["radiomics"]["ring_mm"] = 2.0
    validate(config, SCHEMA)
    with pytest.raises(ConfigError) as caught:
        check_config(config, ROOT)
    message = str(caught.value)
    assert "radiomics.ring_mm = 2.0 is below the finest prepared spacing (3.0 mm" in message
    assert "set ring_mm to at least 3.0" in message
    # Without the peritumoural region the ring is not drawn: nothing to refuse.
    config["radiomics"]["regions"] = ["tumour"]
    check_config(config, ROOT)
