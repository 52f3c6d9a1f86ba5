"""Bitterness of wine (the ordinal package's ``wine``, from Randall 1989): a cumulative-logit
ordinal GLMM against an independent reference sampler and against the published clmm fit.

    rating ~ temp + contact + (1 | judge),  cumulative (logit link)
    P(rating <= k) = logistic(c_k - eta),   eta = temp[warm] + contact[yes] + b_judge,  k = 1..4

72 ratings on a 1-5 scale (counts 5, 22, 26, 12, 7): nine judges each rated wine from two
bottles of each of the four temperature x skin-contact conditions. The model has no intercept:
the four ordered cutpoints c_1 < ... < c_4 take its place.

Priors, given explicitly to bglmm.fit and to the reference: beta ~ N(0, 5^2) each, the cutpoints
the order statistics of four iid N(0, 5^2) (density prod_k N(c_k; 0, 5^2) on c_1 < ... < c_4),
the judge SD ~ HalfNormal(2.5).

The reference (``_hmc_reference.CumulativeCrossedModel``) is Hamiltonian Monte Carlo written in
NumPy on (beta, log SD, standardised judge effects, c_1, log(c_2 - c_1), log(c_3 - c_2),
log(c_4 - c_3)) with a hand-written gradient (checked against finite differences below, for
the logit and the probit link; its log density is checked against scipy.stats too). It shares
no code with bglmm.

The checks:

* for temp, contact, the four cutpoints and the judge SD, the posterior medians of the two
  samplers differ by at most Z = 4 combined Monte-Carlo standard errors (ArviZ's MCSE of the
  median of each);
* negative control: bglmm.fit with the cutpoints' prior Normal(0, 0.7) must fail that check for
  at least one cutpoint (with it the reference puts the medians of c_1..c_4 at about -2.0, -0.1,
  1.6, 2.7 instead of -1.8, 1.4, 4.1, 6.1);
* agreement with the published maximum-likelihood fit, ``clmm(rating ~ temp + contact +
  (1 | judge), data = wine)`` (R package ordinal, Laplace approximation): temp 3.063, contact
  1.835, cutpoints -1.624, 1.513, 4.229, 6.089, judge SD 1.131 (a separate Laplace maximisation
  in SciPy, run when this test was written, reproduced all seven to three decimals: the data and
  the model are the same).

Why the posterior sits close to the clmm fit, and how close. Each N(0, 5^2) prior carries a
precision of 0.04 against posterior precisions of 1.1 (c_4) to 3.9 (contact), 1-4 % of the
information: the likelihood dominates, and a posterior median differs from the ML estimate by a
fraction of a posterior SD. It does not coincide with it. The posterior integrates over the
judge SD, whose posterior lies above its ML value (next paragraph), and a larger judge SD
stretches the conditional logit scale, so |beta| and |c| grow with it: under flat priors (a
reference run with all prior scales 1000) the medians lie 0.15-0.45 posterior SD further from 0
than clmm's (temp 3.31, contact 1.96, cutpoints -1.76, 1.62, 4.53, 6.58, SD 1.48). The vague
N(0, 5^2) priors pull that scale back (by 0.3-0.55 SD for temp, c_2, c_3, c_4), and under this
test's priors the reference's medians of temp, contact and the cutpoints lie within 0.28
posterior SD of the clmm values: c_1 -1.85 against -1.62 (-0.28 SD), c_2 1.36 against 1.51
(-0.22), c_3 -0.13, temp, contact and c_4 within 0.06 SD; the Monte-Carlo error of a median is
about 0.02 SD. The criterion, 0.5 posterior SD (of the sampler checked), holds under either
prior.

The judge SD with nine judges: its posterior is right-skewed (reference median 1.35, central
90 % interval 0.71-2.45), and the ML estimate of a variance component is biased low (it
maximises jointly over beta and the cutpoints instead of integrating over them, as ML against
REML), while HalfNormal(2.5) is nearly flat over the likely range. So the ML value 1.131 sits
at about the 30th percentile of the posterior (0.30-0.32 in reference runs). The criterion: the
posterior probability of SD <= 1.131 lies between 0.05 and 0.5 (the ML value inside the central
90 % interval and below the median).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bglmm
from bglmm.priors import HalfNormal, Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hmc_reference import (CumulativeCrossedModel, assert_agrees, compare_medians,  # noqa: E402
                            gradient_errors, hmc)

FORMULA = "rating ~ temp + contact + (1 | judge)"
COEFS = ["temp[warm]", "contact[yes]"]
CUTS = [f"cutpoint[{k}]" for k in range(1, 5)]
BETA_SD = 5.0
CUT_SD = 5.0
WRONG_CUT_SD = 0.7
SD_SCALE = 2.5
Z = 4.0
FIT_MCMC = dict(chains=4, draws=2000, warmup=1000, seed=20261203, threads=1, progress=False)
HMC_SETTINGS = dict(chains=8, warmup=500, draws=600, steps=(8, 24), seed=5)
# clmm(rating ~ temp + contact + (1 | judge), data = wine): ML with the Laplace approximation
CLMM = {"temp[warm]": 3.063, "contact[yes]": 1.835, "cutpoint[1]": -1.624,
        "cutpoint[2]": 1.513, "cutpoint[3]": 4.229, "cutpoint[4]": 6.089}
CLMM_SD = 1.131
CLMM_TOL = 0.5        # |posterior median - clmm| <= CLMM_TOL posterior SDs
SD_QUANTILE = (0.05, 0.5)  # where the ML SD must fall in the posterior of the SD


def data() -> pd.DataFrame:
    d = bglmm.datasets.load("wine")
    assert len(d) == 72
    rating = np.asarray(d["rating"]).astype(np.int64)  # integers 1..5 (however the CSV is read)
    assert sorted(np.unique(rating)) == [1, 2, 3, 4, 5]
    d["rating"] = rating
    d["temp"] = d["temp"].astype(str)
    d["contact"] = d["contact"].astype(str)
    return d


def reference_model(d: pd.DataFrame, link: str = "logit") -> CumulativeCrossedModel:
    X = np.column_stack([d["temp"] == "warm", d["contact"] == "yes"]).astype(float)
    codes = [pd.factorize(d["judge"], sort=True)[0]]
    return CumulativeCrossedModel(d["rating"].to_numpy() - 1, X, codes, np.zeros(2),
                                  np.full(2, BETA_SD), np.array([SD_SCALE]), link=link,
                                  cut_mean=0.0, cut_sd=CUT_SD)


_CACHE: dict = {}


def reference() -> dict[str, np.ndarray]:
    if "ref" not in _CACHE:
        with np.errstate(all="ignore"):  # divergent trajectories (rejected) overflow
            r = hmc(reference_model(data()), **HMC_SETTINGS)
        _CACHE["ref"] = {**{c: r["beta"][..., j] for j, c in enumerate(COEFS)},
                         **{c: r["cutpoint"][..., k] for k, c in enumerate(CUTS)},
                         "sd": r["sd"][..., 0], "_acceptance": r["acceptance"]}
    return _CACHE["ref"]


def bglmm_draws(cut_sd: float = CUT_SD) -> dict[str, np.ndarray]:
    key = ("fit", cut_sd)
    if key not in _CACHE:
        f = bglmm.fit(FORMULA, data(), family="cumulative", link="logit",
                      priors={"beta": Normal(0.0, BETA_SD), "cutpoints": Normal(0.0, cut_sd),
                              "sd": HalfNormal(SD_SCALE)}, **FIT_MCMC)
        assert list(f.coords["coef"]) == COEFS
        beta = np.asarray(f.posterior["beta"])
        cut = np.asarray(f.posterior["cutpoint"])
        assert beta.shape == (FIT_MCMC["chains"], FIT_MCMC["draws"], 2)
        assert cut.shape == (FIT_MCMC["chains"], FIT_MCMC["draws"], 4)
        _CACHE[key] = {**{c: beta[..., j] for j, c in enumerate(COEFS)},
                       **{c: cut[..., k] for k, c in enumerate(CUTS)},
                       "sd": np.asarray(f.posterior["sd_judge__Intercept"])}
    return _CACHE[key]


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> pd.DataFrame:
    return compare_medians(a, b, COEFS + CUTS + ["sd"], Z)


def test_wine_data_as_published():
    d = data()
    assert np.bincount(d["rating"])[1:].tolist() == [5, 22, 26, 12, 7]
    assert sorted(d["judge"].unique().tolist()) == list(range(1, 10))
    assert (d.groupby(["judge", "temp", "contact"]).size() == 2).all()


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_reference_gradient_matches_finite_differences(link):
    m = reference_model(data(), link)
    rng = np.random.default_rng(1)
    theta = rng.normal(0.0, 0.3, (3, m.dim))
    theta[:, :2] += [3.0, 1.8]
    # (c_1, log gaps): near the clmm fit, with a narrow gap, and far in the tails
    theta[:, -4:] = [[-1.6, np.log(3.1), np.log(2.7), np.log(1.9)],
                     [-1.0, 0.5, -3.0, 0.3],
                     [5.0, -5.0, 1.0, 2.5]]
    g, fd = gradient_errors(m, theta, list(range(m.dim)))
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_reference_log_density_matches_scipy(link):
    """Differences of the reference's log density between parameter values equal those of a
    direct evaluation with scipy.stats (the constant cancels)."""
    m = reference_model(data(), link)
    F = stats.logistic.cdf if link == "logit" else stats.norm.cdf
    theta = np.random.default_rng(3).normal(0.0, 0.5, (2, m.dim))

    def direct(t: np.ndarray) -> float:
        beta, u, z, v = t[:2], t[2], t[3:12], t[12:]
        cut = np.cumsum(np.r_[v[0], np.exp(v[1:])])
        eta = m.X @ beta + np.exp(u) * z[m.codes[0]]
        cum = np.column_stack([np.zeros(m.cat.size), F(cut[None] - eta[:, None]),
                               np.ones(m.cat.size)])
        prob = cum[np.arange(m.cat.size), m.cat + 1] - cum[np.arange(m.cat.size), m.cat]
        return (np.log(prob).sum() + stats.norm.logpdf(beta, 0, BETA_SD).sum()
                + stats.norm.logpdf(z).sum() + stats.halfnorm.logpdf(np.exp(u), scale=SD_SCALE)
                + u + stats.norm.logpdf(cut, 0, CUT_SD).sum() + v[1:].sum())

    lp, _ = m.logp_grad(theta)
    np.testing.assert_allclose(lp[0] - lp[1], direct(theta[0]) - direct(theta[1]), rtol=1e-9,
                               atol=1e-8)


def test_bglmm_fit_matches_independent_hmc():
    assert_agrees(compare(bglmm_draws(), reference()), reference()["_acceptance"])


def test_a_wrong_cutpoint_prior_is_detected():
    table = compare(bglmm_draws(WRONG_CUT_SD), reference())
    assert not table.loc[CUTS, "ok"].all(), table


@pytest.mark.parametrize("source", ["reference", "bglmm"])
def test_posterior_sits_near_the_clmm_fit(source):
    draws = reference() if source == "reference" else bglmm_draws()
    rows = []
    for name, ml in CLMM.items():
        x = np.asarray(draws[name]).ravel()
        med, sd = float(np.median(x)), float(np.std(x))
        rows.append({"name": name, "median": med, "clmm": ml, "post_sd": sd,
                     "z": (med - ml) / sd, "ok": abs(med - ml) <= CLMM_TOL * sd})
    sd_draws = np.asarray(draws["sd"]).ravel()
    below = float(np.mean(sd_draws <= CLMM_SD))  # the ML SD's quantile in the posterior
    table = pd.DataFrame(rows).set_index("name")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"\n{source}:\n{table}\nP(sd <= {CLMM_SD}) = {below:.3f} "
              f"(median {np.median(sd_draws):.3f})")
    bad = table[~table["ok"]]
    assert bad.empty, f"{source}: posterior medians far from the clmm fit:\n{bad}"
    assert SD_QUANTILE[0] <= below <= SD_QUANTILE[1], (
        f"{source}: the clmm judge SD {CLMM_SD} is at the posterior's {below:.3f} quantile")
