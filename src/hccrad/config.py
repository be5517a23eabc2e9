"""Checks of the configuration that a JSON schema cannot express (cross-references, files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from hccrad.genesets import read_gmt


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key and the fix."""


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
    # Here, not in hccrad.imaging (which crops with it): the config check needs it too, and
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
    response = cohorts[config["cohorts"]["response"]]
    for endpoint in config["endpoints"]:
        if config["cohorts"]["response"] in imported:
            continue  # hccrad.sheet_import.check_imported checks its column map
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
        for index, planted in enumerate(spec.get("planted_pathways", [])):
            if planted["pathway"] not in gene_sets:
                raise ConfigError(
                    f"simulate.{key}.planted_pathways[{index}].pathway = "
                    f"{planted['pathway']!r} is not a gene set of {config['gene_sets']} "
                    f"(e.g. {', '.join(sorted(gene_sets)[:3])})."
                )
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
