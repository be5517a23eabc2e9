"""Tests of hccrad.radiogenomics.correlate against scipy and statsmodels."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hccrad.radiogenomics.correlate import (
    ConstantRowsWarning,
    _resolve_device,
    benjamini_hochberg,
    correlate,
    permutation_fdr,
    top_pairs,
)

N_SAMPLES = 23


def tied_matrix(n_rows: int, prefix: str, seed: int, levels: int = 6) -> pd.DataFrame:
    """Integer-valued rows (many ties) named prefix0, prefix1, ... over N_SAMPLES samples."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, levels, size=(n_rows, N_SAMPLES)).astype(float)
    return pd.DataFrame(
        values,
        index=[f"{prefix}{i}" for i in range(n_rows)],
        columns=[f"P{j:03d}" for j in range(N_SAMPLES)],
    )


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    frame = tied_matrix(6, "feature", seed=1)
    frame.iloc[4] = 3.0  # a constant feature
    # A continuous feature too, so Pearson is also checked without ties.
    frame.iloc[5] = np.random.default_rng(9).normal(size=N_SAMPLES)
    return frame


@pytest.fixture(scope="module")
def expression() -> pd.DataFrame:
    frame = tied_matrix(45, "gene", seed=2, levels=9)
    frame.iloc[7] = 1.0  # a constant gene
    # Samples in another order than the features: correlate must align them by name.
    return frame.iloc[:, ::-1]


def scipy_reference(
    features: pd.DataFrame, expression: pd.DataFrame, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """r and P from scipy, one pair at a time."""
    function = stats.spearmanr if method == "spearman" else stats.pearsonr
    expression = expression.loc[:, features.columns]
    r = np.empty((len(features), len(expression)))
    p = np.empty_like(r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        for i, feature in enumerate(features.to_numpy()):
            for j, gene in enumerate(expression.to_numpy()):
                result = function(feature, gene)
                r[i, j], p[i, j] = result.statistic, result.pvalue
    return r, p


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_agrees_with_scipy(features: pd.DataFrame, expression: pd.DataFrame, method: str) -> None:
    with pytest.warns(
        ConstantRowsWarning, match=r"1 feature\(s\) \['feature4'\], 1 gene\(s\) \['gene7'\]"
    ):
        result = correlate(features, expression, method=method, device="numpy", progress=False)
    r, p = scipy_reference(features, expression, method)
    assert np.array_equal(np.isnan(result.rho), np.isnan(r))
    assert result.constant_features == ("feature4",)
    assert result.constant_genes == ("gene7",)
    np.testing.assert_allclose(result.rho, r, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result.p, p, rtol=1e-10, atol=1e-12)


def test_agrees_with_scipy_on_strong_correlations() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(1, 60))
    features = pd.DataFrame(base + 0.05 * rng.normal(size=(3, 60)), index=list("abc"))
    expression = pd.DataFrame(base + 0.1 * rng.normal(size=(4, 60)), index=list("wxyz"))
    for method in ("spearman", "pearson"):
        result = correlate(features, expression, method=method, device="numpy", progress=False)
        r, p = scipy_reference(features, expression, method)
        assert p.max() < 1e-30
        np.testing.assert_allclose(result.rho, r, rtol=0, atol=1e-10)
        np.testing.assert_allclose(result.p, p, rtol=1e-10)


def test_bh_agrees_with_statsmodels(features: pd.DataFrame, expression: pd.DataFrame) -> None:
    with pytest.warns(ConstantRowsWarning):
        result = correlate(features, expression, device="numpy", progress=False)
    finite = np.isfinite(result.p)
    for row in range(result.p.shape[0]):
        tested = finite[row]
        if tested.any():
            expected = multipletests(result.p[row, tested], method="fdr_bh")[1]
            np.testing.assert_allclose(result.fdr_feature[row, tested], expected, rtol=1e-12)
    expected_all = multipletests(result.p[finite], method="fdr_bh")[1]
    np.testing.assert_allclose(result.fdr_all[finite], expected_all, rtol=1e-12)
    assert np.isnan(result.fdr_all[~finite]).all()


def test_bh_on_plain_matrix_matches_statsmodels() -> None:
    p = np.random.default_rng(3).uniform(size=(4, 50)) ** 3
    np.testing.assert_allclose(
        benjamini_hochberg(p), multipletests(p.ravel(), method="fdr_bh")[1].reshape(p.shape)
    )
    for row in range(4):
        np.testing.assert_allclose(
            benjamini_hochberg(p, axis=1)[row], multipletests(p[row], method="fdr_bh")[1]
        )


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_chunked_equals_unchunked(
    features: pd.DataFrame, expression: pd.DataFrame, method: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantRowsWarning)
        whole = correlate(features, expression, method=method, device="numpy", progress=False)
        by_chunk = correlate(
            features, expression, method=method, device="numpy", chunk_genes=4, progress=False
        )
        by_bytes = correlate(
            features, expression, method=method, device="numpy", max_chunk_bytes=1, progress=False
        )
    for other in (by_chunk, by_bytes):
        for name in ("rho", "p", "fdr_feature", "fdr_all"):
            np.testing.assert_allclose(
                getattr(other, name), getattr(whole, name), rtol=1e-13, atol=1e-15
            )


def test_torch_backend_matches_numpy(features: pd.DataFrame, expression: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantRowsWarning)
        numpy_result = correlate(features, expression, device="numpy", progress=False)
        torch_result = correlate(features, expression, device="cpu", chunk_genes=10, progress=False)
    np.testing.assert_allclose(torch_result.rho, numpy_result.rho, rtol=0, atol=1e-14)
    np.testing.assert_allclose(torch_result.p, numpy_result.p, rtol=1e-12)


def null_data(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Independent features and genes: every null hypothesis is true."""
    rng = np.random.default_rng(seed)
    samples = [f"P{j}" for j in range(40)]
    features = pd.DataFrame(rng.normal(size=(20, 40)), columns=samples)
    expression = pd.DataFrame(rng.normal(size=(1000, 40)), columns=samples)
    return features, expression


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_null_data_gives_nominal_rate(method: str) -> None:
    features, expression = null_data(seed=11)
    result = correlate(features, expression, method=method, device="numpy", progress=False)
    rate = float((result.p < 0.05).mean())
    assert 0.04 < rate < 0.06
    assert np.nanmin(result.fdr_all) > 0.05


def test_permutation_fdr_is_reproducible_and_sensible() -> None:
    features, expression = null_data(seed=12)
    planted = expression.iloc[:5] * 0.3 + features.iloc[0].to_numpy()
    expression = pd.concat([planted.set_axis([f"planted{i}" for i in range(5)]), expression])
    expression.index = expression.index.astype(str)

    def run(seed: int) -> np.ndarray:
        result = correlate(
            features, expression, device="numpy", n_permutations=40, seed=seed, progress=False
        )
        assert result.fdr_perm is not None
        return result.fdr_perm

    first, again, other = run(seed=3), run(seed=3), run(seed=4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first[0, :5].max() < 0.05  # the planted pairs
    assert np.median(first[1:]) > 0.5  # pairs between independent rows


def test_torch_permutations_match_numpy() -> None:
    features, expression = null_data(seed=13)
    runs = [
        correlate(features, expression, device=device, n_permutations=8, seed=1, progress=False)
        for device in ("numpy", "cpu")
    ]
    assert runs[0].fdr_perm is not None and runs[1].fdr_perm is not None
    # Both bin float32 products; a value on a bin edge may land on either side.
    np.testing.assert_allclose(runs[1].fdr_perm, runs[0].fdr_perm, atol=1e-3)


def test_permutation_fdr_by_hand() -> None:
    observed = np.array([[0.95, 0.55, 0.15, np.nan]])
    null_counts = np.zeros(10, dtype=np.int64)
    null_counts[[1, 5, 9]] = [6, 2, 1]  # over 2 permutations: 3, 1, 0.5 per permutation
    fdr = permutation_fdr(observed, null_counts, n_permutations=2)
    # |r| >= 0.9: 0.5 expected / 1 observed; >= 0.5: 1.5 / 2; >= 0.1: 4.5 / 3 -> 1, and
    # a pair's q value is the smallest FDR over the thresholds at or below its |r|.
    np.testing.assert_allclose(fdr[0, :3], [0.5, 0.75, 1.0])
    assert np.isnan(fdr[0, 3])


def test_long_table_thresholds_and_top_k(features: pd.DataFrame, expression: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantRowsWarning)
        result = correlate(features, expression, device="numpy", progress=False)
    table = result.to_long()
    assert list(table.columns) == ["feature", "gene", "rho", "p", "fdr_feature", "fdr_all"]
    assert len(table) == 6 * 45
    passing = result.to_long(max_p=0.2)
    assert len(passing) == int((result.p <= 0.2).sum()) > 0
    assert (passing["p"] <= 0.2).all()
    assert len(result.to_long(max_fdr=0.0)) == 0
    top = result.top_k(5)
    expected = table.dropna().sort_values("p", kind="stable").head(5)
    assert top["p"].tolist() == expected["p"].tolist()
    per_feature = top_pairs(table.dropna(), k=2, per_feature=True)
    assert per_feature.groupby("feature", observed=True).size().max() == 2
    assert top_pairs(table.dropna(), k=3, by="abs_rho")["rho"].abs().is_monotonic_decreasing


def test_auto_device_uses_numpy_without_gpu() -> None:
    torch = pytest.importorskip("torch")
    expected = "cuda" if torch.cuda.is_available() else None
    assert _resolve_device("auto") == expected
    assert _resolve_device("numpy") is None


def test_input_errors(features: pd.DataFrame, expression: pd.DataFrame) -> None:
    with_nan = expression.copy()
    with_nan.iloc[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"expression: 1 row\(s\) contain NaN.*gene2"):
        correlate(features, with_nan, progress=False)
    with pytest.raises(ValueError, match="same samples"):
        correlate(features, expression.iloc[:, 1:], progress=False)
    with pytest.raises(ValueError, match="at least 3 samples"):
        correlate(features.iloc[:, :2], expression.loc[:, features.columns[:2]], progress=False)
    with pytest.raises(ValueError, match="method"):
        correlate(features, expression, method="kendall", progress=False)  # type: ignore[arg-type]
