"""The cumulative ordinal family (logit and probit): the core's log-likelihood, score and Fisher
weight against SciPy (with |eta| = 700), the GLM posterior against an independent quadrature
reference, one-sweep Geweke tests of the GLMM with the cutpoint steps, the workflow (predictions,
category probabilities, pointwise log-likelihood, save/load, prior draws) and the refusals.
Every statistical check has a negative control. The wine data (ordinal's clmm example) against
an independent HMC sampler are in test_reference_wine_cumulative.py, the SBC cases in
test_sbc.py."""

from __future__ import annotations

import sys
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bglmm
from bglmm import _core
from bglmm.formula import FormulaError
from bglmm.priors import Gamma, HalfNormal, Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quadrature import grid, posterior_means  # noqa: E402

CODES = {link: bglmm.families.resolve_family("cumulative", link).code for link in ("logit", "probit")}
CDF = {"logit": special.expit, "probit": special.ndtr}
PDF = {"logit": lambda x: special.expit(x) * special.expit(-x), "probit": stats.norm.pdf}


def naive_probabilities(eta, cut, link):
    """P(y = k | eta), k = 0 .. K - 1, by differences of SciPy's CDFs (in the upper tail of the
    survival functions, 1 - F(x) = F(-x), which keeps them accurate there)."""
    x = np.asarray(cut)[None, :] - np.asarray(eta)[:, None]
    inf = np.full((len(eta), 1), np.inf)
    x = np.hstack([-inf, x, inf])
    a, b = x[:, 1:], x[:, :-1]
    F = CDF[link]
    return np.where(b > 0, F(-b) - F(-a), F(a) - F(b))


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_core_functions_match_scipy(link):
    cut = np.array([-1.0, 0.5, 2.0])
    eta = np.repeat(np.linspace(-4, 4, 17), 4)
    y = np.tile(np.arange(4.0), 17)
    ones = np.ones_like(eta)

    def core(what, y_, eta_, c=cut):
        return _core.families.evaluate(CODES[link], what, y_, np.ones_like(eta_), eta_,
                                       cutpoints=c)

    probs = naive_probabilities(eta, cut, link)
    expected = np.log(probs[np.arange(len(y)), y.astype(int)])
    np.testing.assert_allclose(core("log_lik", y, eta), expected, rtol=1e-11)
    # score: d/d eta of log P, against central differences
    h = 1e-6
    fd = (core("log_lik", y, eta + h) - core("log_lik", y, eta - h)) / (2 * h)
    np.testing.assert_allclose(core("score", y, eta), fd, rtol=1e-6, atol=1e-8)
    # Fisher weight: sum_k P_k score_k^2 = sum_k (f(a_k) - f(b_k))^2 / P_k
    f = PDF[link](cut[None, :] - eta[:, None])
    f = np.hstack([np.zeros((len(eta), 1)), f, np.zeros((len(eta), 1))])
    weight = ((f[:, 1:] - f[:, :-1]) ** 2 / probs).sum(axis=1)
    np.testing.assert_allclose(core("weight", y, eta), weight, rtol=1e-10)
    # negative control: the cutpoints matter
    assert np.max(np.abs(core("log_lik", y, eta, cut + 0.3) - expected)) > 0.1
    # far tails: finite, and the leading terms of the asymptotics
    big = np.array([700.0, -700.0, 700.0, -700.0])
    yb = np.array([0.0, 3.0, 3.0, 0.0])
    ll = core("log_lik", yb, big)
    assert np.all(np.isfinite(core("score", yb, big))) and np.all(np.isfinite(core("weight", yb, big)))
    assert ll[2] == pytest.approx(0.0, abs=1e-12) and ll[3] == pytest.approx(0.0, abs=1e-12)
    if link == "logit":  # log F(-1 - 700) = -701 - log(1 + e^-701); log(1 - F(2 + 700)) = -702
        assert ll[0] == pytest.approx(-701.0, rel=1e-14)
        assert ll[1] == pytest.approx(-702.0, rel=1e-14)
    else:
        np.testing.assert_allclose(ll[:2], special.log_ndtr(np.array([-701.0, -702.0])), rtol=1e-12)
    # a middle category far out: two CDF values that agree to 1e-300 and more
    ll_mid = core("log_lik", np.array([1.0, 2.0]), np.array([-300.0, 300.0]))
    assert np.all(np.isfinite(ll_mid)) and np.all(ll_mid < -100)


def test_core_refuses_bad_category_codes():
    with pytest.raises(ValueError, match="category code"):
        _core.families.evaluate(CODES["logit"], "log_lik", np.array([4.0]), np.ones(1),
                                np.zeros(1), cutpoints=np.array([-1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="increase"):
        _core.families.evaluate(CODES["logit"], "log_lik", np.array([1.0]), np.ones(1),
                                np.zeros(1), cutpoints=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="needs cutpoints"):
        _core.families.evaluate(CODES["logit"], "log_lik", np.array([1.0]), np.ones(1), np.zeros(1))


def simulate(n, beta, cut, link, seed, groups=None, sd=0.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(beta)))
    eta = x @ np.asarray(beta)
    g = None
    if groups is not None:
        g = np.repeat(np.arange(groups), n // groups)
        eta = eta + rng.normal(0.0, sd, groups)[g]
    probs = naive_probabilities(eta, cut, link)
    y = 1 + (rng.random(n)[:, None] > np.cumsum(probs, axis=1)[:, :-1]).sum(axis=1)
    return x, y, g


def grid_means(x, y, link, lower, upper, cut_sd, points=44):
    """Posterior means of (beta, c_1, c_2) of a 3-category model by the midpoint rule, under
    beta ~ N(0, 2^2) and the cutpoints N(0, cut_sd^2), ordered."""
    b, c1, c2 = grid(lower, upper, points)
    eta = b[..., None] * x[:, 0]
    F = CDF[link]
    lo = np.where(y == 1, 0.0, np.where(y == 2, F(c1[..., None] - eta), F(c2[..., None] - eta)))
    hi = np.where(y == 1, F(c1[..., None] - eta), np.where(y == 2, F(c2[..., None] - eta), 1.0))
    with np.errstate(divide="ignore"):
        lp = np.log(np.clip(hi - lo, 0.0, None)).sum(axis=-1)
    lp += -0.5 * b**2 / 4.0 - 0.5 * (c1**2 + c2**2) / cut_sd**2
    lp = np.where(c1 < c2, lp, -np.inf)
    return posterior_means(lp, [b, c1, c2])


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_glm_posterior_means_match_quadrature(link):
    scale = 1.0 if link == "logit" else 0.6
    x, y, _ = simulate(90, [1.2 * scale], np.array([-0.6, 0.9]) * scale, link, seed=4)
    fit = bglmm.glm(x, y, "cumulative", link, prior=Normal(0, 2.0), cutpoint_prior=Normal(0, 3.0),
                    chains=4, draws=1500, warmup=500, seed=5, threads=1, progress=False)
    draws = np.concatenate([fit.posterior["beta"], fit.posterior["cutpoint"]], axis=-1)
    mean, sd = draws.mean(axis=(0, 1)), draws.std(axis=(0, 1))
    mcse = np.array([float(az.mcse(draws[..., k])) for k in range(3)])
    lower, upper = mean - 7 * sd, mean + 7 * sd
    z = (mean - grid_means(x, y, link, lower, upper, 3.0)) / mcse
    assert np.all(np.abs(z) < 4), z
    # negative control: the reference under a tighter cutpoint prior
    wrong = grid_means(x, y, link, lower, upper, 0.5)
    assert np.max(np.abs((mean - wrong) / mcse)) > 4
    s = fit.summary()
    assert s["r_hat"].max() <= 1.01 and s["ess_bulk"].min() >= 400, s


# ---- Geweke: the GLMM's successive-conditional simulator with the cutpoint steps -------------

def _geweke(kernel, q, centred, link="logit", cut_sd=1.5, sampler_cut_sd=None, iterations=40000):
    rng = np.random.default_rng(0)
    m, k = 4, 3
    n = m * k
    X = np.column_stack([np.ones(n), np.round(rng.normal(size=n), 2), np.round(rng.normal(size=n), 2)])
    X = np.ascontiguousarray(X)
    Z = np.ascontiguousarray(X[:, :q])
    gs = np.arange(0, n + 1, k, dtype=np.int64)
    K = 4
    m0 = np.array([0.0, -0.1, 0.3])
    V0 = np.array([[cut_sd**2 / (K - 1), 0.0, 0.0], [0.0, 0.16, 0.0], [0.0, 0.0, 0.09]])
    nu = q + 6.0
    ES = np.array([[0.3, 0.05], [0.05, 0.2]])[:q, :q]
    spec = {"kind": 0, "iw_df": nu, "iw_scale": ES * (nu - q - 1)}
    pairs = [(j, j) for j in range(q)] if centred else []
    cfg = {"kernel": kernel, "threads": 1, "rw_scale": 0.5}
    s_fit = cut_sd if sampler_cut_sd is None else sampler_cut_sd
    V0[0, 0] = s_fit**2 / (K - 1)
    d = _core.glmm_geweke(X, Z, np.zeros(n), np.ones(n), np.zeros(n), gs, CODES[link], pairs, m0,
                          V0, spec, 0.0, 0.0, cfg, iterations, 7, categories=K,
                          cutpoint_sd=s_fit, intercept_col=0)
    # order statistics of 3 draws from N(0, s^2): E = (-1, 0, 1) 3 / (2 sqrt(pi)) s,
    # E^2 = (1 + sqrt(3) / (2 pi), 1 - sqrt(3) / pi, 1 + sqrt(3) / (2 pi)) s^2
    e1 = 3.0 / (2.0 * np.sqrt(np.pi))
    e2 = np.array([1 + np.sqrt(3) / (2 * np.pi), 1 - np.sqrt(3) / np.pi, 1 + np.sqrt(3) / (2 * np.pi)])
    cut = d[:, -3:]
    funcs = {"beta1": d[:, 1], "beta2": d[:, 2], "beta1^2": d[:, 1] ** 2, "beta2^2": d[:, 2] ** 2,
             "Sigma00": d[:, 3], "b0^2": d[:, 3 + q * q] ** 2}
    exact = {"beta1": m0[1], "beta2": m0[2], "beta1^2": V0[1, 1] + m0[1] ** 2,
             "beta2^2": V0[2, 2] + m0[2] ** 2, "Sigma00": ES[0, 0], "b0^2": ES[0, 0]}
    for j in range(3):
        funcs[f"c{j + 1}"] = cut[:, j]
        exact[f"c{j + 1}"] = (j - 1) * e1 * cut_sd
        funcs[f"c{j + 1}^2"] = cut[:, j] ** 2
        exact[f"c{j + 1}^2"] = e2[j] * cut_sd**2
    funcs["beta0 + c1"] = d[:, 0] + cut[:, 0]  # beta_0 = -c_1 in the core's parameterisation
    exact["beta0 + c1"] = 0.0
    z = {}
    for key, v in funcs.items():
        batches = v[: len(v) // 50 * 50].reshape(50, -1).mean(axis=1)
        sd = batches.std(ddof=1) / np.sqrt(50)
        z[key] = 0.0 if sd == 0 and v.mean() == exact[key] else (v.mean() - exact[key]) / sd
    return z


@pytest.mark.parametrize("kernel, q, centred, link", [
    (0, 1, True, "logit"),    # Laplace, centred random intercept (beta_0 shifts with it)
    (0, 2, False, "probit"),  # Laplace, non-centred intercept and slope
    (1, 1, False, "logit"),   # random walk, non-centred
])
def test_geweke_cumulative_glmm(kernel, q, centred, link):
    z = _geweke(kernel, q, centred, link)
    bad = {k: round(v, 2) for k, v in z.items() if abs(v) > 4.0}
    assert not bad, z


def test_geweke_detects_a_wrong_cutpoint_prior():
    z = _geweke(0, 1, True, sampler_cut_sd=2.5, iterations=20000)
    assert max(abs(z[k]) for k in ("c1^2", "c3^2")) > 6, z


# ---- the formula interface ------------------------------------------------------------------

@pytest.fixture(scope="module")
def ratings():
    x, y, g = simulate(600, [0.8, -0.5], np.array([-1.5, 0.0, 1.2, 2.5]), "logit", seed=3,
                       groups=30, sd=0.8)
    return pd.DataFrame({"y": pd.Categorical(np.array(list("abcde"))[y - 1], ordered=True),
                         "x1": x[:, 0], "x2": x[:, 1], "g": g})


def test_glmm_fit_and_workflow(ratings, tmp_path):
    fit = bglmm.fit("y ~ x1 + x2 + (1 | g)", ratings, family="cumulative", seed=2, threads=1,
                    progress=False)
    s = fit.summary()
    assert list(fit.coords["coef"]) == ["x1", "x2"] and fit.attrs["categories"] == list("abcde")
    assert [i for i in s.index if i.startswith("cutpoint")] == [f"cutpoint[{k}]" for k in range(1, 5)]
    assert s["r_hat"].max() <= 1.01 and s["ess_bulk"].min() >= 400, s
    truth = {"beta[x1]": 0.8, "beta[x2]": -0.5, "cutpoint[1]": -1.5, "cutpoint[2]": 0.0,
             "cutpoint[3]": 1.2, "cutpoint[4]": 2.5, "sd_g__Intercept": 0.8}
    for name, value in truth.items():  # recovery within 99.5% intervals
        draws = (fit.posterior["sd_g__Intercept"] if name.startswith("sd") else
                 fit.posterior["cutpoint"][..., int(name[-2]) - 1] if name.startswith("cut") else
                 fit.posterior["beta"][..., ["beta[x1]", "beta[x2]"].index(name)])
        lo, hi = np.quantile(draws, [0.0025, 0.9975])
        assert lo < value < hi, (name, lo, hi)
    # category probabilities: (samples, rows, K), summing to one
    probs = fit.predict(kind="mean", draws=50)
    assert probs.shape == (50, len(ratings), 5)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-12)
    # pointwise log-likelihood = log of the probability of the observed category (and after load)
    y = ratings["y"].cat.codes.to_numpy()
    expected = np.log(fit.predict(kind="mean")[:, np.arange(len(y)), y])
    got = fit.to_inference_data(log_likelihood=True).log_likelihood["y"].values
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-9, atol=1e-12)
    fit.save(tmp_path / "ord.nc")
    back = bglmm.load(tmp_path / "ord.nc")
    np.testing.assert_allclose(
        back.to_inference_data(log_likelihood=True).log_likelihood["y"].values.reshape(expected.shape),
        expected, rtol=1e-9, atol=1e-12)
    # replicated data: the categories' numbers, with the observed frequencies on average
    rep = fit.posterior_predictive(draws=400, seed=1)
    assert rep.shape == (400, len(y)) and set(np.unique(rep)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    observed = np.bincount(y, minlength=5) / len(y)
    replicated = np.stack([np.bincount(r.astype(int) - 1, minlength=5) for r in rep]) / len(y)
    assert np.all(np.abs(replicated.mean(axis=0) - observed) < 4 * replicated.std(axis=0) / np.sqrt(20))
    # new groups, new rows
    new = ratings.iloc[:4].assign(g=[100, 101, 100, 102])
    assert fit.predict(new, kind="response", allow_new_levels=True, draws=7, seed=1).shape == (7, 4)
    # prior draws: ordered cutpoints from N(0, 5^2) order statistics
    prior = fit.prior_draws(draws=4000, seed=1)
    assert np.all(np.diff(prior["cutpoint"], axis=1) > 0)
    assert np.mean(prior["cutpoint"][:, 0]) == pytest.approx(-5 * 1.02938, abs=0.25)
    assert set(np.unique(fit.prior_predictive(draws=20, seed=1))) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert fit.loo().elpd_loo < 0
    # conditional effects: the expected category number, rising with x1 (slope 0.8 > 0)
    import matplotlib

    matplotlib.use("Agg")
    ax = fit.conditional_effects("x1")[0]
    assert "expected category" in ax.get_ylabel()
    line = ax.get_lines()[0].get_ydata()
    assert 1.0 < line[0] < line[-1] < 5.0


def test_draws_do_not_depend_on_threads(ratings):
    args = dict(family="cumulative", chains=1, draws=60, warmup=60, seed=3, progress=False,
                check=False, min_rows_per_thread=50)
    a = bglmm.fit("y ~ x1 + (1 | g)", ratings, threads=1, **args)
    b = bglmm.fit("y ~ x1 + (1 | g)", ratings, threads=2, **args)
    np.testing.assert_array_equal(a.posterior["cutpoint"], b.posterior["cutpoint"])
    np.testing.assert_array_equal(a.posterior["beta"], b.posterior["beta"])


def test_probit_and_crossed_factors(ratings):
    d = ratings.assign(h=np.arange(len(ratings)) % 7)
    fit = bglmm.fit("y ~ x1 + (1 | g) + (1 | h)", d, family="cumulative", link="probit",
                    priors={"cutpoints": Normal(0, 3.0)}, chains=2, draws=300, warmup=300,
                    seed=1, threads=1, progress=False, check=False)
    assert {"sd_g__Intercept", "sd_h__Intercept", "cutpoint"} <= set(fit.posterior)
    assert fit.priors["cutpoints"] == Normal(0, 3.0) and fit.attrs["cutpoint_sd"] == 3.0
    # the probit scale: the logit slope 0.8 is about 0.8 / 1.7 there
    assert 0.25 < float(np.median(fit.posterior["beta"][..., 0])) < 0.75


def test_intercept_only_and_integer_response():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"y": rng.integers(2, 6, 200), "g": np.repeat(np.arange(20), 10)})
    fit = bglmm.fit("y ~ 1 + (1 | g)", d, family="ordinal", chains=2, draws=200, warmup=200,
                    seed=1, threads=1, progress=False, check=False)
    assert fit.attrs["categories"] == ["2", "3", "4", "5"]
    assert fit.posterior["beta"].shape[-1] == 0 and fit.posterior["cutpoint"].shape[-1] == 3
    glm = bglmm.fit("y ~ 1", d, family="cumulative", chains=2, draws=200, warmup=200, seed=1,
                    threads=1, progress=False, check=False)
    # no covariates: the cutpoints are the logits of the cumulative shares (vague prior)
    shares = np.cumsum(np.bincount(d["y"] - 2))[:-1] / len(d)
    np.testing.assert_allclose(np.median(glm.posterior["cutpoint"], axis=(0, 1)),
                               special.logit(shares), atol=0.15)


def test_bad_input(ratings):
    d = ratings.iloc[:120].copy()
    kw = dict(family="cumulative", chains=1, draws=20, warmup=20, progress=False)
    with pytest.raises(ValueError, match="gaps"):
        bglmm.fit("y ~ x1", d.assign(y=np.where(np.arange(120) % 2, 1, 3)), **kw)
    with pytest.raises(ValueError, match="single category"):
        bglmm.fit("y ~ x1", d.assign(y=2), **kw)
    with pytest.raises(ValueError, match="unordered"):
        bglmm.fit("y ~ x1", d.assign(y=pd.Categorical(d["y"].astype(str))), **kw)
    with pytest.raises(ValueError, match="without observations"):
        bglmm.fit("y ~ x1", d.assign(y=d["y"].cat.add_categories(["f"])), **kw)
    with pytest.raises(ValueError, match="non-integer"):
        bglmm.fit("y ~ x1", d.assign(y=d["x1"]), **kw)
    with pytest.raises(FormulaError, match="intercept"):
        bglmm.fit("y ~ 0 + x1", d, **kw)
    with pytest.raises(ValueError, match="mean 0"):
        bglmm.fit("y ~ x1", d, priors={"cutpoints": Normal(1.0, 2.0)}, **kw)
    with pytest.raises(TypeError, match="Normal"):
        bglmm.fit("y ~ x1", d, priors={"cutpoints": HalfNormal(2.0)}, **kw)
    with pytest.raises(ValueError, match="does not apply"):
        bglmm.fit("y ~ x1", d, priors={"phi": Gamma(1.0, 1.0)}, **kw)
    with pytest.raises(ValueError, match="cumulative family only"):
        bglmm.fit("n ~ x1", d.assign(n=np.arange(120) % 3), family="poisson",
                  priors={"cutpoints": Normal(0, 2)}, chains=1, draws=20, warmup=20,
                  progress=False)
    with pytest.raises(ValueError, match="constant"):
        bglmm.glm(np.ones((120, 1)), d["y"], "cumulative", chains=1, draws=20, warmup=20,
                  progress=False)
    with pytest.raises(ValueError, match="cumulative family only"):
        bglmm.glm(np.ones((120, 1)), np.arange(120) % 3, "poisson", cutpoint_prior=Normal(0, 2))
