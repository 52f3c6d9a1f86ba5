"""Epilepsy seizure counts (MASS's ``epil``): a negative-binomial GLMM against an independent
reference sampler.

    y ~ lbase * trt + lage + V4 + (1 | subject),  negbinomial (NB2, log link)

236 counts, 59 patients x 4 two-week periods; lbase is the log of a quarter of the baseline
count (centred), lage the log age (centred), V4 the fourth period. The counts are overdispersed
beyond a patient effect, so both the patient SD and the NB dispersion phi (var = mu + mu^2 / phi)
are identified; they trade off against each other, which is what makes this a test of the
dispersion step inside the GLMM's Metropolis-within-Gibbs sweep.

Priors, given explicitly to bglmm.fit and to the reference: beta ~ N(0, 2.5^2) each (intercept
included), the patient SD ~ HalfNormal(1), phi ~ Gamma(1, rate 0.1).

The reference (``_hmc_reference.NegBinomialCrossedModel``) is Hamiltonian Monte Carlo written in
NumPy on (beta, log SD, standardised effects, log phi) with a hand-written gradient (checked
against finite differences below). It shares no code with bglmm: bglmm updates the patients'
effects by Laplace-proposal Metropolis-Hastings, the fixed effects by Gibbs / Newton steps, the SD
by interweaving and marginal moves, and phi by a slice step on log phi given the linear predictor.

The check: for phi, the SD and the six fixed effects, the posterior medians of the two samplers
differ by at most Z = 4 combined Monte-Carlo standard errors (ArviZ's MCSE of the median of
each). Negative control: bglmm.fit with phi's prior Gamma(20, rate 10) (mean 2, sd 0.45, where the
data say about 7) must fail the same check against the reference.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import bglmm
from bglmm.priors import Gamma, HalfNormal, Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hmc_reference import (NegBinomialCrossedModel, assert_agrees, compare_medians,  # noqa: E402
                            gradient_errors, hmc)

FORMULA = "y ~ lbase * trt + lage + V4 + (1 | subject)"
COEFS = ["Intercept", "lbase", "trt[progabide]", "lbase:trt[progabide]", "lage", "V4"]
BETA_SD = 2.5
SD_SCALE = 1.0
PHI_PRIOR = (1.0, 0.1)
Z = 4.0
FIT_MCMC = dict(chains=4, draws=2000, warmup=1000, seed=20261202, threads=1, progress=False)
HMC_SETTINGS = dict(chains=8, warmup=600, draws=800, steps=(12, 36), seed=5)


def data() -> pd.DataFrame:
    return bglmm.datasets.load("epil")


def reference_model(d: pd.DataFrame) -> NegBinomialCrossedModel:
    progabide = (d["trt"] == "progabide").to_numpy(float)
    X = np.column_stack([np.ones(len(d)), d["lbase"], progabide, d["lbase"] * progabide,
                         d["lage"], d["V4"]]).astype(float)
    codes = [pd.factorize(d["subject"], sort=True)[0]]
    return NegBinomialCrossedModel(d["y"].to_numpy(float), X, codes, np.zeros(6),
                                   np.full(6, BETA_SD), np.array([SD_SCALE]),
                                   phi_a=PHI_PRIOR[0], phi_b=PHI_PRIOR[1])


_CACHE: dict = {}


def reference() -> dict[str, np.ndarray]:
    if "ref" not in _CACHE:
        with np.errstate(all="ignore"):  # divergent trajectories (rejected) overflow
            r = hmc(reference_model(data()), **HMC_SETTINGS)
        _CACHE["ref"] = {**{c: r["beta"][..., j] for j, c in enumerate(COEFS)},
                         "sd": r["sd"][..., 0], "phi": r["phi"],
                         "_acceptance": r["acceptance"]}
    return _CACHE["ref"]


def bglmm_draws(phi_prior: tuple[float, float] = PHI_PRIOR) -> dict[str, np.ndarray]:
    key = ("fit", phi_prior)
    if key not in _CACHE:
        f = bglmm.fit(FORMULA, data(), "negbinomial",
                      priors={"sd": HalfNormal(SD_SCALE), "beta": Normal(0.0, BETA_SD),
                              "phi": Gamma(*phi_prior)}, **FIT_MCMC)
        assert list(f.coords["coef"]) == COEFS
        beta = f.posterior["beta"]
        _CACHE[key] = {**{c: beta[..., j] for j, c in enumerate(COEFS)},
                       "sd": f.posterior["sd_subject__Intercept"], "phi": f.posterior["phi"]}
    return _CACHE[key]


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> pd.DataFrame:
    return compare_medians(a, b, ["phi", "sd"] + COEFS, Z)


def test_reference_gradient_matches_finite_differences():
    m = reference_model(data())
    rng = np.random.default_rng(1)
    theta = rng.normal(0.0, 0.3, (2, m.dim))
    theta[:, 0] += 1.5
    g, fd = gradient_errors(m, theta, [0, 1, 2, 3, 4, 5, 6, 7, 30, 65, m.dim - 1])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-4)


def test_bglmm_fit_matches_independent_hmc():
    assert_agrees(compare(bglmm_draws(), reference()), reference()["_acceptance"])


def test_a_wrong_dispersion_prior_is_detected():
    table = compare(bglmm_draws((20.0, 10.0)), reference())
    assert not table.loc["phi", "ok"], table
