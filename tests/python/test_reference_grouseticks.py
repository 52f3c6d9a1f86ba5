"""Grouseticks (lme4's ``grouseticks``): a Poisson GLMM with three random intercepts, one of them
observation-level, against an independent reference sampler.

    TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),  poisson

YEAR is stored as an integer (95, 96, 97): ``C(YEAR)`` makes it categorical (treatment coding,
95 the baseline). INDEX has one level per row (the observation-level effect, overdispersion);
BROOD (118 levels) is nested in LOCATION (63) and INDEX in both, so bglmm.fit takes LOCATION as
the primary block and runs BROOD and INDEX as extra blocks with the nested translation and
scale moves.

Priors, given explicitly to bglmm.fit and to the reference: beta ~ N(0, 2.5^2) each (intercept
included), every SD ~ HalfNormal(1).

The reference (``_hmc_reference.py``) is Hamiltonian Monte Carlo written here in NumPy: all 591
parameters at once (beta, the log-SDs and the standardised effects z, b = sd z: the non-centred
parameterisation), a hand-written gradient (checked against finite differences below), step
size by dual averaging and a diagonal metric from warm-up, jittered trajectory lengths, the
Metropolis correction on the exact joint density. It shares no code with bglmm (not its design
matrices either: X is built from the columns with pandas), and no algorithmic ingredient with
bglmm's Metropolis-within-Gibbs (per-level Laplace proposals, Gibbs / slice steps for the SDs,
translation and scale moves): an error in any of those moves would show as a disagreement.

The check: for the three SDs and the four fixed effects, the posterior medians of the two
samplers differ by at most Z = 4 combined Monte-Carlo standard errors, sqrt(mcse_fit^2 +
mcse_ref^2), each ArviZ's MCSE of the median (autocorrelation-aware, over the chains). Negative
control: bglmm.fit under SD priors HalfNormal(0.15) (everything else alike) must fail the same
check against the reference. lme4's glmer (Laplace, ML) estimates of the SDs are printed next to
the posterior medians for information only (a posterior median under these priors is not an ML
estimate; they agree to ~0.05 on INDEX and BROOD).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bglmm
from bglmm.priors import HalfNormal, Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hmc_reference import (PoissonCrossedModel, assert_agrees, compare_medians,  # noqa: E402
                            gradient_errors, hmc)


FORMULA = "TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"
FACTORS = ["BROOD", "INDEX", "LOCATION"]
COEFS = ["Intercept", "C(YEAR)[96]", "C(YEAR)[97]", "cHEIGHT"]
BETA_SD = 2.5
SD_SCALE = 1.0
Z = 4.0
# lme4 glmer(TICKS ~ YEAR + HEIGHT + (1|BROOD) + (1|INDEX) + (1|LOCATION), poisson): SDs
GLMER_SD = {"INDEX": 0.542, "BROOD": 0.750, "LOCATION": 0.529}

FIT_MCMC = dict(chains=4, draws=2500, warmup=1000, seed=20250611, threads=1, progress=False)
HMC_SETTINGS = dict(chains=8, warmup=800, draws=1000, steps=(16, 48), seed=3)


def data() -> pd.DataFrame:
    d = bglmm.datasets.load("grouseticks")
    assert pd.api.types.is_integer_dtype(d["YEAR"])  # hence C(YEAR)
    return d


def reference_model(d: pd.DataFrame, sd_scale: float = SD_SCALE) -> PoissonCrossedModel:
    X = np.column_stack([np.ones(len(d)), d["YEAR"] == 96, d["YEAR"] == 97, d["cHEIGHT"]])
    codes = [pd.factorize(d[f], sort=True)[0] for f in FACTORS]
    return PoissonCrossedModel(d["TICKS"].to_numpy(float), X.astype(float), codes,
                               np.zeros(4), np.full(4, BETA_SD), np.full(3, sd_scale))


_CACHE: dict = {}


def reference() -> dict[str, np.ndarray]:
    if "ref" not in _CACHE:
        with np.errstate(all="ignore"):  # divergent trajectories (rejected) overflow
            r = hmc(reference_model(data()), **HMC_SETTINGS)
        _CACHE["ref"] = {**{c: r["beta"][..., j] for j, c in enumerate(COEFS)},
                         **{f: r["sd"][..., k] for k, f in enumerate(FACTORS)},
                         "_acceptance": r["acceptance"]}
    return _CACHE["ref"]


def bglmm_draws(sd_scale: float = SD_SCALE) -> dict[str, np.ndarray]:
    key = ("fit", sd_scale)
    if key not in _CACHE:
        f = bglmm.fit(FORMULA, data(), "poisson",
                      priors={"sd": HalfNormal(sd_scale), "beta": Normal(0.0, BETA_SD)},
                      check=False, **FIT_MCMC)
        assert list(f.coords["coef"]) == COEFS
        assert f.posterior["b_INDEX"].shape[2] == 403
        beta = f.posterior["beta"]
        _CACHE[key] = {**{c: beta[..., j] for j, c in enumerate(COEFS)},
                       **{k: f.posterior[f"sd_{k}__Intercept"] for k in FACTORS}}
    return _CACHE[key]


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> pd.DataFrame:
    table = compare_medians(a, b, FACTORS + COEFS, Z)
    table["glmer"] = [GLMER_SD.get(name, np.nan) for name in table.index]
    return table


def test_reference_gradient_matches_finite_differences():
    m = reference_model(data())
    rng = np.random.default_rng(1)
    theta = rng.normal(0.0, 0.3, (2, m.dim))
    theta[:, 0] += 1.0
    theta[:, 3] *= 0.01  # cHEIGHT spans +-60
    g, fd = gradient_errors(m, theta, [0, 1, 2, 3, 4, 5, 6, 7, 200, 450, 590])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-4)


def test_bglmm_fit_matches_independent_hmc():
    assert_agrees(compare(bglmm_draws(), reference()), reference()["_acceptance"])


def test_comparison_rejects_a_wrong_prior():
    # negative control: bglmm.fit with every SD prior HalfNormal(0.15) against the reference
    # under HalfNormal(1): the check must see the shrunken SDs
    table = compare(bglmm_draws(0.15), reference())
    print(f"\n{table}")
    assert not table.loc[FACTORS, "ok"].all(), table


@pytest.mark.parametrize("factor", FACTORS)
def test_posterior_medians_near_glmer(factor):
    # a loose sanity check (not a calibration): the posterior median of each SD within 0.15 of
    # glmer's ML estimate
    med = float(np.median(bglmm_draws()[factor]))
    assert abs(med - GLMER_SD[factor]) < 0.15, (factor, med, GLMER_SD[factor])
