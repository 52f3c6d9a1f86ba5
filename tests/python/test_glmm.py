"""bglmm.glmm: Metropolis-within-Gibbs for GLMMs — reproducibility, Geweke joint-distribution
tests of the kernels, the gaussian cross-check against the Gibbs sampler, observation-level
random effects, prediction / log-likelihood, and bad input."""

from __future__ import annotations

import inspect
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma, gammaln

import bglmm
from bglmm import _core
from bglmm.glmm import _check_marginal_move
from bglmm.priors import HalfCauchy, InverseGamma, InverseWishart, Normal


def _logistic_data(m=40, k=10, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(m), k)
    x = rng.normal(size=m * k)
    L = np.linalg.cholesky(np.array([[1.0, 0.15], [0.15, 0.25]]))
    b = rng.normal(size=(m, 2)) @ L.T
    eta = -0.5 + b[g, 0] + (1.0 + b[g, 1]) * x
    y = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)
    X = pd.DataFrame({"Intercept": 1.0, "x": x})
    return y, X, g


def _poisson_data(m=30, k=6, seed=1):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(m), k)
    x = rng.normal(size=m * k)
    w = rng.normal(size=m * k)
    eta = 0.3 + rng.normal(0, 0.7, m)[g] + 0.5 * x + 0.2 * w
    y = rng.poisson(np.exp(eta)).astype(float)
    X = pd.DataFrame({"Intercept": 1.0, "x": x, "w": w})
    return y, X, g


# ---- reproducibility ---------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["laplace", "random_walk"])
def test_draws_identical_for_1_2_4_threads(sampler):
    # counter-based random numbers per (iteration, group) and per-group slots summed in order:
    # the thread count must not change a single bit
    # min_rows_per_thread=1 forces the parallel path even on these small data
    y, X, g = _poisson_data()
    fits = [bglmm.glmm(y, X, ["Intercept"], g, family="poisson", sampler=sampler, seed=11,
                       chains=2, draws=15, warmup=15, threads=t, check=False,
                       min_rows_per_thread=1) for t in (1, 2, 4)]
    # the two chains run concurrently and share the threads
    assert [f.attrs["threads_used"] for f in fits] == [1, 1, 2]
    for f in fits[1:]:
        for name in ("beta", "b", "Sigma"):
            assert np.array_equal(fits[0].posterior[name], f.posterior[name])
    y, X, g = _logistic_data(m=25, k=6)
    fits = [bglmm.glmm(y, X, ["Intercept", "x"], g, family="bernoulli", sampler=sampler,
                       seed=5, chains=1, draws=40, warmup=50, threads=t, check=False,
                       min_rows_per_thread=1,
                       random_prior=bglmm.priors.InverseWishart(3.0, np.eye(2)))
            for t in (1, 2, 4)]
    assert [f.attrs["threads_used"] for f in fits] == [1, 2, 4]
    if sampler == "laplace":  # warm-up long enough for the marginal move to switch on
        assert fits[0].attrs["marginal_acceptance"][0] > 0
    for f in fits[1:]:
        assert np.array_equal(fits[0].posterior["b"], f.posterior["b"])
        assert np.array_equal(fits[0].posterior["Sigma"], f.posterior["Sigma"])


def test_seed_reproducible_and_chains_differ():
    y, X, g = _poisson_data()
    a = bglmm.glmm(y, X, None, g, seed=3, chains=2, draws=20, warmup=20, check=False)
    b = bglmm.glmm(y, X, None, g, seed=3, chains=2, draws=20, warmup=20, check=False)
    c = bglmm.glmm(y, X, None, g, seed=4, chains=2, draws=20, warmup=20, check=False)
    assert np.array_equal(a.posterior["beta"], b.posterior["beta"])
    assert not np.array_equal(a.posterior["beta"], c.posterior["beta"])
    assert not np.array_equal(a.posterior["beta"][0], a.posterior["beta"][1])
    assert a.seed == 3


# ---- Geweke joint-distribution tests -----------------------------------------------------
# Successive-conditional simulator (Geweke 2004): from a prior draw, alternate one sweep with
# y ~ p(y | theta). If every step leaves its conditional invariant, the theta draws follow the
# prior; we compare the chain means of g(theta) with exact prior moments. The MCSE comes from
# 50 batch means; |z| < 4.5 per moment keeps the false-alarm rate of ~11 moments x 8 runs
# below 1e-3, and a kernel that forgets the reverse-proposal density fails with |z| > 10
# (test_geweke_detects_a_wrong_kernel).


def _geweke_problem(q, centred, group_level_w=False, x_offset=0.0):
    rng = np.random.default_rng(0)
    m, k = 4, 3
    n = m * k
    x = np.round(rng.normal(size=n), 2) + x_offset
    w = np.round(rng.normal(size=n), 2)
    if group_level_w:  # constant within groups: joins the random intercept's mean
        w = np.repeat(w[:m], k)
    X = np.ascontiguousarray(np.column_stack([np.ones(n), x, w]))
    Z = np.ascontiguousarray(X[:, :q])
    gs = np.arange(0, n + 1, k, dtype=np.int64)
    m0 = np.array([0.2, -0.1, 0.3])
    V0 = np.array([[0.25, 0.05, 0.02], [0.05, 0.16, 0.0], [0.02, 0.0, 0.09]])
    nu = q + 6.0
    ES = np.array([[0.3, 0.05, 0.0], [0.05, 0.2, 0.02], [0.0, 0.02, 0.15]])[:q, :q]
    pairs = [(k, k) for k in range(q)] if centred else []
    if group_level_w:
        pairs.append((2, 0))
    return X, Z, gs, m0, V0, nu, ES * (nu - q - 1), ES, pairs


def _geweke_z(family_code, kernel, q, centred, trials=1.0, drop=False, iterations=40000,
              group_level_w=False, lkj_eta=None, sampler_eta=None, dispersion=None,
              sampler_dispersion=None, dispersion_kind=0, dispersion2=None,
              sampler_dispersion2=None, dispersion2_kind=2, config=None, x_offset=0.0,
              zi_sd=None):
    """z-scores of the successive-conditional simulator's moments against the prior's.
    Inverse-Wishart prior, or (lkj_eta) LKJ(lkj_eta) with half-normal SDs of scale
    sqrt(ES_kk) — half-normal so that Sigma's second moments exist; `sampler_eta` runs the
    sampler under another eta (a negative control). `dispersion` = (a, b): a family's
    dispersion phi ~ Gamma(a, rate b) (its moments join the test), or with dispersion_kind 2
    zi = phi / (1 + phi) ~ Beta(a, b) (the zero-inflated Poisson); `sampler_dispersion` runs
    the sampler under another (a, b) (a negative control). `dispersion2` = (a, b): a second
    parameter, zi = phi2 / (1 + phi2) ~ Beta(a, b) (the zero-inflated negative binomial), with
    `sampler_dispersion2` its negative control. `config`: more sampler options. `zi_sd`: a zi
    formula (zero-inflated families) on the centred columns x and w, slopes ~ N(0, zi_sd^2);
    the intercept is the family's zi (at the columns' means)."""
    X, Z, gs, m0, V0, nu, S, ES, pairs = _geweke_problem(q, centred, group_level_w, x_offset)
    n = X.shape[0]
    gaussian = family_code == 0
    a0, b0 = (4.0, 1.5) if gaussian else (0.0, 0.0)
    cfg = {"kernel": kernel, "threads": 1, "drop_proposal_correction": drop, "rw_scale": 0.5,
           **(config or {})}
    if lkj_eta is None:
        spec = {"kind": 0, "iw_df": nu, "iw_scale": S}
    else:
        eta_s = lkj_eta if sampler_eta is None else sampler_eta
        scales = np.sqrt(np.diag(ES))
        spec = {"kind": 1, "sd_kind": [3] * q, "sd_a": [0.0] * q, "sd_b": list(scales),
                "eta": eta_s}
        ES = np.diag(scales**2)  # E Sigma: E s^2 = scale^2, E correlation = 0
    disp = {}
    if dispersion is not None:
        da, db = dispersion if sampler_dispersion is None else sampler_dispersion
        disp = {"dispersion_kind": dispersion_kind, "dispersion_a": da, "dispersion_b": db}
    if dispersion2 is not None:
        za, zb = dispersion2 if sampler_dispersion2 is None else sampler_dispersion2
        disp.update(dispersion2_kind=dispersion2_kind, dispersion2_a=za, dispersion2_b=zb)
    y0 = np.ones(n) if family_code == 6 else np.zeros(n)  # gamma: y > 0 (only the layout)
    zi_kw = {}
    if zi_sd is not None:
        cols = X[:, 1:1 + len(zi_sd)]
        zi_kw = {"zi_x": np.ascontiguousarray(cols - cols.mean(axis=0)),
                 "zi_prior_sd": np.asarray(zi_sd, dtype=float)}
    d = _core.glmm_geweke(X, Z, y0, np.full(n, trials), np.zeros(n), gs, family_code,
                          pairs, m0, V0, spec, a0, b0, cfg, iterations, 7, **disp, **zi_kw)
    alpha = None
    if zi_sd is not None:  # the slopes: the last columns
        alpha, d = d[:, -len(zi_sd):], d[:, :-len(zi_sd)]
    p = 3
    funcs = {}
    exact = {}
    for j in range(p):
        funcs[f"beta{j}"] = d[:, j]
        exact[f"beta{j}"] = m0[j]
        funcs[f"beta{j}^2"] = d[:, j] ** 2
        exact[f"beta{j}^2"] = V0[j, j] + m0[j] ** 2
    if lkj_eta is not None:
        for a in range(q):  # E s^4 = 3 scale^4 (half-normal)
            funcs[f"Sigma{a}{a}^2"] = d[:, p + a * q + a] ** 2
            exact[f"Sigma{a}{a}^2"] = 3 * ES[a, a] ** 2
        if q >= 2:  # LKJ(eta): r_01 ~ Beta(a, a) on (-1, 1), a = eta - 1 + q / 2, E r^2 = 1 / (2a + 1)
            a_shape = lkj_eta - 1.0 + q / 2.0
            s00, s11, s01 = d[:, p], d[:, p + q + 1], d[:, p + 1]
            funcs["corr^2"] = s01**2 / (s00 * s11)
            exact["corr^2"] = 1.0 / (2.0 * a_shape + 1.0)
            funcs["Sigma01^2"] = s01**2
            exact["Sigma01^2"] = ES[0, 0] * ES[1, 1] / (2.0 * a_shape + 1.0)
    for a in range(q):
        funcs[f"Sigma{a}{a}"] = d[:, p + a * q + a]
        exact[f"Sigma{a}{a}"] = ES[a, a]
        funcs[f"b{a}"] = d[:, p + q * q + a]
        exact[f"b{a}"] = 0.0
        funcs[f"b{a}^2"] = d[:, p + q * q + a] ** 2
        exact[f"b{a}^2"] = ES[a, a]
    if q == 2:
        funcs["Sigma01"] = d[:, p + 1]
        exact["Sigma01"] = ES[0, 1]
    if gaussian:
        funcs["phi"] = d[:, -1]
        exact["phi"] = b0 / (a0 - 1)
    if dispersion is not None and dispersion_kind == 2:  # zi ~ Beta(a, b)
        da, db = dispersion
        phi = d[:, p + q * q + q]
        zi = phi / (1.0 + phi)
        funcs["zi"], exact["zi"] = zi, da / (da + db)
        funcs["zi^2"], exact["zi^2"] = zi**2, da * (da + 1) / ((da + db) * (da + db + 1))
        funcs["logit zi"], exact["logit zi"] = np.log(phi), digamma(da) - digamma(db)
        funcs["zi b0^2"], exact["zi b0^2"] = zi * d[:, p + q * q] ** 2, da / (da + db) * ES[0, 0]
    elif dispersion is not None and dispersion_kind == 0:  # phi ~ Gamma(a, b)
        da, db = dispersion
        phi = d[:, p + q * q + q]
        funcs["phi"], exact["phi"] = phi, da / db
        funcs["phi^2"], exact["phi^2"] = phi**2, da * (da + 1) / db**2
        funcs["log phi"], exact["log phi"] = np.log(phi), digamma(da) - np.log(db)
        funcs["phi b0^2"], exact["phi b0^2"] = phi * d[:, p + q * q] ** 2, da / db * ES[0, 0]
    if dispersion is not None and dispersion_kind == 3:  # sigma ~ half-t(df a, scale b)
        da, db = dispersion
        sigma = d[:, p + q * q + q]
        e_sigma = 2 * db * np.sqrt(da / np.pi) * np.exp(gammaln((da + 1) / 2) - gammaln(da / 2)) \
            / (da - 1)
        funcs["sigma"], exact["sigma"] = sigma, e_sigma
        funcs["sigma^2"], exact["sigma^2"] = sigma**2, db**2 * da / (da - 2)
    if dispersion2 is not None and dispersion2_kind == 0:  # nu ~ Gamma(a, b) from phi2
        na, nb = dispersion2
        nu = d[:, -1]
        funcs["nu"], exact["nu"] = nu, na / nb
        funcs["nu^2"], exact["nu^2"] = nu**2, na * (na + 1) / nb**2
        funcs["log nu"], exact["log nu"] = np.log(nu), digamma(na) - np.log(nb)
    elif dispersion2 is not None:  # zi ~ Beta(a, b) from phi2, the last column
        za, zb = dispersion2
        zi = d[:, -1] / (1.0 + d[:, -1])
        funcs["zi"], exact["zi"] = zi, za / (za + zb)
        funcs["zi^2"], exact["zi^2"] = zi**2, za * (za + 1) / ((za + zb) * (za + zb + 1))
        funcs["logit zi"], exact["logit zi"] = np.log(d[:, -1]), digamma(za) - digamma(zb)
        funcs["zi phi"], exact["zi phi"] = zi * d[:, p + q * q + q], \
            za / (za + zb) * dispersion[0] / dispersion[1]
    if alpha is not None:  # slopes ~ N(0, zi_sd^2), independent of zi at the means a priori
        zi_odds = d[:, p + q * q + q] if dispersion2 is None else d[:, -1]
        for k, s in enumerate(zi_sd):
            funcs[f"alpha{k}"], exact[f"alpha{k}"] = alpha[:, k], 0.0
            funcs[f"alpha{k}^2"], exact[f"alpha{k}^2"] = alpha[:, k] ** 2, s**2
            funcs[f"alpha{k} logit zi"] = alpha[:, k] * np.log(zi_odds)
            exact[f"alpha{k} logit zi"] = 0.0
        funcs["alpha0 alpha1"], exact["alpha0 alpha1"] = alpha[:, 0] * alpha[:, -1], 0.0
    z = {}
    for key, v in funcs.items():
        batches = v[: len(v) // 50 * 50].reshape(50, -1).mean(axis=1)
        z[key] = (v.mean() - exact[key]) / (batches.std(ddof=1) / np.sqrt(50))
    return z


@pytest.mark.parametrize(
    "family_code, kernel, q, centred, trials, group_level_w",
    [
        (1, 0, 2, True, 1.0, False),   # poisson, Laplace, centred intercept + slope, free w
        (1, 0, 1, True, 1.0, True),    # poisson, Laplace, group-level w in the intercept's mean
        (1, 1, 1, False, 1.0, False),  # poisson, random walk, non-centred intercept
        (2, 0, 2, False, 1.0, False),  # logistic (bernoulli), Laplace, non-centred
        (2, 1, 2, True, 1.0, False),   # logistic, random walk, centred
        (3, 0, 1, True, 3.0, False),   # binomial probit with 3 trials, Laplace
        (4, 0, 1, False, 2.0, False),  # binomial cloglog, Laplace, non-centred
        (0, 0, 1, True, 1.0, False),   # gaussian through the same path (+ residual variance)
        (1, 0, 3, True, 1.0, False),   # q = 3 centred: by term, with the non-centred slice step
    ],
)
def test_geweke_joint_distribution(family_code, kernel, q, centred, trials, group_level_w):
    z = _geweke_z(family_code, kernel, q, centred, trials, group_level_w=group_level_w)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


@pytest.mark.parametrize(
    "family_code, kernel, q, centred",
    [
        (1, 0, 2, True),   # poisson, Laplace (interweaving + marginal move under LKJ), centred
        (2, 0, 2, False),  # logistic, Laplace, non-centred
        (2, 1, 2, True),   # logistic, random walk: the slice step of Sigma | b alone
        (1, 0, 1, False),  # one SD with its half-normal prior
        (1, 0, 3, True),   # q = 3, centred: 9 coordinates, interweaving by term blocks
        (2, 0, 3, False),  # q = 3, logistic, non-centred
    ],
)
def test_geweke_lkj_prior(family_code, kernel, q, centred):
    z = _geweke_z(family_code, kernel, q, centred, lkj_eta=2.0, iterations=30000)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


@pytest.mark.parametrize(
    "family_code, kernel, q, centred, trials",
    [
        (5, 0, 2, True, 1.0),    # negative binomial, Laplace, centred intercept + slope
        (5, 1, 1, False, 1.0),   # negative binomial, random walk, non-centred
        (6, 0, 1, True, 1.0),    # gamma (shape), Laplace
        (7, 0, 1, False, 4.0),   # beta-binomial logit, 4 trials, Laplace, non-centred
        (8, 0, 1, True, 3.0),    # beta-binomial probit
        (9, 1, 1, True, 3.0),    # beta-binomial cloglog, random walk
    ],
)
def test_geweke_dispersion_families(family_code, kernel, q, centred, trials):
    # phi ~ Gamma(6, 2): mean 3, and small values (where y carries little about eta) rare
    z = _geweke_z(family_code, kernel, q, centred, trials, dispersion=(6.0, 2.0),
                  iterations=20000)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


@pytest.mark.parametrize("kernel, q, centred", [(0, 2, True), (1, 1, False)])
def test_geweke_zero_inflated_poisson(kernel, q, centred):
    # zi ~ Beta(3, 5): mean 0.375; the slice step on logit zi under its Beta prior
    z = _geweke_z(10, kernel, q, centred, dispersion=(3.0, 5.0), dispersion_kind=2,
                  iterations=20000)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


@pytest.mark.parametrize("kernel, q, centred", [(0, 2, True), (1, 1, False)])
def test_geweke_zero_inflated_negbinomial(kernel, q, centred):
    # phi ~ Gamma(6, 2) and zi ~ Beta(3, 5): both slice steps, phi given zi then zi given phi
    z = _geweke_z(11, kernel, q, centred, dispersion=(6.0, 2.0), dispersion2=(3.0, 5.0),
                  iterations=20000)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


@pytest.mark.parametrize("family_code, kernel, q, centred", [
    (10, 0, 2, True),   # zero-inflated Poisson, Laplace
    (10, 1, 1, False),  # zero-inflated Poisson, random walk
    (11, 0, 1, True),   # zero-inflated negative binomial, Laplace
])
def test_geweke_zero_inflation_formula(family_code, kernel, q, centred):
    # zi ~ x + w: zi at the means ~ Beta(3, 5), the slopes ~ N(0, 0.8^2), N(0, 0.5^2); the
    # adaptive Metropolis-Hastings step of (logit zi, slopes), its random walks not adapted
    # (no warm-up in a Geweke run)
    extra = {"dispersion": (6.0, 2.0), "dispersion2": (3.0, 5.0)} if family_code == 11 else \
        {"dispersion": (3.0, 5.0), "dispersion_kind": 2}
    z = _geweke_z(family_code, kernel, q, centred, zi_sd=(0.8, 0.5), iterations=20000, **extra)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


def test_geweke_detects_a_zero_inflation_step_without_its_slopes_prior():
    z = _geweke_z(10, 0, 1, True, dispersion=(3.0, 5.0), dispersion_kind=2, zi_sd=(0.8, 0.5),
                  config={"zi_drop_slope_prior": True}, iterations=20000)
    assert max(abs(v) for k, v in z.items() if k.startswith("alpha")) > 8, \
        {k: round(v, 1) for k, v in z.items()}


def test_geweke_detects_a_wrong_second_parameter_step():
    # the zero-inflated negative binomial's zi step targets Beta(3, 7) under a Beta(3, 5) prior
    z = _geweke_z(11, 0, 1, True, dispersion=(6.0, 2.0), dispersion2=(3.0, 5.0),
                  sampler_dispersion2=(3.0, 7.0), iterations=20000)
    assert abs(z["zi"]) > 8, {k: round(v, 1) for k, v in z.items()}


@pytest.mark.parametrize("kernel, q, centred", [(0, 2, True), (1, 1, False)])
def test_geweke_student(kernel, q, centred):
    # sigma ~ half-t(5, 1) and nu ~ Gamma(20, 4) (mean 5): the slice steps on log sigma, log nu
    z = _geweke_z(12, kernel, q, centred, dispersion=(5.0, 1.0), dispersion_kind=3,
                  dispersion2=(20.0, 4.0), dispersion2_kind=0, iterations=20000)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


def test_geweke_detects_a_wrong_student_scale_step():
    # the sigma step targets half-t(5, 1.6) while the prior says half-t(5, 1)
    z = _geweke_z(12, 0, 1, True, dispersion=(5.0, 1.0), sampler_dispersion=(5.0, 1.6),
                  dispersion_kind=3, dispersion2=(20.0, 4.0), dispersion2_kind=0,
                  iterations=20000)
    assert abs(z["sigma"]) > 8, {k: round(v, 1) for k, v in z.items()}


def test_geweke_detects_a_wrong_zero_inflation_step():
    # the step targets zi ~ Beta(3, 7) (mean 0.3) while the prior says Beta(3, 5)
    z = _geweke_z(10, 0, 1, True, dispersion=(3.0, 5.0), sampler_dispersion=(3.0, 7.0),
                  dispersion_kind=2, iterations=20000)
    assert abs(z["zi"]) > 8, {k: round(v, 1) for k, v in z.items()}


def test_geweke_detects_a_wrong_dispersion_step():
    # the slice step targets phi ~ Gamma(6, 2.6) (mean 2.3) while the prior says Gamma(6, 2)
    z = _geweke_z(5, 0, 1, True, dispersion=(6.0, 2.0), sampler_dispersion=(6.0, 2.6),
                  iterations=20000)
    assert abs(z["phi"]) > 8, {k: round(v, 1) for k, v in z.items()}


def test_geweke_detects_an_lkj_mismatch():
    # the sampler moves under LKJ(1) while the prior (and the exact moments) say LKJ(4)
    z = _geweke_z(1, 0, 2, True, lkj_eta=4.0, sampler_eta=1.0, iterations=30000)
    assert abs(z["corr^2"]) > 8, {k: round(v, 1) for k, v in z.items()}


@pytest.mark.parametrize("family_code", [1, 2])
def test_geweke_non_centred_slice_step_alone(family_code):
    # q = 3, centred: the non-centred slice step of (beta_C, Sigma) runs before the interweaving
    # by term; with interweaving off it runs alone (the centred Gibbs steps beside it)
    z = _geweke_z(family_code, 0, 3, True, lkj_eta=2.0, iterations=30000,
                  config={"interweave": False, "marginal_move": False})
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


def test_geweke_detects_a_wrong_slice_step():
    # the SD slice with the log-scale Jacobian counted twice targets s p(s) instead of p(s): the
    # SDs' moments must fail clearly
    z = _geweke_z(1, 0, 3, True, lkj_eta=2.0, iterations=30000,
                  config={"non_centred_slice_double_jacobian": True})
    assert max(abs(z[f"Sigma{a}{a}"]) for a in range(3)) > 8, \
        {k: round(v, 1) for k, v in z.items()}


@pytest.mark.parametrize("q, group_level_w", [(1, False), (1, True), (2, False)])
def test_geweke_newton_move_shifts_the_centred_mean(q, group_level_w):
    # the free covariate has group means near 2 (x + 2): the Newton move of beta_F shifts the
    # random intercepts by -xbar_j delta and the intercept's centred coefficients (with the
    # group-level w: both of them, by least squares) by -C delta
    z = _geweke_z(1, 0, q, True, group_level_w=group_level_w, x_offset=2.0)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


def test_geweke_detects_an_unshifted_centred_mean():
    # negative control: the move's ratio counts the shift of the centred intercept, but the
    # commit leaves it where it was
    z = _geweke_z(1, 0, 1, True, x_offset=2.0, config={"unshifted_centred_mean": True})
    assert max(abs(v) for v in z.values()) > 8, {k: round(v, 1) for k, v in z.items()}


def test_geweke_detects_a_wrong_log_sd_slice_for_one_term():
    # with one random term on few groups the slice step moves the log SD alone; counting its
    # Jacobian twice must fail (the q = 1 cases of test_geweke_joint_distribution run it right)
    z = _geweke_z(1, 0, 1, True, iterations=80000,
                  config={"non_centred_slice_double_jacobian": True})
    assert max(abs(z["Sigma00"]), abs(z["b0^2"])) > 8, {k: round(v, 1) for k, v in z.items()}


def test_geweke_detects_a_wrong_kernel():
    # the Laplace kernel without the reverse-proposal term is not reversible w.r.t. the target:
    # the same test must reject it clearly (power)
    for code in (1, 2):
        z = _geweke_z(code, 0, 2, code == 1, drop=True)
        assert max(abs(v) for v in z.values()) > 10


# ---- cross-check with the conjugate Gibbs sampler ----------------------------------------


def test_gaussian_path_agrees_with_gibbs_sampler():
    rng = np.random.default_rng(8)
    m, k = 15, 6
    g = np.repeat(np.arange(m), k)
    x = rng.normal(size=m * k)
    y = 1.0 + rng.normal(0, 0.8, m)[g] + (0.5 + rng.normal(0, 0.3, m)[g]) * x + rng.normal(0, 0.6, m * k)
    X = pd.DataFrame({"Intercept": 1.0, "x": x})
    prior = Normal(0.0, 5.0)
    cov_prior = InverseWishart(4.0, np.eye(2))
    sigma_prior = InverseGamma(1.0, 0.5)
    mwg = bglmm.glmm(y, X, ["Intercept", "x"], g, family="gaussian", prior=prior,
                     random_prior=cov_prior, sigma_prior=sigma_prior, seed=1, chains=2,
                     draws=1500, warmup=300, check=False)
    gibbs = bglmm.lmm(y, X, X, g, prior=prior, cov_prior=cov_prior, sigma_prior=sigma_prior,
                      seed=2, chains=2, draws=1500, warmup=300)
    # the Laplace proposal is the exact conditional for the gaussian family
    assert mwg.acceptance_summary().group_min.min() == 1.0
    s1, s2 = mwg.summary(), gibbs.summary()
    for row in ["beta[Intercept]", "beta[x]", "sd_Intercept", "sd_x", "corr_Intercept__x", "sigma"]:
        # two independent Monte Carlo estimates: their difference has sd sqrt(mcse1^2 + mcse2^2)
        se = np.hypot(s1.loc[row, "mcse_mean"], s2.loc[row, "mcse_mean"])
        assert abs(s1.loc[row, "mean"] - s2.loc[row, "mean"]) < 3.5 * se, row


# ---- observation-level random effects ------------------------------------------------------


def test_observation_level_random_effect_is_fast_and_recovers_overdispersion():
    # one observation per level (the toxoplasmosis situation at scale): 3000 levels
    rng = np.random.default_rng(4)
    n = 3000
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(1.0 + 0.4 * x + rng.normal(0, 0.5, n))).astype(float)
    X = np.column_stack([np.ones(n), x])
    t0 = time.perf_counter()
    fit = bglmm.glmm(y, X, None, np.arange(n), family="poisson", seed=2, chains=2, draws=500,
                     warmup=300, keep_group_effects=False, check=False)
    elapsed = time.perf_counter() - t0
    # 1600 sweeps over 3000 one-row groups; generous for a loaded 2-core CI machine
    assert elapsed < 30
    s = fit.summary()
    assert abs(s.loc["sd_Intercept", "mean"] - 0.5) < 0.1
    assert abs(s.loc["beta[x1]", "mean"] - 0.4) < 0.06
    assert fit.acceptance_summary().group_median.min() > 0.8


# ---- prediction, log-likelihood, ArviZ ---------------------------------------------------


def test_predict_loglik_and_arviz():
    y, X, g = _poisson_data()
    fit = bglmm.glmm(y, X, ["Intercept"], g, family="poisson", seed=1, chains=2, draws=200,
                     warmup=200, check=False)
    ll = fit.pointwise_log_lik()
    assert ll.shape == (2, 200, len(y))
    # the pointwise log-likelihood at one draw equals scipy's, in the caller's row order
    from scipy import stats

    beta = fit.posterior["beta"][0, 5]
    b = fit.posterior["b"][0, 5, :, 0]
    eta = X.to_numpy() @ beta + b[g]
    assert np.allclose(ll[0, 5], stats.poisson.logpmf(y, np.exp(eta)))
    az = bglmm.results.import_arviz()
    idata = fit.to_inference_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto-k notice (random-effect models)
        loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo)
    mean = fit.predict()
    assert mean.shape == (2, 200, len(y))
    assert np.allclose(mean[0, 5], np.exp(eta))
    resp = fit.predict(kind="response", seed=1)
    assert np.all(resp == np.round(resp))
    new = fit.predict(X.iloc[:4], group=["a", "a", "b", "c"], groups="new", seed=2)
    assert new.shape == (2, 200, 4)
    # same new group shares its draw of b: rows 0 and 1 differ only through X
    ratio = new[..., 0] / new[..., 1]
    assert np.allclose(ratio, np.exp(fit.posterior["beta"] @ (X.iloc[0] - X.iloc[1]).to_numpy()))
    existing = fit.predict(X.iloc[[0, 1, len(y) - 1]], group=[g[0], g[1], g[-1]], kind="link")
    assert np.allclose(existing[0, 5, 2], eta[-1])
    with pytest.raises(ValueError, match="not in the fitted data"):
        fit.predict(X.iloc[:1], group=["nope"])
    coefs = fit.coef()
    assert np.allclose(coefs["Intercept"], fit.ranef()["Intercept"] + fit.posterior["beta"][..., 0].mean())
    assert fit.group_coefficients().shape == (2, 200, 30, 1)


def test_thinning_and_dropping_group_effects():
    y, X, g = _poisson_data()
    fit = bglmm.glmm(y, X, None, g, seed=1, chains=1, draws=30, warmup=10, thin=3,
                     keep_group_effects=False, check=False)
    assert fit.posterior["beta"].shape == (1, 30, 3)
    assert "b" not in fit.posterior
    assert fit.attrs["sampling_sweeps"] == [90]
    with pytest.raises(ValueError, match="keep_group_effects"):
        fit.ranef()
    assert "log_likelihood" not in fit.to_inference_data().groups()


def test_offset_exposure():
    rng = np.random.default_rng(5)
    m, k = 40, 5
    g = np.repeat(np.arange(m), k)
    exposure = rng.uniform(0.5, 20, m * k)
    y = rng.poisson(exposure * np.exp(-1.0 + rng.normal(0, 0.3, m)[g])).astype(float)
    fit = bglmm.glmm(y, np.ones((m * k, 1)), None, g, offset=np.log(exposure), seed=1,
                     chains=2, draws=500, warmup=300, check=False)
    s = fit.summary()
    # the log-rate is -1 (posterior sd ~0.06): 4 sd
    assert abs(s.loc["beta[x0]", "mean"] + 1.0) < 4 * s.loc["beta[x0]", "sd"]


def test_random_walk_adapts_per_group_and_acceptance_is_summarised():
    y, X, g = _logistic_data()
    fit = bglmm.glmm(y, X, ["Intercept", "x"], g, family="bernoulli", sampler="random_walk",
                     seed=2, chains=2, draws=300, warmup=300, check=False)
    acc = fit.acceptance_summary()
    assert list(acc.columns) == ["group_min", "group_median", "group_max", "fixed"]
    # c_j adapted towards 0.35 during warm-up, then frozen
    assert 0.2 < acc.group_median.median() < 0.5
    scales = fit.attrs["rw_scale"]
    assert scales.shape == (2, 40) and np.ptp(scales) > 0
    assert "group_acceptance" in fit.summary().attrs


def test_acceptance_and_convergence_warnings():
    y, X, g = _logistic_data(m=20)
    # no warm-up and a huge random-walk scale: acceptance far below target, chains not mixed
    with pytest.warns(bglmm.AcceptanceWarning):
        with pytest.warns(bglmm.ConvergenceWarning):
            bglmm.glmm(y, X, ["Intercept", "x"], g, family="bernoulli", sampler="random_walk",
                       rw_scale=400.0, warmup=0, draws=40, chains=2, seed=1)


def test_half_cauchy_sd_prior_for_one_term():
    y, X, g = _poisson_data()
    fit = bglmm.glmm(y, X, None, g, random_prior=HalfCauchy(1.0), seed=1, chains=2, draws=300,
                     warmup=200, check=False)
    assert 0.3 < fit.summary().loc["sd_Intercept", "mean"] < 1.2
    # with two terms the SD prior applies to both, with LKJ on the correlation
    fit2 = bglmm.glmm(y, X, ["Intercept", "x"], g, random_prior=HalfCauchy(1.0), seed=1,
                      chains=1, draws=100, warmup=100, check=False)
    assert np.isfinite(fit2.summary().loc["corr_Intercept__x", "mean"])
    with pytest.raises(TypeError, match="LKJ, InverseWishart"):
        bglmm.glmm(y, X, ["Intercept", "x"], g, random_prior=bglmm.priors.Normal(0, 1))


# ---- bad input ---------------------------------------------------------------------------


def test_bad_input_messages():
    y, X, g = _poisson_data()
    with pytest.raises(ValueError, match="non-integer"):
        bglmm.glmm(y + 0.5, X, None, g)
    with pytest.raises(ValueError, match="exceeds trials"):
        bglmm.glmm(np.full(len(y), 3.0), X, None, g, family="binomial", trials=np.full(len(y), 2.0))
    gg = g.astype(float)
    gg[3] = np.nan
    with pytest.raises(ValueError, match="group has 1 missing"):
        bglmm.glmm(y, X, None, gg)
    with pytest.raises(ValueError, match="'slope' is not a column of X"):
        bglmm.glmm(y, X, ["Intercept", "slope"], g)
    with pytest.raises(ValueError, match="negative"):
        bglmm.glmm(-y - 1, X, None, g)
    with pytest.raises(ValueError, match="unknown sampler"):
        bglmm.glmm(y, X, None, g, sampler="nuts")
    with pytest.raises(ValueError, match="parameterization"):
        bglmm.glmm(y, X, None, g, parameterization="both")
    with pytest.raises(ValueError, match="Z has"):
        bglmm.glmm(y, X, np.ones((3, 1)), g)
    with pytest.raises(ValueError, match="rank deficient"):
        bglmm.glmm(y, X, np.ones((len(y), 2)), g)
    with pytest.raises(TypeError, match="random_prior"):
        bglmm.glmm(y, X, None, g, random_prior=Normal(0, 1))
    with pytest.raises(ValueError, match="improper"):
        bglmm.glmm(y, X, None, g, random_prior=bglmm.priors.LogUniform())
    with pytest.raises(ValueError, match="group has 5 values"):
        bglmm.glmm(y, X, None, g[:5])
    # the C++ layer re-checks what reaches it directly
    n = len(y)
    Xa = np.ascontiguousarray(X.to_numpy())
    with pytest.raises(ValueError, match="not a whole count"):
        _core.run_glmm_chain(Xa, np.ones((n, 1)), y + 0.5, np.ones(n), np.zeros(n),
                             np.array([0, n], dtype=np.int64), 1, [(0, 0)], np.zeros(3), np.eye(3),
                             {"kind": 0, "iw_df": 2.0, "iw_scale": np.eye(1)}, 0.0, 0.0,
                             {"draws": 1, "warmup": 0}, 1, 0)
    with pytest.raises(ValueError, match="differ"):
        _core.run_glmm_chain(Xa, np.ascontiguousarray(Xa[:, 1:2]), y, np.ones(n), np.zeros(n),
                             np.array([0, n], dtype=np.int64), 1, [(0, 0)], np.zeros(3), np.eye(3),
                             {"kind": 0, "iw_df": 2.0, "iw_scale": np.eye(1)}, 0.0, 0.0,
                             {"draws": 1, "warmup": 0}, 1, 0)


def test_single_group_and_all_zero_group():
    y, X, g = _poisson_data()
    with pytest.warns(bglmm.BglmmWarning, match="single level"):
        fit = bglmm.glmm(y, X, None, np.zeros(len(y)), seed=1, chains=1, draws=50, warmup=50,
                         check=False)
    assert np.all(np.isfinite(fit.posterior["beta"]))
    # a group with only zero counts: its effect is finite and pulled below the others
    y = y.copy()
    y[g == 0] = 0.0
    fit = bglmm.glmm(y, X, None, g, seed=1, chains=2, draws=300, warmup=300, check=False)
    b = fit.ranef()["Intercept"]
    assert np.all(np.isfinite(b)) and b.iloc[0] < b.median()


def test_interweaving_and_marginal_move_make_the_covariance_mix():
    # B1's design at a fifth of the size: each group's data carry about as much information
    # about its slope as the population does, where the centred Gibbs steps alone are slow
    # (~0.05 ESS per draw for the slope SD), interweaving roughly halves the autocorrelation
    # and the marginal move brings Sigma near independent draws. Measured on this seed: 0.05 /
    # 0.26 / 0.59; the thresholds leave room for Monte Carlo noise in the ESS estimates.
    y, X, g = _logistic_data(m=200, k=20, seed=3)
    ess = {}
    for label, kw in {"gibbs": dict(interweave=False, marginal_move=False),
                      "interweave": dict(marginal_move=False), "full": {}}.items():
        fit = bglmm.glmm(y, X, ["Intercept", "x"], g, family="bernoulli", chains=2, draws=600,
                         warmup=400, seed=2, threads=1, keep_group_effects=False, check=False,
                         **kw)
        s = fit.summary()
        ess[label] = s["ess_bulk"][["sd_Intercept", "sd_x", "corr_Intercept__x"]].min() / 1200
        if label == "full":
            assert min(fit.attrs["marginal_acceptance"]) > 0.4
            assert min(fit.attrs["interweave_acceptance"]) > 0.7
    assert ess["gibbs"] < 0.15
    assert 0.15 < ess["interweave"] < ess["full"]
    assert ess["full"] > 0.4


# ---- the marginal move: on, or switched off and why; what the block step reports ------------


def test_marginal_move_switched_off_is_reported_and_warned():
    y, X, g = _poisson_data()
    kw = dict(seed=4, chains=2, draws=40, threads=1)
    # a warm-up too short to fit the move's proposal (it learns from the last 3/4 of warm-up)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        fit = bglmm.glmm(y, X, None, g, "poisson", warmup=8, **kw)
    assert fit.attrs["marginal_status"] == ["not fitted", "not fitted"]
    assert fit.attrs["marginal_warmup_draws"] == [6, 6]
    assert np.all(np.isnan(fit.attrs["marginal_acceptance"]))  # did not run: NaN, not 0
    off = [w for w in caught if "marginal move" in str(w.message)]
    assert len(off) == 1 and issubclass(off[0].category, bglmm.AcceptanceWarning)
    assert (off[0].filename, off[0].lineno) == (__file__, line)
    assert "switched off in chain(s) 0, 1" in str(off[0].message)
    assert "6 warm-up draws" in str(off[0].message)
    # no warm-up at all
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bglmm.glmm(y, X, None, g, "poisson", warmup=0, **kw)
    assert fit.attrs["marginal_status"] == ["no warm-up", "no warm-up"]
    assert any("switched off in chain(s) 0, 1: there was no warm-up" in str(w.message)
               for w in caught)
    # off on request, or with the random-walk kernel: reported, not warned about
    for opts in ({"marginal_move": False}, {"sampler": "random_walk"}):
        fit = bglmm.glmm(y, X, None, g, "poisson", warmup=100, check=False, **kw, **opts)
        assert fit.attrs["marginal_status"] == ["not requested", "not requested"]
        assert np.all(np.isnan(fit.attrs["marginal_acceptance"]))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _check_marginal_move(fit)
        assert caught == []


def test_marginal_move_on_after_warmup():
    y, X, g = _poisson_data()
    fit = bglmm.glmm(y, X, None, g, "poisson", seed=4, chains=2, draws=40, warmup=100,
                     threads=1, check=False)
    assert fit.attrs["marginal_status"] == ["on", "on"]
    assert fit.attrs["marginal_warmup_draws"] == [75, 75]
    assert fit.attrs["marginal_dim"] == 2  # the intercept's mean and the SD's Cholesky entry
    assert np.all(np.asarray(fit.attrs["marginal_acceptance"]) > 0)


def test_block_step_scale_reported_for_the_random_walk_only():
    y, X, g = _poisson_data()
    kw = dict(seed=4, chains=1, draws=20, warmup=40, threads=1, check=False)
    laplace = bglmm.glmm(y, X, None, g, "poisson", **kw)
    assert "fixed_scale" not in laplace.attrs  # the Newton proposal has no scale
    assert np.isfinite(laplace.attrs["interweave_acceptance"]).all()
    rw = bglmm.glmm(y, X, None, g, "poisson", sampler="random_walk", **kw)
    assert np.isfinite(rw.attrs["fixed_scale"]).all() and rw.attrs["fixed_scale"][0] > 0
    assert np.isnan(rw.attrs["interweave_acceptance"]).all()  # no interweaving: did not run
