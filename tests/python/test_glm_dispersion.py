"""GLM families with a dispersion (negbinomial, gamma, beta_binomial): the posterior against an
independent quadrature reference, MASS's glm.nb on the quine data, the dispersion slice step
against its prior, the pointwise log-likelihood against scipy, predictive draws, and the
refusals. Every statistical check has a negative control that shows it can fail."""

from __future__ import annotations

import sys
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import bglmm
from bglmm import _core
from bglmm.priors import Gamma, Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quadrature import grid, posterior_means  # noqa: E402

PRIOR_SD = 10.0  # Normal(0, 10) on beta, as bglmm.glm's default
A0, B0 = 0.01, 0.01  # the default Gamma(0.01, 0.01) on the dispersion


# ---- an independent reference: the posterior on a grid ------------------------------------

def log_lik(family: str, y, trials, eta, phi):
    """Pointwise log-likelihood from scipy (the reference, independent of the C++ core)."""
    if family == "negbinomial":
        mu = np.exp(eta)
        return stats.nbinom.logpmf(y, phi, phi / (mu + phi))
    if family == "gamma":
        return stats.gamma.logpdf(y, phi, scale=np.exp(eta) / phi)
    if family == "beta_binomial":
        mu = special.expit(eta)
        return stats.betabinom.logpmf(y, trials, phi * mu, phi * (1 - mu))
    raise ValueError(family)


def grid_means(family, x, y, trials, lower, upper, points=40, phi_factor=1.0):
    """Posterior means of (b0, b1, log phi) by the midpoint rule on a 3-D grid over the box
    [lower, upper]; phi_factor != 1 evaluates a deliberately wrong likelihood (the negative
    control)."""
    b0, b1, u = grid(lower, upper, points)
    eta = b0[..., None] + b1[..., None] * x
    phi = phi_factor * np.exp(u)[..., None]
    lp = log_lik(family, y, trials, eta, phi).sum(axis=-1)
    lp += -0.5 * (b0**2 + b1**2) / PRIOR_SD**2 + A0 * u - B0 * np.exp(u)
    return posterior_means(lp, [b0, b1, u])


def simulate(family, n, beta, phi, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    eta = beta[0] + beta[1] * x
    trials = np.full(n, 10.0) if family == "beta_binomial" else None
    mu = special.expit(eta) if family == "beta_binomial" else np.exp(eta)
    y = bglmm.families.draw_response(rng, family, mu, trials=trials, phi=phi)
    if family == "gamma":
        y = np.maximum(y, 1e-300)
    return x, y, trials


CASES = [("negbinomial", "random_walk", (1.0, 0.5), 3.0, 40),
         ("negbinomial", "independence", (0.2, -0.7), 0.8, 40),
         ("gamma", "independence", (0.5, -0.3), 4.0, 30),
         ("beta_binomial", "independence", (-0.3, 0.6), 5.0, 40)]


@pytest.mark.parametrize("family,sampler,beta,phi,n", CASES)
def test_posterior_means_match_quadrature(family, sampler, beta, phi, n):
    x, y, trials = simulate(family, n, beta, phi, seed=11)
    X = np.column_stack([np.ones(n), x])
    fit = bglmm.glm(X, y, family, trials=trials, prior=Normal(0, PRIOR_SD), sampler=sampler,
                    chains=4, draws=1500, warmup=500, seed=5, threads=1)
    name = "shape" if family == "gamma" else "phi"
    draws = np.concatenate([fit.draws, np.log(fit.posterior[name])[..., None]], axis=-1)
    mean = draws.mean(axis=(0, 1))
    sd = draws.std(axis=(0, 1))
    mcse = np.array([float(az.mcse(draws[..., k])) for k in range(3)])
    # the box: 7 SDs either side, and 14 above for log phi (long right tail towards the
    # Poisson/binomial limit)
    lower, upper = mean - 7 * sd, mean + 7 * sd
    upper[2] = mean[2] + 14 * sd[2]
    reference = grid_means(family, x, y, trials, lower, upper)
    z = (mean - reference) / mcse
    assert np.all(np.abs(z) < 4), (z, mean, reference, mcse)
    # negative control: the likelihood with the dispersion doubled is detected
    wrong = grid_means(family, x, y, trials, lower - [0, 0, 1], upper, phi_factor=2.0)
    assert np.max(np.abs((mean - wrong) / mcse)) > 4


# ---- the core's densities against scipy, and at |eta| = 700 --------------------------------

@pytest.mark.parametrize("family,link", [("negbinomial", "log"), ("gamma", "log"),
                                         ("beta_binomial", "logit"), ("beta_binomial", "probit"),
                                         ("beta_binomial", "cloglog")])
def test_core_log_lik_matches_scipy(family, link):
    code = bglmm.families.resolve_family(family, link).code
    eta = np.linspace(-3, 3, 13)
    for phi in (0.3, 2.0, 40.0):
        for y in ([0.0, 1.0, 4.0, 10.0] if family != "gamma" else [0.05, 1.0, 4.0, 10.0]):
            Y, T = np.full_like(eta, y), np.full_like(eta, 10.0)
            got = _core.families.evaluate(code, "log_lik", Y, T, eta, phi)
            mu = bglmm.families.inverse_link(link, eta)
            if family == "beta_binomial":
                # 1 - mu by its own formula: 1 - mu rounds away its digits near mu = 1
                one_minus = {"logit": special.expit(-eta), "probit": special.ndtr(-eta),
                             "cloglog": np.exp(-np.exp(eta))}[link]
                ref = stats.betabinom.logpmf(Y, T, phi * mu, phi * one_minus)
            else:
                ref = log_lik(family, Y, T, eta, phi)
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    extreme = np.array([-700.0, -30.0, 30.0, 700.0])
    y = np.full(4, 3.0)
    for what in ("log_lik", "score", "weight"):
        v = _core.families.evaluate(code, what, y, np.full(4, 10.0), extreme, 2.0)
        assert np.all(np.isfinite(v)), (what, v)


# ---- MASS: glm.nb(Days ~ Eth + Sex + Age + Lrn, data = quine) -----------------------------

QUINE_THETA, QUINE_THETA_SE = 1.275, 0.161  # MASS::glm.nb (Venables & Ripley, MASS §7.4)
QUINE_FORMULA = "Days ~ Eth + Sex + Age + Lrn"


def quine_mle(spec) -> float:
    """theta of the negative binomial maximum likelihood fit, by scipy (independent of bglmm)."""
    X, y = spec.X, spec.y

    def nll(par):
        return -log_lik("negbinomial", y, None, X @ par[:-1], np.exp(par[-1])).sum()

    start = np.append(np.linalg.lstsq(X, np.log(y + 0.5), rcond=None)[0], 0.0)
    res = optimize.minimize(nll, start, method="BFGS", options={"gtol": 1e-8})
    return float(np.exp(res.x[-1]))


@pytest.fixture(scope="module")
def quine():
    return bglmm.datasets.load("quine")


def test_quine_phi_matches_glm_nb(quine):
    fit = bglmm.fit(QUINE_FORMULA, quine, family="negbinomial", chains=4, draws=1000,
                    warmup=500, seed=1, threads=1, progress=False)
    assert abs(quine_mle(fit.spec) - QUINE_THETA) < 5e-4  # the data and the likelihood agree
    phi = fit.posterior["phi"].ravel()
    median, sd = np.median(phi), phi.std()
    # the posterior of theta is skewed (longer right tail) and, integrating over beta, sits a
    # little below the profile maximum: its median within one posterior SD of the MLE
    assert abs(median - QUINE_THETA) < sd
    assert 0.5 * QUINE_THETA_SE < sd < 2 * QUINE_THETA_SE
    lo, hi = np.quantile(phi, [0.025, 0.975])
    assert lo < QUINE_THETA < hi
    assert "phi" in fit.summary().index
    # negative control: a prior centred on phi = 4 (sd 0.2) moves the median out of that band
    off = bglmm.fit(QUINE_FORMULA, quine, family="nb", priors={"phi": Gamma(400.0, 100.0)},
                    chains=2, draws=500, warmup=300, seed=1, threads=1, progress=False)
    assert abs(np.median(off.posterior["phi"]) - QUINE_THETA) > sd


# ---- the dispersion slice step leaves its prior invariant ---------------------------------

def ks_with_ess(draws, cdf):
    """KS statistic and the 1% critical value for a sample of effective size ESS."""
    d = stats.kstest(draws, cdf).statistic
    ess = float(az.ess(draws[None, :]))
    return d, 1.63 / np.sqrt(ess)


def test_slice_step_samples_the_prior():
    a, b = 2.0, 0.5
    phi = _core.dispersion_slice_chain(0, a, b, 1.0, 20000, 3)
    d, crit = ks_with_ess(phi, stats.gamma(a, scale=1 / b).cdf)
    assert d < crit
    # negative control: a prior density 20% off in its rate fails
    d_wrong, crit = ks_with_ess(phi, stats.gamma(a, scale=1 / (1.2 * b)).cdf)
    assert d_wrong > crit
    fixed = _core.dispersion_slice_chain(1, 2.5, 0.0, 1.0, 10, 3)
    assert np.all(fixed == 2.5)


# ---- pointwise log-likelihood and predictions ----------------------------------------------

@pytest.mark.parametrize("family", ["negbinomial", "gamma", "beta_binomial"])
def test_pointwise_log_lik_and_predictive(family):
    x, y, trials = simulate(family, 30, (0.3, 0.4), 3.0, seed=2)
    X = np.column_stack([np.ones(30), x])
    fit = bglmm.glm(X, y, family, trials=trials, chains=2, draws=200, warmup=200, seed=3,
                    threads=1, check=False)
    name = "shape" if family == "gamma" else "phi"
    ll = fit._log_likelihood()["y"]
    eta = np.einsum("cdp,np->cdn", fit.draws, X)
    expected = log_lik(family, y, trials, eta, fit.posterior[name][..., None])
    np.testing.assert_allclose(ll, expected, rtol=1e-9, atol=1e-9)
    # posterior predictive draws, in the family's support
    rep = fit.predict(kind="response", seed=4)
    assert rep.shape == (2, 200, 30) and np.all(np.isfinite(rep))
    assert np.all(rep > 0) if family == "gamma" else np.all(rep == np.round(rep))
    if trials is not None:
        assert np.all(rep <= trials)


@pytest.mark.parametrize("family", ["negbinomial", "gamma", "beta_binomial"])
def test_response_draws_have_the_family_mean_and_variance(family):
    size, phi, n = 40000, 2.0, 10.0
    mu = 0.3 if family == "beta_binomial" else 2.5
    y = bglmm.families.draw_response(np.random.default_rng(7), family, np.full(size, mu),
                                     trials=np.full(size, n), phi=phi)
    mean, var = {"negbinomial": (mu, mu + mu**2 / phi), "gamma": (mu, mu**2 / phi),
                 "beta_binomial": (n * mu, n * mu * (1 - mu) * (n + phi) / (1 + phi))}[family]
    assert abs(y.mean() - mean) < 4 * np.sqrt(var / size)
    # the sample variance's relative SD is about sqrt((kurtosis - 1) / size) < 0.012 here
    assert abs(y.var() / var - 1) < 0.05
    # negative control: the variance with phi taken as 1/phi is far off
    wrong = {"negbinomial": mu + mu**2 * phi, "gamma": mu**2 * phi,
             "beta_binomial": n * mu * (1 - mu) * (n + 1 / phi) / (1 + 1 / phi)}[family]
    assert abs(y.var() / wrong - 1) > 0.05


# ---- refusals -------------------------------------------------------------------------------

def _frame(y, **cols):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"count": y, "x": rng.standard_normal(len(y)), **cols})


@pytest.mark.parametrize("family,y,message", [
    ("negbinomial", [1, -2, 3, 4], "negative"),
    ("nb", [1, 2.5, 3, 4], "non-integer"),
    ("gamma", [1.0, 0.0, 3.0, 4.0], "<= 0"),
    ("gamma", [1.0, -1.0, 3.0, 4.0], "<= 0"),
])
def test_bad_responses_name_the_problem(family, y, message):
    with pytest.raises(ValueError, match=message) as err:
        bglmm.fit("count ~ x", _frame(y), family=family, chains=1, draws=10, warmup=10,
                  progress=False)
    assert "'count'" in str(err.value)
    with pytest.raises(ValueError, match=message):
        bglmm.glm(np.ones((4, 1)), np.array(y, float), family, chains=1, draws=10, warmup=10)


def test_beta_binomial_trials_checks():
    df = _frame([1, 4, 3, 2], n=[3, 3, 3, 3])
    with pytest.raises(ValueError, match="exceeds trials"):
        bglmm.fit("count | trials(n) ~ x", df, family="beta_binomial", chains=1, draws=10,
                  warmup=10, progress=False)
    with pytest.raises(ValueError, match="needs the number of trials"):
        bglmm.fit("count ~ x", df, family="beta_binomial", progress=False)
    with pytest.raises(ValueError, match="needs trials"):
        bglmm.glm(np.ones((4, 1)), np.array([1.0, 2, 3, 2]), "beta_binomial")


def test_core_refuses_responses_outside_the_support():
    X = np.ones((3, 1))
    for code, y, t in [(5, [1.0, -1.0, 2.0], [1.0] * 3), (6, [1.0, 0.0, 2.0], [1.0] * 3),
                       (7, [1.0, 4.0, 2.0], [3.0] * 3)]:
        with pytest.raises(ValueError, match="outside the support"):
            _core.run_glm_chain(X, np.array(y), np.array(t), np.zeros(3), code, np.zeros(1),
                                np.eye(1), 0.0, 0.0, 10, 10, 1, 0, 0, 0.3, 0.0, 0.0, 1, 1, 0)


def test_wrong_priors_are_refused():
    df = _frame([1, 2, 3, 4, 5, 6], g=list("aabbcc"))
    with pytest.raises(ValueError, match="dispersion_prior applies"):
        bglmm.glmm(np.array([1.0, 2, 3, 4, 5, 6]), np.ones((6, 1)), np.ones((6, 1)),
                   np.array([0, 0, 1, 1, 2, 2]), family="poisson", dispersion_prior=Gamma(1, 1),
                   chains=1, draws=10, warmup=10)
    with pytest.raises(ValueError, match="does not apply to the poisson family"):
        bglmm.fit("count ~ x + (1 | g)", df, family="poisson", priors={"phi": Gamma(1, 1)},
                  progress=False)
    with pytest.raises(ValueError, match="does not apply to the poisson family"):
        bglmm.fit("count ~ x", df, family="poisson", priors={"phi": Gamma(1, 1)}, progress=False)
    with pytest.raises(ValueError, match="its parameters are 'shape'"):
        bglmm.fit("count ~ x", df, family="gamma", priors={"phi": Gamma(1, 1)}, progress=False)
    with pytest.raises(TypeError, match="Gamma or a positive number"):
        bglmm.fit("count ~ x", df, family="nb", priors={"phi": Normal(0, 1)}, progress=False)
    with pytest.raises(ValueError, match="dispersion_prior applies"):
        bglmm.glm(np.ones((6, 1)), np.arange(6.0), "poisson", dispersion_prior=Gamma(1, 1))


def test_family_names_and_aliases():
    from bglmm.families import resolve_family

    for alias in ("negbinomial", "negative_binomial", "nb", "NB"):
        assert resolve_family(alias).name == "negbinomial"
    assert resolve_family("gamma").link == "log"
    assert resolve_family("beta_binomial", "probit").code == 8


def test_core_refuses_bad_dispersion_priors():
    X, y = np.ones((3, 1)), np.array([1.0, 0.0, 2.0])
    args = (X, y, np.ones(3), np.zeros(3), 5, np.zeros(1), np.eye(1), 0.0, 0.0, 10, 10, 1, 0, 0,
            0.3, 0.0, 0.0, 1, 1, 0, None)
    for kind, a, b in [(0, -1.0, 1.0), (0, 1.0, 0.0), (1, 0.0, 0.0), (2, 1.0, 0.0), (7, 1.0, 1.0)]:
        with pytest.raises(ValueError, match="dispersion prior"):
            _core.run_glm_chain(*args, kind, a, b)
    with pytest.raises(ValueError):
        bglmm.glm(X, y, "nb", dispersion_prior=-2.0)
    with pytest.raises(ValueError):
        Gamma(0.0, 1.0)


def test_fixed_dispersion():
    x, y, _ = simulate("negbinomial", 40, (1.0, 0.5), 3.0, seed=4)
    X = np.column_stack([np.ones(40), x])
    fit = bglmm.glm(X, y, "nb", dispersion_prior=3.0, chains=2, draws=200, warmup=200, seed=1,
                    threads=1, check=False)
    assert "phi" not in fit.posterior and fit.attrs["fixed_dispersion"] == 3.0
    ll = fit._log_likelihood()["y"]
    eta = np.einsum("cdp,np->cdn", fit.draws, X)
    np.testing.assert_allclose(ll, log_lik("negbinomial", y, None, eta, 3.0), rtol=1e-9)
    assert fit.predict(kind="response", seed=1).shape == (2, 200, 40)


def test_dispersion_draws_are_reproducible_and_thread_independent():
    x, y, _ = simulate("negbinomial", 2200, (1.0, 0.5), 3.0, seed=8)
    X = np.column_stack([np.ones(2200), x])  # two chunks of rows
    runs = [bglmm.glm(X, y, "nb", chains=2, draws=30, warmup=30, seed=3, threads=t, check=False)
            for t in (1, 2, 1)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.posterior["phi"], runs[0].posterior["phi"])
        np.testing.assert_array_equal(r.draws, runs[0].draws)
    assert not np.array_equal(runs[0].posterior["phi"][0], runs[0].posterior["phi"][1])
