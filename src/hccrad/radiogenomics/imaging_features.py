"""The imaging side of radiogenomics: which imaging features meet which patients' RNA-seq.

- Deep features are selected on the response cohort's TRAINING split only: univariable
  importance |AUC - 0.5| of each feature for the endpoint (equivalently |Spearman rho| with
  it: both are functions of the Mann-Whitney U), top k by importance, ties by name. Features
  constant in the training rows or in the radiogenomics cohort cannot be correlated and are
  never selected (an unsupervised filter: no outcome of any other row is read).
- Patients: a patient is analysed when the cohort sheet, every imaging table in use and the
  RNA-seq all have them; everyone else is listed with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from hccrad.core.plan import RadiogenomicsInputError
from hccrad.radiogenomics.expression import ID_COLUMN
from hccrad.stats.checks import MAX_PATIENTS_NAMED

DLTR_FEATURE = "dltr_score"


# --------------------------------------------------------------------------- feature selection


def univariable_auc(features: pd.DataFrame, outcome: pd.Series) -> pd.Series:
    """AUC of every column of ``features`` (patients x features) for a 0/1 outcome."""
    y = outcome.loc[features.index].to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise ValueError("outcome must be 0/1 for every patient of the feature table")
    n_positive, n_negative = int(y.sum()), int((1 - y).sum())
    if n_positive == 0 or n_negative == 0:
        raise ValueError(
            f"outcome has a single class ({n_positive} positive, {n_negative} negative)"
        )
    # Mann-Whitney: AUC = (rank sum of the positives - n1 (n1 + 1) / 2) / (n1 n0), mid-ranks
    # for ties, which is what sklearn.metrics.roc_auc_score gives.
    ranks = stats.rankdata(features.to_numpy(dtype=float), method="average", axis=0)
    rank_sum = ranks[y == 1].sum(axis=0)
    auc = (rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)
    return pd.Series(auc, index=features.columns, name="auc_train")


def _constant_columns(frame: pd.DataFrame) -> pd.Index:
    """Columns with a single value (or none) over the rows."""
    values = frame.to_numpy(dtype=float)
    return frame.columns[(np.nanmax(values, axis=0) == np.nanmin(values, axis=0))]


def select_deep_features(
    train_features: pd.DataFrame,
    train_outcome: pd.Series,
    analysis_features: pd.DataFrame,
    top_k: int | None,
) -> pd.DataFrame:
    """Rank deep features by training |AUC - 0.5|; select the top k (None: all usable ones).

    Returns one row per feature: auc_train, importance, rank, selected and, for features that
    cannot be selected, the reason.
    """
    missing = analysis_features.columns.difference(train_features.columns)
    if len(missing):
        raise RadiogenomicsInputError(
            f"deep features of the radiogenomics cohort not in the response cohort's table: "
            f"{list(missing[:5])}; both must come from the same DLTR network"
        )
    train = train_features.loc[:, analysis_features.columns]
    auc = univariable_auc(train, train_outcome)
    table = pd.DataFrame({"auc_train": auc, "importance": (auc - 0.5).abs()})
    table.index.name = "feature"
    reason = pd.Series("", index=table.index, dtype=object)
    reason[_constant_columns(analysis_features)] = "constant in the radiogenomics cohort"
    reason[_constant_columns(train)] = "constant in the training split"
    table["reason"] = reason
    usable = table[reason == ""].rename_axis("feature").reset_index()
    usable = usable.sort_values(["importance", "feature"], ascending=[False, True], kind="stable")
    rank = pd.Series(np.arange(1, len(usable) + 1), index=usable["feature"].to_numpy())
    table["rank"] = rank.reindex(table.index).astype("Int64")
    limit = len(usable) if top_k is None else top_k
    table["selected"] = table["rank"].fillna(limit + 1).le(limit).astype(bool)
    table.loc[table["reason"].eq("") & ~table["selected"], "reason"] = (
        f"not among the top {limit} by training importance"
    )
    return table.sort_values(["rank", "feature"], na_position="last", kind="stable")


# --------------------------------------------------------------------------- patients


def match_patients(
    sheet_patients: Iterable[str], tables: Mapping[str, Iterable[str]]
) -> tuple[list[str], pd.DataFrame]:
    """Patients present in the sheet and in every table; a row per patient with the reason."""
    sheet = list(dict.fromkeys(str(p) for p in sheet_patients))
    members = {name: {str(p) for p in patients} for name, patients in tables.items()}
    everyone = sorted(set(sheet).union(*members.values()))
    in_sheet = set(sheet)
    rows = []
    for patient in everyone:
        lacks = [name for name, present in members.items() if patient not in present]
        reasons = [] if patient in in_sheet else ["not in the cohort sheet"]
        reasons += [f"no {name}" for name in lacks]
        rows.append(
            {
                ID_COLUMN: patient,
                "in_sheet": patient in in_sheet,
                **{f"has_{name.replace(' ', '_')}": name not in lacks for name in members},
                "analysed": not reasons,
                "reason": "; ".join(reasons),
            }
        )
    table = pd.DataFrame(rows).set_index(ID_COLUMN)
    analysed = table.index[table["analysed"]].tolist()
    return analysed, table


def _some(names: Sequence[str]) -> str:
    """The first few of ``names``, then how many more."""
    more = len(names) - MAX_PATIENTS_NAMED
    shown = "; ".join(names[:MAX_PATIENTS_NAMED]) or "none"
    return f"{shown} (+{more} more)" if more > 0 else shown


def _too_few_matched(
    analysed: Sequence[str], patients: pd.DataFrame, min_patients: int, cohort: str
) -> str:
    """One line: how many matched, who did not and why, and the fix."""
    unmatched = patients.loc[~patients["analysed"], "reason"]
    return (
        f"{cohort}: only {len(analysed)} patient(s) have both imaging features and RNA-seq "
        f"({_some(list(analysed))}); at least {max(min_patients, 3)} are needed "
        f"(radiogenomics.min_matched_patients = {min_patients}). Not matched, "
        f"{len(unmatched)}: {_some([f'{p} ({why})' for p, why in unmatched.items()])}. Fix: "
        "make the RNA-seq samples' patient barcodes and the cohort sheet's patient ids name "
        "the same patients (ids exactly as written), add patients, or lower "
        "radiogenomics.min_matched_patients."
    )


def imaging_matrix(
    deep: pd.DataFrame | None,
    selected: Sequence[str],
    dltr_score: pd.Series | None = None,
    radiomics: pd.DataFrame | None = None,
    patients: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Features x patients: the selected deep features, the DLTR score, radiomic features."""
    parts = []
    if deep is not None and len(selected):
        parts.append(deep.loc[:, list(selected)])
    if dltr_score is not None:
        parts.append(dltr_score.rename(DLTR_FEATURE).to_frame())
    if radiomics is not None:
        clash = sorted(set(radiomics.columns) & {DLTR_FEATURE, *selected})
        if clash:
            raise RadiogenomicsInputError(f"radiomic feature names clash with others: {clash}")
        parts.append(radiomics)
    if not parts:
        raise RadiogenomicsInputError(
            "no imaging feature to correlate: select deep features, include the DLTR score or "
            "include radiomic features (config radiogenomics.features)"
        )
    index = pd.Index(patients) if patients is not None else parts[0].index
    matrix = pd.concat([part.reindex(index) for part in parts], axis=1)
    bad = matrix.columns[matrix.isna().any()]
    if len(bad):
        rows = matrix.index[matrix[bad].isna().any(axis=1)]
        raise RadiogenomicsInputError(
            f"imaging features {list(bad[:5])} are missing for patients {list(rows[:5])}"
        )
    matrix.index.name = ID_COLUMN
    return matrix.T.rename_axis("feature")


DeepSelection = Literal["top_k", "all", "none"]


@dataclass(frozen=True)
class ImagingFeatures:
    """The imaging side of the analysis: the matrix, how features were chosen, which patients."""

    matrix: pd.DataFrame  # features x patients (the analysed patients, sorted)
    selection: pd.DataFrame  # one row per candidate feature: source, auc_train, ..., selected
    patients: pd.DataFrame  # one row per patient of any input: what it has, analysed, reason


def assemble_imaging(
    sheet_patients: Iterable[str],
    expression_patients: Iterable[str],
    deep: pd.DataFrame | None = None,
    train_deep: pd.DataFrame | None = None,
    train_outcome: pd.Series | None = None,
    deep_selection: DeepSelection = "top_k",
    top_k: int = 10,
    dltr_score: pd.Series | None = None,
    radiomics: pd.DataFrame | None = None,
    min_patients: int = 3,
    cohort: str = "the radiogenomics cohort",
) -> ImagingFeatures:
    """Match patients across the inputs, select deep features on training rows, build the matrix.

    Fewer than ``min_patients`` matched (radiogenomics.min_matched_patients; at least 3, the
    fewest a correlation can be computed on) is a RadiogenomicsInputError naming who failed.
    """
    tables: dict[str, Iterable[str]] = {"RNA-seq": expression_patients}
    if deep_selection != "none":
        if deep is None or train_deep is None or train_outcome is None:
            raise ValueError("deep feature selection needs deep, train_deep and train_outcome")
        tables["deep features"] = deep.index
    if dltr_score is not None:
        tables["DLTR score"] = dltr_score.dropna().index
    if radiomics is not None:
        tables["radiomic features"] = radiomics.dropna().index
    analysed, patients = match_patients(sheet_patients, tables)
    if len(analysed) < max(min_patients, 3):
        raise RadiogenomicsInputError(_too_few_matched(analysed, patients, min_patients, cohort))
    rows, selected = [], []
    if deep_selection != "none":
        assert deep is not None and train_deep is not None and train_outcome is not None
        train = train_deep.loc[train_deep.index.intersection(train_outcome.index)]
        if train.empty:
            raise RadiogenomicsInputError(
                "no training patient of the response cohort has deep features"
            )
        ranked = select_deep_features(
            train, train_outcome, deep.loc[analysed], None if deep_selection == "all" else top_k
        )
        selected = ranked.index[ranked["selected"]].tolist()
        rows.append(ranked.assign(source="deep", n_train=len(train)))
    if dltr_score is not None:
        rows.append(_fixed_rows([DLTR_FEATURE], "DLTR score"))
    if radiomics is not None:
        rows.append(_fixed_rows(list(radiomics.columns), "radiomics"))
    matrix = imaging_matrix(
        deep.loc[analysed] if deep is not None and deep_selection != "none" else None,
        selected,
        dltr_score.loc[analysed] if dltr_score is not None else None,
        radiomics.loc[analysed] if radiomics is not None else None,
        patients=analysed,
    )
    selection = pd.concat(rows).rename_axis("feature").reset_index()
    columns = ["feature", "source", "selected", "rank", "auc_train", "importance", "n_train"]
    selection = selection.reindex(columns=[*columns, "reason"])
    return ImagingFeatures(matrix=matrix, selection=selection, patients=patients)


def _fixed_rows(features: Sequence[str], source: str) -> pd.DataFrame:
    """Selection rows for features that are always used (not selected by importance)."""
    return pd.DataFrame(
        {"source": source, "selected": True, "reason": ""},
        index=pd.Index(features, name="feature"),
    )
