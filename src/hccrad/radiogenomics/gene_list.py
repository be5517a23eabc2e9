"""Radiogenomics glue: which imaging features meet which patients' RNA-seq, the gene list, truth.

The statistics live in the modules beside this one: expression (counts, VST), correlate
(feature x gene correlation), differential (DESeq2) and enrich (ORA, GSEA); this module decides
what goes into them:

- Deep features are selected on the response cohort's TRAINING split only: univariable
  importance |AUC - 0.5| of each feature for the endpoint (equivalently |Spearman rho| with
  it: both are functions of the Mann-Whitney U), top k by importance, ties by name. Features
  constant in the training rows or in the radiogenomics cohort cannot be correlated and are
  never selected (an unsupervised filter: no outcome of any other row is read).
- Patients: a patient is analysed when the cohort sheet, every imaging table in use and the
  RNA-seq all have them; everyone else is listed with the reason.
- The gene list: a gene is listed when any selected feature correlates with it at P <
  ``p_threshold`` (the study's rule) and flagged when it also passes the FDR rule
  (Benjamini-Hochberg over all feature-gene pairs by default). Each gene is reported with its
  strongest feature (smallest P, ties by |rho| then name).
- The GSEA ranking (``ranking_statistic``): ``max_abs_rho`` ranks genes by their strongest
  correlation with any selected feature, the threshold-free counterpart of the gene list
  (unsigned: a gene that rises with one feature and falls with another ranks as high);
  ``dltr_score`` by their signed rho with the DLTR score; ``de_stat`` by DESeq2's Wald
  statistic (high vs low DLTR score).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

# Defined with the checks the Snakefile's parse runs; imported from here by callers.
from hccrad.core.plan import RadiogenomicsInputError as RadiogenomicsInputError
from hccrad.core.plan import check_radiogenomics_settings as check_settings  # noqa: F401
from hccrad.radiogenomics.correlate import CorrelationResult, correlate
from hccrad.radiogenomics.enrich import GeneSetCollection, benjamini_hochberg, collapse_to_symbols

ID_COLUMN = "patient_id"
DLTR_FEATURE = "dltr_score"
RadiogenomicsRanking = Literal["max_abs_rho", "dltr_score", "de_stat"]
FdrScope = Literal["all_pairs", "per_feature"]
FDR_COLUMNS: dict[str, str] = {"all_pairs": "fdr_all", "per_feature": "fdr_feature"}
GENE_LIST_COLUMNS: tuple[str, ...] = (
    "gene_id",
    "symbol",
    "feature",
    "rho",
    "p",
    "fdr",
    "fdr_feature",
    "n_features_p",
    "n_features_fdr",
    "pass_p_rule",
    "pass_fdr_rule",
)
RULES: tuple[str, ...] = ("p_rule", "fdr_rule")


# --------------------------------------------------------------------------- matrices on disk


def write_expression(matrix: pd.DataFrame, path: str | Path) -> None:
    """Write a genes x patients matrix as Parquet with one row per patient (index patient_id)."""
    table = matrix.T
    table.index = pd.Index(table.index.astype(str), name=ID_COLUMN)
    table.columns = pd.Index(table.columns.astype(str), name="gene_id")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path)


def read_expression(path: str | Path) -> pd.DataFrame:
    """Read a matrix written by :func:`write_expression` back as genes x patients."""
    table = pd.read_parquet(path)
    table.index = pd.Index(table.index.astype(str), name=ID_COLUMN)
    return table.T.rename_axis("gene_id")


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


# Patients named in a message; the rest are counted.
MAX_PATIENTS_NAMED = 10


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


# --------------------------------------------------------------------------- gene list


def long_table(result: CorrelationResult, symbols: pd.Series) -> pd.DataFrame:
    """Every feature-gene pair with its gene symbol (feature, gene_id, symbol, rho, p, FDRs)."""
    table = result.to_long().rename(columns={"gene": "gene_id"})
    table.insert(2, "symbol", symbols.reindex(table["gene_id"].astype(str)).to_numpy())
    return table


def gene_list(
    result: CorrelationResult,
    symbols: pd.Series,
    p_threshold: float = 0.05,
    fdr_threshold: float = 0.05,
    fdr_scope: FdrScope = "all_pairs",
) -> pd.DataFrame:
    """Genes correlated with any feature at P < p_threshold, each with its strongest feature."""
    p = result.p
    fdr = getattr(result, FDR_COLUMNS[fdr_scope])
    with np.errstate(invalid="ignore"):
        pass_p = p < p_threshold
        pass_fdr = fdr < fdr_threshold
    listed = np.flatnonzero(pass_p.any(axis=0))
    # Strongest feature: smallest P (equal P means equal |rho|: same n and method); ties go to
    # the first feature in the matrix order (deep features by rank, DLTR score, radiomics).
    order = np.argmin(np.nan_to_num(p, nan=np.inf), axis=0)
    gene_ids = result.genes.astype(str)
    table = pd.DataFrame(
        {
            "gene_id": gene_ids[listed],
            "symbol": symbols.reindex(gene_ids[listed]).to_numpy(),
            "feature": result.features.astype(str)[order[listed]],
            "rho": result.rho[order[listed], listed],
            "p": p[order[listed], listed],
            "fdr": fdr[order[listed], listed],
            "fdr_feature": result.fdr_feature[order[listed], listed],
            "n_features_p": pass_p[:, listed].sum(axis=0),
            "n_features_fdr": pass_fdr[:, listed].sum(axis=0),
        }
    )
    table["pass_p_rule"] = True
    table["pass_fdr_rule"] = table["n_features_fdr"] > 0
    table = table.sort_values(["p", "gene_id"], kind="stable").reset_index(drop=True)
    return table.loc[:, list(GENE_LIST_COLUMNS)]


def _genes_passing(
    result: CorrelationResult, p_threshold: float, fdr_threshold: float, fdr_scope: FdrScope
) -> dict[str, np.ndarray]:
    """Per rule, a features x genes mask of passing pairs."""
    with np.errstate(invalid="ignore"):
        return {
            "p_rule": result.p < p_threshold,
            "fdr_rule": getattr(result, FDR_COLUMNS[fdr_scope]) < fdr_threshold,
        }


def correlation_summary(
    result: CorrelationResult,
    features: pd.DataFrame,
    expression: pd.DataFrame,
    p_threshold: float = 0.05,
    fdr_threshold: float = 0.05,
    fdr_scope: FdrScope = "all_pairs",
    null_permutations: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Genes (and pairs) passing each rule, per feature and for any feature, with the chance level.

    The chance level is the mean number over ``null_permutations`` runs with the patients of
    the imaging features permuted together (their correlation with each other kept, their link
    to expression broken): what the rule lists when nothing is there.
    """
    observed = _genes_passing(result, p_threshold, fdr_threshold, fdr_scope)
    rng = np.random.default_rng(seed)
    null: dict[str, list[np.ndarray]] = {rule: [] for rule in RULES}
    for _ in range(null_permutations):
        shuffled = features.iloc[:, rng.permutation(features.shape[1])]
        shuffled.columns = features.columns
        permuted = correlate(
            shuffled, expression, method=result.method, device="numpy", progress=False
        )
        for rule, passing in _genes_passing(
            permuted, p_threshold, fdr_threshold, fdr_scope
        ).items():
            null[rule].append(
                np.append(passing.sum(axis=1), passing.any(axis=0).sum()).astype(float)
            )
    names = [*result.features.astype(str), "any"]
    rows = []
    for rule in RULES:
        passing = observed[rule]
        genes = np.append(passing.sum(axis=1), passing.any(axis=0).sum())
        pairs = np.append(passing.sum(axis=1), passing.sum())
        chance = np.mean(null[rule], axis=0) if null_permutations else np.full(len(names), np.nan)
        for i, name in enumerate(names):
            rows.append(
                {
                    "rule": rule,
                    "threshold": p_threshold if rule == "p_rule" else fdr_threshold,
                    "fdr_scope": "" if rule == "p_rule" else fdr_scope,
                    "feature": name,
                    "n_genes": int(genes[i]),
                    "n_pairs": int(pairs[i]),
                    "n_genes_chance": chance[i],
                    "genes_tested": len(result.genes),
                    "fraction_of_genes": genes[i] / len(result.genes),
                    "n_samples": result.n_samples,
                    "method": result.method,
                    "null_permutations": null_permutations,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- enrichment inputs


def background_symbols(correlations: pd.DataFrame) -> list[str]:
    """Symbols of the genes that were tested (a finite correlation in the long table).

    This is the ORA background: the genes that could have entered the list, not the genome.
    """
    tested = correlations.loc[np.isfinite(correlations["rho"].to_numpy()), "symbol"].dropna()
    return sorted({str(s) for s in tested if str(s)})


def rho_matrix(correlations: pd.DataFrame) -> pd.DataFrame:
    """Features x genes rho from the long table (feature, gene_id, rho)."""
    frame = correlations.assign(
        feature=correlations["feature"].astype(str), gene_id=correlations["gene_id"].astype(str)
    )
    return frame.pivot(index="feature", columns="gene_id", values="rho")


def gene_list_symbols(table: pd.DataFrame, rule: str) -> list[str]:
    """Symbols of the genes of a gene-list table that pass a rule (p_rule or fdr_rule)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    passing = table.loc[table[f"pass_{rule}"].astype(bool), "symbol"].dropna()
    return sorted({s for s in passing if s})


def ranking_statistic(
    how: RadiogenomicsRanking,
    symbols: pd.Series,
    rho: pd.DataFrame | None = None,
    de_table: pd.DataFrame | None = None,
) -> pd.Series:
    """The per-symbol statistic GSEA ranks (see the module docstring for the choices)."""
    if how in ("max_abs_rho", "dltr_score"):
        if rho is None:
            raise ValueError(f"ranking {how!r} needs the correlation table")
        if how == "max_abs_rho":
            values = rho.abs().max(axis=0)
        else:
            if DLTR_FEATURE not in rho.index:
                raise RadiogenomicsInputError(
                    "ranking 'dltr_score' needs the DLTR score among the correlated features: "
                    "set radiogenomics.features.include_dltr_score: true"
                )
            values = rho.loc[DLTR_FEATURE]
    elif how == "de_stat":
        if de_table is None:
            raise ValueError("ranking 'de_stat' needs the differential-expression table")
        values = de_table.set_index("gene")["stat"]
    else:
        raise ValueError(f"unknown ranking {how!r}")
    values = values.dropna().rename(how)
    values.index = values.index.astype(str)
    return collapse_to_symbols(values, symbols)


def gene_list_enrichment(
    genes: pd.DataFrame,
    background: Sequence[str],
    collection: GeneSetCollection,
    min_size: int = 15,
    max_size: int = 500,
) -> pd.DataFrame:
    """ORA of the gene list under both rules (column gene_list: p_rule, fdr_rule)."""
    from hccrad.radiogenomics.enrich import over_representation

    tables = []
    for rule in RULES:
        listed = gene_list_symbols(genes, rule)
        table = (
            over_representation(listed, background, collection, min_size, max_size)
            if listed
            else empty_ora_table(background, collection, min_size, max_size)
        )
        table.insert(0, "gene_list", rule)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def empty_ora_table(
    background: Sequence[str], collection: GeneSetCollection, min_size: int, max_size: int
) -> pd.DataFrame:
    """The ORA table of an empty gene list: every tested set with no overlap and P = 1."""
    from hccrad.radiogenomics.enrich import ORA_COLUMNS, restrict_gene_sets

    tested = restrict_gene_sets(collection.gene_sets, sorted(background), min_size, max_size)
    table = pd.DataFrame({"pathway": list(tested)})
    table["collection"], table["collection_version"] = collection.name, collection.version
    table["set_size_gmt"] = [len(set(collection.gene_sets[n])) for n in tested]
    table["set_size"] = [len(tested[n]) for n in tested]
    table["list_size"], table["background_size"] = 0, len(set(background))
    table["overlap"], table["expected"], table["fold_enrichment"] = 0, 0.0, np.nan
    table["p_value"] = 1.0
    table["fdr"] = benjamini_hochberg(table["p_value"].to_numpy())
    table["overlap_genes"] = ""
    return table.sort_values("pathway", kind="stable").reset_index(drop=True)[list(ORA_COLUMNS)]


# --------------------------------------------------------------------------- DLTR groups


def dltr_groups(
    scores: pd.Series, rule: Literal["median", "training_cutoff"], cutoff: float | None = None
) -> pd.DataFrame:
    """High/low DLTR-score group per patient: above the cohort median, or at/above a cutoff.

    ``median``: score > the median of these patients is high (ties go low), so the groups
    are as balanced as the ties allow. ``training_cutoff``: score >= ``cutoff`` (the Youden
    threshold of the training split, fitted elsewhere) is high, the rule of the trained model.
    """
    scores = scores.astype(float)
    if scores.isna().any():
        raise RadiogenomicsInputError(
            f"DLTR score missing for patients {list(scores.index[scores.isna()][:5])}"
        )
    if rule == "median":
        value = float(np.median(scores.to_numpy()))
        high = scores > value
    elif rule == "training_cutoff":
        if cutoff is None or not np.isfinite(cutoff):
            raise ValueError("rule 'training_cutoff' needs a finite cutoff")
        value = float(cutoff)
        high = scores >= value
    else:
        raise ValueError(f"unknown grouping rule {rule!r}")
    groups = pd.DataFrame(
        {
            "dltr_score": scores,
            "group": np.where(high, "high", "low"),
            "rule": rule,
            "cutoff": value,
        },
        index=pd.Index(scores.index.astype(str), name=ID_COLUMN),
    )
    sizes = groups["group"].value_counts()
    if min(sizes.get("high", 0), sizes.get("low", 0)) < 2:
        raise RadiogenomicsInputError(
            f"DLTR groups by {rule} (cutoff {value:.4g}): {sizes.get('high', 0)} high and "
            f"{sizes.get('low', 0)} low patients; differential expression needs at least 2 in "
            "each. With 'training_cutoff' the radiogenomics cohort's scores may sit on one side "
            "of the training threshold: use radiogenomics.differential.grouping: median"
        )
    return groups


def training_cutoff(scores: pd.DataFrame, train_outcome: pd.Series) -> float:
    """Youden threshold of the DLTR score on the response cohort's training split.

    ``scores`` is the response cohort's deep/<endpoint>/scores.tsv (indexed by patient_id;
    training rows hold out-of-fold scores); only rows of ``train_outcome`` are read.
    """
    from hccrad.stats.discrimination import youden_threshold

    missing = train_outcome.index.difference(scores.index)
    if len(missing):
        raise RadiogenomicsInputError(
            f"DLTR scores missing for training patients {list(missing[:5])}"
        )
    train_scores = scores.loc[train_outcome.index, "dltr_score"]
    return youden_threshold(
        train_outcome.to_numpy(), train_scores.to_numpy(), context="DLTR training scores"
    )


# --------------------------------------------------------------------------- planted truth


def planted_pathways(truth: Mapping[str, Any], planted_genes: pd.DataFrame) -> list[dict]:
    """The planted pathways of a simulated cohort: truth.json's list, else planted_genes.tsv's.

    Truth files written before truth.json listed the pathways only have them per gene.
    """
    if "planted_pathways" in truth:
        return [dict(spec) for spec in truth["planted_pathways"]]
    specs = planted_genes.drop_duplicates("pathway")
    return [
        {"pathway": row.pathway, "trait": row.trait, "strength": float(row.strength)}
        for row in specs.itertuples()
    ]


def planted_recovery(
    tables: Mapping[str, pd.DataFrame],
    planted: Sequence[Mapping[str, Any]],
    planted_genes: pd.DataFrame,
    collection: GeneSetCollection,
    background: Iterable[str],
    fdr_threshold: float = 0.05,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare enrichment tables with the planted pathways: per-pathway rows and a summary.

    ``tables`` maps an analysis name (e.g. "gsea", "ora p_rule") to its table (pathway, fdr).
    ``planted_genes`` is the simulator's truth/planted_genes.tsv (gene_name, pathway). A
    non-planted pathway that shares many planted genes is enriched in truth at the gene level,
    so each row reports that share among the set's tested genes (``background``), and the
    summary counts the non-planted significant pathways whose share is not above the share of
    planted genes among all tested genes (``unexplained``: not enriched in planted genes).
    """
    by_pathway = {spec["pathway"]: spec for spec in planted}
    planted_symbols = set(planted_genes["gene_name"].astype(str))
    universe = set(background)
    background_share = len(universe & planted_symbols) / max(len(universe), 1)
    per_pathway, summary = [], []
    for analysis, table in tables.items():
        rows = table.copy()
        rows["analysis"] = analysis
        rows["planted"] = rows["pathway"].isin(list(by_pathway))
        rows["trait"] = rows["pathway"].map(lambda p: by_pathway.get(p, {}).get("trait", ""))
        rows["significant"] = rows["fdr"] < fdr_threshold
        members = [set(collection.gene_sets.get(p, ())) & universe for p in rows["pathway"]]
        rows["planted_gene_share"] = [
            len(genes & planted_symbols) / len(genes) if genes else np.nan for genes in members
        ]
        keep = ["analysis", "pathway", "planted", "trait", "p_value", "fdr", "significant"]
        keep += [c for c in ("nes", "fold_enrichment") if c in rows]
        per_pathway.append(rows[[*keep, "planted_gene_share"]])
        is_planted, significant = rows["planted"], rows["significant"]
        summary.append(
            {
                "analysis": analysis,
                "fdr_threshold": fdr_threshold,
                "planted": len(by_pathway),
                "planted_tested": int(is_planted.sum()),
                "planted_significant": int((significant & is_planted).sum()),
                "non_planted_tested": int((~is_planted).sum()),
                "non_planted_significant": int((significant & ~is_planted).sum()),
                "planted_gene_share_background": background_share,
                "non_planted_significant_unexplained": int(
                    (
                        significant & ~is_planted & ~(rows["planted_gene_share"] > background_share)
                    ).sum()
                ),
                "planted_missed": ";".join(
                    sorted(set(by_pathway) - set(rows.loc[significant, "pathway"]))
                ),
                "non_planted_significant_names": ";".join(
                    sorted(rows.loc[significant & ~is_planted, "pathway"])
                ),
            }
        )
    return pd.concat(per_pathway, ignore_index=True), pd.DataFrame(summary)
