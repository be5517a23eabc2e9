"""IBSI-1 tags for PyRadiomics features, and hccrad's conformance on the IBSI-1 phantoms.

The tag map (resources/ibsi/pyradiomics_ibsi_tags.tsv) names the IBSI-1 feature of each
PyRadiomics feature; the aggregation suffix of a texture tag (``_3D_avg``, ``_2_5D``, ...) follows
from the extraction settings: PyRadiomics computes one matrix per direction over the whole volume
(IBSI 3D) or, with force2D, over all slices per in-plane direction (IBSI 2.5D), and averages the
features over directions unless ``weightingNorm`` merges the matrices first (IBSI "comb").
hccrad.radiomics.ibsi_conformance holds the conformance on the IBSI-1 phantoms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

IBSI_DIR = Path(__file__).resolve().parents[3] / "resources" / "ibsi"
TAGS_PATH = IBSI_DIR / "pyradiomics_ibsi_tags.tsv"
# IBSI families whose tag carries a direction aggregation (_avg / _comb) besides the dimension.
DIRECTIONAL = ("cm_", "rlm_")
# Families whose tag carries the dimension only (one matrix for all directions).
TEXTURE = ("szm_", "dzm_", "ngt_", "ngl_")
# PyRadiomics feature names are <image type>_<class>_<feature>, e.g. original_glcm_Idmn.
CLASSES = ("shape2D", "shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


def read_tag_map(path: str | Path = TAGS_PATH) -> pd.DataFrame:
    """The PyRadiomics -> IBSI tag map, one row per (feature class, feature)."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    duplicated = table.duplicated(["feature_class", "pyradiomics_feature"])
    if duplicated.any():
        raise ValueError(f"{path}: features listed twice: {table[duplicated].to_dict('records')}")
    return table


def tag_suffix(tag: str, *, force2d: bool, merged_directions: bool) -> str:
    """The IBSI aggregation suffix of a tag under PyRadiomics' settings ('' for non-texture)."""
    dimension = "2_5D" if force2d else "3D"
    if tag.startswith(DIRECTIONAL):
        return f"_{dimension}_{'comb' if merged_directions else 'avg'}"
    if tag.startswith(TEXTURE):
        return f"_{dimension}"
    return ""


def split_feature_name(name: str) -> tuple[str, str, str] | None:
    """(image type, class, feature) of a PyRadiomics name, None if it is not one."""
    for cls in CLASSES:
        marker = f"_{cls}_"
        if marker in name:
            image_type, feature = name.rsplit(marker, 1)
            return image_type, cls, feature
    return None


def settings_aggregation(settings: Mapping[str, Any]) -> dict[str, bool]:
    """force2d and merged_directions as PyRadiomics' settings imply them."""
    return {
        "force2d": bool(settings.get("force2D", False)),
        "merged_directions": settings.get("weightingNorm") is not None,
    }


TAG_COLUMNS = [
    "column",
    "prefix",
    "image_type",
    "feature_class",
    "pyradiomics_feature",
    "ibsi_tag",
    "filtered",
    "note",
]


def feature_tags(
    columns: Iterable[str],
    settings: Mapping[str, Any],
    tag_map: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per feature column: its prefix, image type, class, feature and full IBSI tag.

    Columns may carry a prefix before the PyRadiomics name (hccrad's ``<phase>_<region>_``).
    The tag is empty where IBSI-1 has no such feature; ``filtered`` marks features of filtered
    images (LoG, wavelet...), for which IBSI-1 gives no reference (IBSI-2 covers filters).
    """
    tag_map = read_tag_map() if tag_map is None else tag_map
    lookup = tag_map.set_index(["feature_class", "pyradiomics_feature"])
    aggregation = settings_aggregation(settings)
    rows = []
    for column in columns:
        parts = split_feature_name(column)
        if parts is None:
            rows.append({"column": column, "ibsi_tag": "", "note": "not a PyRadiomics feature"})
            continue
        before, cls, feature = parts
        # PyRadiomics image types (original, log-sigma-1-0-mm-3D, wavelet-LLH) hold no "_".
        prefix, _, image_type = before.rpartition("_")
        known = (cls, feature) in lookup.index
        tag = lookup.loc[(cls, feature), "ibsi_tag"] if known else ""
        rows.append(
            {
                "column": column,
                "prefix": prefix,
                "image_type": image_type,
                "feature_class": cls,
                "pyradiomics_feature": feature,
                "ibsi_tag": f"{tag}{tag_suffix(tag, **aggregation)}" if tag else "",
                "filtered": image_type != "original",
                "note": lookup.loc[(cls, feature), "note"] if known else "not in the IBSI tag map",
            }
        )
    return pd.DataFrame(rows).reindex(columns=TAG_COLUMNS)
