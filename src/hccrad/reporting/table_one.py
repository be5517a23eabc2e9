"""Descriptive tables: Table 1 of clinical characteristics by centre and split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from tableone import TableOne

from hccrad.core.splits import INTERNAL_TEST, RADIOGENOMICS, TRAIN

CONTINUOUS: tuple[str, ...] = (
    "age",
    "tumour_size_mm",
    "afp",
    "albi_score",
    "pfs_time",
    "ttp_time",
    "os_time",
)
CATEGORICAL: tuple[str, ...] = (
    "sex",
    "aetiology",
    "bclc",
    "tumour_number",
    "child_pugh",
    "albi_grade",
    "response",
    "proliferative",
    "pfs_event",
    "ttp_event",
    "os_event",
)
# Skewed variables are summarised as median [Q1, Q3] and compared with Kruskal-Wallis.
NONNORMAL: tuple[str, ...] = ("tumour_size_mm", "afp", "pfs_time", "ttp_time", "os_time")


def split_rank(split: str) -> tuple[int, str]:
    """Sort key for splits: train, internal test, external centres, radiogenomics."""
    order = {TRAIN: 0, INTERNAL_TEST: 1, RADIOGENOMICS: 3}
    return order.get(split, 2), split


def _category_label(value: object) -> object:
    """A category as text (1.0 -> '1'); missing stays NaN so tableone counts it as missing."""
    if pd.isna(value):
        return np.nan
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def table_one(sheet: pd.DataFrame, group_order: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 1 (n (%) or mean (SD) / median [Q1,Q3]) by group, with P values and missingness."""
    continuous = [c for c in CONTINUOUS if c in sheet.columns]
    categorical = [c for c in CATEGORICAL if c in sheet.columns]
    data = sheet[continuous + categorical].copy()
    for column in categorical:
        # Categories as text, so that 0/1 columns are tabulated, not averaged.
        data[column] = data[column].map(
            lambda v: None if pd.isna(v) else str(int(v)) if isinstance(v, float) else str(v)
        )
    # One column per split; external splits are named after their centre (external_B).
    data["group"] = sheet["split"].astype(str).to_numpy()
    groups = list(group_order) if group_order else sorted(data["group"].unique(), key=split_rank)
    several = len(groups) > 1
    table = TableOne(
        data.reset_index(drop=True),
        columns=continuous + categorical,
        categorical=categorical,
        nonnormal=[c for c in NONNORMAL if c in continuous],
        groupby="group" if several else None,
        order={"group": groups} if several else None,
        pval=several,
        htest_name=several,
        missing=True,
        overall=True,
        decimals=1,
    )
    frame = table.tableone.copy()
    frame.columns = [
        " ".join(str(x) for x in c if x and not str(x).startswith("Grouped")).strip()
        for c in frame.columns
    ]
    frame.index = [" ".join(str(x) for x in i if x).strip() for i in frame.index]
    frame.index.name = "characteristic"
    return frame
