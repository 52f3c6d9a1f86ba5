"""Crossed designs at full size against established fits (issue: several grouping factors).

VerbAgg (lme4; 7,584 binary answers, 316 persons x 24 items): glmer's Laplace fit of
``r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)`` gives id SD 1.340 and item SD
0.495; with 24 items the posterior sits above the ML value, so the SDs are compared with a long
NUTS run (4 x 1000, min ESS 800) under N(0, 2.5) fixed effects, N(0, 10) intercept and
HalfNormal(2.5) SDs: posterior medians id 1.359, item 0.573. Under those priors bglmm's medians
must be within 5 % (id) and 10 % (item), and its fixed effects within 0.25 posterior SD of
glmer's estimates (lme4's documented output for this model).

InstEval (lme4; 73,421 ratings, 2,972 students x 1,128 lecturers x 14 departments):
``y ~ service + (1 | s) + (1 | d) + (1 | dept)``, gaussian, at bglmm's defaults. lme4's REML:
SDs s 0.326, d 0.515, dept 0.083, sigma 1.178 (a NUTS run gives medians 0.326, 0.514, 0.090,
1.178). The s and d SDs and sigma must be within 10 % of REML; dept, with 14 levels, must have
its REML value inside the posterior's central 50 % interval.
"""

from __future__ import annotations

import numpy as np
import pytest

import bglmm
from bglmm import priors as P

GLMER_VERBAGG = {"Intercept": 0.20554, "Anger": 0.05831, "Gender[M]": 0.32066,
                 "btype[scold]": -1.05575, "btype[shout]": -2.10406, "situ[self]": -1.05432}


@pytest.fixture(scope="module")
def verbagg_fit():
    d = bglmm.datasets.load("verbagg")
    d = d.assign(r2=(d.r2 == "Y").astype(float))
    priors = {"beta": P.Normal(0.0, [10.0, 2.5, 2.5, 2.5, 2.5, 2.5]), "sd": P.HalfNormal(2.5)}
    return bglmm.fit("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", d,
                     family="bernoulli", priors=priors, seed=1, progress=False)


def test_verbagg_sds_match_a_long_nuts_run(verbagg_fit):
    med = verbagg_fit.summary()["50%"]
    assert abs(med["sd_id__Intercept"] / 1.359 - 1) < 0.05, med["sd_id__Intercept"]
    assert abs(med["sd_item__Intercept"] / 0.573 - 1) < 0.10, med["sd_item__Intercept"]


def test_verbagg_fixed_effects_match_glmer(verbagg_fit):
    table = verbagg_fit.summary()
    assert list(verbagg_fit.coords["coef"]) == list(GLMER_VERBAGG)
    for name, value in GLMER_VERBAGG.items():
        row = table.loc[f"beta[{name}]"]
        assert abs(row["mean"] - value) < 0.25 * row["sd"], (name, row["mean"], row["sd"], value)


def test_verbagg_check_rejects_a_wrong_prior():
    # negative control: an SD prior far too tight (HalfNormal(0.05); HalfNormal(0.3) still
    # left it 4.7 % low: 316 persons dominate) moves the id SD well outside the 5 % band
    d = bglmm.datasets.load("verbagg")
    d = d.assign(r2=(d.r2 == "Y").astype(float))
    f = bglmm.fit("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", d,
                  family="bernoulli", priors={"sd": P.HalfNormal(0.05)}, seed=1, chains=2,
                  draws=300, warmup=300, progress=False, check=False)
    assert abs(f.summary()["50%"]["sd_id__Intercept"] / 1.359 - 1) > 0.05


def test_insteval_matches_reml():
    d = bglmm.datasets.load("insteval")
    fit = bglmm.fit("y ~ service + (1 | s) + (1 | d) + (1 | dept)", d, seed=1, chains=2,
                    draws=600, warmup=200, progress=False)
    t = fit.summary(prob=0.5)
    med = t["50%"]
    for name, reml in [("sd_s__Intercept", 0.326), ("sd_d__Intercept", 0.515), ("sigma", 1.178)]:
        assert abs(med[name] / reml - 1) < 0.10, (name, med[name])
    assert t.loc["sd_dept__Intercept", "25%"] < 0.083 < t.loc["sd_dept__Intercept", "75%"]
