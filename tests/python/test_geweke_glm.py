"""Geweke (2004) joint-distribution tests of the Bayesian GLM samplers, CI size.

Two simulators of the joint distribution p(beta, y) = p(beta) p(y | beta) (X, trials and offset
fixed):

* marginal-conditional: beta ~ prior, y ~ p(y | beta), independently each time;
* successive-conditional: alternate beta ~ K(. | y) (the sampler under test) and y ~ p(y | beta).

If K leaves p(beta | y) invariant, both simulate the same joint distribution, so the means of
g and g^2 agree for every functional g(beta, y) (the parameters, their product, and data
functionals: mean response, its covariance with x). z-scores use the iid standard error of the
first simulator and an autocorrelation-time (Geyer initial positive sequence) standard error for
the autocorrelated second one. The successive-conditional chain mixes at a rate set by how much
y tells about beta (its lag-1 autocorrelation is about 1 - prior precision / posterior
precision), so the models below keep the data only moderately informative.

The GLM entry point does not accept a starting value, so one K step is one short run of the
sampler (warm-up from its own start near the mode of p(beta | y), then one kept draw). For the
conjugate sampler that is an exact posterior draw; for the Metropolis samplers the warm-up and
thinning make the run's end a draw from p(beta | y) up to a bias far below the test's
resolution, so a wrong target (likelihood, prior, Hastings correction, posterior variance) shows
as a disagreement while a correct sampler passes.

The families with a dispersion (negbinomial, gamma, beta_binomial; phi ~ Gamma(4, 1)) are tested
the same way: a step is a short run of the whole sampler, which alternates the Metropolis-Hastings
step of beta given phi with the slice step of log phi given beta, and the functionals add phi,
log phi and phi * beta0. This checks that the sampler's output targets p(beta, phi | y); it is not
Geweke's one-sweep test of the kernel, which needs an entry point that starts the chain at a given
(beta, phi) (one sweep from the current state, the random-walk scale frozen). Negative control:
the slice step's prior rate x1.25 (prior mean of phi 3.2 instead of 4), |z| ~ 10-15.

Threshold: |z| < 4.0 for every (functional, moment) pair: 10-16 statistics per case and 10
cases (about 130 in all), so a correct sampler fails this file with probability ~1e-2
(Bonferroni: 130 x 6.3e-5) and the seeds are fixed. The full-size version is
``python validation/geweke.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import bglmm
from bglmm import testing
from bglmm.priors import Normal

Z_MAX = 4.0
glm_geweke = testing.glm_geweke
X, M0, SD0 = testing.GEWEKE_X, testing.GEWEKE_M0, testing.GEWEKE_SD0


CASES = [
    ("gaussian", None, "conjugate", True),
    ("gaussian", None, "conjugate", False),
    ("gaussian", None, "independence", False),
    ("poisson", None, "random_walk", False),
    ("bernoulli", "logit", "independence", False),
    ("binomial", "probit", "random_walk", False),
    ("binomial", "cloglog", "independence", False),
]


@pytest.mark.parametrize("family, link, sampler, unknown", CASES,
                         ids=[f"{f}-{l or 'default'}-{s}{'-unknown-sigma' if u else ''}"
                              for f, l, s, u in CASES])
def test_glm_geweke(family, link, sampler, unknown):
    # the conjugate sampler is cheap: longer runs give power against a 20% error in its
    # posterior sd (|z| ~ 5-7 with a deliberately broken kernel)
    size = 6000 if sampler == "conjugate" else 2000
    res = glm_geweke(family, link, sampler, unknown_sigma=unknown, seed=7, marginal=max(size, 3000),
                     successive=size)
    assert res.max_abs_z < Z_MAX, "\n" + res.table()


# The families with a dispersion: one step is a short run of the whole sampler (the
# Metropolis-Hastings step of beta given phi, then the slice step of log phi given beta), phi ~
# Gamma(4, 1) in both simulators; each family once, the two Metropolis samplers between them
# (validation/geweke.py runs every family x link x sampler; the GLMM's one-sweep Geweke tests of
# the same slice step are in test_glmm.py).
DISPERSION_CASES = [
    ("negbinomial", "log", "independence"),
    ("gamma", "log", "random_walk"),
    ("beta_binomial", "cloglog", "random_walk"),
    ("zero_inflated_poisson", "log", "independence"),  # zi ~ Beta(3, 5), its slice on logit zi
]


@pytest.mark.parametrize("family, link, sampler", DISPERSION_CASES,
                         ids=[f"{f}-{l}-{s}" for f, l, s in DISPERSION_CASES])
def test_glm_geweke_dispersion(family, link, sampler):
    res = glm_geweke(family, link, sampler, seed=7, marginal=3000, successive=2000)
    assert res.max_abs_z < Z_MAX, "\n" + res.table()


@pytest.mark.parametrize("family, sampler", [("negbinomial", "independence"),
                                             ("gamma", "random_walk"),
                                             ("zero_inflated_poisson", "independence")])
def test_geweke_detects_a_wrong_dispersion_step(family, sampler):
    # Power: the sampler's slice step targets a posterior under the prior Gamma(4, 1.25) (the
    # prior mean of phi 3.2 instead of 4) while the simulators draw phi ~ Gamma(4, 1) (zi:
    # Beta(3, 6.25), mean 0.32, instead of Beta(3, 5)); the same settings pass with the right
    # prior (test_glm_geweke_dispersion).
    res = glm_geweke(family, None, sampler, seed=7, marginal=3000, successive=2000,
                     fit_dispersion_rate_factor=1.25)
    assert res.max_abs_z > Z_MAX, "\n" + res.table()


def test_geweke_detects_a_wrong_kernel():
    # Power: a "sampler" whose beta draws come from a posterior with the prior sd halved (the
    # fit's prior differs from the simulator's) must fail the same test.
    fam = "bernoulli"

    def prior_draw(rng):
        return {"beta": M0 + SD0 * rng.standard_normal(2)}

    def data_draw(rng, theta):
        return testing.draw_response(rng, fam, "logit", X @ theta["beta"])

    def wrong_step(theta, y, step_seed):
        fit = bglmm.glm(X, y, fam, "logit", prior=Normal(M0, 0.5 * SD0), sampler="independence",
                        chains=1, draws=1, warmup=60, thin=3, seed=step_seed, threads=1,
                        check=False)
        return {"beta": fit.draws[0, -1]}

    def functionals(theta, y):
        return {"beta0": theta["beta"][0], "beta1": theta["beta"][1], "mean(y)": float(np.mean(y))}

    res = testing.geweke_test(prior_draw, data_draw, wrong_step, functionals, marginal=3000,
                              successive=2000, seed=7)
    assert res.max_abs_z > Z_MAX, "\n" + res.table()
