"""RNA-seq cohorts: one sample per patient, the expressed genes, their VST; matrices on disk.

Counts are read by hccrad.cohorts.rnaseq_counts (files) and hccrad.cohorts.rnaseq_samples
(GDC sample sheets), with the conventions given there.

- Sample selection per patient (:func:`select_patient_samples`): only the listed sample types
  are used, in order of preference (default primary tumour ``01``, then recurrent ``02``);
  among samples of the same type: vial A before B, then the larger library size, then the
  lexicographically first barcode. Every sample not used is listed in an exclusions table
  (``sample``, ``patient_id``, ``reason``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from hccrad.cohorts.rnaseq_counts import CountColumn, ParY, parse_or_raise, read_counts_matrix
from hccrad.cohorts.rnaseq_samples import read_sample_sheet, read_star_files

# TCGA sample type codes (GDC "sample_type_id"), used to write readable exclusion reasons.
TCGA_SAMPLE_TYPES = {
    "01": "Primary Solid Tumor",
    "02": "Recurrent Solid Tumor",
    "03": "Primary Blood Derived Cancer - Peripheral Blood",
    "05": "Additional - New Primary",
    "06": "Metastatic",
    "07": "Additional Metastatic",
    "10": "Blood Derived Normal",
    "11": "Solid Tissue Normal",
    "12": "Buccal Cell Normal",
    "14": "Bone Marrow Normal",
}
DEFAULT_SAMPLE_TYPES = ("01", "02")
EXCLUSION_COLUMNS = ("sample", "patient_id", "reason")
ID_COLUMN = "patient_id"


@dataclass(frozen=True)
class ExpressionCohort:
    """Counts of one sample per patient, with gene annotation and what was excluded."""

    counts: pd.DataFrame  # genes x patients, int64; index gene_id, columns patient_id
    genes: pd.DataFrame  # index gene_id; symbol, biotype
    samples: pd.DataFrame  # index patient_id; sample, barcode, sample_type, vial, library_size
    exclusions: pd.DataFrame  # sample, patient_id, reason


@dataclass(frozen=True)
class VstResult:
    """Variance-stabilised expression and the quantities it was computed from."""

    expression: pd.DataFrame  # genes x samples, float64 (log2-like scale)
    size_factors: pd.Series  # median-of-ratios size factor per sample
    fit_type: str  # "parametric" or "mean" (pydeseq2's fallback when parametric fails)
    n_trend_genes: int  # genes used to fit the dispersion trend


def _sample_type_label(code: str) -> str:
    """'11 (Solid Tissue Normal)' for a sample type code."""
    return f"{code} ({TCGA_SAMPLE_TYPES.get(code, 'unknown type')})"


def _why_preferred(kept: pd.Series, dropped: pd.Series) -> str:
    """The first rule of the selection order that separates two samples of one patient."""
    if kept["sample_type"] != dropped["sample_type"]:
        return f"sample type {kept['sample_type']} preferred over {dropped['sample_type']}"
    if kept["vial"] != dropped["vial"]:
        return f"vial {kept['vial'] or '(none)'} preferred over {dropped['vial'] or '(none)'}"
    sizes = (kept["library_size"], dropped["library_size"])
    if not (pd.isna(sizes[0]) and pd.isna(sizes[1])) and sizes[0] != sizes[1]:
        return f"larger library size ({sizes[0]:.0f} > {sizes[1]:.0f})"
    if kept["barcode"] != dropped["barcode"]:
        return "lexicographically first barcode"
    return "same barcode: lexicographically first sample key"


def select_patient_samples(
    barcodes: pd.Series,
    library_sizes: pd.Series | Mapping[str, float] | None = None,
    sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Choose one sample per patient; return (selection indexed by patient_id, exclusions).

    ``barcodes`` maps a sample key (a counts-matrix column, e.g. a File ID or the barcode
    itself) to its TCGA barcode. Order of preference: position of the sample type in
    ``sample_types``, vial letter (A first), larger library size, then barcode and key
    (lexicographic), so the choice never depends on input order.
    """
    if barcodes.index.duplicated().any():
        raise ValueError(
            f"duplicated sample keys: {list(barcodes.index[barcodes.index.duplicated()])}"
        )
    sizes = pd.Series(library_sizes, dtype=float) if library_sizes is not None else None
    rows = []
    for key, barcode in barcodes.items():
        parsed = parse_or_raise(str(barcode), f"sample {key!r}")
        size = float(sizes.get(key, np.nan)) if sizes is not None else np.nan
        rows.append(
            {
                "sample": key,
                "barcode": str(barcode),
                "patient_id": parsed.patient_id,
                "sample_type": parsed.sample_type,
                "vial": parsed.vial,
                "library_size": size,
            }
        )
    candidates = pd.DataFrame(
        rows, columns=["sample", "barcode", "patient_id", "sample_type", "vial", "library_size"]
    )
    preference = {code: rank for rank, code in enumerate(sample_types)}
    allowed = candidates["sample_type"].isin(list(preference))
    exclusions = [
        {
            "sample": row.sample,
            "patient_id": row.patient_id,
            "reason": f"sample type {_sample_type_label(row.sample_type)} not used "
            f"(allowed: {', '.join(sample_types)})",
        }
        for row in candidates.loc[~allowed].itertuples()
    ]
    ordered = candidates.loc[allowed].assign(
        type_rank=lambda frame: frame["sample_type"].map(preference),
        # Vial "" (barcode without a vial letter) sorts after the lettered vials.
        vial_rank=lambda frame: frame["vial"].replace("", "~"),
        neg_size=lambda frame: -frame["library_size"].fillna(-np.inf),
        key_text=lambda frame: frame["sample"].astype(str),
    )
    ordered = ordered.sort_values(
        ["patient_id", "type_rank", "vial_rank", "neg_size", "barcode", "key_text"], kind="stable"
    )
    first = ~ordered["patient_id"].duplicated()
    kept = ordered.loc[first].set_index("patient_id")
    for row in ordered.loc[~first].itertuples():
        chosen = kept.loc[row.patient_id]
        why = _why_preferred(chosen, pd.Series(row._asdict()))
        if chosen["barcode"] == row.barcode:
            # Two files of one sample (a re-sequenced aliquot, or a copy): one is used, and the
            # reason says how to choose the other.
            reason = (
                f"another file of the same sample {row.barcode} is used: {chosen['sample']} "
                f"({why}); to use this one, remove the other's row from the sample sheet"
            )
        else:
            reason = f"another sample of the patient is used: {chosen['barcode']} ({why})"
        exclusions.append({"sample": row.sample, "patient_id": row.patient_id, "reason": reason})
    selection = kept[["sample", "barcode", "sample_type", "vial", "library_size"]].sort_index()
    selection.index.name = "patient_id"
    exclusion_table = pd.DataFrame(exclusions, columns=list(EXCLUSION_COLUMNS))
    return selection, exclusion_table.sort_values(["patient_id", "sample"], ignore_index=True)


def counts_by_patient(counts: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """Keep the selected sample columns and name them by patient (columns ``patient_id``)."""
    by_patient = counts.loc[:, selection["sample"].to_list()].copy()
    by_patient.columns = pd.Index(selection.index, name="patient_id")
    return by_patient


def load_star_cohort(
    sample_sheet: str | Path,
    directory: str | Path,
    count_column: CountColumn = "unstranded",
    par_y: ParY = "drop",
    sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES,
    progress: bool = True,
) -> ExpressionCohort:
    """Read a GDC sample sheet and its STAR files; keep one sample per patient."""
    sheet = read_sample_sheet(sample_sheet)
    counts, genes = read_star_files(sheet, directory, count_column, par_y, progress)
    barcodes = sheet.set_index("File ID")["Sample ID"]
    selection, exclusions = select_patient_samples(barcodes, counts.sum(axis=0), sample_types)
    return ExpressionCohort(counts_by_patient(counts, selection), genes, selection, exclusions)


def load_counts_matrix_cohort(
    path: str | Path, par_y: ParY = "drop", sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES
) -> ExpressionCohort:
    """Read a counts matrix whose columns are TCGA barcodes; keep one sample per patient."""
    counts, genes = read_counts_matrix(path, par_y)
    barcodes = pd.Series(counts.columns, index=counts.columns)
    selection, exclusions = select_patient_samples(barcodes, counts.sum(axis=0), sample_types)
    return ExpressionCohort(counts_by_patient(counts, selection), genes, selection, exclusions)


def filter_expressed_genes(
    counts: pd.DataFrame,
    genes: pd.DataFrame,
    min_count: int = 10,
    min_fraction: float = 0.5,
    biotypes: Sequence[str] | None = ("protein_coding",),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep genes of the given biotypes with >= min_count reads in >= min_fraction of samples.

    Returns the filtered counts and a per-gene table (symbol, biotype, fraction_expressed,
    kept, reason) so that what was left out can be written next to the result.
    """
    if not 0 <= min_fraction <= 1:
        raise ValueError(f"min_fraction must be within [0, 1], got {min_fraction}")
    annotation = genes.reindex(counts.index)
    fraction = (counts.to_numpy() >= min_count).mean(axis=1)
    reason = pd.Series("", index=counts.index, dtype=object)
    if biotypes is not None:
        if annotation["biotype"].isna().all():
            raise ValueError(
                "no gene has a biotype annotation (a plain counts matrix without gene_type?): "
                "pass biotypes=None or an annotation with a 'biotype' column"
            )
        wrong_type = ~annotation["biotype"].isin(list(biotypes)).to_numpy()
        reason[wrong_type] = "biotype not in " + ", ".join(biotypes)
    low = (fraction < min_fraction) & (reason == "").to_numpy()
    reason[low] = f"fewer than {min_fraction:.0%} of samples with >= {min_count} counts"
    kept = (reason == "").to_numpy()
    report = annotation.assign(fraction_expressed=fraction, kept=kept, reason=reason)
    return counts.loc[kept], report


def _trend_gene_positions(normed_means: np.ndarray, n_genes: int) -> np.ndarray | None:
    """Genes for the dispersion trend as DESeq2's ``vst(nsub=)`` picks them; None when too few."""
    # DESeq2::vst: genes with mean normalised count > 5, n_genes of them spread evenly over
    # the order of their means. Deterministic, so no seed is needed.
    eligible = np.flatnonzero(normed_means > 5)
    if len(eligible) <= n_genes:
        return None
    by_mean = eligible[np.argsort(normed_means[eligible], kind="stable")]
    picks = np.round(np.linspace(0, len(by_mean) - 1, n_genes)).astype(int)
    return np.sort(by_mean[picks])


def variance_stabilise(
    counts: pd.DataFrame,
    metadata: pd.DataFrame | None = None,
    design: str = "~1",
    fit_type: Literal["parametric", "mean"] = "parametric",
    trend_genes: int | None = 1000,
    n_cpus: int = 1,
) -> VstResult:
    """Median-of-ratios size factors and pydeseq2's VST of a genes x samples counts matrix.

    The VST is blind (pydeseq2's default ``use_design=False``), so ``design`` only matters for
    validation of ``metadata``. Fitting gene-wise dispersions for all genes is the slow part
    (~24 s for 20,000 x 60 here), so, like ``DESeq2::vst(nsub=1000)``, the dispersion trend is
    fitted on ``trend_genes`` genes spread over the range of means and then applied to all
    genes with the size factors of the full matrix. ``trend_genes=None`` (or too few genes
    with mean > 5) fits on every gene, which is pydeseq2's ``DeseqDataSet.vst()`` itself.
    """
    from pydeseq2.dds import DeseqDataSet  # slow import (anndata, formulaic): only when used
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    samples_by_genes = counts.T.astype(np.int64)
    samples_by_genes.columns = samples_by_genes.columns.astype(str)
    if metadata is None:
        metadata = pd.DataFrame(index=samples_by_genes.index)
    metadata = metadata.reindex(samples_by_genes.index)

    def dataset(frame: pd.DataFrame) -> DeseqDataSet:
        return DeseqDataSet(
            counts=frame,
            metadata=metadata,
            design=design,
            fit_type=fit_type,
            quiet=True,
            n_cpus=n_cpus,
        )

    full = dataset(samples_by_genes)
    full.fit_size_factors()
    size_factors = pd.Series(
        np.asarray(full.obs["size_factors"], dtype=float), index=counts.columns, name="size_factor"
    )
    normed_means = np.asarray(full.layers["normed_counts"]).mean(axis=0)
    positions = (
        _trend_gene_positions(normed_means, trend_genes)
        if trend_genes is not None and full.logmeans is not None
        else None
    )
    # pydeseq2 fits one gene at a time (tiny L-BFGS and regression problems), where BLAS
    # threads only add synchronisation: one thread measured 2.7x faster on 1,000 genes.
    with threadpool_limits(limits=1, user_api="blas"):
        if positions is None:
            full.vst(fit_type=fit_type)
        else:
            trend = dataset(samples_by_genes.iloc[:, positions])
            trend.vst_fit()
    # pydeseq2 falls back to the mean trend when the parametric fit does not converge.
    fitted = full if positions is None else trend
    used_fit_type = str(getattr(fitted, "vst_fit_type", fit_type))
    if positions is None:
        values, n_trend = np.asarray(full.layers["vst_counts"]), counts.shape[0]
    else:
        # vst_transform(counts=...) normalises with the fitted logmeans: give it the full
        # matrix's, so every gene is scaled by the size factors of the full matrix.
        trend.logmeans, trend.filtered_genes = full.logmeans, full.filtered_genes
        values, n_trend = trend.vst_transform(samples_by_genes.to_numpy()), len(positions)
    expression = pd.DataFrame(values.T, index=counts.index, columns=counts.columns)
    return VstResult(expression, size_factors, used_fit_type, n_trend)


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
