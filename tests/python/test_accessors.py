"""Accessors users reach for (brms/lme4): fixef, VarCorr, sigma, hypothesis; ESS as whole
numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bglmm

SMALL = dict(chains=2, draws=200, warmup=200, threads=1, progress=False, check=False)
RATS = "weight ~ center(day) + (1 + center(day) | rat)"
CBPP = "cbind(incidence, size - incidence) ~ C(period) + (1 | herd)"


@pytest.fixture(scope="module")
def rats_fit():
    return bglmm.fit(RATS, bglmm.datasets.load("rats"), seed=4, **SMALL)


@pytest.fixture(scope="module")
def cbpp_fit():
    return bglmm.fit(CBPP, bglmm.datasets.load("cbpp"), "binomial", seed=5, **SMALL)


def _flat(fit, name):
    x = fit.posterior[name]
    return x.reshape((-1,) + x.shape[2:])


# ---- fixef, VarCorr, sigma ---------------------------------------------------------------------

def test_fixef_is_the_fixed_effects_table(cbpp_fit):
    table = cbpp_fit.fixef()
    assert list(table.columns) == ["Estimate", "Est.Error", "Q2.5", "Q97.5"]
    assert list(table.index) == ["Intercept", "C(period)[2]", "C(period)[3]", "C(period)[4]"]
    beta = _flat(cbpp_fit, "beta")
    np.testing.assert_allclose(table["Estimate"], beta.mean(axis=0))
    np.testing.assert_allclose(table["Q97.5"], np.quantile(beta, 0.975, axis=0))
    assert list(cbpp_fit.fixef(prob=0.9).columns[2:]) == ["Q5", "Q95"]


def test_varcorr_has_sds_correlations_and_the_residual(rats_fit):
    table = rats_fit.VarCorr()
    assert list(table.index) == [("rat", "sd(Intercept)"), ("rat", "sd(center(day))"),
                                 ("rat", "cor(Intercept,center(day))"), ("Residual", "sigma")]
    cor = _flat(rats_fit, "cor_rat__Intercept__center(day)")
    assert table.loc[("rat", "cor(Intercept,center(day))"), "Estimate"] == pytest.approx(cor.mean())
    sd = _flat(rats_fit, "sd_rat__center(day)")
    assert table.loc[("rat", "sd(center(day))"), "Q2.5"] == pytest.approx(np.quantile(sd, 0.025))


def test_varcorr_without_random_effects_is_an_error():
    f = bglmm.fit("weight ~ day", bglmm.datasets.load("rats"), seed=1, **SMALL)
    with pytest.raises(ValueError, match="no random effects"):
        f.VarCorr()


def test_sigma(rats_fit, cbpp_fit):
    table = rats_fit.sigma()
    assert table.loc["sigma", "Estimate"] == pytest.approx(_flat(rats_fit, "sigma").mean())
    with pytest.raises(ValueError, match="binomial family has no residual SD"):
        cbpp_fit.sigma()


# ---- hypothesis ------------------------------------------------------------------------------

def test_hypothesis_probability_and_estimate(cbpp_fit):
    beta = _flat(cbpp_fit, "beta")
    diff = beta[:, 1] - beta[:, 3]
    table = cbpp_fit.hypothesis(["C(period)[2] - C(period)[4] > 0", "C(period)[2] = C(period)[4]",
                                 "beta[C(period)[2]] < 2 * beta[C(period)[4]] + 0.5"])
    row = table.iloc[0]
    assert row["Estimate"] == pytest.approx(diff.mean())
    assert row["Post.Prob"] == pytest.approx(np.mean(diff > 0))
    assert table.iloc[1]["Estimate"] == pytest.approx(diff.mean())
    assert np.isnan(table.iloc[1]["Post.Prob"])
    third = beta[:, 1] - (2 * beta[:, 3] + 0.5)
    assert table.iloc[2]["Post.Prob"] == pytest.approx(np.mean(third < 0))
    assert table.iloc[2]["Q97.5"] == pytest.approx(np.quantile(third, 0.975))


def test_hypothesis_names_that_overlap(rats_fit):
    # center(day) contains the name day of no coefficient; Intercept is a coefficient
    t = rats_fit.hypothesis("center(day) > 0.1 * Intercept")
    beta = _flat(rats_fit, "beta")
    assert t["Estimate"].iloc[0] == pytest.approx((beta[:, 1] - 0.1 * beta[:, 0]).mean())


@pytest.mark.parametrize("text, message", [
    ("x1 > 0", "'x1' is not a fixed effect"),
    ("Intercept", "one comparison"),
    ("Intercept > 0 > 1", "one comparison"),
    ("__import__('os').system('true') > 0", "only numbers, fixed-effect names"),
    ("Intercept ** 2 > 0", "only numbers, fixed-effect names"),
    ("1 > 0", "names no fixed effect"),
    ("Intercept >> 0", "could not be parsed|one comparison"),
])
def test_hypothesis_errors(cbpp_fit, text, message):
    with pytest.raises(ValueError, match=message):
        cbpp_fit.hypothesis(text)


# ---- ESS as whole numbers ----------------------------------------------------------------------

def test_ess_are_whole_numbers(rats_fit):
    table = rats_fit.summary()
    for col in ("ess_bulk", "ess_tail"):
        assert str(table[col].dtype) == "Int64"
    text = str(rats_fit)
    line = next(ln for ln in text.splitlines() if ln.startswith("sigma"))
    ess = line.split()[-3:-1]  # ess_bulk, ess_tail
    assert all(v.isdigit() for v in ess), line
