"""Worked examples of the Bayesian GLM against independent references.

References are computed here with NumPy/SciPy only (no bglmm code): posterior expectations by
deterministic quadrature on a grid laid over the posterior (aligned with the Laplace
approximation: beta = mode + L u, u on a regular grid), which is exact up to a negligible
discretisation error. MCMC means must agree within 3 Monte-Carlo standard errors (ArviZ's
mcse_mean, which accounts for autocorrelation); the chance that a correct sampler fails one such
check is about 0.3% and the seeds are fixed, so the tests are deterministic. A sampler with a
wrong target (e.g. a prior or likelihood error shifting a mean by one posterior sd) would be off
by ~40 MCSE and fail.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import bglmm
from bglmm.results import import_arviz

az = import_arviz()


# ---------------------------------------------------------------------------------------------
# Independent reference: log posteriors written directly with scipy, and grid quadrature
# ---------------------------------------------------------------------------------------------
def log_lik_scipy(family, link, X, y, n, offset, beta):
    """Log-likelihood for each row of `beta` (k, p), written with scipy.stats."""
    eta = offset[None, :] + beta @ X.T  # (k, N)
    if family == "poisson":
        return stats.poisson.logpmf(y, np.exp(eta)).sum(axis=1)
    if family == "gaussian":
        raise AssertionError("use the closed form for gaussian")
    if link == "logit":
        logp, log1mp = -np.logaddexp(0, -eta), -np.logaddexp(0, eta)
    elif link == "probit":
        logp, log1mp = special.log_ndtr(eta), special.log_ndtr(-eta)
    else:  # cloglog
        e = np.exp(eta)
        logp, log1mp = np.log(-np.expm1(-e)), -e
    const = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
    return (y * logp + (n - y) * log1mp + const).sum(axis=1)


def quadrature_posterior(family, link, X, y, n, offset, prior_sd, points=61, width=7.0):
    """Posterior mean and sd of beta, and the normalised grid (nodes, weights)."""
    p = X.shape[1]

    def neg_log_post(b):
        return -(log_lik_scipy(family, link, X, y, n, offset, b[None, :])[0]
                 - 0.5 * np.sum(b**2) / prior_sd**2)

    opt = optimize.minimize(neg_log_post, np.zeros(p), method="BFGS", options={"gtol": 1e-8})
    mode = opt.x
    h = 1e-4 * np.maximum(1.0, np.abs(mode))
    hess = np.empty((p, p))
    for i, j in itertools.product(range(p), repeat=2):
        ei, ej = np.eye(p)[i] * h[i], np.eye(p)[j] * h[j]
        hess[i, j] = (neg_log_post(mode + ei + ej) - neg_log_post(mode + ei - ej)
                      - neg_log_post(mode - ei + ej) + neg_log_post(mode - ei - ej)) / (4 * h[i] * h[j])
    L = np.linalg.cholesky(np.linalg.inv(0.5 * (hess + hess.T)))
    u = np.linspace(-width, width, points)
    grid = np.array(np.meshgrid(*([u] * p), indexing="ij")).reshape(p, -1).T
    nodes = mode + grid @ L.T
    logw = log_lik_scipy(family, link, X, y, n, offset, nodes) - 0.5 * np.sum(nodes**2, axis=1) / prior_sd**2
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mean = w @ nodes
    sd = np.sqrt(w @ (nodes - mean) ** 2)
    return mean, sd, nodes, w


def assert_within_mcse(fit_summary, reference_mean, z=3.0):
    diff = np.abs(fit_summary["mean"].to_numpy() - reference_mean)
    mcse = fit_summary["mcse_mean"].to_numpy()
    assert np.all(diff < z * mcse), (
        f"posterior means off: |diff| = {diff}, {z} MCSE = {z * mcse}")


# ---------------------------------------------------------------------------------------------
# Song sparrows: Poisson regression with a quadratic in age (Hoff 2009, §10.2), prior N(0, 10^2)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sparrows():
    df = bglmm.datasets.load("sparrows")
    X = pd.DataFrame({"intercept": 1.0, "age": df["age"].astype(float),
                      "age2": df["age"].astype(float) ** 2})
    y = df["fledged"].to_numpy(float)
    ref = quadrature_posterior("poisson", "log", X.to_numpy(), y, np.ones(len(y)),
                               np.zeros(len(y)), prior_sd=10.0)
    return X, y, ref


@pytest.mark.parametrize("sampler,proposal", [("random_walk", "fisher"),
                                              ("random_walk", "crossproduct"),
                                              ("independence", "fisher")])
def test_sparrows_posterior_matches_quadrature(sparrows, sampler, proposal):
    X, y, (ref_mean, ref_sd, _, _) = sparrows
    fit = bglmm.glm(X, y, family="poisson", prior=bglmm.priors.Normal(0, 10), chains=4,
                    draws=2500, warmup=1000, seed=11, sampler=sampler, proposal=proposal)
    table = fit.summary()
    assert list(table.index) == ["beta[intercept]", "beta[age]", "beta[age2]"]
    assert_within_mcse(table, ref_mean)
    # posterior sds: within 10% (the MCSE of an sd estimate at these ESS is ~3%)
    np.testing.assert_allclose(table["sd"].to_numpy(), ref_sd, rtol=0.10)
    assert (table["r_hat"] < 1.02).all()
    if sampler == "random_walk":
        assert all(0.2 <= a <= 0.5 for a in fit.acceptance_rate)


# ---------------------------------------------------------------------------------------------
# Beetles: binomial dose-response with logit, probit and cloglog links
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def beetles():
    df = bglmm.datasets.load("beetles")
    dose = df["dose"].to_numpy(float)
    X = np.column_stack([np.ones(len(dose)), dose - dose.mean()])
    return df, X


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_beetles_mortality_curves_match_quadrature(beetles, link):
    df, X = beetles
    y, n = df["killed"].to_numpy(float), df["exposed"].to_numpy(float)
    ref_mean, _, nodes, w = quadrature_posterior("binomial", link, X, y, n, np.zeros(len(y)),
                                                 prior_sd=100.0, points=301, width=8.0)
    fit = bglmm.glm(X, y, family="binomial", link=link, trials=n,
                    prior=bglmm.priors.Normal(0, 100), chains=4, draws=2500, warmup=1000, seed=5)
    assert_within_mcse(fit.summary(), ref_mean)
    # fitted mortality curve at the 8 doses: E[mu(dose) | y], MCMC vs quadrature
    mu_draws = fit.predict(kind="mean")  # (chain, draw, dose)
    inv = {"logit": special.expit, "probit": special.ndtr,
           "cloglog": lambda e: -np.expm1(-np.exp(e))}[link]
    ref_curve = w @ inv(nodes @ X.T)
    curve = az.summary(az.convert_to_dataset({"mu": mu_draws}), kind="all", round_to="none")
    diff = np.abs(curve["mean"].to_numpy() - ref_curve)
    assert np.all(diff < 3 * curve["mcse_mean"].to_numpy())


@pytest.mark.filterwarnings("ignore:For one or more samples the posterior variance:UserWarning")
def test_beetles_link_comparison(beetles):
    """Maximum-likelihood deviances match Dobson & Barnett (Table 7.3: logit 11.23, probit
    10.12, cloglog 3.45), and WAIC ranks the cloglog link best, as the deviances do."""
    df, X = beetles
    y, n = df["killed"].to_numpy(float), df["exposed"].to_numpy(float)
    saturated = y * np.log(np.where(y > 0, y / n, 1)) + (n - y) * np.log(np.where(n > y, 1 - y / n, 1))
    deviance, waic = {}, {}
    for link, code in [("logit", 2), ("probit", 3), ("cloglog", 4)]:
        fam = bglmm.resolve_family("binomial", link)
        assert fam.code == code
        mode, *_ = bglmm._core.glm_mode(np.ascontiguousarray(X), y, n, np.zeros(len(y)), code,
                                        np.zeros(2), np.eye(2) * 1e10)
        eta = X @ mode
        mu = {"logit": special.expit, "probit": special.ndtr,
              "cloglog": lambda e: -np.expm1(-np.exp(e))}[link](eta)
        loglik = y * np.log(mu) + (n - y) * np.log1p(-mu)
        deviance[link] = 2 * (saturated - loglik).sum()
        fit = bglmm.glm(X, y, family="binomial", link=link, trials=n,
                        prior=bglmm.priors.Normal(0, 100), chains=2, draws=1500, warmup=500,
                        seed=3, sampler="independence")
        waic[link] = az.waic(fit.to_inference_data()).elpd_waic
    np.testing.assert_allclose([deviance["logit"], deviance["probit"], deviance["cloglog"]],
                               [11.23, 10.12, 3.45], atol=0.01)
    assert waic["cloglog"] > waic["probit"] > waic["logit"]


# ---------------------------------------------------------------------------------------------
# Normal linear model: exact conjugate sampler against the closed form
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def linear_data():
    rng = np.random.default_rng(42)
    n = 60
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.uniform(-1, 1, size=n)])
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.8, size=n)
    return X, y


def test_normal_inverse_gamma_posterior_matches_closed_form(linear_data):
    X, y = linear_data
    n, p = X.shape
    m0, V0 = np.zeros(p), np.eye(p) * 4.0
    a0, b0 = 2.0, 1.5
    fit = bglmm.glm(X, y, family="gaussian", prior=bglmm.priors.Normal(0, 2.0),
                    sigma_prior=bglmm.priors.InverseGamma(a0, b0), chains=4, draws=5000, seed=9)
    assert fit.sampler.startswith("exact conjugate")
    # closed form: Lambda_n = V0^-1 + X'X, m_n = Lambda_n^-1 (V0^-1 m0 + X'y),
    # a_n = a0 + n/2, b_n = b0 + (y'y + m0'V0^-1 m0 - m_n' Lambda_n m_n) / 2
    lam = np.linalg.inv(V0) + X.T @ X
    mn = np.linalg.solve(lam, np.linalg.inv(V0) @ m0 + X.T @ y)
    an = a0 + n / 2
    bn = b0 + 0.5 * (y @ y + m0 @ np.linalg.solve(V0, m0) - mn @ lam @ mn)
    beta = fit.draws.reshape(-1, p)
    sigma2 = fit.posterior["sigma"].reshape(-1) ** 2
    N = beta.shape[0]  # independent draws: MCSE = sd / sqrt(N)
    cov_beta = bn / (an - 1) * np.linalg.inv(lam)  # marginal t covariance
    assert np.all(np.abs(beta.mean(0) - mn) < 3.5 * np.sqrt(np.diag(cov_beta) / N))
    # variances: the sd of a sample variance is about var * sqrt(2 / N) (plus t-tail excess)
    np.testing.assert_allclose(beta.var(0), np.diag(cov_beta), rtol=5 * np.sqrt(2 / N))
    e_sigma2 = bn / (an - 1)
    sd_sigma2 = e_sigma2 / np.sqrt(an - 2)
    assert abs(sigma2.mean() - e_sigma2) < 3.5 * sd_sigma2 / np.sqrt(N)
    # the whole marginal of sigma^2 is Inverse-Gamma(a_n, b_n)
    assert stats.kstest(sigma2, stats.invgamma(an, scale=bn).cdf).pvalue > 1e-3


@pytest.mark.parametrize("sampler", ["conjugate", "random_walk"])
def test_known_sigma_posterior_matches_closed_form(linear_data, sampler):
    X, y = linear_data
    p = X.shape[1]
    sigma = 0.8
    V0 = np.eye(p) * 9.0
    fit = bglmm.glm(X, y, family="gaussian", sigma=sigma, prior=bglmm.priors.Normal(0, 3.0),
                    sampler=sampler, chains=4, draws=3000, warmup=1000, seed=4)
    Q = np.linalg.inv(V0) + X.T @ X / sigma**2
    post_cov = np.linalg.inv(Q)
    post_mean = post_cov @ (X.T @ y / sigma**2)
    assert_within_mcse(fit.summary(), post_mean)
    np.testing.assert_allclose(fit.summary()["sd"], np.sqrt(np.diag(post_cov)), rtol=0.08)


# ---------------------------------------------------------------------------------------------
# Offsets, predictions and the fit object
# ---------------------------------------------------------------------------------------------
def test_poisson_offset_matches_quadrature():
    rng = np.random.default_rng(8)
    n = 40
    exposure = rng.uniform(0.5, 5.0, size=n)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.poisson(exposure * np.exp(X @ [0.3, -0.6])).astype(float)
    off = np.log(exposure)
    ref_mean, *_ = quadrature_posterior("poisson", "log", X, y, np.ones(n), off, prior_sd=10.0,
                                        points=201)
    fit = bglmm.glm(X, y, family="poisson", offset=off, chains=4, draws=2500, warmup=1000, seed=6)
    assert_within_mcse(fit.summary(), ref_mean)


def test_fit_object_shapes_names_and_arviz(sparrows):
    X, y, _ = sparrows
    # (the default random walk: 3 x 400 draws are too few to pass the convergence check)
    fit = bglmm.glm(X, y, family="poisson", chains=3, draws=400, warmup=300, seed=1, check=False)
    assert fit.draws.shape == (3, 400, 3)
    assert fit.coef_names == ["intercept", "age", "age2"]
    table = fit.summary()
    for col in ["mean", "sd", "2.5%", "50%", "97.5%", "ess_bulk", "ess_tail", "r_hat",
                "mcse_mean", "acceptance"]:
        assert col in table.columns
    idata = fit.to_inference_data()
    assert set(idata.groups()) >= {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    assert idata.posterior["beta"].dims == ("chain", "draw", "coef")
    assert list(idata.posterior["coef"].values) == ["intercept", "age", "age2"]
    assert idata.log_likelihood["y"].shape == (3, 400, len(y))
    assert idata.attrs["seed"] == "1"
    # pointwise log-likelihood agrees with scipy at one draw
    b = fit.draws[1, 17]
    expected = stats.poisson.logpmf(y, np.exp(X.to_numpy() @ b))
    np.testing.assert_allclose(idata.log_likelihood["y"].values[1, 17], expected, rtol=1e-12)
    # predictions: the mean is exp(eta); responses are counts
    mean = fit.predict(pd.DataFrame({"intercept": [1.0], "age": [2.0], "age2": [4.0]}))
    np.testing.assert_allclose(mean[..., 0], np.exp(fit.draws @ np.array([1.0, 2.0, 4.0])))
    resp = fit.predict(kind="response", seed=0)
    assert resp.shape == (3, 400, len(y)) and np.all(resp == np.round(resp)) and resp.min() >= 0


def test_seed_none_is_recorded_and_reproduces(sparrows):
    X, y, _ = sparrows
    fit = bglmm.glm(X, y, family="poisson", chains=1, draws=50, warmup=50, check=False)
    again = bglmm.glm(X, y, family="poisson", chains=1, draws=50, warmup=50, seed=fit.seed,
                      check=False)
    np.testing.assert_array_equal(fit.draws, again.draws)


def test_complete_separation_still_samples():
    # Perfectly separated bernoulli data: the likelihood has no maximum, the proper prior
    # makes the posterior proper, and its mean must be finite and positive.
    x = np.array([-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0])
    y = (x > 0).astype(float)
    X = np.column_stack([np.ones_like(x), x])
    # (the heavy right tail of the slope keeps the random walk's R-hat near 1.01: not checked)
    fit = bglmm.glm(X, y, family="bernoulli", prior=bglmm.priors.Normal(0, 5), chains=2,
                    draws=1000, warmup=500, seed=2, check=False)
    slope = fit.draws[..., 1]
    assert np.isfinite(slope).all() and slope.mean() > 1.0
