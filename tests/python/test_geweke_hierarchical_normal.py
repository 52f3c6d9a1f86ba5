"""Geweke (2004) joint-distribution tests of the hierarchical normal samplers (Gibbs with a
half-normal SD prior, Gibbs with a conjugate inverse-gamma prior and unknown sigma, and the exact
grid sampler), CI size. See ``bglmm.testing.hierarchical_normal_geweke``: the marginal-conditional
simulator (mu, tau, theta from the prior, y from the model) and the successive-conditional one
(alternate a posterior draw and fresh data) must agree on the means of g and g^2 for mu, tau,
theta_0, theta_0 * mu, mean(y), y_0 (and sigma).

One successive-conditional step is a short run of the sampler (the entry point takes no starting
value). Threshold |z| < 4.0 per statistic (about 14 statistics x 3 cases: a correct sampler fails
with probability ~3e-3); seeds fixed. Power: a kernel drawing from a posterior with the wrong mu
prior fails.
"""

from __future__ import annotations

import numpy as np
import pytest

import bglmm
from bglmm import testing
from bglmm.priors import HalfNormal, Normal

Z_MAX = 4.0


@pytest.mark.parametrize("sampler, tau_prior, unknown", [("gibbs", "half_normal", False),
                                                         ("gibbs", "inverse_gamma", True),
                                                         ("exact", "half_normal", False)])
def test_hierarchical_normal_geweke(sampler, tau_prior, unknown):
    res = testing.hierarchical_normal_geweke(sampler, tau_prior=tau_prior, unknown_sigma=unknown,
                                             seed=11)
    assert res.max_abs_z < Z_MAX, "\n" + res.table()


def test_geweke_detects_a_wrong_hierarchical_kernel():
    # the "kernel" uses mu ~ N(0.5, 0.5^2) while the simulator draws mu ~ N(0.5, 1)
    group = np.arange(4)

    def prior_draw(rng):
        mu = rng.normal(0.5, 1.0)
        tau = abs(rng.normal())
        return {"mu": mu, "theta": rng.normal(mu, tau, 4)}

    def data_draw(rng, th):
        return rng.normal(th["theta"], 1.0)

    def wrong_step(th, y, seed):
        f = bglmm.hierarchical_normal(y, group, sigma=1.0, mu_prior=Normal(0.5, 0.5),
                                      tau_prior=HalfNormal(1.0), sampler="gibbs", chains=1,
                                      draws=1, warmup=50, thin=5, seed=seed, check=False)
        return {"mu": float(f.posterior["mu"][0, -1]), "theta": f.posterior["theta"][0, -1]}

    def functionals(th, y):
        return {"mu": th["mu"], "theta[0]": float(th["theta"][0]), "mean(y)": float(np.mean(y))}

    res = testing.geweke_test(prior_draw, data_draw, wrong_step, functionals, marginal=3000,
                              successive=2000, seed=11)
    assert res.max_abs_z > Z_MAX, "\n" + res.table()
