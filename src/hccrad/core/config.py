"""Checks of the configuration that a JSON schema cannot express (cross-references, files)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from hccrad.core.genesets import read_gmt


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key and the fix."""


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """A YAML file's content, or ConfigError naming the file, line and column of a syntax error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x}). "
            f"Fix: save the {what} as UTF-8."
        ) from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(yaml_error_message(path, text, error, what)) from error


def yaml_error_message(path: str | Path, text: str, error: yaml.YAMLError, what: str) -> str:
    """One line for a YAML syntax error: file, line and column, the problem and the fix."""
    mark = getattr(error, "problem_mark", None)
    if mark is None:  # not a parse error with a position (e.g. a reader error on bad bytes)
        return f"{path}: not valid YAML ({' '.join(str(error).split())}). Fix: correct the {what}."
    # PyYAML counts lines and columns from 0; editors count from 1.
    line, column = mark.line + 1, mark.column + 1
    source = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
    if "\t" in source[: len(source) - len(source.lstrip())] or "'\\t'" in str(error.problem):
        return (
            f"{path}, line {line}, column {column}: a tab character; YAML indents with spaces "
            f"only. Fix: replace the tab(s) on line {line} of the {what} with spaces."
        )
    problem = " ".join(filter(None, [getattr(error, "context", None), error.problem]))
    return f"{path}, line {line}, column {column}: {problem}. Fix: correct the {what} there."


def known_keys(settings_class: type, section: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A config section as a dict, after checking that every key is a field of the dataclass."""
    known = {field.name for field in fields(settings_class)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"{name} config: unknown keys {unknown}; known keys are {sorted(known)}")
    return dict(section)


def simulated_cohorts(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The simulated cohorts of the config, keyed by cohort name."""
    return {spec["name"]: spec for spec in config.get("simulate", {}).values()}


def tumour_masks(cohort: Mapping[str, Any]) -> str:
    """Where a cohort's tumour masks come from: ``reference`` (its sheet) or ``liver_only``."""
    return cohort.get("masks", "reference")


# (radiomics, crop) normalisations under which a liver-only cohort's prepared volumes can be
# normalised again once the tumour is predicted, with the result preparing with that mask
# would give: the first is an affine map that the second undoes (or an idempotent clip).
RENORMALISABLE: frozenset[tuple[str, str]] = frozenset(
    {
        ("none", "none"),
        ("none", "zscore"),
        ("none", "percentile"),
        ("none", "hu_window"),
        ("zscore", "zscore"),
        ("zscore", "percentile"),
        ("percentile", "percentile"),
    }
)


def _check_liver_only(config: Mapping[str, Any], cohorts: Mapping[str, Any]) -> None:
    """Liver-only cohorts: not the response cohort, and normalisations that can be redone."""
    for name, spec in cohorts.items():
        if tumour_masks(spec) != "liver_only":
            continue
        if name == config["cohorts"]["response"]:
            raise ConfigError(
                f"cohort {name!r} has masks: liver_only, but it is the response cohort, whose "
                "reference tumours train the segmentation model that draws liver-only cohorts' "
                "tumours. Give it tumour masks (masks: reference)."
            )
        imaging = config["imaging"]
        pair = (
            imaging["normalisation"][spec["modality"]],
            imaging["crop"]["normalisation"][spec["modality"]],
        )
        if pair not in RENORMALISABLE:
            raise ConfigError(
                f"cohort {name!r} has masks: liver_only, whose volumes are normalised again "
                f"once the tumour is predicted; imaging.normalisation.{spec['modality']} = "
                f"{pair[0]!r} with imaging.crop.normalisation.{spec['modality']} = {pair[1]!r} "
                f"cannot be. Use one of {sorted(RENORMALISABLE)}."
            )


def crop_size_voxels(box_mm: Sequence[float], spacing: Sequence[float]) -> tuple[int, int, int]:
    """Voxels per axis (x, y, z) for a box of `box_mm` at `spacing` (at least one)."""
    # Here, not in hccrad.imaging.crops (which crops with it): the config check needs it too, and
    # checking a config should not import SimpleITK.
    x, y, z = (max(1, round(float(b) / float(s))) for b, s in zip(box_mm, spacing, strict=True))
    return x, y, z


def _check_crop_fits_network(config: Mapping[str, Any]) -> None:
    """ConfigError when deep.spatial_size is not the tumour crop's size in voxels."""
    crop = config["imaging"]["crop"]
    spacing = config["imaging"]["spacing_mm"]
    x, y, z = crop_size_voxels(crop["box_mm"], spacing)
    spatial_size = list(config["deep"]["spatial_size"])
    # Crops are padded or cut about the tumour centre to spatial_size, so a mismatch would
    # silently cut large tumours or feed the network padding.
    if spatial_size != [z, y, x]:
        raise ConfigError(
            f"deep.spatial_size = {spatial_size} (z, y, x) but the tumour crops are "
            f"imaging.crop.box_mm = {list(crop['box_mm'])} mm at imaging.spacing_mm = "
            f"{list(spacing)}, i.e. {[z, y, x]} voxels; set deep.spatial_size to {[z, y, x]} "
            "or change the box or the spacing."
        )


def imported_cohorts(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The cohorts read from a table and/or downloaded (the `sheets` section), keyed by name."""
    return dict(config.get("sheets", {}))


def _check_planted_pathways(
    key: str, spec: Mapping[str, Any], gene_sets: Mapping[str, Sequence[str]], gmt: str
) -> None:
    """ConfigError for a planted pathway that would plant no gene."""
    planted = spec.get("planted_pathways", [])
    for index, pathway in enumerate(planted):
        name = pathway["pathway"]
        where = f"simulate.{key}.planted_pathways[{index}].pathway = {name!r}"
        if name not in gene_sets:
            raise ConfigError(
                f"{where} is not a gene set of {gmt} (e.g. {', '.join(sorted(gene_sets)[:3])})."
            )
        # The simulated gene universe holds every gene of every set of the GMT
        # (hccrad.cohorts.rnaseq_sim.gene_universe), so a set's genes exist exactly when it has any.
        if not gene_sets[name]:
            raise ConfigError(
                f"{where}: the gene set has no gene in {gmt}, so nothing would be planted. "
                "Fix: list its genes in the GMT file or plant another pathway."
            )
    fraction = spec.get("rnaseq", {}).get("responsive_fraction")
    if planted and fraction == 0:
        raise ConfigError(
            f"simulate.{key}.rnaseq.responsive_fraction = 0: no gene of the "
            f"{len(planted)} planted pathway(s) would follow its trait. Fix: set it above 0 "
            f"(default 0.8) or remove simulate.{key}.planted_pathways."
        )


def _check_imaging_ranges(config: Mapping[str, Any]) -> None:
    """ConfigError for a [min, max] range written backwards, or a ring too thin for the grid."""
    imaging = config["imaging"]
    for key, (low, high) in imaging.get("plausible", {}).items():
        if low > high:
            raise ConfigError(
                f"imaging.plausible.{key} = [{low}, {high}]: the minimum exceeds the maximum, "
                "so every patient would be refused. Fix: write it as [min, max]."
            )
    radiomics = config["radiomics"]
    finest = min(imaging["spacing_mm"])
    # The ring holds liver voxels whose centres lie within ring_mm of the tumour (physical
    # distance on the prepared grid): under one voxel's spacing, no voxel does.
    if "peritumoural" in radiomics["regions"] and radiomics["ring_mm"] < finest:
        raise ConfigError(
            f"radiomics.ring_mm = {radiomics['ring_mm']} is below the finest prepared spacing "
            f"({finest} mm, imaging.spacing_mm): the peritumoural ring would hold no voxel. Fix: "
            f"set ring_mm to at least {finest}, or drop peritumoural from radiomics.regions."
        )


def _check_radiogenomics_size(config: Mapping[str, Any], cohorts: Mapping[str, Any]) -> None:
    """ConfigError when a simulated radiogenomics cohort is smaller than the analysis needs."""
    minimum = config.get("radiogenomics", {}).get("min_matched_patients")
    name = config["cohorts"]["radiogenomics"]
    # An imported cohort's size is known only once its sheet is read (correlate_features
    # checks the matched patients then); a simulated one's is known now.
    if minimum is None or name not in simulated_cohorts(config):
        return
    spec = cohorts[name]
    n_patients = sum(centre["n_patients"] for centre in spec["centres"])
    if n_patients < minimum:
        raise ConfigError(
            f"cohort {spec['name']!r} simulates {n_patients} patient(s), fewer than "
            f"radiogenomics.min_matched_patients = {minimum}: the radiogenomics analysis would "
            f"stop once they are matched. Fix: raise its centres' n_patients or lower "
            "radiogenomics.min_matched_patients."
        )


def radiomics_for(radiomics: Mapping[str, Any], modality: str) -> dict[str, Any]:
    """The radiomics section with one modality's PyRadiomics settings (radiomics.settings.<m>)."""
    return {**radiomics, "settings": dict(radiomics["settings"][modality])}


def check_config(config: Mapping[str, Any], base_dir: str | Path = ".") -> None:
    """Raise ConfigError for cross-references that the schema cannot check."""
    imported = imported_cohorts(config)
    clash = sorted(set(imported) & set(simulated_cohorts(config)))
    if clash:
        raise ConfigError(f"cohort name(s) {clash} defined under both simulate and sheets.")
    cohorts = {**simulated_cohorts(config), **imported}
    for role, name in config["cohorts"].items():
        if name not in cohorts:
            raise ConfigError(
                f"cohorts.{role} = {name!r} names no cohort; defined: {sorted(cohorts)}. "
                f"Set cohorts.{role} to one of them or define it under simulate or sheets."
            )
        if cohorts[name]["role"] != role:
            raise ConfigError(
                f"cohorts.{role} = {name!r} is a {cohorts[name]['role']} cohort, not {role}."
            )
    _check_liver_only(config, cohorts)
    _check_radiogenomics_size(config, cohorts)
    _check_imaging_ranges(config)
    response = cohorts[config["cohorts"]["response"]]
    for endpoint in config["endpoints"]:
        if config["cohorts"]["response"] in imported:
            continue  # hccrad.cohorts.sheet_import.check_imported checks its column map
        if endpoint not in response.get("endpoints", {}):
            raise ConfigError(
                f"endpoints lists {endpoint!r}, which cohort {response['name']!r} does not "
                f"simulate; add simulate.response.endpoints.{endpoint} or drop it."
            )
    gmt = Path(base_dir) / config["gene_sets"]
    if not gmt.is_file():
        raise ConfigError(f"gene_sets: {gmt} does not exist; point it to a GMT file.")
    gene_sets = read_gmt(gmt)
    for key, spec in config.get("simulate", {}).items():
        _check_planted_pathways(key, spec, gene_sets, config["gene_sets"])
        for index, centre in enumerate(spec["centres"]):
            if centre["role"] == "development" and "internal_test_fraction" not in centre:
                raise ConfigError(
                    f"simulate.{key}.centres[{index}].internal_test_fraction is required for "
                    "a development centre (0 keeps every patient in training)."
                )
        if (
            not any(c["role"] == "development" for c in spec["centres"])
            and spec["role"] == "response"
        ):
            raise ConfigError(
                f"simulate.{key}.centres: a response cohort needs a development centre."
            )
    if "deep" in config:
        _check_crop_fits_network(config)
    deep = config.get("deep", {})
    if deep.get("min_epochs", 1) > deep.get("max_epochs", deep.get("min_epochs", 1)):
        raise ConfigError(
            f"deep.min_epochs = {deep['min_epochs']} exceeds deep.max_epochs = "
            f"{deep['max_epochs']}: no epoch could be kept. Lower min_epochs or raise max_epochs."
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hccrad.core.config FILE...``: name the file and line of any YAML syntax error."""
    # Snakemake reads --configfile files while parsing its command line, before the workflow
    # runs, and reports a syntax error without the file or line; this says where it is.
    paths = list(sys.argv[1:] if argv is None else argv)
    if not paths:
        print("usage: python -m hccrad.core.config CONFIG.yaml [MORE.yaml ...]", file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        try:
            read_yaml(path)
        except (ConfigError, OSError) as error:
            print(error, file=sys.stderr)
            status = 1
        else:
            print(f"{path}: valid YAML")
    return status


if __name__ == "__main__":
    sys.exit(main())
