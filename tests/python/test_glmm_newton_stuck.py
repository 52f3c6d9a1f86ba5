"""Regression test: the Newton-proposal step of the free fixed effects from a far start.

The GLMM core's Newton-proposal Metropolis-Hastings step of the free fixed effects
(``free_fixed_newton_step`` in steps/fixed_effects.hpp) accepted nothing, ever, when the chain
started far from the posterior in a data set with large counts: the start of beta was the GLM
mode that ignores the groups, the Laplace-EM rounds fitted the groups to it but never moved the
free coefficients, and with a random intercept of SD ~2 and counts in the thousands the slope
started hundreds of posterior SDs away, where every proposal's reverse density is negligible.
The start is now the joint conditional mode of (beta_F, gamma) (``joint_free_mode``: Newton on
the block-arrow Hessian), jittered by one conditional SD. Found by the K = 2 SBC at bglmm.fit's
default priors (test_sbc_blocks.py); one random intercept, 8 groups of 12 rows reproduce it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bglmm


def data(seed: int = 6):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(8), 12)
    x = rng.standard_normal(96)
    eta = -0.6 - 4.0 * x + rng.normal(0.0, 2.3, 8)[g]
    y = rng.poisson(np.exp(eta)).astype(float)  # max count 15,201
    return y, np.column_stack([np.ones(96), x]), g


def fit(sampler: str):
    y, X, g = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bglmm.BglmmWarning)
        return bglmm.glmm(y, X, None, g, "poisson", chains=2, draws=300, warmup=1000, seed=1,
                          threads=1, check=False, sampler=sampler)


def test_random_walk_reaches_the_posterior():
    # the reference the Laplace kernel should match: the slope near its true value -4
    f = fit("random_walk")
    slope = f.posterior["beta"][..., 1]
    assert np.all(np.asarray(f.attrs["fixed_acceptance"]) > 0.1)
    assert abs(slope.mean() + 4.0) < 0.15, slope.mean(axis=1)


def test_laplace_fixed_step_moves_from_a_far_start():
    f = fit("laplace")
    slope = f.posterior["beta"][..., 1]
    assert np.all(np.asarray(f.attrs["fixed_acceptance"]) > 0.0), f.attrs["fixed_acceptance"]
    assert abs(slope.mean() + 4.0) < 0.15, slope.mean(axis=1)
