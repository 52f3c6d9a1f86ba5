"""The families with a dispersion (negbinomial, gamma, beta_binomial) with random effects: the
GLMM sweep ends with a slice step on log phi given the linear predictor.

Proof of the step is elsewhere: one-sweep Geweke tests per family (test_glmm.py,
``test_geweke_dispersion_families``, with a negative control) and the epilepsy negative-binomial
GLMM against an independent HMC sampler (test_reference_epil_negbinomial.py). Here: recovery
of simulated truth through ``bglmm.fit`` (one and two grouping factors), the names, the fixed
dispersion, the pointwise log-likelihood against SciPy's densities (also after save/load), the
posterior predictive's support, thread-count invariance and bad input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bglmm

MCMC = dict(chains=2, draws=400, warmup=400, seed=11, progress=False)


def simulate(family: str, m: int = 60, k: int = 8, phi: float = 3.0, sd: float = 0.6,
             seed: int = 0, crossed: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(m), k)
    h = np.tile(np.arange(k), m)
    x = rng.normal(size=m * k)
    eta = 0.4 + 0.5 * x + rng.normal(0, sd, m)[g]
    if crossed:
        eta = eta + rng.normal(0, 0.4, k)[h]
    d = pd.DataFrame({"x": x, "g": g, "h": h, "n": 12})
    if family == "negbinomial":
        mu = np.exp(eta)
        d["y"] = rng.poisson(rng.gamma(phi, mu / phi))
    elif family == "gamma":
        d["y"] = rng.gamma(phi, np.exp(eta) / phi)
    else:
        p = special.expit(eta - 0.4)
        d["y"] = rng.binomial(12, rng.beta(phi * p, phi * (1 - p)))
    return d


def lhs(family: str) -> str:
    return "cbind(y, n - y)" if family == "beta_binomial" else "y"


@pytest.mark.parametrize("family", ["negbinomial", "gamma", "beta_binomial"])
def test_fit_recovers_the_dispersion_and_the_sd(family):
    d = simulate(family)
    fit = bglmm.fit(f"{lhs(family)} ~ x + (1 | g)", d, family=family, **MCMC)
    name = "shape" if family == "gamma" else "phi"
    s = fit.summary()
    assert name in s.index and "sd_g__Intercept" in s.index
    assert s.loc[name, "r_hat"] < 1.02 and s.loc[name, "ess_bulk"] > 150
    # truth inside the 95% interval (each check fails by chance with probability 5%; fixed seed)
    for var, truth in [(name, 3.0), ("sd_g__Intercept", 0.6), ("beta[x]", 0.5)]:
        assert s.loc[var, "2.5%"] < truth < s.loc[var, "97.5%"], (var, s.loc[var])
    assert name in fit.to_inference_data().posterior


def test_crossed_negative_binomial_recovers_both_sds():
    d = simulate("negbinomial", m=80, k=10, crossed=True, seed=3)
    fit = bglmm.fit("y ~ x + (1 | g) + (1 | h)", d, family="negbinomial", **MCMC)
    s = fit.summary()
    for var, truth in [("phi", 3.0), ("sd_g__Intercept", 0.6), ("sd_h__Intercept", 0.4)]:
        assert s.loc[var, "2.5%"] < truth < s.loc[var, "97.5%"], (var, s.loc[var])


def test_a_fixed_dispersion_is_not_sampled():
    d = simulate("negbinomial")
    fit = bglmm.fit("y ~ x + (1 | g)", d, family="negbinomial", priors={"phi": 3.0}, **MCMC)
    assert "phi" not in fit.posterior
    assert fit.inner.attrs["fixed_dispersion"] == 3.0
    ll = fit.inner.pointwise_log_lik()
    eta = fit.predict(kind="link").reshape(ll.shape)
    ref = stats.nbinom.logpmf(d["y"].to_numpy(), 3.0, 3.0 / (3.0 + np.exp(eta)))
    np.testing.assert_allclose(ll, ref, rtol=1e-9, atol=1e-9)


def scipy_log_lik(family, y, n, eta, phi):
    if family == "negbinomial":
        return stats.nbinom.logpmf(y, phi, phi / (phi + np.exp(eta)))
    if family == "gamma":
        return stats.gamma.logpdf(y, phi, scale=np.exp(eta) / phi)
    mu = special.expit(eta)
    return stats.betabinom.logpmf(y, n, phi * mu, phi * (1 - mu))


@pytest.mark.parametrize("family", ["negbinomial", "gamma", "beta_binomial"])
def test_pointwise_log_lik_matches_scipy_also_after_load(family, tmp_path):
    d = simulate(family, m=12, k=5)
    fit = bglmm.fit(f"{lhs(family)} ~ x + (1 | g)", d, family=family,
                    chains=2, draws=30, warmup=30, seed=2, progress=False, check=False)
    name = "shape" if family == "gamma" else "phi"
    phi = fit.posterior[name][..., None]
    eta = fit.predict(kind="link").reshape(phi.shape[:2] + (-1,))
    ref = scipy_log_lik(family, d["y"].to_numpy(), 12, eta, phi)
    core = fit.inner.pointwise_log_lik()
    np.testing.assert_allclose(core, ref, rtol=1e-8, atol=1e-8)
    path = tmp_path / "fit.nc"
    fit.save(path)
    loaded = bglmm.load(path)
    np.testing.assert_allclose(loaded._pointwise_log_lik()["y"], ref, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("family", ["negbinomial", "gamma", "beta_binomial"])
def test_posterior_predictive_has_the_family_support(family):
    d = simulate(family, m=20, k=5)
    fit = bglmm.fit(f"{lhs(family)} ~ x + (1 | g)", d, family=family,
                    chains=2, draws=100, warmup=100, seed=4, progress=False, check=False)
    rep = fit.posterior_predictive()
    assert rep.shape[-1] == len(d) and np.isfinite(rep).all()
    if family == "gamma":
        assert (rep > 0).all()
    else:
        assert (rep == np.round(rep)).all() and (rep >= 0).all()
    if family == "beta_binomial":
        assert (rep <= 12).all()
    # new groups: effects drawn from the population, the response from the family
    new = pd.DataFrame({"x": [0.0, 1.0], "g": [1000, 1001], "n": 12, "y": 0.0})
    out = fit.predict(new, kind="response", groups="new", seed=1)
    assert out.shape[-1] == 2 and np.isfinite(out).all()


def test_draws_do_not_depend_on_the_thread_count():
    d = simulate("negbinomial", m=300, k=10)
    a = bglmm.glmm(d["y"], pd.DataFrame({"Intercept": 1.0, "x": d["x"]}), None, d["g"],
                   family="negbinomial", chains=1, draws=50, warmup=50, seed=5, threads=1,
                   progress=False, check=False)
    b = bglmm.glmm(d["y"], pd.DataFrame({"Intercept": 1.0, "x": d["x"]}), None, d["g"],
                   family="negbinomial", chains=1, draws=50, warmup=50, seed=5, threads=2,
                   min_rows_per_thread=1, progress=False, check=False)
    np.testing.assert_array_equal(a.posterior["phi"], b.posterior["phi"])
    np.testing.assert_array_equal(a.posterior["beta"], b.posterior["beta"])


@pytest.mark.parametrize("family,y,message", [
    ("negbinomial", [1, -2, 3, 4, 0, 2], "negative"),
    ("negbinomial", [1, 2.5, 3, 4, 0, 2], "non-integer"),
    ("gamma", [1.0, 0.0, 3.0, 4.0, 2.0, 1.0], "<= 0"),
    ("beta_binomial", [1, 2, 13, 4, 0, 2], "negative"),
])
def test_bad_responses_with_groups_name_the_problem(family, y, message):
    d = pd.DataFrame({"y": y, "x": np.arange(6.0), "g": list("aabbcc"), "n": 12})
    with pytest.raises(ValueError, match=message):
        bglmm.fit(f"{lhs(family)} ~ x + (1 | g)", d, family=family, progress=False)
