"""Every family x link of the C++ core against scipy oracles.

``_core.families.evaluate`` (log_lik, score, weight, linkinv per observation) and
``_core.families.link_evaluate`` (each link's functions) are compared with:

* scipy.stats log densities (norm, poisson, binom) where those are accurate, and on the whole
  grid (eta up to +-700) with a log-space oracle built from scipy.special (log_expit,
  log_ndtr, gammaln), independent of the C++ formulas;
* scipy.special inverse links (expit, ndtr, -expm1(-exp)) and their inverses (logit, ndtri);
* central finite differences of log_lik for the score, and the closed form
  n (dmu/deta)^2 / (mu (1 - mu)) (in log space) for the Fisher weight.

Tolerances are relative, a few hundred ulp (the C++ and scipy evaluate the same quantity by
different floating-point paths); finite differences get 1e-6 (truncation h^2 f''' / 6 with
h = 1e-5, plus rounding eps |f| / h).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from bglmm import _core
from bglmm.families import resolve_family

fam = _core.families

EXTREME_ETAS = np.array([-700.0, -100.0, -30.0, -8.0, -1.0, 0.0, 1.0, 8.0, 30.0, 100.0, 700.0])
MODERATE_ETAS = np.linspace(-6.0, 6.0, 49)
# past exp's overflow (709.78) and underflow (-745.13)
BEYOND_ETAS = np.array([-1000.0, -800.0, -746.0, -745.0, 709.79, 710.0, 745.0, 800.0, 1000.0])
BINOMIAL_LINKS = ["logit", "probit", "cloglog"]


def code(family, link=None):
    return resolve_family(family, link).code


def evaluate(family, link, what, y, n, eta, phi=1.0):
    y, n, eta = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (y, n, eta)))
    return fam.evaluate(code(family, link), what, y.copy(), n.copy(), eta.copy(), phi)


# ---- log-space oracle of each link, from scipy.special ----


def oracle_linkinv(link, eta):
    return {
        "logit": special.expit,
        "probit": special.ndtr,
        "cloglog": lambda e: -np.expm1(-np.exp(e)),
    }[link](eta)


def oracle_log_mu(link, eta):
    if link == "logit":
        return special.log_expit(eta), special.log_expit(-eta)
    if link == "probit":
        return special.log_ndtr(eta), special.log_ndtr(-eta)
    e = np.exp(eta)
    # log(1 - exp(-e)) = eta - e/2 + ... once e is below 1e-300 (and where exp(eta) underflows)
    with np.errstate(divide="ignore"):
        return np.where(e < 1e-300, eta, np.log(-np.expm1(-e))), -e


def oracle_log_dmu(link, eta):
    if link == "logit":
        return special.log_expit(eta) + special.log_expit(-eta)
    if link == "probit":
        return stats.norm.logpdf(eta)
    return eta - np.exp(eta)


def oracle_binomial_log_lik(link, y, n, eta):
    log_mu, log1m_mu = oracle_log_mu(link, eta)
    const = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
    return (
        const
        + np.where(y > 0, y * np.where(y > 0, log_mu, 0.0), 0.0)
        + np.where(n - y > 0, (n - y) * np.where(n - y > 0, log1m_mu, 0.0), 0.0)
    )


def oracle_dlog_mu(link, eta):
    """d log mu / d eta and d log(1 - mu) / d eta (dmu / mu and -dmu / (1 - mu))."""
    if link == "logit":
        return special.expit(-eta), -special.expit(eta)
    if link == "probit":
        log_phi = stats.norm.logpdf(eta)
        return np.exp(log_phi - special.log_ndtr(eta)), -np.exp(log_phi - special.log_ndtr(-eta))
    e = np.exp(eta)
    with np.errstate(invalid="ignore"):  # 0 / 0 where exp(eta) underflows: the limit is 1
        return np.where(e < 1e-300, 1.0, np.exp(eta - e) / -np.expm1(-e)), -e


def oracle_binomial_score(link, y, n, eta):
    dlog_mu, dlog1m_mu = oracle_dlog_mu(link, eta)
    return np.where(y > 0, y * dlog_mu, 0.0) + np.where(n - y > 0, (n - y) * dlog1m_mu, 0.0)


def oracle_binomial_weight(link, n, eta):
    log_mu, log1m_mu = oracle_log_mu(link, eta)
    with np.errstate(divide="ignore"):
        return np.exp(np.log(n) + 2 * oracle_log_dmu(link, eta) - log_mu - log1m_mu)


def grid(etas, trials):
    """All (y, n, eta) with y at 0, n and in between."""
    rows = []
    for n in trials:
        for y in sorted({0.0, float(np.floor(n / 3)), float(n)}):
            for e in etas:
                rows.append((y, float(n), e))
    y, n, eta = (np.array(v) for v in zip(*rows))
    return y, n, eta


def assert_close(actual, expected, rtol, atol=1e-300):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def probit_rtol(eta, base):
    """Tolerance for probit values at eta: erfc(z) amplifies the rounding of z = eta / sqrt 2
    by its condition number 2 z^2 = eta^2, and phi / Phi computed as exp(log phi - log Phi)
    (in the scipy oracle) loses |log phi| eps; both ~eta^2 * 2.2e-16 relative."""
    return base + np.asarray(eta) ** 2 * 2.2e-16


def assert_close_elementwise(actual, expected, rtol):
    actual, expected = np.broadcast_arrays(actual, expected)
    bad = ~(np.abs(actual - expected) <= rtol * np.abs(expected) + 1e-300)
    assert not np.any(bad), (actual[bad], expected[bad])


# ---------------------------------------------------------------- gaussian / identity


@pytest.mark.parametrize("phi", [0.01, 1.0, 7.5])
def test_gaussian_identity(phi):
    y = np.array([-3.0, 0.0, 2.5])[:, None] * np.ones(EXTREME_ETAS.size)
    eta = np.ones(3)[:, None] * EXTREME_ETAS
    y, eta = y.ravel(), eta.ravel()
    n = np.ones_like(y)
    ll = evaluate("gaussian", "identity", "log_lik", y, n, eta, phi)
    assert_close(ll, stats.norm.logpdf(y, loc=eta, scale=np.sqrt(phi)), 1e-13)
    score = evaluate("gaussian", "identity", "score", y, n, eta, phi)
    assert_close(score, (y - eta) / phi, 1e-14)
    assert_close(evaluate("gaussian", "identity", "weight", y, n, eta, phi), 1 / phi, 1e-15)
    assert_close(evaluate("gaussian", "identity", "linkinv", y, n, eta, phi), eta, 0)
    # score = d log_lik / d eta by central differences on a moderate grid
    e = MODERATE_ETAS
    yy = np.full_like(e, 0.7)
    h = 1e-5
    fd = (
        evaluate("gaussian", "identity", "log_lik", yy, 1.0, e + h, phi)
        - evaluate("gaussian", "identity", "log_lik", yy, 1.0, e - h, phi)
    ) / (2 * h)
    assert_close(evaluate("gaussian", "identity", "score", yy, 1.0, e, phi), fd, 1e-6, 1e-6)


# ---------------------------------------------------------------- poisson / log


def test_poisson_log_vs_scipy():
    y = np.repeat([0.0, 1.0, 3.0, 17.0, 1000.0], EXTREME_ETAS.size)
    eta = np.tile(EXTREME_ETAS, 5)
    ll = evaluate("poisson", "log", "log_lik", y, 1.0, eta)
    assert np.all(np.isfinite(ll))
    assert_close(ll, stats.poisson.logpmf(y, np.exp(eta)), 1e-12)
    assert_close(evaluate("poisson", "log", "score", y, 1.0, eta), y - np.exp(eta), 1e-14)
    assert_close(evaluate("poisson", "log", "weight", y, 1.0, eta), np.exp(eta), 1e-14)
    assert_close(evaluate("poisson", "log", "linkinv", y, 1.0, eta), np.exp(eta), 1e-14)


def test_poisson_score_is_derivative_of_log_lik():
    e = MODERATE_ETAS
    h = 1e-5
    for y in (0.0, 2.0, 40.0):
        yy = np.full_like(e, y)
        fd = (
            evaluate("poisson", "log", "log_lik", yy, 1.0, e + h)
            - evaluate("poisson", "log", "log_lik", yy, 1.0, e - h)
        ) / (2 * h)
        score = evaluate("poisson", "log", "score", yy, 1.0, e)
        assert_close(score, fd, 1e-6, 1e-6)


# ---------------------------------------------------------------- binomial / bernoulli


@pytest.mark.parametrize("link", BINOMIAL_LINKS)
@pytest.mark.parametrize("family", ["binomial", "bernoulli"])
def test_binomial_log_lik_vs_scipy_binom(family, link):
    trials = [1] if family == "bernoulli" else [1, 7, 40]
    y, n, eta = grid(MODERATE_ETAS, trials)
    mu = oracle_linkinv(link, eta)
    # scipy's binom.logpmf works from mu and so loses accuracy where 1 - mu cancels: keep
    # mu in [1e-9, 1 - 1e-9], where that costs at most eps / (1 - mu) ~ 2e-7 relative
    keep = (mu > 1e-9) & (mu < 1 - 1e-9)
    y, n, eta, mu = y[keep], n[keep], eta[keep], mu[keep]
    assert keep.sum() >= 0.6 * keep.size
    ll = evaluate(family, link, "log_lik", y, n, eta)
    assert_close(ll, stats.binom.logpmf(y, n, mu), 1e-6)


@pytest.mark.parametrize("link", BINOMIAL_LINKS)
@pytest.mark.parametrize("family", ["binomial", "bernoulli"])
def test_binomial_log_lik_score_weight_on_extreme_grid(family, link):
    trials = [1] if family == "bernoulli" else [1, 10, 1000]
    y, n, eta = grid(EXTREME_ETAS, trials)
    ll = evaluate(family, link, "log_lik", y, n, eta)
    score = evaluate(family, link, "score", y, n, eta)
    weight = evaluate(family, link, "weight", y, n, eta)
    kernel = evaluate(family, link, "log_kernel", y, n, eta)
    for values in (ll, score, weight, kernel):
        assert np.all(np.isfinite(values))
    assert np.all(ll <= 1e-12) and np.all(weight >= 0)
    rtol = probit_rtol(eta, 1e-12) if link == "probit" else 1e-12
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        assert_close_elementwise(ll, oracle_binomial_log_lik(link, y, n, eta), rtol)
        assert_close_elementwise(score, oracle_binomial_score(link, y, n, eta), 10 * rtol)
        assert_close_elementwise(weight, oracle_binomial_weight(link, n, eta), 10 * rtol)


def oracle_cloglog_weight(n, eta):
    """n (dmu/deta)^2 / (mu (1 - mu)) = n e^(2 eta) / (e^(e^eta) - 1), in log space, with
    log(e^e - 1) = e + log1p(-e^-e) for large e (inf beyond exp's overflow: weight 0) and
    eta + e/2 for tiny e (where exp(eta) underflows)."""
    e = np.exp(eta)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        log_expm1 = np.where(e < 1e-10, eta + e / 2,
                             np.where(e < 1, np.log(np.expm1(e)), e + np.log1p(-np.exp(-e))))
        return np.exp(np.log(n) + 2 * eta - log_expm1)


@pytest.mark.parametrize("link", BINOMIAL_LINKS)
@pytest.mark.parametrize("family", ["binomial", "bernoulli"])
def test_binomial_beyond_exp_overflow(family, link):
    """|eta| past 709.78, where exp(|eta|) overflows or underflows (cloglog's Fisher weight
    was 0 * inf = NaN above 709.78): no NaN; the weight finite, non-negative and equal to its
    limit; log_lik and score equal to the oracle, which for cloglog with y < n at large eta is
    -(n - y) e^eta: -inf, the correctly rounded value, once below -DBL_MAX."""
    trials = [1] if family == "bernoulli" else [1, 10, 1000]
    y, n, eta = grid(BEYOND_ETAS, trials)
    ll = evaluate(family, link, "log_lik", y, n, eta)
    score = evaluate(family, link, "score", y, n, eta)
    weight = evaluate(family, link, "weight", y, n, eta)
    for values in (ll, score, weight):
        assert not np.any(np.isnan(values))
    assert np.all(np.isfinite(weight)) and np.all(weight >= 0)
    rtol = probit_rtol(eta, 1e-12) if link == "probit" else 1e-12
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        expected_w = (oracle_cloglog_weight(n, eta) if link == "cloglog"
                      else oracle_binomial_weight(link, n, eta))
        expected_ll = oracle_binomial_log_lik(link, y, n, eta)
        expected_score = oracle_binomial_score(link, y, n, eta)
    assert_close_elementwise(weight, expected_w, 10 * rtol)
    for actual, expected in ((ll, expected_ll), (score, expected_score)):
        overflow = np.isinf(expected)
        assert np.all(overflow == ((link == "cloglog") & (y < n) & (eta > 709.78)))
        np.testing.assert_array_equal(actual[overflow], expected[overflow])
        assert_close_elementwise(actual[~overflow], expected[~overflow], 10 * rtol)
    if link == "cloglog":  # y = n at eta = 800: mu = 1 exactly, so log_lik = score = 0
        top = (y == n) & (eta > 709.78)
        assert np.all(ll[top] == 0) and np.all(score[top] == 0) and np.all(weight[top] == 0)


@pytest.mark.parametrize("link", BINOMIAL_LINKS)
def test_binomial_score_is_derivative_of_log_lik(link):
    h = 1e-5
    for n in (1.0, 12.0):
        for y in sorted({0.0, 1.0, n}):
            e = np.concatenate([MODERATE_ETAS, [-25.0, -12.5, 12.5, 25.0]])
            yy = np.full_like(e, y)
            f = lambda x: evaluate("binomial", link, "log_lik", yy, n, x)  # noqa: E731
            fd = (f(e + h) - f(e - h)) / (2 * h)
            score = evaluate("binomial", link, "score", yy, n, e)
            # rounding of the difference: eps |log_lik| / h
            atol = 1e-9 + 3e-11 * np.abs(f(e))
            np.testing.assert_allclose(score, fd, rtol=1e-6, atol=atol.max())


@pytest.mark.parametrize("link", BINOMIAL_LINKS)
def test_binomial_weight_is_expected_negative_score_derivative(link):
    # E_y[-d score / d eta] under y ~ Binomial(n, mu(eta)), summed exactly over y = 0..n
    n, h = 15.0, 1e-5
    ys = np.arange(16.0)
    for e in (-4.0, -0.7, 0.0, 1.3, 3.5):
        eta = np.full_like(ys, e)
        pmf = stats.binom.pmf(ys, n, oracle_linkinv(link, e))
        d_score = (
            evaluate("binomial", link, "score", ys, n, eta + h)
            - evaluate("binomial", link, "score", ys, n, eta - h)
        ) / (2 * h)
        weight = evaluate("binomial", link, "weight", ys[:1], n, eta[:1])[0]
        assert -(pmf @ d_score) == pytest.approx(weight, rel=1e-6)


def test_bernoulli_is_binomial_with_one_trial():
    y, n, eta = grid(EXTREME_ETAS, [1])
    for link in BINOMIAL_LINKS:
        for what in ("log_lik", "score", "weight", "linkinv"):
            np.testing.assert_array_equal(
                evaluate("bernoulli", link, what, y, n, eta),
                evaluate("binomial", link, what, y, n, eta),
            )


# ---------------------------------------------------------------- links


@pytest.mark.parametrize("link", BINOMIAL_LINKS)
def test_link_functions_vs_scipy(link):
    eta = EXTREME_ETAS
    with np.errstate(over="ignore", divide="ignore"):
        mu = oracle_linkinv(link, eta)
        log_mu, log1m_mu = oracle_log_mu(link, eta)
        log_dmu = oracle_log_dmu(link, eta)
        dlog_mu, dlog1m_mu = oracle_dlog_mu(link, eta)
    ev = lambda what, x=eta: fam.link_evaluate(link, what, np.asarray(x, float))  # noqa: E731
    rtol = probit_rtol(eta, 1e-14) if link == "probit" else 1e-14
    assert_close_elementwise(ev("linkinv"), mu, rtol)
    assert_close_elementwise(evaluate("binomial", link, "linkinv", 0.0, 1.0, eta), mu, rtol)
    assert_close_elementwise(ev("log_mu"), log_mu, 10 * rtol)
    assert_close_elementwise(ev("log1m_mu"), log1m_mu, 10 * rtol)
    assert_close_elementwise(ev("dmu_deta"), np.exp(log_dmu), 100 * rtol)
    assert_close_elementwise(ev("dlog_mu"), dlog_mu, 100 * rtol)
    assert_close_elementwise(ev("dlog1m_mu"), dlog1m_mu, 100 * rtol)
    for what in ("linkinv", "dmu_deta", "log_mu", "log1m_mu", "dlog_mu", "dlog1m_mu"):
        assert np.all(np.isfinite(ev(what))), what


def test_inverse_links_vs_scipy():
    mu = np.array([1e-300, 1e-10, 0.01, 0.3, 0.5, 0.8, 0.999, 1 - 2**-40])
    assert_close(fam.link_evaluate("logit", "link", mu), special.logit(mu), 1e-13)
    # ndtri is accurate to ~1e-15 relative; our Newton on log Phi stops at 1e-15 steps
    assert_close(fam.link_evaluate("probit", "link", mu), special.ndtri(mu), 1e-12, 1e-15)
    assert_close(
        fam.link_evaluate("cloglog", "link", mu), np.log(-np.log1p(-mu)), 1e-13
    )
    x = np.linspace(-30, 30, 61)
    assert_close(fam.link_evaluate("log", "linkinv", x), np.exp(x), 1e-15)
    assert_close(fam.link_evaluate("log", "link", np.exp(x)), x, 1e-14, 1e-14)
    np.testing.assert_array_equal(fam.link_evaluate("identity", "linkinv", x), x)


# ---------------------------------------------------------------- bad input


def test_bad_arguments_raise_value_error():
    one = np.ones(3)
    with pytest.raises(ValueError, match="family/link code"):
        fam.evaluate(99, "log_lik", one, one, one)
    with pytest.raises(ValueError, match="size"):
        fam.evaluate(0, "log_lik", one, one, np.ones(2))
    with pytest.raises(ValueError, match="phi"):
        fam.evaluate(0, "log_lik", one, one, one, 0.0)
    with pytest.raises(ValueError, match="unknown quantity"):
        fam.evaluate(1, "variance", one, one, one)
    with pytest.raises(ValueError, match="unknown link"):
        fam.link_evaluate("tanh", "linkinv", one)
    with pytest.raises(ValueError, match="unknown quantity"):
        fam.link_evaluate("log", "log_mu", one)
