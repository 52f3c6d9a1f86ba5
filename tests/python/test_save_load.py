"""FormulaFit.save / bglmm.load: a NetCDF round trip keeps the draws, the names, the summaries,
the log-likelihood, and the design (categorical coding and stateful transforms) for predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bglmm

SMALL = dict(chains=2, draws=150, warmup=150, threads=1, progress=False, check=False)


def _same(a, b):
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_round_trip_glmm(tmp_path):
    df = bglmm.datasets.load("cbpp")
    fit = bglmm.fit("cbind(incidence, size - incidence) ~ C(period) + (1 | herd)", df,
                    "binomial", seed=7, **SMALL)
    path = tmp_path / "cbpp.nc"
    fit.save(path)
    assert path.stat().st_size > 0
    back = bglmm.load(path)
    for name, value in fit.posterior.items():
        np.testing.assert_array_equal(back.posterior[name], value)
    assert back.formula == fit.formula and back.family == fit.family
    assert back.sampler == fit.sampler and back.seed == fit.seed == 7
    _same(back.summary(), fit.summary())
    _same(back.ranef(), fit.ranef())
    _same(back.coef(), fit.coef())
    # not saved: recomputed from the draws and the data
    np.testing.assert_allclose(back.to_inference_data(log_likelihood=True).log_likelihood["y"],
                               fit.to_inference_data(log_likelihood=True).log_likelihood["y"],
                               rtol=1e-9)
    new = pd.DataFrame({"period": [1, 2, 4], "herd": [3, 3, 15]})
    np.testing.assert_array_equal(back.predict(new), fit.predict(new))
    np.testing.assert_array_equal(back.predict(new, groups="new", seed=3),
                                  fit.predict(new, groups="new", seed=3))
    assert set(back.priors) == {"beta", "sd"}  # recorded as text after a round trip


def test_round_trip_keeps_categorical_coding_and_transforms(tmp_path):
    df = bglmm.datasets.load("radon").iloc[:300].copy()
    # a categorical column whose reference level is not the first in sorted order
    df["basement"] = pd.Categorical(np.where(df.floor == 0, "yes", "no"), categories=["yes", "no"])
    fit = bglmm.fit("log_radon ~ basement + scale(log_uranium) + (1 | county_name)", df,
                    seed=2, **SMALL)
    fit.save(tmp_path / "radon.nc")
    back = bglmm.load(tmp_path / "radon.nc")
    assert back.spec.fixed_names == fit.spec.fixed_names
    assert list(back._data["basement"].cat.categories) == ["yes", "no"]
    np.testing.assert_array_equal(back.spec.X, fit.spec.X)
    new = df.iloc[[0, 5, 77]]
    np.testing.assert_array_equal(back.predict(new), fit.predict(new))
    _same(back.summary(), fit.summary())


def test_round_trip_glm_with_offset_array(tmp_path):
    df = bglmm.datasets.load("sparrows")
    exposure = np.linspace(1.0, 2.0, len(df))
    fit = bglmm.fit("fledged ~ age", df, "poisson", offset=np.log(exposure), seed=1, **SMALL)
    fit.save(tmp_path / "g.nc")
    back = bglmm.load(tmp_path / "g.nc")
    np.testing.assert_array_equal(back.predict(kind="link"), fit.predict(kind="link"))
    with pytest.raises(ValueError, match="pass offset= for newdata"):
        back.predict(df.iloc[:2])
    np.testing.assert_array_equal(back.predict(df.iloc[:2], offset=[0.0, 1.0]),
                                  fit.predict(df.iloc[:2], offset=[0.0, 1.0]))


def test_load_rejects_other_files(tmp_path):
    import arviz as az

    path = tmp_path / "other.nc"
    az.from_dict(posterior={"a": np.zeros((1, 5))}).to_netcdf(str(path), engine="h5netcdf")
    with pytest.raises(ValueError, match="not written by bglmm"):
        bglmm.load(path)
