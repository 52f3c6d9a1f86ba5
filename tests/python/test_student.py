"""The Student-t family (robust regression; scale sigma, degrees of freedom nu): the core's
density against scipy, the half-t prior kind of the slice step against its distribution, the
GLM posterior against an independent quadrature reference, the GLMM recovering sigma, nu and the
SD at the defaults, pointwise log-likelihood (also after load), predictive and prior draws, and
the refusals. Every statistical check has a negative control. The one-sweep Geweke tests of the
GLMM are in test_glmm.py."""

from __future__ import annotations

import sys
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bglmm
from bglmm import _core
from bglmm.priors import Gamma, HalfNormal, HalfStudentT, Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quadrature import grid, posterior_means  # noqa: E402

FAMILY = "student"
CODE = bglmm.families.resolve_family(FAMILY).code


def simulate(n, beta, sigma, nu, seed, groups=None, sd=0.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    eta = beta[0] + beta[1] * x
    g = None
    if groups is not None:
        g = np.repeat(np.arange(groups), n // groups)
        eta = eta + rng.normal(0.0, sd, groups)[g]
    y = bglmm.families.draw_response(rng, FAMILY, eta, phi=sigma, phi2=nu)
    return x, y, g


def test_core_log_lik_matches_scipy():
    eta = np.linspace(-3, 3, 13)
    for sigma, nu in ((0.5, 1.5), (2.0, 4.0), (1.0, 300.0)):
        for y in (-20.0, -1.0, 0.3, 7.0):
            Y = np.full_like(eta, y)
            got = _core.families.evaluate(CODE, "log_lik", Y, np.ones_like(eta), eta, sigma, nu)
            np.testing.assert_allclose(got, stats.t.logpdf(Y, nu, loc=eta, scale=sigma),
                                       rtol=1e-11)
    # negative control: nu matters
    got = _core.families.evaluate(CODE, "log_lik", np.full(1, 5.0), np.ones(1), np.zeros(1),
                                  1.0, 3.0)
    assert abs(got[0] - stats.norm.logpdf(5.0)) > 1.0


def test_half_t_prior_kind_of_the_slice_step():
    draws = _core.dispersion_slice_chain(3, 4.0, 2.0, 1.0, 20000, 7)
    cdf = lambda x: 2 * stats.t.cdf(x / 2.0, 4.0) - 1  # noqa: E731 (half-t(4, 2))
    d = stats.kstest(draws, cdf).statistic
    crit = 1.63 / np.sqrt(float(az.ess(draws[None, :])))
    assert d < crit
    wrong = lambda x: 2 * stats.t.cdf(x / 2.4, 4.0) - 1  # noqa: E731 (scale 20% off)
    assert stats.kstest(draws, wrong).statistic > crit


def grid_means(y, lower, upper, points=40, nu_factor=1.0):
    """Posterior means of (b0, log sigma, log nu) of an intercept-only model by the midpoint
    rule on a 3-D grid, under Normal(0, 10), sigma ~ half-t(3, 2.5) and nu ~ Gamma(2, 0.1);
    nu_factor != 1 evaluates a deliberately wrong likelihood (the negative control)."""
    b0, u, v = grid(lower, upper, points)
    sigma, nu = np.exp(u), np.exp(v)
    lp = stats.t.logpdf(y, nu_factor * nu[..., None], loc=b0[..., None],
                        scale=sigma[..., None]).sum(axis=-1)
    lp += -0.5 * b0**2 / 100.0 + stats.t.logpdf(sigma / 2.5, 3.0) + u + 2.0 * v - 0.1 * nu
    return posterior_means(lp, [b0, u, v])


def test_glm_posterior_means_match_quadrature():
    _, y, _ = simulate(80, (1.0, 0.0), 0.8, 3.0, seed=12)
    fit = bglmm.glm(np.ones((80, 1)), y, FAMILY, prior=Normal(0, 10.0), sampler="independence",
                    dispersion_prior={"sigma": HalfStudentT(3.0, 2.5), "nu": Gamma(2.0, 0.1)},
                    chains=4, draws=1500, warmup=500, seed=5, threads=1)
    draws = np.stack([fit.draws[..., 0], np.log(fit.posterior["sigma"]),
                      np.log(fit.posterior["nu"])], axis=-1)
    mean, sd = draws.mean(axis=(0, 1)), draws.std(axis=(0, 1))
    mcse = np.array([float(az.mcse(draws[..., k])) for k in range(3)])
    lower, upper = mean - 7 * sd, mean + 7 * sd
    upper[2] = mean[2] + 12 * sd[2]  # log nu: a long right tail towards the gaussian
    z = (mean - grid_means(y, lower, upper)) / mcse
    assert np.all(np.abs(z) < 4), z
    # negative control: the likelihood with nu doubled
    wrong = grid_means(y, lower - [0, 0, 1], upper, nu_factor=2.0)
    assert np.max(np.abs((mean - wrong) / mcse)) > 4


@pytest.fixture(scope="module")
def grouped():
    x, y, g = simulate(400, (1.0, 0.5), 0.8, 3.0, seed=1, groups=40, sd=0.7)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def test_glmm_at_the_defaults(grouped, tmp_path):
    fit = bglmm.fit("y ~ x + (1 | g)", grouped, family="student", seed=2, threads=1,
                    progress=False)
    s = fit.summary()
    # recovery within 99% intervals (the calibration proper is the Geweke and quadrature tests')
    draws = {"sigma": fit.posterior["sigma"], "nu": fit.posterior["nu"],
             "sd": fit.posterior["sd_g__Intercept"], "x": fit.posterior["beta"][..., 1]}
    for name, truth in (("sigma", 0.8), ("nu", 3.0), ("sd", 0.7), ("x", 0.5)):
        lo, hi = np.quantile(draws[name], [0.005, 0.995])
        assert lo < truth < hi, (name, lo, hi)
    assert s["r_hat"].max() <= 1.01 and s["ess_bulk"].min() >= 400
    assert isinstance(fit.priors["sigma"], HalfStudentT) and fit.priors["nu"] == Gamma(2.0, 0.1)
    assert "sigma" in fit.sigma().index
    # pointwise log-likelihood against scipy, also after load
    eta = fit.predict(kind="link")
    sigma = fit.posterior["sigma"].reshape(-1)[:, None]
    nu = fit.posterior["nu"].reshape(-1)[:, None]
    expected = stats.t.logpdf(grouped["y"].to_numpy(), nu, loc=eta, scale=sigma)
    got = fit.to_inference_data(log_likelihood=True).log_likelihood["y"].values
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-8, atol=1e-10)
    fit.save(tmp_path / "t.nc")
    back = bglmm.load(tmp_path / "t.nc").to_inference_data(log_likelihood=True)
    np.testing.assert_allclose(back.log_likelihood["y"].values.reshape(expected.shape), expected,
                               rtol=1e-8, atol=1e-10)
    # replicated data: heavier tails than a gaussian's (the kurtosis of the residuals)
    rep = fit.posterior_predictive(draws=200, seed=4)
    assert rep.shape == (200, len(grouped)) and np.all(np.isfinite(rep))
    prior = fit.prior_draws(draws=100, seed=1)
    assert np.all(prior["sigma"] > 0) and np.all(prior["nu"] > 0)
    # negative control: a gaussian fit of the same data puts sigma well above the t's scale
    gauss = bglmm.fit("y ~ x + (1 | g)", grouped, chains=2, draws=300, warmup=300, seed=2,
                      threads=1, progress=False, check=False)
    assert np.median(gauss.posterior["sigma"]) > s.loc["sigma", "97.5%"]


def test_student_is_robust_to_an_outlier():
    x, y, _ = simulate(60, (0.0, 1.0), 0.5, 30.0, seed=3)
    clean = np.polyfit(x, y, 1)[0]  # the least-squares slope without the outlier
    y[np.argmax(x)] -= 60.0  # one gross outlier at the largest x
    d = pd.DataFrame({"y": y, "x": x})
    t = bglmm.fit("y ~ x", d, family="student", seed=1, threads=1, progress=False)
    g = bglmm.fit("y ~ x", d, seed=1, threads=1, progress=False)
    slope_t = float(np.median(t.posterior["beta"][..., 1]))
    slope_g = float(np.median(g.posterior["beta"][..., 1]))
    assert abs(slope_t - clean) < 0.15  # the t shrugs the outlier off
    assert abs(slope_g - clean) > 0.5   # the gaussian is dragged by it (the control)


def test_priors_are_checked(grouped):
    small = grouped.iloc[:100]
    fixed = bglmm.fit("y ~ x", small, family=FAMILY, priors={"nu": 4.0}, chains=1, draws=100,
                      warmup=100, seed=1, threads=1, progress=False, check=False)
    assert "nu" not in fixed.posterior and fixed.attrs["fixed_dispersion2"] == 4.0
    with pytest.raises(TypeError, match="HalfStudentT"):
        bglmm.fit("y ~ x", small, family=FAMILY, priors={"sigma": HalfNormal(1.0)})
    with pytest.raises(ValueError, match="'sigma', 'nu'"):
        bglmm.fit("y ~ x", small, family=FAMILY, priors={"phi": Gamma(1.0, 1.0)})
    with pytest.raises(ValueError, match="gaussian and student"):
        bglmm.fit("y ~ x", small.assign(y=np.abs(np.round(small["y"]))), family="poisson",
                  priors={"sigma": HalfStudentT(3, 1)})
    assert bglmm.families.resolve_family("student_t").name == FAMILY
