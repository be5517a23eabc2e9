"""Differential expression between two groups of patients (e.g. high vs low imaging score).

pydeseq2 (the Python DESeq2): median-of-ratios size factors, design ``~group``, Wald test of
``test_level`` vs ``reference_level``, BH with DESeq2's independent filtering, and apeglm LFC
shrinkage (``DeseqStats.lfc_shrink``, which shrinks the design coefficient
``group[T.<test_level>]``; P values are those of the unshrunk fit, as in DESeq2).

Counts follow hccrad.cohorts.rnaseq_counts:
genes x samples, integer, index ``gene_id``. Grouping is the
caller's (tertiles, median split, ...): ``groups`` maps every counts column to one of the two
levels. The fit is deterministic: per-gene fits are independent, so ``n_cpus`` changes the
speed, not the numbers. pydeseq2's progress prints are silenced and its warnings go to the
module logger.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pandas as pd

LOGGER = logging.getLogger(__name__)
RESULT_COLUMNS: tuple[str, ...] = (
    "gene",
    "baseMean",
    "log2FoldChange",
    "lfcSE",
    "stat",
    "pvalue",
    "padj",
    "log2FoldChange_shrunk",
    "lfcSE_shrunk",
)


@contextlib.contextmanager
def _pydeseq2_output_to_log() -> Iterator[None]:
    """Send pydeseq2's prints to DEBUG and its warnings to WARNING of the module logger."""
    printed = io.StringIO()
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(printed),
        contextlib.redirect_stderr(printed),
    ):
        warnings.simplefilter("always")
        yield
    for line in printed.getvalue().splitlines():
        if line.strip():
            LOGGER.debug("pydeseq2: %s", line)
    # Per-gene fits can repeat one warning thousands of times: log each message once.
    for message, times in Counter(str(w.message) for w in caught).items():
        LOGGER.warning("pydeseq2: %s (%d time%s)", message, times, "" if times == 1 else "s")


def _design_metadata(
    counts: pd.DataFrame, groups: pd.Series, test_level: str, reference_level: str
) -> pd.DataFrame:
    """Per-sample 'group' with the reference level first, checked against the counts columns."""
    if test_level == reference_level:
        raise ValueError(f"test and reference level are both {test_level!r}")
    samples = counts.columns.astype(str)
    groups = groups.copy()
    groups.index = groups.index.astype(str)
    if groups.index.duplicated().any():
        raise ValueError(f"groups: duplicated samples {groups.index[groups.index.duplicated()]}")
    missing, extra = samples.difference(groups.index), groups.index.difference(samples)
    if len(missing) or len(extra):
        raise ValueError(
            f"groups must name every counts column and nothing else: no group for "
            f"{list(missing[:5])}, no counts for {list(extra[:5])}"
        )
    groups = groups.loc[samples]
    unknown = sorted(set(groups.astype(str)) - {test_level, reference_level})
    if unknown or groups.isna().any():
        raise ValueError(
            f"groups: every sample must be {test_level!r} or {reference_level!r}; "
            f"found {unknown or 'missing values'} (drop the other samples first)"
        )
    sizes = groups.value_counts()
    for level in (test_level, reference_level):
        if sizes.get(level, 0) < 2:
            raise ValueError(f"group {level!r} needs at least 2 samples, has {sizes.get(level, 0)}")
    # Categorical order makes the reference the baseline of the design matrix.
    group = pd.Categorical(groups.astype(str), categories=[reference_level, test_level])
    return pd.DataFrame({"group": group}, index=samples)


def differential_expression(
    counts: pd.DataFrame,
    groups: pd.Series,
    test_level: str = "high",
    reference_level: str = "low",
    alpha: float = 0.05,
    shrink: bool = True,
    n_cpus: int = 1,
) -> pd.DataFrame:
    """DESeq2 Wald test of test_level vs reference_level (design ~group) with apeglm LFCs."""
    # Slow import (anndata, formulaic); also, importing pydeseq2.dds silences FutureWarning
    # process-wide (warnings.simplefilter at its module level).
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.ds import DeseqStats
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    metadata = _design_metadata(counts, groups, test_level, reference_level)
    values = counts.to_numpy(dtype=float)
    if not (np.isfinite(values).all() and (values >= 0).all() and (values % 1 == 0).all()):
        raise ValueError("counts must be non-negative integers (raw reads, not TPM or VST)")
    samples_by_genes = counts.T.astype(np.int64)
    samples_by_genes.index = metadata.index
    samples_by_genes.columns = samples_by_genes.columns.astype(str)
    # One BLAS thread: pydeseq2 fits gene by gene with tiny matrices, where a threaded BLAS is
    # 4-10x slower (measured, 2,000 genes x 60 samples), and its joblib workers (n_cpus > 1)
    # run single-threaded anyway, so both paths sum in the same order.
    with _pydeseq2_output_to_log(), threadpool_limits(limits=1):
        dataset = DeseqDataSet(
            counts=samples_by_genes,
            metadata=metadata,
            design="~group",
            n_cpus=n_cpus,
            quiet=True,
        )
        dataset.deseq2()
        statistics = DeseqStats(
            dataset,
            contrast=["group", test_level, reference_level],
            alpha=alpha,
            n_cpus=n_cpus,
            quiet=True,
        )
        statistics.summary()
        # lfc_shrink overwrites log2FoldChange and lfcSE in results_df: keep the MLE first.
        table = statistics.results_df.copy()
        table["log2FoldChange_shrunk"] = np.nan
        table["lfcSE_shrunk"] = np.nan
        if shrink:
            statistics.lfc_shrink(coeff=f"group[T.{test_level}]")
            table["log2FoldChange_shrunk"] = statistics.results_df["log2FoldChange"]
            table["lfcSE_shrunk"] = statistics.results_df["lfcSE"]
    table = table.rename_axis("gene").reset_index()
    return table.loc[:, list(RESULT_COLUMNS)]
