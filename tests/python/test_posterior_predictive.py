"""Replicated data: fit.posterior_predictive() and the posterior_predictive group of the
InferenceData (for az.plot_ppc)."""

from __future__ import annotations

import numpy as np
import pytest

import bglmm

SMALL = dict(chains=2, draws=200, warmup=200, threads=1, progress=False, check=False)


@pytest.fixture(scope="module")
def rats_fit():
    return bglmm.fit("weight ~ center(day) + (1 + center(day) | rat)", bglmm.datasets.load("rats"),
                     seed=4, **SMALL)


@pytest.fixture(scope="module")
def cbpp_fit():
    return bglmm.fit("cbind(incidence, size - incidence) ~ C(period) + (1 | herd)",
                     bglmm.datasets.load("cbpp"), "binomial", seed=5, **SMALL)


def test_posterior_predictive_draws(cbpp_fit):
    df = bglmm.datasets.load("cbpp")
    reps = cbpp_fit.posterior_predictive(seed=3)
    assert reps.shape == (400, len(df))
    assert (reps >= 0).all() and (reps <= df["size"].to_numpy()).all()
    assert np.allclose(reps, np.round(reps))
    np.testing.assert_array_equal(reps, cbpp_fit.predict(kind="response", seed=3))
    # replicated means are near the fitted means
    mean = cbpp_fit.predict(kind="mean").mean(axis=0) * df["size"].to_numpy()
    assert np.abs(reps.mean(axis=0) - mean).max() < 1.0
    assert cbpp_fit.posterior_predictive(draws=50).shape == (50, len(df))


def test_inference_data_posterior_predictive_group_for_plot_ppc(rats_fit):
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    idata = rats_fit.to_inference_data(posterior_predictive=True)
    assert {"posterior_predictive", "observed_data"} <= set(idata.groups())
    pp = idata.posterior_predictive["y"]
    assert pp.dims == ("chain", "draw", "obs") and pp.shape == (2, 200, 150)
    assert "posterior_predictive" not in rats_fit.to_inference_data().groups()
    # same seed, same replicated data
    again = rats_fit.to_inference_data(posterior_predictive=True).posterior_predictive["y"]
    np.testing.assert_array_equal(pp.values, again.values)
    ax = az.plot_ppc(idata, num_pp_samples=20, random_seed=1, show=False)
    assert ax is not None
    import matplotlib.pyplot as plt

    plt.close("all")


