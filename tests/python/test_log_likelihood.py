"""The pointwise log-likelihood is draws x rows numbers: stored only on request, computed from
the draws and the data for loo()/waic() (also after save/load), whose warnings name the rows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bglmm

SMALL = dict(chains=2, draws=200, warmup=200, threads=1, progress=False, check=False)


@pytest.fixture(scope="module")
def radon_fit():
    df = bglmm.datasets.load("radon")
    return bglmm.fit("log_radon ~ floor + (1 | county_name)", df, seed=3, **SMALL)


@pytest.fixture(scope="module")
def cbpp_fit():
    return bglmm.fit("cbind(incidence, size - incidence) ~ C(period) + (1 | herd)",
                     bglmm.datasets.load("cbpp"), "binomial", seed=5, **SMALL)


def test_inference_data_has_log_likelihood_on_request_only(radon_fit):
    assert "log_likelihood" not in radon_fit.to_inference_data().groups()
    idata = radon_fit.to_inference_data(log_likelihood=True)
    assert idata.log_likelihood["y"].shape == (2, 200, radon_fit.spec.n)


def test_saved_file_size_scales_with_draws_not_draws_times_rows(radon_fit, tmp_path):
    pointwise_bytes = 8 * 2 * 200 * radon_fit.spec.n  # 2.9 MB of log-likelihood
    small, full = tmp_path / "small.nc", tmp_path / "full.nc"
    radon_fit.save(small)
    radon_fit.save(full, log_likelihood=True)
    assert full.stat().st_size > 0.8 * pointwise_bytes
    assert small.stat().st_size < 0.25 * pointwise_bytes, small.stat().st_size
    back = bglmm.load(small)
    assert "log_likelihood" not in back.to_inference_data().groups()


@pytest.mark.parametrize("name", ["radon_fit", "cbpp_fit"])
def test_log_likelihood_from_the_draws_matches_the_samplers(name, request):
    fit = request.getfixturevalue(name)
    np.testing.assert_allclose(fit._pointwise_log_lik()["y"], fit._log_likelihood()["y"],
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["radon_fit", "cbpp_fit"])
def test_loo_and_waic_after_save_and_load(name, request, tmp_path):
    fit = request.getfixturevalue(name)
    fit.save(tmp_path / "fit.nc")
    back = bglmm.load(tmp_path / "fit.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bglmm.BglmmWarning)  # a few badly fitted rows
        a, b = fit.loo(), back.loo()
        np.testing.assert_allclose(b.elpd_loo, a.elpd_loo, rtol=1e-9)
        np.testing.assert_allclose(back.waic().elpd_waic, fit.waic().elpd_waic, rtol=1e-9)
    assert len(b.pareto_k) == fit.spec.n


def test_loo_names_the_rows_with_large_pareto_k():
    rng = np.random.default_rng(0)
    df = bglmm.datasets.load("rats").copy()
    df.index = [f"r{i}" for i in range(len(df))]
    df.loc["r7", "weight"] += 400.0  # a gross outlier
    df.loc["r88", "weight"] -= 400.0
    df["weight"] += rng.normal(0, 1, len(df))
    fit = bglmm.fit("weight ~ day + (1 | rat)", df, seed=1, **SMALL)
    with pytest.warns(bglmm.BglmmWarning, match=r"observations have Pareto k > 0\.\d\d .*"
                                                r"rows .*r7.*r88") as record:
        out = fit.loo()
    assert not [w for w in record if "There has been a warning" in str(w.message)]
    k = np.asarray(out.pareto_k)
    assert k[7] > 0.7 and k[88] > 0.7
    with pytest.warns(bglmm.BglmmWarning, match=r"variance of the log predictive density > 0.4.*"
                                                r"rows .*r7"):
        fit.waic()


def test_loo_without_group_effects_is_a_clear_error():
    fit = bglmm.fit("cbind(incidence, size - incidence) ~ C(period) + (1 | herd)",
                    bglmm.datasets.load("cbpp"), "binomial", seed=5, keep_group_effects=False,
                    **SMALL)
    with pytest.raises(ValueError, match="loo.. needs the group effects"):
        fit.loo()
