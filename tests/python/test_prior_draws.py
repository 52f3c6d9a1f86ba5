"""Draws from the prior and the prior predictive distribution (brms's sample_prior): the
samplers of each prior family against their known moments, and the fit's prior groups."""

from __future__ import annotations

import numpy as np
import pytest

import bglmm
from bglmm import _prior
from bglmm import priors as P

SMALL = dict(chains=2, draws=100, warmup=100, threads=1, progress=False, check=False)
RNG = np.random.default_rng(20)
N = 40_000


def test_sd_priors():
    assert np.median(_prior.sd_draws(P.HalfNormal(2.0), N, RNG)) == pytest.approx(2 * 0.6745, rel=0.03)
    t = _prior.sd_draws(P.HalfStudentT(3.0, 1.5), N, RNG)
    assert np.median(t) == pytest.approx(1.5 * 0.7649, rel=0.03) and (t >= 0).all()
    u = _prior.sd_draws(P.UniformSD(4.0), N, RNG)
    assert 0 <= u.min() and u.max() <= 4 and u.mean() == pytest.approx(2.0, rel=0.02)
    ig = _prior.sd_draws(P.InverseGamma(3.0, 2.0), N, RNG) ** 2  # variance: mean b / (a - 1)
    assert ig.mean() == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="improper"):
        _prior.sd_draws(P.UniformSD(), 3, RNG)


@pytest.mark.parametrize("q, eta", [(2, 2.0), (3, 1.0), (4, 3.0)])
def test_lkj_correlations_have_the_lkj_marginals(q, eta):
    L = _prior.lkj_cholesky(q, eta, N, RNG)
    R = L @ np.swapaxes(L, 1, 2)
    np.testing.assert_allclose(np.diagonal(R, axis1=1, axis2=2), 1.0, atol=1e-12)
    a = eta - 1 + q / 2  # every r_ij: 2 Beta(a, a) - 1, variance 1 / (2a + 1)
    for i in range(q):
        for j in range(i + 1, q):
            assert np.var(R[:, i, j]) == pytest.approx(1 / (2 * a + 1), rel=0.05)
            assert abs(np.mean(R[:, i, j])) < 0.02


def test_inverse_wishart_mean():
    S = np.array([[2.0, 0.5], [0.5, 1.0]])
    draws = _prior.covariance_draws(P.InverseWishart(8.0, S), 2, N, RNG)
    np.testing.assert_allclose(draws.mean(axis=0), S / (8 - 2 - 1), rtol=0.05, atol=0.01)


@pytest.fixture(scope="module")
def rats_fit():
    return bglmm.fit("weight ~ center(day) + (1 + center(day) | rat)", bglmm.datasets.load("rats"),
                     seed=2, **SMALL)


def test_prior_draws_of_a_fit(rats_fit):
    d = rats_fit.prior_draws(20_000, seed=1)
    assert set(d) == {"beta", "sigma", "sd_rat__Intercept", "sd_rat__center(day)",
                      "cor_rat__Intercept__center(day)"}
    assert d["beta"].shape == (20_000, 2)
    sd_prior = rats_fit.priors["sd"]["Intercept"]
    assert np.median(d["sd_rat__Intercept"]) == pytest.approx(sd_prior.scale * 0.7649, rel=0.05)
    np.testing.assert_allclose(np.median(d["beta"], axis=0), rats_fit.priors["beta"].mean,
                               atol=0.05 * rats_fit.priors["beta"].sd.max())
    # same seed, same draws; prior_predictive continues the same stream
    np.testing.assert_array_equal(rats_fit.prior_draws(50, seed=3)["beta"],
                                  rats_fit.prior_draws(50, seed=3)["beta"])
    y = rats_fit.prior_predictive(500, seed=3)
    assert y.shape == (500, 150) and np.isfinite(y).all()


def test_prior_predictive_binomial_respects_trials():
    df = bglmm.datasets.load("cbpp")
    fit = bglmm.fit("cbind(incidence, size - incidence) ~ C(period) + (1 | herd)", df,
                    "binomial", seed=1, **SMALL)
    y = fit.prior_predictive(300, seed=1)
    assert (y >= 0).all() and (y <= df["size"].to_numpy()).all()
    assert set(fit.prior_draws(10)) == {"beta", "sd_herd__Intercept"}


def test_prior_groups_in_inference_data(rats_fit, tmp_path):
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idata = rats_fit.to_inference_data(prior=True)
    assert {"prior", "prior_predictive"} <= set(idata.groups())
    assert idata.prior["beta"].dims == ("chain", "draw", "coef")
    assert idata.prior_predictive["y"].shape == (1, 200, 150)
    az.plot_ppc(idata, group="prior", num_pp_samples=20, random_seed=1, show=False)
    plt.close("all")
    rats_fit.save(tmp_path / "f.nc")
    with pytest.raises(ValueError, match="stored as text"):
        bglmm.load(tmp_path / "f.nc").prior_draws(10)


def test_prior_draws_conjugate_glm_scale_beta_by_sigma():
    fit = bglmm.fit("weight ~ day", bglmm.datasets.load("rats"), seed=1, **SMALL)
    d = fit.prior_draws(4000, seed=5)
    cond = fit.priors["beta (conjugate, per unit sigma)"]
    m0, V0 = cond.to_arrays(2)
    z = (d["beta"] - m0) / d["sigma"][:, None] / np.sqrt(np.diag(V0))  # standard normal
    assert np.std(z, axis=0) == pytest.approx([1.0, 1.0], rel=0.05)
