"""Ticks on red grouse chicks (lme4's ``grouseticks``): a zero-inflated Poisson GLMM against an
independent reference sampler.

    TICKS ~ year + height + (1 | BROOD),  zero_inflated_poisson (log link)

403 chicks in 118 broods, 31% of them without ticks; year is a factor (1995-1997), cHEIGHT the
centred altitude of the site in units of 100 m (lme4's cHEIGHT / 100: on the metre scale its
coefficient's posterior SD is 1e-4 of the intercept's, which the reference sampler's diagonal
metric adapts to only slowly). Zeros come either from broods with a low tick rate (the brood SD)
or as structural zeros (zi), so the two trade off; here the brood effects explain most zeros and
zi sits near the boundary 0 (posterior median about 0.035), where the slice step on logit zi has
to follow a long left tail.

Priors, given explicitly to bglmm.fit and to the reference: beta ~ N(0, 2.5^2) each (intercept
included), the brood SD ~ HalfNormal(1.5), zi ~ Beta(1, 1) (the default).

The reference (``_hmc_reference.ZeroInflatedPoissonCrossedModel``) is Hamiltonian Monte Carlo
written in NumPy on (beta, log SD, standardised effects, logit zi) with a hand-written gradient
(checked against finite differences below). It shares no code with bglmm, which updates the
broods' effects by Laplace-proposal Metropolis-Hastings, the SD by interweaving and marginal
moves, and zi by a slice step on the log odds of a structural zero given the linear predictor.

The check: for zi, the SD and the four fixed effects, the posterior medians of the two samplers
differ by at most Z = 4 combined Monte-Carlo standard errors (ArviZ's MCSE of the median of
each). Negative control: bglmm.fit with zi's prior Beta(30, 120) (mean 0.2, sd 0.03) must fail
the same check against the reference.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import bglmm
from bglmm.priors import Beta, HalfNormal, Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hmc_reference import (ZeroInflatedPoissonCrossedModel, assert_agrees,  # noqa: E402
                            compare_medians, gradient_errors, hmc)

FORMULA = "TICKS ~ year + height + (1 | BROOD)"
COEFS = ["Intercept", "year[96]", "year[97]", "height"]
BETA_SD = 2.5
SD_SCALE = 1.5
ZI_PRIOR = (1.0, 1.0)
Z = 4.0
FIT_MCMC = dict(chains=4, draws=2000, warmup=1000, seed=20261202, threads=1, progress=False)
HMC_SETTINGS = dict(chains=8, warmup=500, draws=600, steps=(12, 36), seed=5)


def data() -> pd.DataFrame:
    d = bglmm.datasets.load("grouseticks")
    d["year"] = d["YEAR"].astype(str)
    d["height"] = d["cHEIGHT"] / 100.0
    return d


def reference_model(d: pd.DataFrame) -> ZeroInflatedPoissonCrossedModel:
    X = np.column_stack([np.ones(len(d)), d["year"] == "96", d["year"] == "97",
                         d["height"]]).astype(float)
    codes = [pd.factorize(d["BROOD"], sort=True)[0]]
    return ZeroInflatedPoissonCrossedModel(d["TICKS"].to_numpy(float), X, codes, np.zeros(4),
                                           np.full(4, BETA_SD), np.array([SD_SCALE]),
                                           zi_a=ZI_PRIOR[0], zi_b=ZI_PRIOR[1])


_CACHE: dict = {}


def reference() -> dict[str, np.ndarray]:
    if "ref" not in _CACHE:
        with np.errstate(all="ignore"):  # divergent trajectories (rejected) overflow
            r = hmc(reference_model(data()), **HMC_SETTINGS)
        _CACHE["ref"] = {**{c: r["beta"][..., j] for j, c in enumerate(COEFS)},
                         "sd": r["sd"][..., 0], "zi": r["zi"], "_acceptance": r["acceptance"]}
    return _CACHE["ref"]


def bglmm_draws(zi_prior: tuple[float, float] = ZI_PRIOR) -> dict[str, np.ndarray]:
    key = ("fit", zi_prior)
    if key not in _CACHE:
        f = bglmm.fit(FORMULA, data(), "zero_inflated_poisson",
                      priors={"sd": HalfNormal(SD_SCALE), "beta": Normal(0.0, BETA_SD),
                              "zi": Beta(*zi_prior)}, **FIT_MCMC)
        assert list(f.coords["coef"]) == COEFS
        beta = f.posterior["beta"]
        _CACHE[key] = {**{c: beta[..., j] for j, c in enumerate(COEFS)},
                       "sd": f.posterior["sd_BROOD__Intercept"], "zi": f.posterior["zi"]}
    return _CACHE[key]


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> pd.DataFrame:
    return compare_medians(a, b, ["zi", "sd"] + COEFS, Z)


def test_reference_gradient_matches_finite_differences():
    m = reference_model(data())
    rng = np.random.default_rng(1)
    theta = rng.normal(0.0, 0.3, (2, m.dim))
    theta[:, 0] += 0.5
    theta[:, -1] = [-3.0, 0.4]
    g, fd = gradient_errors(m, theta, [0, 1, 2, 3, 4, 5, 30, 90, m.dim - 1])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-4)


def test_bglmm_fit_matches_independent_hmc():
    assert_agrees(compare(bglmm_draws(), reference()), reference()["_acceptance"])


def test_a_wrong_zero_inflation_prior_is_detected():
    table = compare(bglmm_draws((30.0, 120.0)), reference())
    assert not table.loc["zi", "ok"], table
