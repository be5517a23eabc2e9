"""Tests of hccrad.radiogenomics.correlate (and its rank lattice) against scipy and statsmodels."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hccrad.radiogenomics import correlate as correlate_module
from hccrad.radiogenomics import rank_lattice
from hccrad.radiogenomics.correlate import (
    ConstantRowsWarning,
    _resolve_device,
    benjamini_hochberg,
    constant_rows,
    correlate,
    p_values,
    permutation_fdr,
    rank_rows,
    standardise_rows,
    top_pairs,
)
from hccrad.radiogenomics.correlation_null import null_rule_counts
from hccrad.radiogenomics.gene_list import correlation_summary

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


# --------------------------------------------------------------------------- rank lattice


def zero_inflated(n_rows: int, n_samples: int, prefix: str, seed: int) -> pd.DataFrame:
    """Rows like RNA-seq: a third with no ties, the rest with a varying share of zeros."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(size=(n_rows, n_samples))
    zero_share = np.where(np.arange(n_rows) % 3 == 0, 0.0, rng.uniform(0.05, 0.8, n_rows))
    values[rng.uniform(size=values.shape) < zero_share[:, None]] = 0.0
    return pd.DataFrame(
        values,
        index=[f"{prefix}{i}" for i in range(n_rows)],
        columns=[f"S{j:03d}" for j in range(n_samples)],
    )


@pytest.fixture(scope="module")
def tied_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """60 samples; features with and without ties, a constant one; zero-inflated genes."""
    features = zero_inflated(9, 60, "feature", seed=21)
    features.iloc[4] = 2.0
    features.iloc[7] = np.round(features.iloc[7], 1)  # ties from rounding, not zeros
    expression = zero_inflated(1500, 60, "gene", seed=22)
    expression.iloc[11] = 0.0
    return features, expression


def reference_engine(
    features: pd.DataFrame, expression: pd.DataFrame, method: str
) -> dict[str, np.ndarray]:
    """The engine as it was before the lattice: unit-row product, P per pair, scipy's BH."""
    values = features.to_numpy(dtype=float)
    genes = expression.loc[:, features.columns].to_numpy(dtype=float)
    if method == "spearman":
        values, genes = rank_rows(values), rank_rows(genes)
    rho = np.clip(standardise_rows(values) @ standardise_rows(genes).T, -1, 1)
    rho[constant_rows(values)] = np.nan
    rho[:, constant_rows(genes)] = np.nan
    p = p_values(rho, values.shape[1], method)  # type: ignore[arg-type]
    return {
        "rho": rho,
        "p": p,
        "fdr_feature": benjamini_hochberg(p, axis=1),
        "fdr_all": benjamini_hochberg(p),
    }


def quiet_correlate(*args: object, **kwargs: object):
    """correlate() on numpy without the constant-rows warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantRowsWarning)
        return correlate(*args, device="numpy", progress=False, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_equals_the_engine_before_the_lattice(tied_inputs, method: str) -> None:
    """Pearson: bit-identical. Spearman to 1e-12: its r is D / sqrt(S_f S_g), not a product of
    unit rows, so r, P and the FDRs move in the last bits."""
    features, expression = tied_inputs
    result = quiet_correlate(features, expression, method=method)
    reference = reference_engine(features, expression, method)
    for name, expected in reference.items():
        got = getattr(result, name)
        assert np.array_equal(np.isnan(got), np.isnan(expected)), name
        if method == "pearson":
            np.testing.assert_array_equal(got, expected, err_msg=name)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_bh_is_bit_identical_to_scipy(tied_inputs, method: str) -> None:
    """Both BH passes from counts give exactly scipy's values for the engine's own P."""
    features, expression = tied_inputs
    result = quiet_correlate(features, expression, method=method)
    tested = np.isfinite(result.p)
    rows, columns = tested.any(axis=1), tested.any(axis=0)
    block = result.p[np.ix_(rows, columns)]
    np.testing.assert_array_equal(
        result.fdr_feature[np.ix_(rows, columns)], stats.false_discovery_control(block, axis=1)
    )
    np.testing.assert_array_equal(
        result.fdr_all[np.ix_(rows, columns)],
        stats.false_discovery_control(block.ravel()).reshape(block.shape),
    )
    assert np.isnan(result.fdr_all[~tested]).all() and np.isnan(result.fdr_feature[~tested]).all()


def test_lattice_agrees_with_scipy_on_sampled_pairs(tied_inputs) -> None:
    features, expression = tied_inputs
    result = quiet_correlate(features, expression)
    rng = np.random.default_rng(0)
    feature_values = features.to_numpy()
    gene_values = expression.to_numpy()
    for i, j in zip(rng.integers(0, 9, 400), rng.integers(0, 1500, 400), strict=True):
        if i == 4 or j == 11:
            continue  # constant rows
        expected = stats.spearmanr(feature_values[i], gene_values[j])
        assert abs(result.rho[i, j] - expected.statistic) <= 1e-15
        assert result.p[i, j] == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-15)


def test_lattice_product_is_exact_in_float32(tied_inputs, monkeypatch) -> None:
    """Integer rank products: the float32 and float64 products give the same bits."""
    features, expression = tied_inputs
    in_float32 = quiet_correlate(features, expression)
    monkeypatch.setattr(rank_lattice, "FLOAT32_EXACT", 1)  # forces the float64 product
    in_float64 = quiet_correlate(features, expression)
    for name in ("rho", "p", "fdr_feature", "fdr_all"):
        np.testing.assert_array_equal(getattr(in_float32, name), getattr(in_float64, name))


def test_without_the_lattice_spearman_gives_the_same(tied_inputs, monkeypatch) -> None:
    """Too many keys (very large N) falls back to P per pair and a sort: same results."""
    features, expression = tied_inputs
    lattice = quiet_correlate(features, expression)
    monkeypatch.setattr(correlate_module, "MAX_KEYS", 0)
    general = quiet_correlate(features, expression)
    for name in ("rho", "p", "fdr_feature", "fdr_all"):
        np.testing.assert_allclose(
            getattr(general, name), getattr(lattice, name), rtol=1e-12, atol=1e-14
        )


@pytest.mark.parametrize("method", ["spearman", "pearson"])
@pytest.mark.parametrize("fdr_scope", ["all_pairs", "per_feature"])
def test_null_counts_equal_full_runs(tied_inputs, method: str, fdr_scope: str) -> None:
    """Counting only candidate pairs gives what a full correlate per permutation gives."""
    features, expression = tied_inputs
    expression = expression.iloc[:400]
    for p_threshold, fdr_threshold in ((0.05, 0.2), (0.3, 0.9), (0.01, 1.0)):
        counts = null_rule_counts(
            features, expression, method, p_threshold, fdr_threshold, fdr_scope, 4, seed=5
        )
        rng = np.random.default_rng(5)
        expected: dict[str, list[np.ndarray]] = {"p_rule": [], "fdr_rule": []}
        for _ in range(4):
            shuffled = features.iloc[:, rng.permutation(features.shape[1])]
            shuffled.columns = features.columns
            result = quiet_correlate(shuffled, expression, method=method)
            fdr = result.fdr_all if fdr_scope == "all_pairs" else result.fdr_feature
            with np.errstate(invalid="ignore"):
                rules = {"p_rule": result.p < p_threshold, "fdr_rule": fdr < fdr_threshold}
            for rule, passing in rules.items():
                expected[rule].append(np.append(passing.sum(axis=1), passing.any(axis=0).sum()))
        for rule in expected:
            np.testing.assert_array_equal(counts[rule], np.array(expected[rule]), err_msg=rule)
    assert counts["p_rule"][:, -1].min() > 0  # the loosest thresholds do list genes


def test_long_table_keeps_each_genes_strongest_pair(tied_inputs) -> None:
    features, expression = tied_inputs
    result = quiet_correlate(features, expression)
    full = result.to_long().dropna(subset=["rho"])
    kept = result.to_long(max_p=1e-3, strongest_per_gene=True)
    assert len(kept) < len(full) / 4  # about one pair a gene (8 tested features)
    assert set(kept["gene"]) == set(full["gene"])  # every tested gene
    assert (kept["p"] <= 1e-3).sum() == (full["p"] <= 1e-3).sum()

    def strongest(table: pd.DataFrame) -> pd.Series:
        return table.groupby("gene", observed=True)["rho"].agg(lambda r: r.abs().max())

    pd.testing.assert_series_equal(strongest(kept), strongest(full))


def test_null_counts_give_correlation_summarys_chance_levels(tied_inputs) -> None:
    """correlation_summary's chance levels are the means of null_rule_counts' counts."""
    features, expression = tied_inputs
    expression = expression.iloc[:300]
    settings = {"p_threshold": 0.05, "fdr_threshold": 0.3, "fdr_scope": "per_feature"}
    result = quiet_correlate(features, expression)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantRowsWarning)
        expected = correlation_summary(
            result, features, expression, null_permutations=6, seed=2, **settings
        )
    summary = correlation_summary(
        result, features, expression, null_permutations=0, seed=2, **settings
    )
    counts = null_rule_counts(
        features,
        expression,
        null_permutations=6,
        seed=2,
        **settings,  # type: ignore[arg-type]
    )
    for rule, rule_counts in counts.items():
        summary.loc[summary["rule"] == rule, "n_genes_chance"] = rule_counts.mean(axis=0)
    summary["null_permutations"] = 6
    pd.testing.assert_frame_equal(summary, expected)
    assert expected["n_genes_chance"].max() > 0


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_only_constant_features(method: str) -> None:
    """Nothing tested: every r, P and FDR is NaN and no null pair passes."""
    samples = [f"P{j}" for j in range(10)]
    features = pd.DataFrame(np.ones((2, 10)), index=["a", "b"], columns=samples)
    expression = pd.DataFrame(
        np.random.default_rng(0).normal(size=(5, 10)), index=list("vwxyz"), columns=samples
    )
    result = quiet_correlate(features, expression, method=method)
    for name in ("rho", "p", "fdr_feature", "fdr_all"):
        assert np.isnan(getattr(result, name)).all(), name
    counts = null_rule_counts(features, expression, method, null_permutations=2)  # type: ignore[arg-type]
    assert not counts["p_rule"].any() and not counts["fdr_rule"].any()
