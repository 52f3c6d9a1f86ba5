"""Geweke (2004) joint-distribution tests of the hierarchical normal samplers, CI size. See
``bglmm.testing.hierarchical_normal_geweke``: the marginal-conditional simulator (mu, tau, theta
from the prior, y from the model) and the successive-conditional one (alternate a posterior
step and fresh data) must agree on the means of g and g^2 for mu, tau, log tau, theta_0,
theta_0 * mu, mean(y), y_0 (and sigma, log sigma).

Two kinds of successive-conditional step:

* "run": a short run of the public entry point (50 warm-up iterations from the sampler's own
  start, then 5 more and one kept draw; the entry point takes no starting value): Gibbs with a
  half-normal SD prior, Gibbs with a conjugate inverse-gamma prior and unknown sigma, and the
  exact grid sampler. The Gibbs runs are the full default sampler: the collapsed move of
  (log tau[, log sigma]) with its proposals adapted in warm-up (the random walk re-scaled, the
  independence t fitted at the end of warm-up and used in the kept iterations), the
  (mu, theta) block and the Gibbs steps of tau^2 and sigma^2.
* "sweep": one C++ sweep from the current state with the proposals frozen (the random walk,
  and first a fixed independence t where marked), so the chain is exactly the sampler's
  kernel: the full sweep, the collapsed move alone (followed only by the (mu, theta) block it
  needs), and the plain blocked Gibbs sweep. 10,000 draws each (a few seconds).

Threshold |z| < 4.0 per statistic (about 15 statistics x 9 cases: a correct sampler fails with
probability ~1e-2); seeds fixed. Power: a kernel drawing from a posterior with the wrong mu
prior fails; a collapsed move that forgets the Jacobian d tau / d log tau (the full sweep,
measured max |z| 17) or d sigma^2 / d log sigma (the move alone, 12.6) fails with |z| > 8, as
does a move told another tau prior than the data's (13).
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


N_SWEEP = 10000

# (tau prior, unknown sigma, collapsed move, Gibbs steps of tau^2 and sigma^2, independence t)
SWEEP_CASES = [
    ("half_normal", False, True, True, False),
    ("half_normal", False, True, False, True),
    ("half_normal", True, True, False, False),
    ("inverse_gamma", True, True, True, True),
    ("inverse_gamma", True, True, False, True),
    ("half_normal", False, False, True, False),
]


def _sweep_id(case):
    tau_prior, unknown, collapsed, scale_gibbs, independence = case
    parts = [tau_prior, "unknown-sigma" if unknown else "known-sigma"]
    if not collapsed:
        parts.append("plain-gibbs")
    else:
        parts.append("full-sweep" if scale_gibbs else "collapsed-alone")
        parts.append("rw+independence" if independence else "rw")
    return "-".join(parts)


@pytest.mark.parametrize("case", SWEEP_CASES, ids=[_sweep_id(c) for c in SWEEP_CASES])
def test_hierarchical_normal_sweep_geweke(case):
    tau_prior, unknown, collapsed, scale_gibbs, independence = case
    res = testing.hierarchical_normal_geweke(
        "gibbs", tau_prior=tau_prior, unknown_sigma=unknown, step="sweep", collapsed=collapsed,
        scale_gibbs=scale_gibbs, independence=independence, marginal=N_SWEEP, successive=N_SWEEP,
        seed=11)
    assert res.max_abs_z < Z_MAX, "\n" + res.table()


@pytest.mark.parametrize("tau_prior, unknown, scale_gibbs, kw", [
    ("half_normal", False, True, {"drop_jacobian": True}),
    ("inverse_gamma", True, False, {"drop_jacobian": True}),
    ("half_normal", False, False, {"sampler_tau_prior": "half_normal_wide"}),
], ids=["no-log-tau-jacobian-full-sweep", "no-jacobians-unknown-sigma-move-alone",
        "wrong-tau-prior-move-alone"])
def test_geweke_detects_a_wrong_collapsed_move(tau_prior, unknown, scale_gibbs, kw):
    res = testing.hierarchical_normal_geweke(
        "gibbs", tau_prior=tau_prior, unknown_sigma=unknown, step="sweep",
        scale_gibbs=scale_gibbs, marginal=N_SWEEP, successive=N_SWEEP, seed=11, **kw)
    assert res.max_abs_z > 8.0, "\n" + res.table()


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
