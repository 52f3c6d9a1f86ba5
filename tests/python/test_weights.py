"""Case weights (``weights=``, ``y | weights(w)``): each row's log-likelihood times its weight.

* A weighted negative-binomial GLM with fractional weights against an independent quadrature
  reference (SciPy densities times the weights), with a negative control that ignores the
  weights.
* Integer weights against the rows repeated, end to end through ``bglmm.fit`` for every sampler
  that takes weights (the conjugate GLM, the GLM Metropolis-Hastings, the linear mixed model's
  Gibbs sampler, the GLMM with one and with two crossed factors, the cumulative family's
  cutpoint steps in the GLM and the GLMM): the samplers see the same
  target, so with the same seed they make the same draws up to rounding.
* The pointwise log-likelihood holds the weighted terms (``loo``/``waic`` of a weighted model),
  before and after ``save``/``load``.
* The formula forms, and bad weights: negative, missing, all zero, given twice, with known
  standard errors.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bglmm
from bglmm.formula import FormulaError
from bglmm.priors import Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quadrature import grid, posterior_means  # noqa: E402

PRIOR_SD = 10.0
A0, B0 = 0.01, 0.01  # the default Gamma(0.01, 0.01) on phi


def test_weighted_negative_binomial_glm_matches_quadrature():
    rng = np.random.default_rng(4)
    n = 50
    x = rng.standard_normal(n)
    mu = np.exp(0.6 - 0.5 * x)
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)
    w = rng.uniform(0.2, 3.0, size=n)
    X = np.column_stack([np.ones(n), x])
    fit = bglmm.glm(X, y, "negbinomial", weights=w, prior=Normal(0, PRIOR_SD),
                    sampler="independence", chains=4, draws=1500, warmup=500, seed=2, threads=1)
    draws = np.concatenate([fit.draws, np.log(fit.posterior["phi"])[..., None]], axis=-1)
    mean, sd = draws.mean(axis=(0, 1)), draws.std(axis=(0, 1))
    mcse = np.array([float(az.mcse(draws[..., k])) for k in range(3)])
    lower, upper = mean - 7 * sd, mean + 7 * sd
    upper[2] = mean[2] + 14 * sd[2]

    def reference(weights, lo=lower, hi=upper):
        b0, b1, u = grid(lo, hi, 40)
        eta = b0[..., None] + b1[..., None] * x
        phi = np.exp(u)[..., None]
        ll = stats.nbinom.logpmf(y, phi, phi / (np.exp(eta) + phi))
        lp = (weights * ll).sum(axis=-1)
        lp += -0.5 * (b0**2 + b1**2) / PRIOR_SD**2 + A0 * u - B0 * np.exp(u)
        return posterior_means(lp, [b0, b1, u])

    z = (mean - reference(w)) / mcse
    assert np.all(np.abs(z) < 4), z
    # negative control: the same data without the weights is a different posterior
    unweighted = reference(np.ones(n), lower - [1, 1, 1], upper + [1, 1, 0])
    assert np.max(np.abs((mean - unweighted) / mcse)) > 4


# ---- integer weights = the rows repeated ---------------------------------------------------

def _data(seed=3, groups=12, per=6):
    rng = np.random.default_rng(seed)
    n = groups * per
    g = np.repeat(np.arange(groups), per)
    h = rng.integers(0, 5, size=n)  # a crossed factor
    x = rng.standard_normal(n)
    b = 0.5 * rng.standard_normal(groups)
    eta = 0.3 + 0.4 * x + b[g]
    return pd.DataFrame({
        "g": [f"g{k}" for k in g], "h": [f"h{k}" for k in h], "x": x,
        "count": rng.poisson(np.exp(eta)).astype(float),
        "y": eta + 0.5 * rng.standard_normal(n),
        "s": rng.binomial(6, 1 / (1 + np.exp(-eta))).astype(float), "n": 6.0,
        "w": rng.integers(0, 4, size=n).astype(float),
        "rating": 1 + np.digitize(eta + 0.8 * rng.standard_normal(n), [-0.2, 0.6, 1.3]),
    })


def _repeated(d: pd.DataFrame) -> pd.DataFrame:
    return d.loc[d.index.repeat(d["w"].astype(int))].reset_index(drop=True)


CASES = [
    ("y ~ x", "gaussian", {}),                                    # conjugate GLM
    ("count ~ x", "poisson", {}),                                 # GLM independence MH
    ("count ~ x", "negbinomial", {}),                             # ... with its dispersion
    ("y ~ x + (1 | g)", "gaussian", {}),                          # LMM Gibbs
    ("count ~ x + (1 | g)", "poisson", {}),                       # GLMM, one factor
    ("cbind(s, n - s) ~ x + (1 + x | g)", "binomial", {}),        # ... a correlated block
    ("count ~ x + (1 | g)", "zero_inflated_poisson", {}),         # ... its zero-inflation step
    ("count ~ x + (1 | g) + (1 | h)", "negbinomial", {}),         # two crossed factors
    ("y ~ x + (1 | g) + (1 | h)", "gaussian", {}),                # gaussian level steps
    ("rating ~ x", "cumulative", {}),                             # cutpoints, joint move
    ("rating ~ x + (1 | g)", "cumulative", {}),                   # ... in the GLMM
    ("rating ~ x + (1 | g)", "cumulative", {"link": "probit"}),   # the general cutpoint target
]


@pytest.mark.parametrize("formula,family,extra", CASES)
def test_integer_weights_give_the_draws_of_the_rows_repeated(formula, family, extra):
    d = _data()
    settings = dict(chains=2, draws=60, warmup=60, seed=8, threads=1, progress=False,
                    check=False, **extra)
    weighted = bglmm.fit(formula, d, family, weights="w", **settings)
    repeated = bglmm.fit(formula, _repeated(d), family, **settings)
    for name in weighted.summary_vars:
        a, b = weighted.posterior[name], repeated.posterior[name]
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=name)


def test_weights_change_the_posterior():
    # the negative control of the test above: the same fit without the weights differs
    d = _data()
    settings = dict(chains=2, draws=60, warmup=60, seed=8, threads=1, progress=False,
                    check=False)
    weighted = bglmm.fit("count ~ x + (1 | g)", d, "poisson", weights="w", **settings)
    plain = bglmm.fit("count ~ x + (1 | g)", d, "poisson", **settings)
    assert not np.allclose(weighted.posterior["beta"], plain.posterior["beta"], atol=1e-3)


def test_formula_and_argument_forms_agree():
    d = _data()
    settings = dict(chains=2, draws=30, warmup=30, seed=1, threads=1, progress=False,
                    check=False)
    a = bglmm.fit("s | trials(n) + weights(w) ~ x + (1 | g)", d, "binomial", **settings)
    b = bglmm.fit("s | weights(w) + trials(n) ~ x + (1 | g)", d, "binomial", **settings)
    c = bglmm.fit("cbind(s, n - s) ~ x + (1 | g)", d, "binomial", weights=d["w"].to_numpy(),
                  **settings)
    np.testing.assert_array_equal(a.posterior["beta"], b.posterior["beta"])
    np.testing.assert_allclose(a.posterior["beta"], c.posterior["beta"], rtol=1e-12)
    # the printed fit says that the rows are weighted
    total, zeros = d["w"].sum(), int((d["w"] == 0).sum())
    assert f"case weights: sum {total:g} over {len(d)} rows ({zeros} of weight 0)" in str(c)
    e = bglmm.fit("s | trials(n) ~ x + (1 | g)", d, "binomial", weights="w", **settings)
    assert f"case weights 'w': sum {total:g}" in str(e)
    assert "case weights" not in str(bglmm.fit("s | trials(n) ~ x + (1 | g)", d, "binomial",
                                               **settings))


# ---- the pointwise log-likelihood -----------------------------------------------------------

def test_pointwise_log_lik_is_weighted_also_after_load(tmp_path):
    d = _data()
    fit = bglmm.fit("count ~ x + (1 | g)", d, "poisson", weights="w", chains=2, draws=50,
                    warmup=50, seed=3, progress=False, check=False)
    ll = fit.to_inference_data(log_likelihood=True).log_likelihood["y"].values
    eta = fit.predict(kind="link")
    plain = stats.poisson.logpmf(d["count"].to_numpy(), np.exp(eta)).reshape(ll.shape)
    np.testing.assert_allclose(ll, plain * d["w"].to_numpy(), rtol=1e-9, atol=1e-12)
    assert np.all(ll[..., d["w"].to_numpy() == 0] == 0)
    path = tmp_path / "fit.nc"
    fit.save(path)
    loaded = bglmm.load(path)
    again = loaded.to_inference_data(log_likelihood=True).log_likelihood["y"].values
    np.testing.assert_allclose(again, ll, rtol=1e-9, atol=1e-12)


def test_rows_of_weight_zero_do_not_count_and_loo_leaves_them_out():
    # the same fit on the rows of positive weight: the same draws, and the same LOO (ArviZ
    # would give the zero rows, whose log-likelihood terms are all 0, an infinite Pareto k)
    d = _data()
    settings = dict(chains=2, draws=200, warmup=100, seed=4, threads=1, progress=False,
                    check=False)
    full = bglmm.fit("count ~ x + (1 | g)", d, "poisson", weights="w", **settings)
    kept = d[d["w"] > 0].reset_index(drop=True)
    part = bglmm.fit("count ~ x + (1 | g)", kept, "poisson", weights="w", **settings)
    np.testing.assert_allclose(full.posterior["beta"], part.posterior["beta"], rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bglmm.BglmmWarning)  # rows with a large k, if any
        a, b = full.loo(), part.loo()
        wa, wb = full.waic(), part.waic()
    assert len(a.pareto_k) == len(kept) and np.all(np.isfinite(a.pareto_k))
    np.testing.assert_allclose(a.elpd_loo, b.elpd_loo, rtol=1e-6)
    np.testing.assert_allclose(wa.elpd_waic, wb.elpd_waic, rtol=1e-6)


@pytest.mark.parametrize("formula,family", [("y ~ x", "gaussian"), ("count ~ x", "poisson"),
                                            ("y ~ x + (1 | g)", "gaussian")])
def test_array_samplers_weight_their_log_likelihood(formula, family):
    d = _data()
    fit = bglmm.fit(formula, d, family, weights="w", chains=2, draws=40, warmup=40, seed=3,
                    progress=False, check=False)
    inner = fit.inner.to_inference_data().log_likelihood["y"].values
    outer = fit._pointwise_log_lik()["y"]
    np.testing.assert_allclose(inner, outer, rtol=1e-8, atol=1e-10)


# ---- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("weights,message", [
    (lambda d: -d["w"], "negative values"),
    (lambda d: d["w"] * 0, "all 0"),
    (lambda d: d["w"].where(d.index != 3), "missing"),
])
def test_bad_weights_name_the_problem(weights, message):
    d = _data()
    d["bad"] = weights(d)
    with pytest.raises(ValueError, match=message):
        bglmm.fit("count ~ x + (1 | g)", d, "poisson", weights="bad", draws=10, warmup=10,
                  progress=False)


def test_weights_refusals():
    d = _data()
    with pytest.raises(ValueError, match="already gives weights"):
        bglmm.fit("count | weights(w) ~ x", d, "poisson", weights="w", progress=False)
    with pytest.raises(ValueError, match="not a column"):
        bglmm.fit("count ~ x", d, "poisson", weights="ww", progress=False)
    d["se"] = 1.0
    with pytest.raises(ValueError, match="known standard errors"):
        bglmm.fit("y | se(se) ~ 1 + (1 | g)", d, weights="w", progress=False)
    with pytest.raises(FormulaError, match="takes no trials"):
        bglmm.fit("count | trials(n) + weights(w) ~ x", d, "cumulative", progress=False)
    with pytest.raises(ValueError, match="weights has 60 values"):
        bglmm.glm(np.ones((72, 1)), d["count"], "poisson", weights=np.ones(60), progress=False)
