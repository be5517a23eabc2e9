"""The models' inputs: the sheet without exclusions, feature tables, deep scores, the outcome.

Every table is checked against the cohort sheet's patients, so a message names the table, the
columns and the patients at fault.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from hccrad.core.splits import TRAIN
from hccrad.stats.checks import check_binary_outcome, name_patients, require_columns

RADIOMICS = "radiomics"
DEEP = "deep"
FEATURE_SOURCES: tuple[str, ...] = (RADIOMICS, DEEP)
DEEP_PREFIX = "deep_"


# --------------------------------------------------------------------------- inputs


def check_feature_table(table: pd.DataFrame, name: str, patients: pd.Index) -> pd.DataFrame:
    """The table's rows for ``patients`` as floats, else ValueError naming patients/columns."""
    if table.index.has_duplicates:
        duplicated = table.index[table.index.duplicated()].unique()
        raise ValueError(
            f"feature table {name!r}: duplicated patient(s) {name_patients(duplicated)}"
        )
    absent = patients.difference(table.index, sort=False)
    if len(absent):
        raise ValueError(
            f"feature table {name!r} lacks {len(absent)} patient(s) of the cohort sheet: "
            f"{name_patients(absent)}"
        )
    rows = table.loc[patients]
    non_numeric = [c for c in rows.columns if not pd.api.types.is_numeric_dtype(rows[c])]
    if non_numeric:
        raise ValueError(f"feature table {name!r}: non-numeric column(s) {non_numeric[:10]}")
    values = rows.astype(float)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        bad_rows, bad_columns = bad.any(axis=1), bad.any(axis=0)
        raise ValueError(
            f"feature table {name!r}: NaN or infinite values for {int(bad_rows.sum())} "
            f"patient(s): {name_patients(values.index[bad_rows])}; in column(s) "
            f"{list(values.columns[bad_columns][:10])}"
        )
    return values


def assemble_inputs(
    sheet: pd.DataFrame, features: Mapping[str, pd.DataFrame]
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Sheet and feature tables joined on patient_id, and each table's column names."""
    unknown = sorted(set(features) - set(FEATURE_SOURCES))
    if unknown:
        raise ValueError(f"feature tables {unknown} unknown; expected some of {FEATURE_SOURCES}")
    require_columns(sheet, ["split", "centre"], "cohort sheet")
    parts, columns = [sheet], {}
    for name, table in features.items():
        values = check_feature_table(table, name, sheet.index)
        clash = sorted(set(values.columns) & set().union(*(p.columns for p in parts)))
        if clash:
            raise ValueError(f"feature table {name!r}: column(s) {clash[:10]} also elsewhere")
        parts.append(values)
        columns[name] = list(values.columns)
    return pd.concat(parts, axis=1), columns


def training_outcome(sheet: pd.DataFrame, endpoint: str) -> pd.Series:
    """The endpoint on the train split as 0/1, else ValueError naming endpoint and patients."""
    require_columns(sheet, [endpoint, "split"], "cohort sheet")
    train = sheet.index[sheet["split"] == TRAIN]
    if len(train) == 0:
        raise ValueError(f"endpoint {endpoint!r}: the cohort sheet has no patient in split 'train'")
    outcome = sheet.loc[train, endpoint]
    values = pd.to_numeric(outcome, errors="coerce")
    if values.notna().all() and values.nunique() == 1 and values.iloc[0] in (0, 1):
        raise ValueError(
            f"endpoint {endpoint!r} in split 'train': all {len(train)} training patient(s) have "
            f"{endpoint} = {values.iloc[0]:g} (a single class); a model needs both to learn. Fix: "
            f"check the {endpoint!r} column of the cohort sheet (or its column map), or drop "
            f"{endpoint!r} from endpoints."
        )
    # check_binary_outcome names the patients (missing or not 0/1).
    y = check_binary_outcome(outcome, context=f"endpoint {endpoint!r} in split 'train'")
    return pd.Series(y, index=train, name=endpoint)


def with_endpoint(sheet: pd.DataFrame, endpoint: str) -> tuple[pd.DataFrame, list[str]]:
    """The sheet's patients with a value of the endpoint, and the ids of those without one.

    A sheet may keep patients without an endpoint for its survival analyses (an unread
    response, censoring before a TTP threshold); the train/test models of that endpoint can
    neither fit nor evaluate them, so they leave it, named by the caller's log.
    """
    require_columns(sheet, [endpoint], "cohort sheet")
    lacking = sheet.index[sheet[endpoint].isna()]
    return sheet.drop(index=lacking), list(lacking)


def without_exclusions(sheet: pd.DataFrame, exclusions: pd.DataFrame) -> pd.DataFrame:
    """The sheet without the patients that image preparation excluded (exclusions.tsv)."""
    excluded = sheet.index.intersection(exclusions.index)
    return sheet.drop(index=excluded)


def deep_score_table(
    scores: pd.DataFrame, sheet: pd.DataFrame, column: str = "dltr_score"
) -> pd.DataFrame:
    """The deep model's score column per patient, checked against the sheet's splits.

    ``scores`` is the deep rule's scores.tsv indexed by patient_id (split, centre, the score
    and score_source: out-of-fold for training rows, the refitted network for the others).
    """
    require_columns(scores, [column], "deep scores table")
    if "split" in scores.columns:
        shared = sheet.index.intersection(scores.index)
        differs = shared[
            scores.loc[shared, "split"].astype(str).to_numpy()
            != sheet.loc[shared, "split"].astype(str).to_numpy()
        ]
        if len(differs):
            raise ValueError(
                f"deep scores table: split differs from the cohort sheet for "
                f"{name_patients(differs)}; rerun the deep-learning rules on this sheet"
            )
    return scores[[column]].astype(float)
