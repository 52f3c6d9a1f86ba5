"""The zero-inflation's own linear predictor, ``zi="~ x"`` (brms's ``zi ~ x``), for the
zero-inflated Poisson and negative binomial: logit zi_i = x_i' zi_beta.

Proof, each with a negative control that shows it can fail:

* the GLM's posterior means against importance sampling computed here (a multivariate-t
  proposal at the posterior mode found by SciPy, 200,000 draws), within 4 combined
  Monte-Carlo standard errors; the control evaluates the reference with the odds of a
  structural zero doubled;
* the GLMM (``bglmm.fit`` with a random intercept) against the independent NumPy HMC of
  ``_hmc_reference.ZeroInflatedPoissonFormulaModel`` (posterior medians within 4 combined
  MCSEs); the control fits with the slopes' prior squeezed to N(0, 0.05^2);
* the one-sweep Geweke tests of the step are in test_glmm.py
  (``test_geweke_zero_inflation_formula``), the SBC case in test_sbc.py.

Then what users see: names, prediction on new data (which needs the zi columns), the
pointwise log-likelihood, prior draws, save/load, and the refusals.
"""

from __future__ import annotations

import sys
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import bglmm
from bglmm.priors import Beta, HalfNormal, Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hmc_reference import (ZeroInflatedPoissonFormulaModel, assert_agrees,  # noqa: E402
                            compare_medians, gradient_errors, hmc)

BETA_SD = 2.5
ZI_SLOPE_SD = 1.5
SD_SCALE = 1.0
Z = 4.0


def simulate_grouped(seed: int = 11, groups: int = 40, rows: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = groups * rows
    g = np.repeat(np.arange(groups), rows)
    x, w = rng.standard_normal(n), rng.uniform(0.0, 3.0, n)
    eta = 0.7 + 0.4 * x + rng.normal(0.0, 0.5, groups)[g]
    zi = special.expit(-1.5 + 1.0 * w)
    y = np.where(rng.random(n) < zi, 0.0, rng.poisson(np.exp(eta)))
    return pd.DataFrame({"y": y, "x": x, "w": w, "g": [f"g{j:02d}" for j in g]})


# ---- the GLM against importance sampling ---------------------------------------------------

def log_posterior(theta, X, W, y, odds_factor=1.0):
    """(b, v0, alpha) rows: ZIP likelihood with logit zi_i = v0 + W_c alpha (W_c centred),
    b ~ N(0, BETA_SD^2), inv_logit(v0) ~ Beta(1, 1), alpha ~ N(0, ZI_SLOPE_SD^2)."""
    theta = np.atleast_2d(theta)
    p, k = X.shape[1], W.shape[1]
    b, v0, alpha = theta[:, :p], theta[:, p], theta[:, p + 1:p + 1 + k]
    eta = b @ X.T
    v = v0[:, None] + alpha @ (W - W.mean(axis=0)).T + np.log(odds_factor)
    mu = np.exp(eta)
    log_zi, log_1m = -np.logaddexp(0.0, -v), -np.logaddexp(0.0, v)
    ll = np.where(y == 0, np.logaddexp(log_zi, log_1m - mu),
                  log_1m + y * eta - mu - special.gammaln(y + 1.0)).sum(axis=1)
    prior = (-0.5 * (b / BETA_SD) ** 2).sum(axis=1) - 0.5 * ((alpha / ZI_SLOPE_SD) ** 2).sum(axis=1) \
        - np.logaddexp(0.0, -v0) - np.logaddexp(0.0, v0)
    return ll + prior


def importance_means(X, W, y, odds_factor=1.0, draws=200_000, seed=3):
    """Posterior means of (b, zi_beta with the uncentred intercept) and their standard errors,
    by self-normalised importance sampling from t_5 at the mode (covariance 1.5 x the inverse
    Hessian, by finite differences)."""
    dim = X.shape[1] + 1 + W.shape[1]
    f = lambda t: -float(log_posterior(t, X, W, y, odds_factor)[0])  # noqa: E731
    mode = optimize.minimize(f, np.zeros(dim), method="BFGS").x
    h, H = 1e-4, np.empty((dim, dim))
    for a in range(dim):
        for b in range(dim):
            ea, eb = np.eye(dim)[a] * h, np.eye(dim)[b] * h
            H[a, b] = (f(mode + ea + eb) - f(mode + ea - eb) - f(mode - ea + eb)
                       + f(mode - ea - eb)) / (4 * h * h)
    prop = stats.multivariate_t(mode, 1.5 * np.linalg.inv(H), df=5, seed=seed)
    t = prop.rvs(draws)
    logw = np.concatenate([log_posterior(c, X, W, y, odds_factor)
                           for c in np.array_split(t, 20)]) - prop.logpdf(t)
    wts = np.exp(logw - logw.max())
    wts /= wts.sum()
    p = X.shape[1]
    out = t.copy()  # the formula's intercept: v0 - mean(W) alpha
    out[:, p] = t[:, p] - t[:, p + 1:] @ W.mean(axis=0)
    mean = wts @ out
    se = np.sqrt((wts[:, None] ** 2 * (out - mean) ** 2).sum(axis=0))
    return mean, se, 1.0 / (wts**2).sum()


def test_glm_posterior_means_match_importance_sampling():
    rng = np.random.default_rng(5)
    n = 150
    x, w = rng.standard_normal(n), rng.standard_normal(n)
    zi = special.expit(-0.4 + 1.1 * w)
    y = np.where(rng.random(n) < zi, 0.0, rng.poisson(np.exp(0.8 + 0.4 * x)))
    X, W = np.column_stack([np.ones(n), x]), w[:, None]
    fit = bglmm.glm(X, y, "zero_inflated_poisson", prior=Normal(0, BETA_SD),
                    dispersion_prior=Beta(1.0, 1.0), zi_X=np.column_stack([np.ones(n), w]),
                    zi_prior=Normal(0, ZI_SLOPE_SD), sampler="independence", chains=4,
                    draws=2500, warmup=1000, seed=9, threads=1, progress=False)
    draws = np.concatenate([fit.draws, fit.posterior["zi_beta"]], axis=-1)
    mean = draws.mean(axis=(0, 1))
    mcse = np.array([float(az.mcse(draws[..., k])) for k in range(draws.shape[-1])])
    ref, ref_se, ess = importance_means(X, W, y)
    assert ess > 20_000, ess
    z = (mean - ref) / np.hypot(mcse, ref_se)
    assert np.all(np.abs(z) < Z), (z, mean, ref)
    # negative control: the reference with the odds of a structural zero doubled
    wrong, wrong_se, _ = importance_means(X, W, y, odds_factor=2.0)
    assert np.max(np.abs((mean - wrong) / np.hypot(mcse, wrong_se))) > Z


# ---- the GLMM against an independent HMC ---------------------------------------------------

def reference_model(d: pd.DataFrame) -> ZeroInflatedPoissonFormulaModel:
    X = np.column_stack([np.ones(len(d)), d["x"]])
    W = (d["w"] - d["w"].mean()).to_numpy()[:, None]
    codes = [pd.factorize(d["g"], sort=True)[0]]
    return ZeroInflatedPoissonFormulaModel(d["y"].to_numpy(float), X, codes, np.zeros(2),
                                           np.full(2, BETA_SD), np.array([SD_SCALE]),
                                           W=W, alpha_sd=np.array([ZI_SLOPE_SD]))


_CACHE: dict = {}


def reference() -> dict[str, np.ndarray]:
    if "ref" not in _CACHE:
        d = simulate_grouped()
        with np.errstate(all="ignore"):
            r = hmc(reference_model(d), chains=8, warmup=600, draws=700, steps=(10, 30), seed=4)
        v0, slope = r["zi_v"][..., 0], r["zi_v"][..., 1]
        _CACHE["ref"] = {"Intercept": r["beta"][..., 0], "x": r["beta"][..., 1],
                         "sd": r["sd"][..., 0], "zi_Intercept": v0 - slope * d["w"].mean(),
                         "zi_w": slope, "_acceptance": r["acceptance"]}
    return _CACHE["ref"]


def bglmm_draws(slope_sd: float = ZI_SLOPE_SD) -> dict[str, np.ndarray]:
    key = ("fit", slope_sd)
    if key not in _CACHE:
        f = bglmm.fit("y ~ x + (1 | g)", simulate_grouped(), "zip", zi="~ w",
                      priors={"beta": Normal(0.0, BETA_SD), "sd": HalfNormal(SD_SCALE),
                              "zi": Beta(1.0, 1.0), "zi_beta": Normal(0.0, slope_sd)},
                      chains=4, draws=1500, warmup=1000, seed=8, threads=1, progress=False)
        assert list(f.coords["zi_coef"]) == ["Intercept", "w"]
        zb, beta = f.posterior["zi_beta"], f.posterior["beta"]
        _CACHE[key] = {"Intercept": beta[..., 0], "x": beta[..., 1],
                       "sd": f.posterior["sd_g__Intercept"], "zi_Intercept": zb[..., 0],
                       "zi_w": zb[..., 1]}
    return _CACHE[key]


NAMES = ["Intercept", "x", "sd", "zi_Intercept", "zi_w"]


def test_reference_gradient_matches_finite_differences():
    m = reference_model(simulate_grouped())
    rng = np.random.default_rng(1)
    theta = rng.normal(0.0, 0.3, (2, m.dim))
    theta[:, -2:] = [[-1.0, 0.8], [0.5, -0.3]]
    g, fd = gradient_errors(m, theta, [0, 1, 2, 3, 20, m.dim - 2, m.dim - 1])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-4)


def test_glmm_matches_independent_hmc():
    assert_agrees(compare_medians(bglmm_draws(), reference(), NAMES, Z),
                  reference()["_acceptance"])


def test_a_wrong_slope_prior_is_detected():
    table = compare_medians(bglmm_draws(0.05), reference(), NAMES, Z)
    assert not table.loc["zi_w", "ok"], table


# ---- what users see ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_fit():
    d = simulate_grouped(seed=2, groups=12, rows=8)
    d["site"] = np.where(np.arange(len(d)) % 3 == 0, "a", np.where(np.arange(len(d)) % 3 == 1,
                                                                    "b", "c"))
    f = bglmm.fit("y ~ x + (1 | g)", d, "zinb", zi="~ w + site", chains=2, draws=300,
                  warmup=300, seed=1, progress=False, check=False)
    return d, f


def test_names_summary_and_priors(small_fit):
    d, f = small_fit
    assert "zi" not in f.posterior
    assert list(f.coords["zi_coef"]) == ["Intercept", "w", "site[b]", "site[c]"]
    rows = list(f.summary().index)
    assert rows[-4:] == ["zi_beta[Intercept]", "zi_beta[w]", "zi_beta[site[b]]",
                         "zi_beta[site[c]]"]
    assert "phi" in rows
    sd = f.priors["zi_beta"].sd  # 2.5 / sd(column)
    np.testing.assert_allclose(sd[0], 2.5 / d["w"].std(ddof=0))
    idata = f.to_inference_data()
    assert idata.posterior["zi_beta"].dims == ("chain", "draw", "zi_coef")


def test_prediction_pointwise_log_lik_and_save_load(small_fit, tmp_path):
    d, f = small_fit
    zb = f.posterior["zi_beta"].reshape(-1, 4)
    Wd = np.column_stack([np.ones(len(d)), d["w"], d["site"] == "b", d["site"] == "c"])
    # the pointwise log-likelihood uses each row's zi
    ll = f._pointwise_log_lik()["y"].reshape(-1, len(d))
    eta = f.predict(kind="link")
    phi = f.posterior["phi"].reshape(-1, 1)
    zi = special.expit(zb @ Wd.T)
    nb = stats.nbinom.pmf(d["y"].to_numpy(), phi, phi / (phi + np.exp(eta)))
    expected = np.log(np.where(d["y"].to_numpy() == 0, zi + (1 - zi) * nb, (1 - zi) * nb))
    np.testing.assert_allclose(ll, expected, rtol=1e-8, atol=1e-10)
    # new data need the zi columns, and predict with them
    new = d.iloc[:6].drop(columns="y")
    draws = f.predict(new, kind="response", seed=1)
    assert draws.shape == (zb.shape[0], 6)
    with pytest.raises(ValueError, match="w"):
        f.predict(new.drop(columns="w"), kind="response")
    # kind="mean" is the expected response (1 - zi) mu (brms's posterior_epred)
    mu = np.exp(f.predict(new, kind="link"))
    zi_new = special.expit(zb @ Wd[:6].T)
    np.testing.assert_allclose(f.predict(new, kind="mean"), (1 - zi_new) * mu, rtol=1e-12)
    # a high-zi row predicts more zeros than a low-zi one
    hi = d.iloc[[0]].assign(w=3.0, site="c", x=0.0)
    lo = d.iloc[[0]].assign(w=0.0, site="a", x=0.0)
    p_hi = (f.predict(hi, kind="response", seed=2) == 0).mean()
    p_lo = (f.predict(lo, kind="response", seed=2) == 0).mean()
    assert p_hi > p_lo + 0.2, (p_hi, p_lo)
    path = tmp_path / "zi.nc"
    f.save(str(path))
    g = bglmm.load(str(path))
    np.testing.assert_allclose(g.posterior["zi_beta"], f.posterior["zi_beta"])
    np.testing.assert_allclose(g._pointwise_log_lik()["y"], f._pointwise_log_lik()["y"])
    # prior draws carry zi_beta, and the prior predictive uses each row's zi
    pr = f.prior_draws(50, seed=1)
    assert pr["zi_beta"].shape == (50, 4) and "zi" not in pr
    assert f.prior_predictive(50, seed=1).shape == (50, len(d))


def test_a_zi_step_that_accepts_nothing_is_reported(small_fit):
    # the convergence check names a zi step that never moved (its rates per chain: 0)
    _, f = small_fit
    inner = f.inner
    assert inner.attrs["zi_acceptance"] and all(r > 0 for r in inner.attrs["zi_acceptance"])
    assert not any("zi formula" in m for m in inner._stuck_moves())
    saved = inner.attrs["zi_acceptance"]
    inner.attrs["zi_acceptance"] = [0.0] + list(saved[1:])
    try:
        assert any(m.startswith("the zi formula's step in chain(s) 0")
                   for m in inner._stuck_moves())
    finally:
        inner.attrs["zi_acceptance"] = saved


def test_glm_formula_fit_log_likelihood_and_loo():
    d = simulate_grouped(seed=6, groups=20, rows=10)
    f = bglmm.fit("y ~ x", d, "zip", zi="~ w", chains=2, draws=400, warmup=300, seed=2,
                  progress=False)
    assert f.kind == "glm" and list(f.coords["zi_coef"]) == ["Intercept", "w"]
    table = f.inner.summary()  # the zi rows report the zi step's acceptance
    np.testing.assert_allclose(table.loc["zi_beta[w]", "acceptance"],
                               np.mean(f.inner.attrs["zi_acceptance"]))
    assert table.loc["beta[x]", "acceptance"] == pytest.approx(np.mean(f.inner.acceptance_rate))
    ll = f._log_likelihood()["y"].reshape(-1, len(d))
    b, zb = f.posterior["beta"].reshape(-1, 2), f.posterior["zi_beta"].reshape(-1, 2)
    mu = np.exp(b @ np.column_stack([np.ones(len(d)), d["x"]]).T)
    zi = special.expit(zb @ np.column_stack([np.ones(len(d)), d["w"]]).T)
    y = d["y"].to_numpy()
    expected = np.where(y == 0, np.log(zi + (1 - zi) * np.exp(-mu)),
                        np.log1p(-zi) + stats.poisson.logpmf(y, mu))
    np.testing.assert_allclose(ll, expected, rtol=1e-9, atol=1e-12)
    assert np.isfinite(f.loo().elpd_loo)


@pytest.mark.parametrize("kwargs, message", [
    (dict(family="poisson", zi="~ w"), "zero-inflated"),
    (dict(family="zip", zi="~ 0 + w"), "intercept"),
    (dict(family="zip", zi="~ w + (1 | g)"), "random"),
    (dict(family="zip", zi="~ nope"), "not a column"),
    (dict(family="zip", zi="~ 1"), "intercept alone"),
    (dict(family="zip", zi="~ w", priors={"zi": 0.3}), "fixed"),
    (dict(family="zip", priors={"zi_beta": Normal(0, 1)}), "zi="),
    (dict(family="zip", zi="~ w", priors={"zi_beta": Normal(1, 1)}), "Normal\\(0, sd\\)"),
])
def test_refusals_name_the_problem(kwargs, message):
    d = simulate_grouped(seed=3, groups=5, rows=6)
    with pytest.raises((ValueError, TypeError), match=message):
        bglmm.fit("y ~ x + (1 | g)", d, draws=20, warmup=20, chains=1, progress=False,
                  **kwargs)


def test_draws_do_not_depend_on_threads():
    d = simulate_grouped(seed=4, groups=30, rows=100)
    fits = [bglmm.fit("y ~ x + (1 | g)", d, "zip", zi="~ w", chains=1, draws=50, warmup=50,
                      seed=3, threads=t, progress=False, check=False,
                      min_rows_per_thread=100) for t in (1, 2)]
    np.testing.assert_array_equal(fits[0].posterior["zi_beta"], fits[1].posterior["zi_beta"])
