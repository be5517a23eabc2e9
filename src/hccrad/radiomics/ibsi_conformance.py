"""hccrad's PyRadiomics on the IBSI-1 phantoms against the IBSI-1 reference values.

The test cases (resources/ibsi/configurations.yaml) override hccrad's parameter file with each
IBSI-1 configuration's interpolation, re-segmentation and discretisation; every feature with an
IBSI tag (hccrad.radiomics.ibsi) is compared with its reference, and each miss carries its known
reason: a documented PyRadiomics deviation or a setting PyRadiomics cannot express.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk  # noqa: N813  (the name SimpleITK itself documents)

from hccrad.core.config import read_yaml
from hccrad.radiomics.extract import extract_region, make_extractor
from hccrad.radiomics.ibsi import (
    IBSI_DIR,
    feature_tags,
    read_tag_map,
    settings_aggregation,
    tag_suffix,
)

CONFIGURATIONS_PATH = IBSI_DIR / "configurations.yaml"
CONFORMANCE_COLUMNS = [
    "configuration",
    "ibsi_tag",
    "pyradiomics_feature",
    "value",
    "reference",
    "tolerance",
    "within",
    "reason",
]


def read_configurations(path: str | Path = CONFIGURATIONS_PATH) -> dict[str, Any]:
    """The IBSI-1 test cases (digital phantom, CT configurations A-E) and their deviations."""
    return dict(read_yaml(path))


def read_reference(path: str | Path) -> pd.DataFrame:
    """An IBSI-1 reference table (``value;tolerance;tag``), features with a reference only."""
    table = pd.read_csv(path, sep=";")
    table.columns = ["reference", "tolerance", "ibsi_tag"]
    table = table.dropna(subset=["reference"])
    return table.set_index("ibsi_tag")[["reference", "tolerance"]].astype(float)


def conformance_params(
    hccrad_params: Mapping[str, Any], configuration: Mapping[str, Any]
) -> dict[str, Any]:
    """hccrad's parameters with one IBSI configuration's settings over them, original image only."""
    settings = dict(hccrad_params.get("setting") or {})
    for key, value in (configuration.get("settings") or {}).items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    # hccrad's crop/pad settings only speed up filters; IBSI-1 has no filtered images.
    settings.pop("padDistance", None)
    return {
        "imageType": {"Original": {}},
        "featureClass": dict(hccrad_params.get("featureClass") or {}),
        "setting": settings,
    }


def ibsi_values(
    image: sitk.Image,
    mask: sitk.Image,
    params: Mapping[str, Any],
    tag_map: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """PyRadiomics on an IBSI phantom: one row per IBSI tag (tag, PyRadiomics feature, value)."""
    features, _ = extract_region(image, mask, make_extractor(params))
    tags = feature_tags(features, params["setting"], tag_map)
    tag_map = read_tag_map() if tag_map is None else tag_map
    also = tag_map.set_index(["feature_class", "pyradiomics_feature"])["ibsi_also"]
    rows = []
    for record in tags.to_dict("records"):
        if not record["ibsi_tag"]:
            continue
        value = features[record["column"]]
        name = f"{record['feature_class']}_{record['pyradiomics_feature']}"
        rows.append({"ibsi_tag": record["ibsi_tag"], "pyradiomics_feature": name, "value": value})
        alias = also.get((record["feature_class"], record["pyradiomics_feature"]), "")
        for other in filter(None, alias.split(";")):
            full = f"{other}{tag_suffix(other, **settings_aggregation(params['setting']))}"
            rows.append({"ibsi_tag": full, "pyradiomics_feature": name, "value": value})
    return pd.DataFrame(rows, columns=["ibsi_tag", "pyradiomics_feature", "value"])


def within_tolerance(value: float, reference: float, tolerance: float) -> bool:
    """IBSI's match rule: within the tolerance, or equal at the reference's 3 significant digits."""
    # IBSI-1 reports consensus values to 3 significant digits, many with tolerance 0.
    return abs(value - reference) <= tolerance or float(f"{value:.3g}") == reference


def tag_family(tag: str) -> str:
    """The family of an IBSI tag as the deviations name it: morph, stat, ih or texture."""
    prefix = tag.split("_", 1)[0]
    return prefix if prefix in ("morph", "stat", "ih") else "texture"


def miss_reason(
    tag: str, configuration: Mapping[str, Any], feature_deviations: Mapping[str, str]
) -> str:
    """The known reason a feature misses: its own deviation, else its configuration's."""
    base = re.sub(r"_(2D|2_5D|3D)(_avg|_comb)?$", "", tag)
    if base in feature_deviations:
        return str(feature_deviations[base])
    family = tag_family(tag)
    reasons = [
        d["reason"] for d in configuration.get("deviations") or [] if family in d["families"]
    ]
    return "; ".join(reasons) if reasons else "unexplained"


def compare_with_reference(
    values: pd.DataFrame,
    reference: pd.DataFrame,
    name: str,
    configuration: Mapping[str, Any],
    feature_deviations: Mapping[str, str],
) -> pd.DataFrame:
    """One row per IBSI feature with both a value and a reference: within or not, and why not."""
    table = values.join(reference, on="ibsi_tag", how="inner")
    table["within"] = [
        within_tolerance(v, r, t)
        for v, r, t in zip(table["value"], table["reference"], table["tolerance"], strict=True)
    ]
    table["reason"] = [
        "" if ok else miss_reason(tag, configuration, feature_deviations)
        for tag, ok in zip(table["ibsi_tag"], table["within"], strict=True)
    ]
    table.insert(0, "configuration", name)
    return table[CONFORMANCE_COLUMNS].reset_index(drop=True)


def run_case(
    name: str,
    ibsi_dir: str | Path,
    hccrad_params: Mapping[str, Any],
    configurations: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The conformance rows of one IBSI-1 test case (phantom + configuration)."""
    configurations = read_configurations() if configurations is None else configurations
    ibsi_dir = Path(ibsi_dir)
    case = configurations["cases"][name]
    phantom = configurations["phantoms"][case["phantom"]]
    image = sitk.ReadImage(str(ibsi_dir / phantom["image"]))
    mask = sitk.ReadImage(str(ibsi_dir / phantom["mask"]))
    values = ibsi_values(image, mask, conformance_params(hccrad_params, case))
    reference = read_reference(ibsi_dir / configurations["references"] / case["reference"])
    deviations = (configurations.get("feature_deviations") or {}) | (
        case.get("feature_deviations") or {}
    )
    return compare_with_reference(values, reference, name, case, deviations)


def conformance(
    ibsi_dir: str | Path,
    hccrad_params: Mapping[str, Any],
    cases: Sequence[str] | None = None,
    configurations: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The conformance rows of every IBSI-1 test case (or of ``cases``), one table."""
    configurations = read_configurations() if configurations is None else configurations
    names = list(configurations["cases"]) if cases is None else list(cases)
    return pd.concat(
        [run_case(name, ibsi_dir, hccrad_params, configurations) for name in names],
        ignore_index=True,
    )


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per test case: IBSI features PyRadiomics computes (with a reference), within, missed."""
    grouped = table.groupby("configuration", sort=False)["within"]
    summary = pd.DataFrame({"computed": grouped.size(), "within": grouped.sum()})
    summary["missed"] = summary["computed"] - summary["within"]
    return summary.reset_index()


def conformance_page(table: pd.DataFrame, configurations: Mapping[str, Any]) -> str:
    """The Markdown page beside the conformance table: counts, then every miss's reason."""
    lines = [
        "# IBSI-1 conformance of hccrad's PyRadiomics",
        "",
        "Written by `hccrad.radiomics.ibsi_conformance` (rule `ibsi_conformance`); the rows are in",
        "`conformance.tsv` beside this page. hccrad's CT parameter file with each IBSI-1 test",
        "case's interpolation, re-segmentation and discretisation over it",
        "(`configurations.yaml`), original image only. A value is within when it lies within the",
        "IBSI tolerance or equals the reference at its 3 significant digits. 2D configurations",
        "(A, B) are compared on the IBSI 2.5D texture references: PyRadiomics' force2D merges",
        "the slices' matrices, it does not average per-slice features.",
        "",
        "| test case | IBSI features computed | within tolerance | missed |",
        "| --- | --- | --- | --- |",
    ]
    for row in summarise(table).itertuples():
        lines.append(f"| {row.configuration} | {row.computed} | {row.within} | {row.missed} |")
    lines += ["", "## Why each miss misses", ""]
    misses = table[~table["within"]]
    for name, group in misses.groupby("configuration", sort=False):
        lines.append(f"### {name}")
        lines.append("")
        for reason, features in group.groupby("reason", sort=False)["ibsi_tag"]:
            lines.append(f"- {reason}: {', '.join(features)}")
        lines.append("")
    return "\n".join(lines)
