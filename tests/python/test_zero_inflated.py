"""The zero-inflated Poisson and negative binomial families (a structural zero with probability
zi, otherwise Poisson or NB2): the core's densities against scipy, the GLM posteriors against an
independent quadrature reference, the GLMMs recovering zi, phi and the SD, pointwise
log-likelihood (also after load), posterior and prior predictive draws, data without zeros, and
the refusals. Every statistical check has a negative control that shows it can fail. The
one-sweep Geweke tests of the GLMM are in test_glmm.py, the SBC cases in test_sbc.py, the
grouseticks reference in test_reference_grouseticks_zip.py."""

from __future__ import annotations

import sys
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bglmm
from bglmm import _core
from bglmm.priors import Beta, Gamma, Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quadrature import grid, posterior_means  # noqa: E402

FAMILY = "zero_inflated_poisson"
CODE = bglmm.families.resolve_family(FAMILY).code
ZINB = "zero_inflated_negbinomial"
ZINB_CODE = bglmm.families.resolve_family(ZINB).code
PRIOR_SD = 10.0


def log_pmf(y, eta, zi):
    """log p(y | eta, zi) from scipy's Poisson (the reference, independent of the core)."""
    mu = np.exp(eta)
    zero = np.log(zi + (1.0 - zi) * np.exp(-mu))
    return np.where(y == 0, zero, np.log1p(-zi) + stats.poisson.logpmf(y, mu))


def simulate(n, beta, zi, seed, groups=None, sd=0.0, phi=None):
    """x, y and the groups of a zero-inflated Poisson model (zero-inflated negative binomial
    with dispersion phi when phi is given)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    eta = beta[0] + beta[1] * x
    g = None
    if groups is not None:
        g = np.repeat(np.arange(groups), n // groups)
        eta = eta + rng.normal(0.0, sd, groups)[g]
    odds = zi / (1 - zi)
    if phi is None:
        y = bglmm.families.draw_response(rng, FAMILY, np.exp(eta), phi=odds)
    else:
        y = bglmm.families.draw_response(rng, ZINB, np.exp(eta), phi=phi, phi2=odds)
    return x, y, g


def test_core_log_lik_matches_scipy():
    eta = np.linspace(-3, 3, 13)
    for zi in (0.05, 0.4, 0.9):
        for y in (0.0, 1.0, 4.0, 10.0):
            Y = np.full_like(eta, y)
            got = _core.families.evaluate(CODE, "log_lik", Y, np.zeros_like(eta), eta,
                                          zi / (1 - zi))
            np.testing.assert_allclose(got, log_pmf(Y, eta, zi), rtol=1e-10, atol=1e-12)
    extreme = np.array([-700.0, -30.0, 30.0, 700.0])
    for y in (0.0, 3.0):
        for what in ("log_lik", "score", "weight"):
            v = _core.families.evaluate(CODE, what, np.full(4, y), np.zeros(4), extreme, 0.5)
            assert np.all(np.isfinite(v)), (what, y, v)
    # at eta = 700 a zero is structural: log p(0) = log zi
    v = _core.families.evaluate(CODE, "log_lik", np.zeros(1), np.zeros(1), np.array([700.0]), 0.5)
    assert v[0] == pytest.approx(np.log(1 / 3), rel=1e-14)


@pytest.mark.parametrize("code", [CODE, ZINB_CODE])
def test_core_zi_shift_is_the_rows_log_odds(code):
    """The trials slot carries a row's zi shift s (a zi formula): the odds of a structural
    zero become odds * e^s, in the log-likelihood, and the score and Fisher weight follow."""
    eta = np.linspace(-3, 3, 13)
    odds, phi = 0.4, 2.5
    params = (odds,) if code == CODE else (phi, odds)
    for y in (0.0, 1.0, 4.0):
        Y = np.full_like(eta, y)
        for s in (-2.0, 0.7):
            S = np.full_like(eta, s)
            shifted = _core.families.evaluate(code, "log_lik", Y, S, eta, *params)
            moved = (odds * np.exp(s),) if code == CODE else (phi, odds * np.exp(s))
            plain = _core.families.evaluate(code, "log_lik", Y, np.zeros_like(eta), eta, *moved)
            np.testing.assert_allclose(shifted, plain, rtol=1e-12, atol=1e-13)
            for what in ("score", "weight"):
                np.testing.assert_allclose(
                    _core.families.evaluate(code, what, Y, S, eta, *params),
                    _core.families.evaluate(code, what, Y, np.zeros_like(eta), eta, *moved),
                    rtol=1e-12, atol=1e-13)


# ---- the GLM against the posterior on a grid -----------------------------------------------

def grid_means(x, y, lower, upper, points=40, odds_factor=1.0):
    """Posterior means of (b0, b1, logit zi) by the midpoint rule on a 3-D grid, under
    Normal(0, 10) on each coefficient and the default Beta(1, 1) on zi; odds_factor != 1
    evaluates a deliberately wrong likelihood (the negative control)."""
    b0, b1, u = grid(lower, upper, points)
    zi = special.expit(u + np.log(odds_factor))
    lp = log_pmf(y, b0[..., None] + b1[..., None] * x, zi[..., None]).sum(axis=-1)
    lp += -0.5 * (b0**2 + b1**2) / PRIOR_SD**2 + u - 2.0 * np.logaddexp(0.0, u)
    return posterior_means(lp, [b0, b1, u])


@pytest.mark.parametrize("sampler", ["independence", "random_walk"])
def test_glm_posterior_means_match_quadrature(sampler):
    n = 60
    x, y, _ = simulate(n, (0.8, 0.5), 0.3, seed=4)
    X = np.column_stack([np.ones(n), x])
    fit = bglmm.glm(X, y, FAMILY, prior=Normal(0, PRIOR_SD), sampler=sampler, chains=4,
                    draws=1500, warmup=500, seed=5, threads=1)
    zi = fit.posterior["zi"]
    assert np.all((zi > 0) & (zi < 1))
    draws = np.concatenate([fit.draws, special.logit(zi)[..., None]], axis=-1)
    mean, sd = draws.mean(axis=(0, 1)), draws.std(axis=(0, 1))
    mcse = np.array([float(az.mcse(draws[..., k])) for k in range(3)])
    lower, upper = mean - 7 * sd, mean + 7 * sd
    reference = grid_means(x, y, lower, upper)
    z = (mean - reference) / mcse
    assert np.all(np.abs(z) < 4), (z, mean, reference, mcse)
    # negative control: the likelihood with the odds of a structural zero doubled is detected
    wrong = grid_means(x, y, lower - [0, 0, 1], upper, odds_factor=2.0)
    assert np.max(np.abs((mean - wrong) / mcse)) > 4


# ---- the GLMM through bglmm.fit --------------------------------------------------------------

@pytest.fixture(scope="module")
def grouped():
    x, y, g = simulate(600, (0.5, 0.4), 0.25, seed=7, groups=40, sd=0.6)
    return pd.DataFrame({"y": y, "x": x, "g": g})


@pytest.fixture(scope="module")
def grouped_fit(grouped):
    return bglmm.fit("y ~ x + (1 | g)", grouped, family="zip", seed=2, threads=1,
                     progress=False)


def test_glmm_recovers_zi_and_the_sd(grouped_fit):
    fit = grouped_fit
    s = fit.summary()
    assert "zi" in s.index and "sd_g__Intercept" in s.index
    for name, truth in (("zi", 0.25), ("sd_g__Intercept", 0.6), ("beta[x]", 0.4)):
        lo, hi = s.loc[name, ["2.5%", "97.5%"]]
        assert lo < truth < hi, (name, lo, hi)
    assert s["r_hat"].max() <= 1.01 and s["ess_bulk"].min() >= 400
    # negative control: the same interval check rejects a value outside it
    lo, hi = s.loc["zi", ["2.5%", "97.5%"]]
    assert not lo < 0.25 + 3 * (hi - lo) < hi
    idata = fit.to_inference_data()
    assert "zi" in idata.posterior


def test_glmm_pointwise_log_lik_matches_scipy_also_after_load(grouped, grouped_fit, tmp_path):
    fit = grouped_fit
    eta = fit.predict(kind="link")
    zi = fit.posterior["zi"].reshape(-1)[:, None]
    expected = log_pmf(grouped["y"].to_numpy(), eta, zi)
    got = fit.to_inference_data(log_likelihood=True).log_likelihood["y"].values
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-8, atol=1e-10)
    path = tmp_path / "zip.nc"
    fit.save(path)
    back = bglmm.load(path).to_inference_data(log_likelihood=True).log_likelihood["y"].values
    np.testing.assert_allclose(back.reshape(expected.shape), expected, rtol=1e-8, atol=1e-10)
    # negative control: the plain Poisson density differs
    plain = stats.poisson.logpmf(grouped["y"].to_numpy(), np.exp(eta))
    assert np.max(np.abs(plain - expected)) > 0.1


def test_mean_prediction_is_the_expected_response(grouped, grouped_fit):
    # kind="mean": (1 - zi) mu, the expected response (brms's posterior_epred), in bglmm.fit's
    # fit and in the array-level one inside it
    mu = np.exp(grouped_fit.predict(kind="link"))
    zi = grouped_fit.posterior["zi"].reshape(-1, 1)
    np.testing.assert_allclose(grouped_fit.predict(kind="mean"), (1 - zi) * mu, rtol=1e-12)
    inner = grouped_fit.inner
    np.testing.assert_allclose(inner.predict(kind="mean"),
                               (1 - inner.posterior["zi"][..., None])
                               * np.exp(inner.predict(kind="link")), rtol=1e-12)
    # the posterior predictive draws (the same posterior draws, in order) agree with it: given
    # the parameters each y_rep - E[y] has mean 0, independently over draws and rows, so their
    # average is within a few standard errors of 0; the count part's mean mu is not
    rep = grouped_fit.posterior_predictive(seed=4)

    def z(mean: np.ndarray) -> float:
        r = rep - mean
        return float(r.mean() / (r.std() / np.sqrt(r.size)))

    assert abs(z(grouped_fit.predict(kind="mean"))) < 4
    assert abs(z(mu)) > 10  # negative control


def test_glmm_predictive_draws_reproduce_the_zeros(grouped, grouped_fit):
    rep = grouped_fit.posterior_predictive(draws=400, seed=3)
    assert rep.shape == (400, len(grouped)) and np.all(rep >= 0) and np.all(rep == np.round(rep))
    observed = float(np.mean(grouped["y"] == 0))
    zeros = np.mean(rep == 0, axis=1)  # the share of zeros per replicate
    assert np.quantile(zeros, 0.01) < observed < np.quantile(zeros, 0.99)
    # negative control: a Poisson GLMM underpredicts the zeros
    pois = bglmm.fit("y ~ x + (1 | g)", grouped, family="poisson", chains=2, draws=300,
                     warmup=300, seed=2, threads=1, progress=False, check=False)
    pz = np.mean(pois.posterior_predictive(draws=400, seed=3) == 0, axis=1)
    assert np.quantile(pz, 0.99) < observed
    prior = grouped_fit.prior_draws(draws=200, seed=1)
    assert np.all((prior["zi"] > 0) & (prior["zi"] < 1))
    y0 = grouped_fit.prior_predictive(draws=200, seed=1)
    assert np.all(y0 >= 0) and np.all(y0 == np.round(y0))


def test_data_without_zeros_still_samples():
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"x": rng.standard_normal(200), "g": np.repeat(np.arange(20), 10)})
    d["y"] = 1.0 + rng.poisson(np.exp(0.5 + 0.3 * d["x"]))
    fit = bglmm.fit("y ~ x + (1 | g)", d, family=FAMILY, chains=2, draws=500, warmup=500,
                    seed=1, threads=1, progress=False, check=False)
    zi = fit.posterior["zi"]
    assert np.all(np.isfinite(zi)) and np.all((zi > 0) & (zi < 1))
    assert np.median(zi) < 0.02  # no zeros: the data push zi towards 0 (prior median 0.5)
    glm = bglmm.fit("y ~ x", d, family=FAMILY, chains=2, draws=500, warmup=500, seed=1,
                    threads=1, progress=False, check=False)
    assert np.median(glm.posterior["zi"]) < 0.02


def test_priors_and_fixed_zi(grouped):
    small = grouped.iloc[:150]
    fixed = bglmm.fit("y ~ x + (1 | g)", small, family=FAMILY, priors={"zi": 0.25}, chains=1,
                      draws=100, warmup=100, seed=1, threads=1, progress=False, check=False)
    assert "zi" not in fixed.posterior
    assert fixed.attrs["fixed_dispersion"] == pytest.approx(0.25 / 0.75)
    rep = fixed.posterior_predictive(draws=50, seed=1)
    assert np.all(rep >= 0)
    tight = bglmm.fit("y ~ x", small, family=FAMILY, priors={"zi": Beta(9000.0, 1000.0)},
                      chains=1, draws=300, warmup=200, seed=1, threads=1, progress=False,
                      check=False)
    assert abs(np.mean(tight.posterior["zi"]) - 0.9) < 0.02  # the prior dominates
    with pytest.raises(TypeError, match="Beta"):
        bglmm.fit("y ~ x", small, family=FAMILY, priors={"zi": Gamma(1.0, 1.0)})
    with pytest.raises(ValueError, match="between 0 and 1"):
        bglmm.fit("y ~ x", small, family=FAMILY, priors={"zi": 1.5})
    with pytest.raises(ValueError, match="'zi'"):
        bglmm.fit("y ~ x", small, family=FAMILY, priors={"phi": Gamma(1.0, 1.0)})
    with pytest.raises(ValueError, match="not 'poisson'"):
        bglmm.glm(np.ones((5, 1)), np.ones(5), "poisson", dispersion_prior=Beta(1.0, 1.0))


@pytest.mark.parametrize("y, message", [([-1.0, 2.0, 0.0, 1.0], "negative"),
                                         ([0.5, 2.0, 0.0, 1.0], "integer")])
def test_bad_counts_name_the_problem(y, message):
    d = pd.DataFrame({"y": y, "g": [0, 0, 1, 1]})
    with pytest.raises(ValueError, match=message):
        bglmm.fit("y ~ 1 + (1 | g)", d, family=FAMILY)


def test_family_names_and_draws_do_not_depend_on_threads(grouped):
    assert bglmm.families.resolve_family("zip").name == FAMILY
    assert bglmm.families.resolve_family("zero_inflated_poisson").dispersion == "zi"
    small = grouped.iloc[:200]
    fits = [bglmm.fit("y ~ x + (1 | g)", small, family=FAMILY, chains=1, draws=50, warmup=50,
                      seed=9, threads=t, progress=False, check=False) for t in (1, 2)]
    np.testing.assert_array_equal(fits[0].posterior["zi"], fits[1].posterior["zi"])


# ---- the zero-inflated negative binomial -----------------------------------------------------

def zinb_log_pmf(y, eta, phi, zi):
    """log p(y | eta, phi, zi) from scipy's negative binomial (the reference)."""
    mu = np.exp(eta)
    nb = stats.nbinom.logpmf(y, phi, phi / (mu + phi))
    zero = np.log(zi + (1.0 - zi) * np.exp(stats.nbinom.logpmf(0, phi, phi / (mu + phi))))
    return np.where(y == 0, zero, np.log1p(-zi) + nb)


def test_zinb_core_log_lik_matches_scipy():
    eta = np.linspace(-3, 3, 13)
    for zi in (0.05, 0.4, 0.9):
        for phi in (0.5, 3.0, 40.0):
            for y in (0.0, 1.0, 4.0, 10.0):
                Y = np.full_like(eta, y)
                got = _core.families.evaluate(ZINB_CODE, "log_lik", Y, np.zeros_like(eta), eta,
                                              phi, zi / (1 - zi))
                np.testing.assert_allclose(got, zinb_log_pmf(Y, eta, phi, zi), rtol=1e-10,
                                           atol=1e-12)
    # negative control: the second parameter matters
    got = _core.families.evaluate(ZINB_CODE, "log_lik", np.zeros(1), np.zeros(1), np.ones(1),
                                  2.0, 1.0)
    assert abs(got[0] - zinb_log_pmf(0.0, 1.0, 2.0, 0.2)) > 0.1


def zinb_grid_means(y, lower, upper, points=36, odds_factor=1.0):
    """Posterior means of (b0, log phi, logit zi) of an intercept-only model by the midpoint
    rule on a 3-D grid, under Normal(0, 10), phi ~ Gamma(0.01, 0.01) and zi ~ Beta(1, 1)."""
    b0, u, v = grid(lower, upper, points)
    zi = special.expit(v + np.log(odds_factor))
    values, counts = np.unique(y, return_counts=True)
    lp = sum(c * zinb_log_pmf(val, b0, np.exp(u), zi) for val, c in zip(values, counts))
    lp += -0.5 * b0**2 / PRIOR_SD**2 + 0.01 * u - 0.01 * np.exp(u) + v - 2 * np.logaddexp(0, v)
    return posterior_means(lp, [b0, u, v])


def test_zinb_glm_posterior_means_match_quadrature():
    _, y, _ = simulate(150, (1.2, 0.0), 0.3, seed=8, phi=2.0)
    fit = bglmm.glm(np.ones((150, 1)), y, ZINB, prior=Normal(0, PRIOR_SD),
                    sampler="independence", chains=4, draws=1500, warmup=500, seed=5, threads=1)
    draws = np.stack([fit.draws[..., 0], np.log(fit.posterior["phi"]),
                      special.logit(fit.posterior["zi"])], axis=-1)
    mean, sd = draws.mean(axis=(0, 1)), draws.std(axis=(0, 1))
    mcse = np.array([float(az.mcse(draws[..., k])) for k in range(3)])
    # the box: 7 SDs either side, and 14 towards the long tails (log phi up towards the Poisson
    # limit, logit zi down towards no inflation)
    lower, upper = mean - 7 * sd, mean + 7 * sd
    upper[1], lower[2] = mean[1] + 14 * sd[1], mean[2] - 14 * sd[2]
    z = (mean - zinb_grid_means(y, lower, upper, points=48)) / mcse
    assert np.all(np.abs(z) < 4), z
    # negative control: the odds of a structural zero doubled in the likelihood
    wrong = zinb_grid_means(y, lower - [0, 0, 1], upper, points=48, odds_factor=2.0)
    assert np.max(np.abs((mean - wrong) / mcse)) > 4


@pytest.fixture(scope="module")
def zinb_grouped():
    x, y, g = simulate(600, (0.8, 0.4), 0.25, seed=9, groups=40, sd=0.5, phi=3.0)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def test_zinb_glmm_recovers_phi_zi_and_the_sd(zinb_grouped, tmp_path):
    fit = bglmm.fit("y ~ x + (1 | g)", zinb_grouped, family="zinb", seed=3, threads=1,
                    progress=False)
    s = fit.summary()
    for name, truth in (("phi", 3.0), ("zi", 0.25), ("sd_g__Intercept", 0.5), ("beta[x]", 0.4)):
        lo, hi = s.loc[name, ["2.5%", "97.5%"]]
        assert lo < truth < hi, (name, lo, hi)
    assert s["r_hat"].max() <= 1.01 and s["ess_bulk"].min() >= 400
    # pointwise log-likelihood against scipy, also after a save/load round trip
    eta = fit.predict(kind="link")
    phi = fit.posterior["phi"].reshape(-1)[:, None]
    zi = fit.posterior["zi"].reshape(-1)[:, None]
    expected = zinb_log_pmf(zinb_grouped["y"].to_numpy(), eta, phi, zi)
    got = fit.to_inference_data(log_likelihood=True).log_likelihood["y"].values
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-8, atol=1e-10)
    fit.save(tmp_path / "zinb.nc")
    back = bglmm.load(tmp_path / "zinb.nc").to_inference_data(log_likelihood=True)
    np.testing.assert_allclose(back.log_likelihood["y"].values.reshape(expected.shape), expected,
                               rtol=1e-8, atol=1e-10)
    # replicated data keep the share of zeros; prior draws carry both parameters
    rep = fit.posterior_predictive(draws=400, seed=3)
    observed = float(np.mean(zinb_grouped["y"] == 0))
    zeros = np.mean(rep == 0, axis=1)
    assert np.quantile(zeros, 0.01) < observed < np.quantile(zeros, 0.99)
    prior = fit.prior_draws(draws=100, seed=1)
    assert np.all(prior["phi"] > 0) and np.all((prior["zi"] > 0) & (prior["zi"] < 1))
    # priors by name; a fixed zi
    fixed = bglmm.fit("y ~ x + (1 | g)", zinb_grouped.iloc[:200], family=ZINB,
                      priors={"zi": 0.25, "phi": Gamma(2.0, 1.0)}, chains=1, draws=100,
                      warmup=100, seed=1, threads=1, progress=False, check=False)
    assert "zi" not in fixed.posterior and "phi" in fixed.posterior
    assert fixed.attrs["fixed_dispersion2"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="'phi', 'zi'"):
        bglmm.fit("y ~ x", zinb_grouped, family=ZINB, priors={"shape": Gamma(1.0, 1.0)})
