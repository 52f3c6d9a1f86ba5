"""The random-number layer against independent oracles.

Philox4x64-10 is compared bit for bit with numpy's ``np.random.Philox`` (the same generator;
numpy increments the counter before its first output block), and each distribution of
``_core.rng`` is compared with ``scipy.stats`` by Kolmogorov-Smirnov tests (or moment checks
in Monte-Carlo standard errors) at fixed seeds.

Thresholds: every KS test must give p > ALPHA = 1e-4. With fixed seeds the tests are
deterministic; under a correct generator each one fails with probability 1e-4, so the
~50 tests here have a combined false-alarm rate of ~0.5%, while the sample sizes (20k-50k
draws) make a KS test reject a distribution whose CDF is off by 0.01 anywhere
(sqrt(n) * D >= 2.2) — ``test_ks_power_*`` prove that on slightly wrong distributions.
Moment checks allow Z = 4.5 Monte-Carlo standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bglmm import _core

rng_core = _core.rng

ALPHA = 1e-4
Z = 4.5
N = 50_000
INF = np.inf
MASK64 = (1 << 64) - 1
STREAM_TEST = 100  # bglmm::rng::Stream::Test, the stream `draw` uses


def ks_pvalue(x, cdf) -> float:
    return stats.kstest(x, cdf).pvalue


def assert_mean_close(x, expected, axis=0):
    """Sample mean within Z standard errors (sample sd / sqrt(n)) of ``expected``."""
    x = np.asarray(x)
    se = x.std(axis=axis, ddof=1) / np.sqrt(x.shape[axis])
    np.testing.assert_array_less(np.abs(x.mean(axis=axis) - expected), Z * se)


# ---------------------------------------------------------------- Philox vs numpy


def numpy_philox_block(counter, key):
    """The Philox4x64-10 block of ``counter`` under ``key``, from numpy."""
    c = sum(int(v) << (64 * i) for i, v in enumerate(counter))
    c = (c - 1) % (1 << 256)  # numpy advances the counter before producing a block
    words = np.array([(c >> (64 * i)) & MASK64 for i in range(4)], dtype=np.uint64)
    bitgen = np.random.Philox(counter=words, key=np.array(key, dtype=np.uint64))
    return [int(v) for v in bitgen.random_raw(4)]


def test_philox_known_answers_match_numpy():
    # Random123 known-answer vectors (kat_vectors: philox4x64 10)
    ones = [MASK64] * 4
    pi_counter = [0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89]
    pi_key = [0x452821E638D01377, 0xBE5466CF34E90C6C]
    cases = [
        ([0, 0, 0, 0], [0, 0], [0x16554D9ECA36314C, 0xDB20FE9D672D0FDC, 0xD7E772CEE186176B,
                                0x7E68B68AEC7BA23B]),
        (ones, [MASK64] * 2, [0x87B092C3013FE90B, 0x438C3C67BE8D0224, 0x9CC7D7C69CD777B6,
                              0xA09CAEBF594F0BA0]),
        (pi_counter, pi_key, [0xA528F45403E61D95, 0x38C72DBD566E9788, 0xA5A1610E72FD18B5,
                              0x57BD43B5E52B7FE6]),
    ]
    for counter, key, expected in cases:
        assert list(rng_core.philox4x64_10(counter, key)) == expected
        assert numpy_philox_block(counter, key) == expected


def test_philox_matches_numpy_on_random_counters_and_keys():
    gen = np.random.default_rng(20261121)
    for _ in range(200):
        counter = [int(v) for v in gen.integers(0, 2**64, size=4, dtype=np.uint64)]
        key = [int(v) for v in gen.integers(0, 2**64, size=2, dtype=np.uint64)]
        assert list(rng_core.philox4x64_10(counter, key)) == numpy_philox_block(counter, key)


@pytest.mark.parametrize(
    ("seed", "chain", "iteration", "group", "stream"),
    [(0, 0, 0, 0, 0), (12345, 3, 17, 42, 3), (2**64 - 1, 2**63, 10**12, 7, 100)],
)
def test_rng_stream_is_philox_of_the_index_tuple(seed, chain, iteration, group, stream):
    # Rng(ChainKey{seed, chain}, iteration, group, stream): block k is the Philox block of the
    # counter (iteration, group, stream, k) under the key (seed, chain).
    words = rng_core.raw(24, seed, chain, iteration, group, stream)
    assert words.dtype == np.uint64
    expected = []
    for k in range(6):
        expected += numpy_philox_block([iteration, group, stream, k], [seed, chain])
    assert [int(w) for w in words] == expected


def test_uniform_is_top_53_bits_of_the_stream_words():
    words = rng_core.raw(1000, 9, 2, 5, 11, STREAM_TEST)
    u = rng_core.draw("uniform", 1000, seed=9, chain=2, iteration=5, group=11)
    expected = ((words >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    np.testing.assert_array_equal(u, expected)
    assert u.min() > 0.0 and u.max() < 1.0


def test_every_index_changes_the_draws():
    base = rng_core.draw("normal", 64, seed=5, chain=1, iteration=2, group=3)
    np.testing.assert_array_equal(
        base, rng_core.draw("normal", 64, seed=5, chain=1, iteration=2, group=3)
    )
    for kwargs in (
        dict(seed=6, chain=1, iteration=2, group=3),
        dict(seed=5, chain=2, iteration=2, group=3),
        dict(seed=5, chain=1, iteration=3, group=3),
        dict(seed=5, chain=1, iteration=2, group=4),
        dict(seed=1, chain=5, iteration=2, group=3),  # (seed, chain) is a tuple, not a sum
    ):
        other = rng_core.draw("normal", 64, **kwargs)
        assert not np.any(other == base), kwargs


# ---------------------------------------------------------------- scalar distributions


def draw(name, params, seed, n=N):
    return rng_core.draw(name, n, params, seed=seed)


def test_uniform_ks():
    assert ks_pvalue(draw("uniform", [], 1), stats.uniform.cdf) > ALPHA


def test_normal_ks_and_moments():
    z = draw("normal", [], 2)
    assert ks_pvalue(z, stats.norm.cdf) > ALPHA
    assert_mean_close(z, 0.0)
    assert_mean_close(z**2, 1.0)


@pytest.mark.parametrize("shape", [0.01, 0.1, 0.5, 1.0, 3.7, 100.0])
def test_gamma_ks(shape):
    rate = 2.5
    x = draw("gamma", [shape, rate], 10 + int(shape * 100))
    assert ks_pvalue(x, stats.gamma(shape, scale=1 / rate).cdf) > ALPHA
    assert_mean_close(x, shape / rate)


@pytest.mark.parametrize("shape", [0.01, 0.1, 0.7])
def test_log_gamma_ks_small_shapes(shape):
    # log G ~ scipy.stats.loggamma(shape): resolves the mass that G itself puts near 0
    lx = draw("log_gamma", [shape], 30 + int(shape * 100))
    assert np.all(np.isfinite(lx))
    assert ks_pvalue(lx, stats.loggamma(shape).cdf) > ALPHA


@pytest.mark.parametrize("df", [0.5, 1.0, 3.0, 30.0])
def test_chi_square_ks(df):
    x = draw("chi_square", [df], 40 + int(df * 10))
    assert ks_pvalue(x, stats.chi2(df).cdf) > ALPHA


def test_chi_square_goodness_of_fit_on_bins():
    # Pearson chi-square on 20 equiprobable bins of chi2(4)
    x = draw("chi_square", [4.0], 49)
    edges = stats.chi2(4).ppf(np.linspace(0, 1, 21))
    observed, _ = np.histogram(x, edges)
    assert stats.chisquare(observed).pvalue > ALPHA


def test_exponential_ks():
    x = draw("exponential", [3.0], 50)
    assert ks_pvalue(x, stats.expon(scale=1 / 3.0).cdf) > ALPHA


@pytest.mark.parametrize(("shape", "scale"), [(0.5, 1.0), (3.0, 2.0), (10.0, 0.1)])
def test_inv_gamma_ks(shape, scale):
    x = draw("inv_gamma", [shape, scale], 60 + int(shape * 10))
    assert ks_pvalue(x, stats.invgamma(shape, scale=scale).cdf) > ALPHA


@pytest.mark.parametrize(("a", "b"), [(0.5, 0.5), (2.0, 5.0), (0.05, 0.1), (30.0, 3.0)])
def test_beta_ks(a, b):
    x = draw("beta", [a, b], 70 + int(a * 10))
    assert np.all((x >= 0) & (x <= 1))
    assert ks_pvalue(x, stats.beta(a, b).cdf) > ALPHA
    assert_mean_close(x, a / (a + b))


TRUNC_CASES = [
    (0.0, 1.0, 30.0, INF),
    (0.0, 1.0, -INF, -50.0),
    (0.0, 1.0, 8.0, 8.5),
    (0.0, 1.0, -1.0, 1.0),
    (0.0, 1.0, 0.1, 0.2),
    (0.0, 1.0, -INF, 0.5),
    (0.0, 1.0, -0.5, 10.0),
    (0.0, 1.0, 30.0, 30.01),
    (2.0, 0.5, -INF, -8.0),  # 20 sd below the mean
    (-1.0, 3.0, 2.0, 2.5),
]


@pytest.mark.parametrize(("mean", "sd", "lower", "upper"), TRUNC_CASES)
def test_truncated_normal_ks(mean, sd, lower, upper):
    x = draw("truncated_normal", [mean, sd, lower, upper], 80 + TRUNC_CASES.index(
        (mean, sd, lower, upper)))
    assert np.all((x >= lower) & (x <= upper))
    a, b = (lower - mean) / sd, (upper - mean) / sd
    dist = stats.truncnorm(a, b, loc=mean, scale=sd)
    assert ks_pvalue(x, dist.cdf) > ALPHA
    assert_mean_close(x, dist.mean())


def test_ks_power_gamma_shape_off_by_five_percent():
    # Power check: draws of gamma(1.05) must be rejected as gamma(1) by the same KS test
    # (the CDFs differ by at most 0.024, sqrt(N) * D = 5.4).
    x = draw("gamma", [1.05, 1.0], 90)
    assert ks_pvalue(x, stats.gamma(1.0).cdf) < 1e-6
    assert ks_pvalue(x, stats.gamma(1.05).cdf) > ALPHA


def test_ks_power_truncated_normal_wrong_scale():
    # N(0, 1) truncated to [-1, 1] must be rejected as N(0, 1.3^2) truncated to [-1, 1]
    # (the CDFs differ by at most 0.013; the truncation hides most of the scale error)
    x = draw("truncated_normal", [0.0, 1.0, -1.0, 1.0], 91)
    assert ks_pvalue(x, stats.truncnorm(-1 / 1.3, 1 / 1.3, scale=1.3).cdf) < ALPHA
    assert ks_pvalue(x, stats.truncnorm(-1.0, 1.0).cdf) > ALPHA


def test_power_normal_variance():
    # KS is weak against scale errors of a symmetric distribution (a 6% variance error moves
    # the CDF by only 0.006): it must reject a 15% error, and the second-moment check that
    # accompanies it must reject a 6% error (E z^2 = 1.06 is 9 standard errors away).
    z = draw("normal", [], 92)
    assert ks_pvalue(z * np.sqrt(1.15), stats.norm.cdf) < ALPHA
    with pytest.raises(AssertionError):
        assert_mean_close((z * np.sqrt(1.06)) ** 2, 1.0)


def test_draws_are_deterministic():
    a = draw("gamma", [0.3, 1.0], 123, n=1000)
    np.testing.assert_array_equal(a, draw("gamma", [0.3, 1.0], 123, n=1000))
    assert not np.array_equal(a, draw("gamma", [0.3, 1.0], 124, n=1000))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("gamma", [0.0, 1.0]),
        ("gamma", [-1.0, 1.0]),
        ("gamma", [1.0, 0.0]),
        ("gamma", [np.nan, 1.0]),
        ("chi_square", [0.0]),
        ("inv_gamma", [1.0, -1.0]),
        ("inv_gamma", [0.0, 1.0]),
        ("beta", [0.0, 1.0]),
        ("beta", [1.0, np.inf]),
        ("exponential", [0.0]),
        ("truncated_normal", [0.0, 1.0, 1.0, 1.0]),
        ("truncated_normal", [0.0, 1.0, 2.0, 1.0]),
        ("truncated_normal", [0.0, 0.0, -1.0, 1.0]),
        ("truncated_normal", [np.nan, 1.0, -1.0, 1.0]),
        ("gamma", [1.0]),  # missing parameter
        ("no_such_distribution", []),
    ],
)
def test_invalid_parameters_raise_value_error(name, params):
    with pytest.raises(ValueError):
        rng_core.draw(name, 10, params)


def test_negative_count_raises():
    with pytest.raises(ValueError, match="n must be >= 0"):
        rng_core.draw("uniform", -1)


# ---------------------------------------------------------------- multivariate normal

COV = np.array([[4.0, 1.2, -0.8], [1.2, 2.0, 0.3], [-0.8, 0.3, 0.5]])
MEAN = np.array([1.0, -2.0, 0.5])
DIRECTIONS = [np.array([1.0, 0.0, 0.0]), np.array([0.3, -1.0, 2.0])]


def check_mvn_draws(x, mean, cov):
    p = len(mean)
    assert x.shape == (N // 2, p)
    assert_mean_close(x, mean)
    centred = x - mean
    for j in range(p):
        for k in range(j + 1):
            assert_mean_close(centred[:, j] * centred[:, k], cov[j, k])
    d2 = np.einsum("ij,ij->i", centred, np.linalg.solve(cov, centred.T).T)
    assert ks_pvalue(d2, stats.chi2(p).cdf) > ALPHA
    for c in DIRECTIONS:
        proj = x @ c
        assert ks_pvalue(proj, stats.norm(c @ mean, np.sqrt(c @ cov @ c)).cdf) > ALPHA


def test_multi_normal_covariance_form():
    chol = np.linalg.cholesky(COV)
    x = rng_core.multi_normal(MEAN, chol, False, N // 2, seed=3)
    check_mvn_draws(x, MEAN, COV)


def test_multi_normal_precision_form():
    chol_prec = np.linalg.cholesky(np.linalg.inv(COV))
    x = rng_core.multi_normal(MEAN, chol_prec, True, N // 2, seed=4)
    check_mvn_draws(x, MEAN, COV)


def test_multi_normal_canonical_form():
    prec = np.linalg.inv(COV)
    x = rng_core.multi_normal_canonical(prec @ MEAN, np.linalg.cholesky(prec), N // 2, seed=5)
    check_mvn_draws(x, MEAN, COV)


def test_ks_power_mvn_wrong_factor():
    # passing the covariance factor as a precision factor must be caught
    x = rng_core.multi_normal(MEAN, np.linalg.cholesky(COV), True, N // 2, seed=6)
    d2 = np.einsum("ij,ij->i", x - MEAN, np.linalg.solve(COV, (x - MEAN).T).T)
    assert ks_pvalue(d2, stats.chi2(3).cdf) < 1e-6


def test_multi_normal_lpdf_matches_scipy():
    chol = np.linalg.cholesky(COV)
    gen = np.random.default_rng(7)
    for x in [MEAN, MEAN + 0.7, gen.normal(size=3) * 10]:
        expected = stats.multivariate_normal(MEAN, COV).logpdf(x)
        assert rng_core.multi_normal_lpdf(x, MEAN, chol) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "factor",
    [
        np.eye(2),  # wrong size
        np.ones((3, 2)),  # not square
        np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),  # not lower
        np.diag([1.0, -1.0, 1.0]),  # non-positive diagonal
        np.diag([1.0, np.nan, 1.0]),
    ],
)
def test_multi_normal_rejects_bad_factors(factor):
    with pytest.raises(ValueError):
        rng_core.multi_normal(MEAN, factor, False, 5)
    with pytest.raises(ValueError):
        rng_core.multi_normal(MEAN, factor, True, 5)


# ---------------------------------------------------------------- Wishart

SCALE = np.array([[2.0, 0.6, -0.4], [0.6, 1.0, 0.2], [-0.4, 0.2, 0.8]])
L_SCALE = np.linalg.cholesky(SCALE)
NW = 20_000


def wishart_draws(nu, inverse, seed, n=NW):
    p = SCALE.shape[0]
    return rng_core.wishart(nu, L_SCALE, inverse, n, seed=seed).reshape(n, p, p)


@pytest.mark.parametrize("nu", [3.0, 4.5, 10.0])
def test_wishart_mean(nu):
    w = wishart_draws(nu, False, int(nu * 10))
    np.testing.assert_allclose(w, np.transpose(w, (0, 2, 1)), rtol=1e-12, atol=0)
    assert_mean_close(w.reshape(NW, -1), (nu * SCALE).ravel())


@pytest.mark.parametrize("nu", [7.5, 12.0])
def test_inverse_wishart_mean(nu):
    w = wishart_draws(nu, True, int(nu * 10) + 1)
    assert_mean_close(w.reshape(NW, -1), (SCALE / (nu - 3 - 1)).ravel())


def test_wishart_quadratic_forms_are_chi_square():
    nu = 6
    w = wishart_draws(nu, False, 77)
    s_inv = np.linalg.inv(SCALE)
    w_inv = np.linalg.inv(w)
    for c in DIRECTIONS:
        ratio = np.einsum("i,nij,j->n", c, w, c) / (c @ SCALE @ c)
        assert ks_pvalue(ratio, stats.chi2(nu).cdf) > ALPHA
        ratio2 = (c @ s_inv @ c) / np.einsum("i,nij,j->n", c, w_inv, c)
        assert ks_pvalue(ratio2, stats.chi2(nu - 3 + 1).cdf) > ALPHA


def test_inverse_wishart_quadratic_forms_are_chi_square():
    # Sigma ~ IW(nu, S) <=> Sigma^{-1} ~ W(nu, S^{-1})
    nu = 8
    sigma = wishart_draws(nu, True, 78)
    s_inv = np.linalg.inv(SCALE)
    sigma_inv = np.linalg.inv(sigma)
    for c in DIRECTIONS:
        ratio = np.einsum("i,nij,j->n", c, sigma_inv, c) / (c @ s_inv @ c)
        assert ks_pvalue(ratio, stats.chi2(nu).cdf) > ALPHA
        ratio2 = (c @ SCALE @ c) / np.einsum("i,nij,j->n", c, sigma, c)
        assert ks_pvalue(ratio2, stats.chi2(nu - 3 + 1).cdf) > ALPHA


@pytest.mark.parametrize("inverse", [False, True])
def test_wishart_entries_match_scipy_two_sample(inverse):
    # an off-diagonal entry (no closed-form marginal) against scipy's own sampler
    nu = 7.0
    ours = wishart_draws(nu, inverse, 79 + inverse)
    dist = stats.invwishart(nu, SCALE) if inverse else stats.wishart(nu, SCALE)
    theirs = dist.rvs(size=NW, random_state=np.random.default_rng(80))
    for i, j in [(1, 0), (2, 1), (2, 2)]:
        assert stats.ks_2samp(ours[:, i, j], theirs[:, i, j]).pvalue > ALPHA


def test_ks_power_wishart_wrong_df():
    w = wishart_draws(7.0, False, 81)
    c = DIRECTIONS[1]
    ratio = np.einsum("i,nij,j->n", c, w, c) / (c @ SCALE @ c)
    assert ks_pvalue(ratio, stats.chi2(6).cdf) < 1e-6


def test_wishart_cholesky_forms_match_the_draws():
    n, p = 200, 3
    for inverse in (False, True):
        full = wishart_draws(5.0, inverse, 82, n=n)
        chol = rng_core.wishart_cholesky(5.0, L_SCALE, inverse, n, seed=82).reshape(n, p, p)
        assert np.all(np.triu(chol, 1) == 0) and np.all(np.diagonal(chol, axis1=1, axis2=2) > 0)
        np.testing.assert_allclose(chol @ np.transpose(chol, (0, 2, 1)), full, rtol=1e-10,
                                   atol=1e-12)


@pytest.mark.parametrize("nu", [2.0, 1.0, -1.0, np.nan, np.inf])
def test_wishart_rejects_small_or_bad_df(nu):
    for inverse in (False, True):
        with pytest.raises(ValueError, match="degrees of freedom"):
            rng_core.wishart(nu, L_SCALE, inverse, 3)


def test_wishart_rejects_bad_scale_factor():
    with pytest.raises(ValueError):
        rng_core.wishart(5.0, SCALE, False, 3)  # a full (not lower-triangular) matrix
    with pytest.raises(ValueError):
        rng_core.wishart(5.0, np.ones((3, 2)), False, 3)
