"""hccrad.radiogenomics.differential on negative-binomial counts with planted two-fold changes."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from matplotlib import image

from hccrad.figures.differential import plot_volcano
from hccrad.figures.style import save_figure
from hccrad.radiogenomics.differential import RESULT_COLUMNS, differential_expression

N_PER_GROUP = 12
N_GENES = 300
N_UP = N_DOWN = 15  # balanced, so the planted genes do not shift the size factors


def simulated_counts(seed: int) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """NB counts (genes x samples), high/low groups, and the planted log2 fold change."""
    rng = np.random.default_rng(seed)
    base_mean = np.exp(rng.uniform(np.log(20), np.log(5000), N_GENES))
    # Planted genes are well expressed so that a two-fold change is clearly detectable.
    planted = rng.choice(np.flatnonzero(base_mean > 200), N_UP + N_DOWN, replace=False)
    log2_fc = np.zeros(N_GENES)
    log2_fc[planted[:N_UP]], log2_fc[planted[N_UP:]] = 1.0, -1.0
    groups = np.repeat(["low", "high"], N_PER_GROUP)
    library = rng.uniform(0.7, 1.4, groups.size)
    mean = base_mean[:, None] * library[None, :] * 2.0 ** (log2_fc[:, None] * (groups == "high"))
    dispersion = 0.05 + 1.0 / base_mean  # DESeq2's parametric trend shape
    shape = 1.0 / dispersion[:, None]
    counts = rng.poisson(rng.gamma(shape, mean / shape))
    genes = [f"SIMG{i:011d}" for i in range(N_GENES)]
    samples = [f"TCGA-XX-{i:04d}" for i in range(groups.size)]
    return (
        pd.DataFrame(counts, index=pd.Index(genes, name="gene_id"), columns=samples),
        pd.Series(groups, index=samples),
        pd.Series(log2_fc, index=genes),
    )


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    return simulated_counts(seed=3)


@pytest.fixture(scope="module")
def results(simulated) -> pd.DataFrame:
    counts, groups, _ = simulated
    return differential_expression(counts, groups)


def test_table_has_the_documented_columns(results, simulated):
    counts, _, _ = simulated
    assert tuple(results.columns) == RESULT_COLUMNS
    assert results["gene"].tolist() == counts.index.tolist()
    assert results[["log2FoldChange_shrunk", "lfcSE_shrunk"]].notna().all().all()


def test_planted_genes_are_found_with_the_right_sign(results, simulated):
    _, _, log2_fc = simulated
    planted = results.set_index("gene").loc[log2_fc.index[log2_fc != 0]]
    sign = np.sign(log2_fc[planted.index])
    assert (planted["padj"] < 0.05).all()
    assert (np.sign(planted["log2FoldChange"]) == sign).all()
    assert (np.sign(planted["log2FoldChange_shrunk"]) == sign).all()
    assert planted["log2FoldChange"].abs().median() == pytest.approx(1.0, abs=0.2)
    # apeglm shrinks towards zero: never further from it than the MLE.
    assert (planted["log2FoldChange_shrunk"].abs() <= planted["log2FoldChange"].abs()).all()


def test_null_genes_are_significant_about_five_percent_of_the_time(results, simulated):
    _, _, log2_fc = simulated
    null = results.set_index("gene").loc[log2_fc.index[log2_fc == 0], "pvalue"]
    assert 0.02 <= (null < 0.05).mean() <= 0.09


def test_deterministic_and_independent_of_cpus(simulated):
    counts, groups, _ = simulated
    subset = counts.iloc[:40]
    first = differential_expression(subset, groups, shrink=False)
    again = differential_expression(subset, groups, shrink=False, n_cpus=2)
    pd.testing.assert_frame_equal(first, again, check_exact=True)


def test_quiet_output(simulated, capsys, caplog):
    counts, groups, _ = simulated
    with caplog.at_level(logging.DEBUG, logger="hccrad.radiogenomics.differential"):
        differential_expression(counts.iloc[:20], groups, shrink=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_groups_are_checked(simulated):
    counts, groups, _ = simulated
    with pytest.raises(ValueError, match="every counts column"):
        differential_expression(counts, groups.iloc[1:])
    middle = groups.copy()
    middle.iloc[0] = "middle"
    with pytest.raises(ValueError, match="drop the other samples"):
        differential_expression(counts, middle)


def test_volcano_is_written_and_not_blank(results, tmp_path):
    labels = {gene: f"GENE{i}" for i, gene in enumerate(results["gene"])}
    figure = plot_volcano(results, gene_labels=labels, title="high vs low")
    png, pdf, _tiff = save_figure(figure, tmp_path / "volcano.png")
    assert pdf.stat().st_size > 0
    assert image.imread(png).std() > 0


def test_non_integer_counts_are_refused(simulated):
    counts, groups, _ = simulated
    with pytest.raises(ValueError, match="non-negative integers"):
        differential_expression(counts * 0.5, groups)
