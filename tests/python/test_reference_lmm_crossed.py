"""An exact reference for the variance components of gaussian LMMs with several intercept-only
random factors — crossed (Penicillin: plate x sample) and nested (Pastes: batch / cask) — and
the comparison of bglmm's posterior with it.

The reference (``bglmm.testing.lmm_variance_posterior``) integrates beta and every random effect
out in closed form (through the Woodbury identity, never forming an n x n matrix) and the SDs and
sigma on an adaptive tensor grid over their logs. It is validated here independently of bglmm's
samplers:

1. its marginal likelihood agrees with the dense multivariate-normal density (SciPy, the full
   n x n covariance) on a small data set, crossed and nested, to 1e-8; its restricted
   likelihood with the dense REML formula, and with the limit of the marginal likelihood as the
   prior variance of beta grows;
2. the maximiser of its restricted likelihood reproduces lme4's REML estimates of Penicillin
   ``diameter ~ 1 + (1 | plate) + (1 | sample)`` and Pastes ``strength ~ 1 + (1 | batch/cask)``;
3. bglmm's default priors for these models, as ``bglmm.api.default_priors`` builds them, are
   the documented ones the reference is run with, and halving the grid spacing moves no
   reported quantile by more than 2e-4 (relative);
4. the comparison check accepts independent draws from the reference and rejects references
   computed under deliberately wrong priors (the scale of sigma's prior x10, of the SDs' prior
   x1/10) — so the tolerance is tight enough to see a wrong prior.

Then ``bglmm.fit`` on both models is compared with the reference: the posterior median and the
25% and 75% quantiles of each SD and of sigma must lie within 4 Monte-Carlo standard errors
(ArviZ's quantile MCSE, which accounts for autocorrelation) plus the grid's integration error;
the same check must reject the wrong-prior references. Until the samplers support several
grouping factors ``bglmm.fit`` refuses these formulas, and those two tests skip — only on that
refusal.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats

import bglmm
from bglmm import testing as T
from bglmm.api import default_priors
from bglmm.formula import build_spec
from bglmm.priors import HalfStudentT, InverseGamma
from bglmm.results import import_arviz

az = import_arviz()

Z = 4.0  # tolerance in Monte-Carlo standard errors
CHECKED_PROBS = (0.25, 0.5, 0.75)
GRID = 24  # nodes per axis before the tails are added; the refinement check bounds the error

# lme4 1.1-31, lmer(..., REML = TRUE): the SDs of the variance components
LME4_REML = {
    "penicillin": {"plate": 0.8467, "sample": 1.9316, "sigma": 0.5499},
    "pastes": {"batch:cask": 2.9041, "batch": 1.2874, "sigma": 0.8234},
}

MODELS = {
    "penicillin": "diameter ~ 1 + (1 | plate) + (1 | sample)",
    "pastes": "strength ~ 1 + (1 | batch/cask)",
}

def model_data(name: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """y, X (the intercept) and the random factors {name as bglmm names it: labels}."""
    if name == "penicillin":
        d = bglmm.datasets.load("penicillin")
        y = d["diameter"].to_numpy(float)
        factors = {"plate": d["plate"].to_numpy(), "sample": d["sample"].to_numpy()}
    else:
        d = bglmm.datasets.load("pastes")
        y = d["strength"].to_numpy(float)
        batch = d["batch"].astype(str)
        cask = batch + ":" + d["cask"].astype(str)
        factors = {"batch": batch.to_numpy(), "batch:cask": cask.to_numpy()}
    return y, np.ones((y.size, 1)), factors


def variable(name: str) -> str:
    """bglmm's name of the draws of an SD (or sigma)."""
    return name if name == "sigma" else f"sd_{name}__Intercept"


def reference(name: str, priors: dict | None = None, refine: bool = True) -> T.VariancePosterior:
    y, X, factors = model_data(name)
    priors = T.lmm_default_priors(y, X) if priors is None else priors
    args = T.lmm_reference_priors(priors, list(factors), X.shape[1])
    return T.lmm_variance_posterior(y, X, factors, **args, grid=GRID, refine=refine)


def wrong_priors(name: str) -> dict[str, dict]:
    """The negative controls: the default priors with sigma's prior scale x10, and with every
    SD prior's scale x1/10."""
    y, X, _ = model_data(name)
    base = T.lmm_default_priors(y, X)
    sigma10 = dict(base, sigma=InverseGamma(base["sigma"].shape, 10 * base["sigma"].scale))
    sd_tenth = dict(base, sd=HalfStudentT(base["sd"].df, base["sd"].scale / 10))
    return {"sigma prior scale x10": sigma10, "SD prior scale x1/10": sd_tenth}


_CACHE: dict = {}


def cached(key: tuple, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def default_reference(name: str) -> T.VariancePosterior:
    return cached(("default", name), lambda: reference(name))


def control_references(name: str) -> dict[str, T.VariancePosterior]:
    return cached(("controls", name), lambda: {
        label: reference(name, pri, refine=False) for label, pri in wrong_priors(name).items()})


# ---------------------------------------------------------------------------------------------
# The check: quantiles within Z MCSE plus the grid's integration error
# ---------------------------------------------------------------------------------------------
def quantile_excess(draws: dict[str, np.ndarray], ref: T.VariancePosterior,
                    grid_error: T.VariancePosterior | None = None) -> dict[str, float]:
    """For each SD (and sigma) and each checked prob: |draws' quantile - reference quantile|
    / (Z * MCSE + integration error). The check passes when every value is <= 1.
    ``grid_error`` is the reference whose integration errors count (default ``ref``)."""
    err_src = ref if grid_error is None else grid_error
    out = {}
    for name in ref.names:
        x = np.asarray(draws[name], dtype=float)
        for prob in CHECKED_PROBS:
            j = ref.probs.index(prob)
            mcse = float(az.mcse(x, method="quantile", prob=prob))
            err = float(err_src.integration_error[name][j]) if err_src.integration_error else 0.0
            diff = abs(float(np.quantile(x, prob)) - ref.quantiles[name][j])
            out[f"q{100 * prob:g} {name}"] = diff / (Z * mcse + err)
    return out


def assert_agrees(draws: dict[str, np.ndarray], ref: T.VariancePosterior,
                  controls: dict[str, T.VariancePosterior]) -> None:
    """The draws agree with the reference and are told apart from every control reference."""
    excess = quantile_excess(draws, ref)
    assert max(excess.values()) <= 1.0, (
        f"posterior quantiles vs the reference, |diff| / ({Z} MCSE + grid error): {excess}")
    for label, control in controls.items():
        excess_c = quantile_excess(draws, control, grid_error=ref)
        assert max(excess_c.values()) > 1.0, (
            f"the check cannot tell the reference from the control with the {label}: {excess_c}")


# ---------------------------------------------------------------------------------------------
# 1. The likelihoods against dense computations
# ---------------------------------------------------------------------------------------------
def small_data(nested: bool):
    rng = np.random.default_rng(7)
    n = 12
    X = np.column_stack([np.ones(n), rng.standard_normal(n)])
    if nested:
        a = np.repeat([0, 1, 2], 4)  # 3 batches, 2 casks each, 2 rows per cask
        b = np.array([f"{i}:{j}" for i, j in zip(a, np.tile([0, 0, 1, 1], 3))])
    else:
        a = np.tile([0, 1, 2], 4)  # 3 x 4 crossed, one row per cell
        b = np.repeat(["p", "q", "r", "s"], 3)
    y = 2.0 + 0.5 * X[:, 1] + rng.normal(0, 1.2, 3)[a] + rng.standard_normal(n)
    return y, X, {"a": a, "b": b}


def dense_covariance(factors: dict, sd: np.ndarray, sigma: float, n: int) -> np.ndarray:
    V = sigma**2 * np.eye(n)
    for s, labels in zip(sd, factors.values()):
        labels = np.asarray(labels)
        Zk = (labels[:, None] == np.unique(labels)[None, :]).astype(float)
        V += s**2 * Zk @ Zk.T
    return V


THETAS = [((0.5, 1.2), 0.7), ((3.0, 0.01), 2.0), ((0.1, 0.2), 0.05), ((1.0, 1.0), 1.0)]


@pytest.mark.parametrize("nested", [False, True], ids=["crossed", "nested"])
def test_marginal_likelihood_matches_dense_normal(nested):
    y, X, factors = small_data(nested)
    n = y.size
    m0 = np.array([1.0, -0.5])
    V0 = np.array([[4.0, 0.5], [0.5, 2.0]])
    for sd, sigma in THETAS:
        sd = np.asarray(sd)
        cov = X @ V0 @ X.T + dense_covariance(factors, sd, sigma, n)
        dense = stats.multivariate_normal(X @ m0, cov).logpdf(y)
        got = T.lmm_log_marginal_likelihood(y, X, factors, m0, V0, sd, sigma)
        assert abs(got - dense) < 1e-8, (sd, sigma, got, dense)
    # vectorised over a batch of theta
    sds = np.array([t[0] for t in THETAS])
    sigmas = np.array([t[1] for t in THETAS])
    batch = T.lmm_log_marginal_likelihood(y, X, factors, m0, V0, sds, sigmas)
    single = [T.lmm_log_marginal_likelihood(y, X, factors, m0, V0, s, g)
              for s, g in zip(sds, sigmas)]
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-9)


@pytest.mark.parametrize("nested", [False, True], ids=["crossed", "nested"])
def test_restricted_likelihood_matches_dense_reml(nested):
    y, X, factors = small_data(nested)
    n, p = X.shape
    for sd, sigma in THETAS:
        sd = np.asarray(sd)
        V = dense_covariance(factors, sd, sigma, n)
        Vi = np.linalg.inv(V)
        XtViX = X.T @ Vi @ X
        r = y - X @ np.linalg.solve(XtViX, X.T @ Vi @ y)
        dense = -0.5 * (np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtViX)[1] + r @ Vi @ r
                        + (n - p) * np.log(2 * np.pi))
        got = T.lmm_reml_log_likelihood(y, X, factors, sd, sigma)
        assert abs(got - dense) < 1e-8, (sd, sigma, got, dense)
        # the restricted likelihood is the V0 -> infinity limit of the marginal likelihood
        # plus 1/2 log|V0| + p/2 log 2 pi (the error falls like 1/c)
        c = 1e7
        limit = (T.lmm_log_marginal_likelihood(y, X, factors, np.zeros(p), c * np.eye(p), sd, sigma)
                 + 0.5 * p * np.log(c) + 0.5 * p * np.log(2 * np.pi))
        assert abs(limit - got) < 1e-4, (sd, sigma, limit, got)


# ---------------------------------------------------------------------------------------------
# 2. REML estimates against lme4
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["penicillin", "pastes"])
def test_reml_estimates_reproduce_lme4(name):
    y, X, factors = model_data(name)
    est = T.lmm_reml_estimates(y, X, factors)
    for key, value in LME4_REML[name].items():
        assert est[key] == pytest.approx(value, rel=5e-4), (key, est[key], value)


# ---------------------------------------------------------------------------------------------
# 3. The default priors, the grid, the reference's numbers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["penicillin", "pastes"])
def test_default_priors_are_the_documented_ones(name):
    """default_priors of the formula's spec give the same prior densities as the documented
    formulas the reference is run with (lmm_default_priors)."""
    y, X, factors = model_data(name)
    data = bglmm.datasets.load(name)
    spec = build_spec(MODELS[name], data)
    assert sorted(b.factor for b in spec.random) == sorted(factors)
    from_spec = T.lmm_reference_priors(default_priors(spec), list(factors), 1)
    by_hand = T.lmm_reference_priors(T.lmm_default_priors(y, X), list(factors), 1)
    s_grid = np.geomspace(1e-3, 1e3, 61)
    for f_spec, f_hand in zip(from_spec["sd_prior_logpdf"], by_hand["sd_prior_logpdf"]):
        np.testing.assert_allclose(f_spec(s_grid), f_hand(s_grid), rtol=1e-12)
    np.testing.assert_allclose(from_spec["sigma_prior_logpdf"](s_grid),
                               by_hand["sigma_prior_logpdf"](s_grid), rtol=1e-12)
    np.testing.assert_allclose(from_spec["beta_mean"], by_hand["beta_mean"], rtol=1e-12)
    np.testing.assert_allclose(from_spec["beta_cov"], by_hand["beta_cov"], rtol=1e-12)
    # the documented values: SDs Half-t(3, 2.5 sd(y)), sigma^2 ~ IG(1/2, var(y) / 2) (X is
    # the intercept, so the residual variance is var(y)), intercept N(mean(y), (10 sd(y))^2)
    hand = T.lmm_default_priors(y, X)
    assert hand["sd"].df == 3.0 and hand["sd"].scale == pytest.approx(2.5 * np.std(y, ddof=1))
    assert hand["sigma"].shape == 0.5
    assert hand["sigma"].scale == pytest.approx(np.var(y, ddof=1) / 2)


def test_scale_prior_densities_integrate_to_one():
    from scipy import integrate

    for prior in (HalfStudentT(3.0, 2.0), InverseGamma(0.5, 1.5), InverseGamma(3.0, 2.0),
                  bglmm.priors.HalfNormal(1.5)):
        f = T.scale_prior_logpdf(prior)
        # on the log scale (with the Jacobian s), which is how the reference uses them
        total, _ = integrate.quad(lambda t: np.exp(f(np.exp(t)) + t), -40, 40, limit=400)
        assert total == pytest.approx(1.0, rel=1e-7), prior


# Posterior medians and 95% intervals under the default priors (grid 32 per axis, refined).
REFERENCE_VALUES = {
    "penicillin": {"plate": (0.64821, 0.87500, 1.24024), "sample": (1.26942, 2.24851, 5.10508),
                   "sigma": (0.51336, 0.58099, 0.66490)},
    "pastes": {"batch": (0.08117, 1.34489, 3.60170), "batch:cask": (2.20589, 2.99061, 4.14680),
               "sigma": (0.80004, 1.00925, 1.32857)},
}


@pytest.mark.parametrize("name", ["penicillin", "pastes"])
def test_reference_is_converged_and_stable(name):
    ref = default_reference(name)
    print(f"\n{name}, default priors:\n{ref.table().to_string()}")
    for key in ref.names:
        q = ref.quantiles[key]
        assert np.all(np.diff(q) > 0)
        # halving the grid spacing moves no quantile by more than 2e-4 (relative)
        assert np.all(ref.integration_error[key] <= 2e-4 * q), (key, ref.integration_error[key])
        lo, med, hi = REFERENCE_VALUES[name][key]
        np.testing.assert_allclose([q[0], q[2], q[4]], [lo, med, hi], rtol=2e-4)
        assert q[0] < ref.mean[key] < q[4]
    # the grid holds the posterior: its first and last nodes carry almost no mass
    lp = ref.log_density - ref.log_density.max()
    total = np.log(np.exp(lp).sum())
    for j in range(lp.ndim):
        others = tuple(i for i in range(lp.ndim) if i != j)
        edge = np.log(np.exp(lp).sum(axis=others))[[0, -1]] - total
        assert np.all(edge < np.log(1e-6)), (ref.names[j], edge)


# ---------------------------------------------------------------------------------------------
# 4. The check tells the right reference from wrong ones
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["penicillin", "pastes"])
def test_check_accepts_exact_draws_and_rejects_wrong_priors(name):
    """Independent draws from the reference (4 x 1000, as a sampler would give) pass the
    check; the references under the wrong priors are rejected."""
    ref = default_reference(name)
    draws = ref.sample((4, 1000), seed=11)
    assert_agrees(draws, ref, control_references(name))


# ---------------------------------------------------------------------------------------------
# 5. bglmm.fit against the reference
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["penicillin", "pastes"])
def test_fit_matches_reference(name):
    fit = bglmm.fit(MODELS[name], bglmm.datasets.load(name), seed=1, progress=False)
    ref = default_reference(name)
    draws = {key: np.asarray(fit.posterior[variable(key)], dtype=float) for key in ref.names}
    for key, x in draws.items():
        assert x.ndim == 2 and x.shape[1] >= 500, (key, x.shape)
    assert_agrees(draws, ref, control_references(name))
