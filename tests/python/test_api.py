"""bglmm.fit on DataFrames: the same draws as the array-level samplers, the sampler choice,
summaries, ArviZ output, ranef/coef, predictions for existing and new groups, priors, progress."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bglmm
from bglmm.glm import glm
from bglmm.glmm import glmm
from bglmm.hierarchical import hierarchical_normal
from bglmm.lmm import lmm
from bglmm.priors import LKJ, HalfNormal, HalfStudentT, InverseGamma, InverseWishart, Normal

# short chains for the tests of names, shapes and equal draws: no convergence check
SMALL = dict(chains=2, draws=250, warmup=250, threads=1, progress=False, check=False)

RATS = "weight ~ center(day) + (1 + center(day) | rat)"
CBPP = "cbind(incidence, size - incidence) ~ C(period) + (1 | herd)"


@pytest.fixture(scope="module")
def rats_fit():
    return bglmm.fit(RATS, bglmm.datasets.load("rats"), seed=11, **SMALL)


@pytest.fixture(scope="module")
def cbpp_fit():
    return bglmm.fit(CBPP, bglmm.datasets.load("cbpp"), "binomial", seed=12, **SMALL)


# ---- the formula and the array API give identical draws ----------------------------------------


def test_glm_formula_equals_array_api():
    df = bglmm.datasets.load("sparrows")
    f = bglmm.fit("fledged ~ age + I(age**2)", df, "poisson", seed=5, **SMALL)
    X = pd.DataFrame({"Intercept": 1.0, "age": df.age, "I(age ** 2)": df.age**2.0})
    a = glm(X, df.fledged, "poisson", prior=f.priors["beta"], sampler="independence", seed=5,
            **SMALL)
    np.testing.assert_array_equal(f.posterior["beta"], a.posterior["beta"])
    assert f.kind == "glm" and "independence" in f.sampler
    assert list(f.coords["coef"]) == ["Intercept", "age", "I(age ** 2)"]


def test_lmm_formula_equals_array_api(rats_fit):
    df = bglmm.datasets.load("rats")
    X = pd.DataFrame({"Intercept": 1.0, "center(day)": df.day - df.day.mean()})
    p = rats_fit.priors
    cov_prior = LKJ(eta=p["cor"].eta, sd=[p["sd"][t] for t in ("Intercept", "center(day)")])
    a = lmm(df.weight, X, X, df.rat, prior=p["beta"], cov_prior=cov_prior,
            sigma_prior=p["sigma"], seed=11, **SMALL)
    for name, inner in (("beta", "beta"), ("b_rat", "b"), ("Sigma_rat", "Sigma"), ("sigma", "sigma")):
        np.testing.assert_array_equal(rats_fit.posterior[name], a.posterior[inner])
    assert rats_fit.kind == "lmm" and "Gibbs" in rats_fit.sampler


def test_glmm_formula_equals_array_api(cbpp_fit):
    df = bglmm.datasets.load("cbpp")
    X = pd.DataFrame({"Intercept": 1.0, **{f"C(period)[{k}]": (df.period == k).astype(float)
                                           for k in (2, 3, 4)}})
    p = cbpp_fit.priors
    a = glmm(df.incidence, X, None, df.herd, family="binomial", trials=df["size"],
             prior=p["beta"], random_prior=p["sd"], seed=12, **SMALL)
    for name, inner in (("beta", "beta"), ("b_herd", "b"), ("Sigma_herd", "Sigma")):
        np.testing.assert_array_equal(cbpp_fit.posterior[name], a.posterior[inner])
    assert cbpp_fit.kind == "glmm" and "Metropolis-within-Gibbs" in cbpp_fit.sampler
    # the trials of cbind(incidence, size - incidence) are the herd sizes
    np.testing.assert_array_equal(cbpp_fit.spec.trials, df["size"])


@pytest.mark.parametrize("sampler", [None, "gibbs"])
def test_known_se_equals_hierarchical_normal(sampler):
    # the default is the exact sampler (independent draws); sampler="gibbs" still runs Gibbs
    es = bglmm.datasets.load("eight_schools")
    opts = {} if sampler is None else {"sampler": sampler}
    f = bglmm.fit("y | se(sigma) ~ 1 + (1 | school)", es, seed=3, chains=2, draws=300,
                  warmup=200, progress=False, check=False, **opts)
    a = hierarchical_normal(es.y, es.school, se=es.sigma, mu_prior=f.priors["beta"],
                            tau_prior=f.priors["sd"], seed=3, chains=2, draws=300, warmup=200,
                            check=False, sampler=sampler or "exact")
    assert f.sampler == a.sampler
    assert f.sampler.startswith("exact" if sampler is None else "blocked Gibbs")
    np.testing.assert_array_equal(f.posterior["beta"][..., 0], a.posterior["mu"])
    np.testing.assert_array_equal(f.posterior["sd_school__Intercept"], a.posterior["tau"])
    np.testing.assert_allclose(f.posterior["b_school"][..., 0] + a.posterior["mu"][..., None],
                               a.posterior["theta"], rtol=0, atol=1e-12)
    assert f.kind == "hierarchical_normal"
    assert list(f.summary().index) == ["beta[Intercept]", "sd_school__Intercept"]
    # theta_j's predictive mean is the school's effect
    np.testing.assert_allclose(f.predict(kind="link").mean(axis=0),
                               a.posterior["theta"].mean(axis=(0, 1)), atol=1e-9)


# ---- what the fit reports ----------------------------------------------------------------------


def test_summary_rows_and_columns(rats_fit):
    table = rats_fit.summary()
    assert list(table.index) == ["beta[Intercept]", "beta[center(day)]", "sd_rat__Intercept",
                                 "sd_rat__center(day)", "cor_rat__Intercept__center(day)", "sigma"]
    for col in ("mean", "sd", "2.5%", "50%", "97.5%", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"):
        assert col in table.columns
    assert table.attrs["sampler"] == rats_fit.sampler
    text = str(rats_fit)
    assert "sampler: blocked Gibbs" in text and "(1 + center(day) | rat) (30 rat levels)" in text


def test_inference_data_coords_dims_and_log_likelihood(rats_fit):
    df = bglmm.datasets.load("rats")
    idata = rats_fit.to_inference_data(log_likelihood=True)
    post = idata.posterior
    assert list(post["beta"].coords["coef"].values) == ["Intercept", "center(day)"]
    assert post["b_rat"].dims == ("chain", "draw", "rat", "rat__term")
    assert list(post["b_rat"].coords["rat"].values) == list(range(1, 31))
    assert list(post["b_rat"].coords["rat__term"].values) == ["Intercept", "center(day)"]
    assert post["Sigma_rat"].dims == ("chain", "draw", "rat__term", "rat__term_")
    ll = idata.log_likelihood["y"]
    assert ll.dims == ("chain", "draw", "obs") and ll.shape == (2, 250, 150)
    assert list(ll.coords["obs"].values) == list(df.index)
    # gaussian log-likelihood of draw (1, 7) from its parameters, by scipy
    beta = post["beta"].values[1, 7]
    b = post["b_rat"].values[1, 7]
    sigma = float(post["sigma"].values[1, 7])
    x = df.day - df.day.mean()
    mean = beta[0] + beta[1] * x + b[df.rat - 1, 0] + b[df.rat - 1, 1] * x
    np.testing.assert_allclose(ll.values[1, 7], stats.norm.logpdf(df.weight, mean, sigma),
                               rtol=1e-10)
    np.testing.assert_array_equal(idata.observed_data["y"].values, df.weight)
    assert "constant_data" in idata.groups()


def test_glmm_log_likelihood_is_in_data_order(cbpp_fit):
    df = bglmm.datasets.load("cbpp")
    ll = cbpp_fit.to_inference_data(log_likelihood=True).log_likelihood["y"].values
    p = cbpp_fit.predict(kind="mean")  # (samples, rows), chains stacked
    expected = stats.binom.logpmf(df.incidence, df["size"], p[3])
    np.testing.assert_allclose(ll.reshape(-1, len(df))[3], expected, rtol=1e-9)


def test_ranef_and_coef(rats_fit):
    ranef = rats_fit.ranef()
    assert ranef.index.names == ["rat", "term"] and len(ranef) == 60
    assert list(ranef.columns) == ["mean", "sd", "2.5%", "50%", "97.5%"]
    b = rats_fit.posterior["b_rat"]
    np.testing.assert_allclose(ranef.loc[(5, "center(day)"), "mean"], b[..., 4, 1].mean())
    coef = rats_fit.coef()
    beta = rats_fit.posterior["beta"]
    np.testing.assert_allclose(coef.loc[(5, "Intercept"), "mean"],
                               (beta[..., 0] + b[..., 4, 0]).mean())
    with pytest.raises(ValueError, match="no random effects"):
        bglmm.fit("weight ~ day", bglmm.datasets.load("rats"), seed=1, **SMALL).ranef()


# ---- predictions -------------------------------------------------------------------------------


def test_predict_existing_groups(rats_fit):
    df = bglmm.datasets.load("rats")
    eta = rats_fit.predict(kind="link")
    assert eta.shape == (500, 150)
    np.testing.assert_array_equal(rats_fit.predict(df, kind="link"), eta)
    beta = rats_fit.posterior["beta"].reshape(500, 2)
    b = rats_fit.posterior["b_rat"].reshape(500, 30, 2)
    x = (df.day - df.day.mean()).to_numpy()
    g = df.rat.to_numpy() - 1
    manual = beta[:, [0]] + beta[:, [1]] * x + b[:, g, 0] + b[:, g, 1] * x
    np.testing.assert_allclose(eta, manual, rtol=1e-12)
    sub = rats_fit.predict(df.iloc[:3], draws=10)
    assert sub.shape == (10, 3)
    np.testing.assert_array_equal(rats_fit.predict(kind="mean"), eta)  # identity link
    nofx = rats_fit.predict(df.iloc[:2], groups="none", kind="link")
    np.testing.assert_allclose(nofx, beta[:, [0]] + beta[:, [1]] * x[:2], rtol=1e-12)


def test_predict_new_groups(rats_fit):
    df = bglmm.datasets.load("rats")
    new = pd.DataFrame({"day": [22.0, 36.0, 22.0], "rat": ["new1", "new1", "new2"]})
    with pytest.raises(ValueError, match=r"level\(s\) \['new1', 'new2'\] of 'rat'.*groups='new'"):
        rats_fit.predict(new)
    eta = rats_fit.predict(new, groups="new", kind="link", seed=4)
    fixed = rats_fit.predict(new, groups="none", kind="link")
    u = eta - fixed  # the new rats' effects z' b_new, b_new ~ N(0, Sigma) per draw
    Sigma = rats_fit.posterior["Sigma_rat"].reshape(-1, 2, 2)
    x = new.day.to_numpy() - df.day.mean()
    z = np.column_stack([np.ones(3), x])
    v = np.einsum("nq,sqr,nr->sn", z, Sigma, z)  # Var(z'b_new | Sigma)
    # E[u^2] = E[v]; u^2 / v ~ chi2_1 per draw, so mean(u^2 / v) has sd sqrt(2 / S); 5 sd
    S = u.shape[0]
    np.testing.assert_allclose((u**2 / v).mean(axis=0), 1.0, atol=5 * np.sqrt(2 / S))
    # rows 0 and 2 belong to different new rats: independent effects; rows 0 and 1 share one
    r01 = np.corrcoef(u[:, 0], u[:, 1])[0, 1]
    r02 = np.corrcoef(u[:, 0], u[:, 2])[0, 1]
    assert abs(r02) < 5 / np.sqrt(S)
    assert r01 > 0.5
    assert np.all(rats_fit.predict(new, groups="new", kind="link", seed=4) == eta)


def test_predict_responses(cbpp_fit):
    df = bglmm.datasets.load("cbpp")
    rep = cbpp_fit.predict(kind="response", draws=50, seed=1)
    assert rep.shape == (50, 56)
    assert np.all(rep <= df["size"].to_numpy()) and np.all(rep >= 0)
    assert np.all(rep == np.round(rep))
    new = pd.DataFrame({"period": [1, 4], "herd": [1, 1]})
    # no trials column, and the response's own columns are absent from the new rows
    with pytest.raises(ValueError, match=r"cannot be taken from newdata.*pass trials= \("):
        cbpp_fit.predict(new, kind="response")
    out = cbpp_fit.predict(new, kind="response", trials=[10, 10000], seed=2)
    assert np.all(out[:, 1] > 0) and np.all(out[:, 0] <= 10)
    with pytest.raises(ValueError, match="groups must be"):
        cbpp_fit.predict(groups="old")
    with pytest.raises(ValueError, match="kind must be"):
        cbpp_fit.predict(kind="probability")


@pytest.mark.filterwarnings("ignore:.*posterior variance of the log predictive density")
@pytest.mark.filterwarnings("ignore:.*have Pareto k")  # short chains
def test_waic_and_loo(cbpp_fit):
    w = cbpp_fit.waic(pointwise=True)
    assert w.n_data_points == 56 and np.isfinite(w.elpd_waic)
    loo = cbpp_fit.loo()
    assert loo.n_data_points == 56 and np.isfinite(loo.elpd_loo)


# ---- priors ------------------------------------------------------------------------------------


def test_default_priors_are_data_scaled(rats_fit):
    p = rats_fit.priors
    df = bglmm.datasets.load("rats")
    m, V = p["beta"].to_arrays(2)
    assert m[0] == pytest.approx(df.weight.mean())
    assert np.sqrt(V[1, 1]) == pytest.approx(2.5 * df.weight.std() / (df.day - 22).std(ddof=0))
    # the separation strategy: half-t(3, 2.5 s_z) per SD, LKJ(2) on the correlation
    assert isinstance(p["cor"], LKJ) and p["cor"].eta == 2.0
    assert p["sd"]["Intercept"].df == 3.0
    assert p["sd"]["Intercept"].scale == pytest.approx(2.5 * df.weight.std())
    assert p["sd"]["center(day)"].scale == pytest.approx(
        2.5 * df.weight.std() / (df.day - 22).std(ddof=0))
    assert isinstance(p["sigma"], InverseGamma)


def test_user_priors_are_used_and_recorded():
    df = bglmm.datasets.load("pulp")
    priors = {"beta": Normal(60, 5), "operator": HalfNormal(1.0), "sigma": InverseGamma(1, 0.1)}
    f = bglmm.fit("bright ~ 1 + (1 | operator)", df, priors=priors, seed=2, **SMALL)
    assert f.priors == {"beta": priors["beta"], "sd": priors["operator"], "sigma": priors["sigma"]}
    a = lmm(df.bright, np.ones((20, 1)), None, df.operator, prior=priors["beta"],
            cov_prior=priors["operator"], sigma_prior=priors["sigma"], seed=2, **SMALL)
    np.testing.assert_array_equal(f.posterior["sd_operator__Intercept"], a.posterior["sd_Intercept"])


def test_covariance_priors_by_key():
    """'sd' (one prior, or per term) with 'cor' builds LKJ + SD priors; 'Sigma' takes an
    inverse-Wishart instead; the factor's name works as a key."""
    rats = bglmm.datasets.load("rats")
    kw = dict(seed=1, chains=1, draws=20, warmup=20, progress=False, check=False)
    f = bglmm.fit(RATS, rats, priors={"sd": {"Intercept": HalfNormal(30.0)}, "cor": LKJ(4)}, **kw)
    assert f.priors["sd"]["Intercept"] == HalfNormal(30.0) and f.priors["cor"].eta == 4
    assert isinstance(f.priors["sd"]["center(day)"], HalfStudentT)  # the default stays
    g = bglmm.fit(RATS, rats, priors={"rat": InverseWishart(3, np.eye(2))}, **kw)
    assert "sd" not in g.priors and "cor" not in g.priors and g.priors["Sigma"].df == 3
    h = bglmm.fit(RATS, rats, priors={"rat": LKJ(1.5, sd=HalfNormal(20.0))}, **kw)
    assert h.priors["cor"].eta == 1.5 and h.priors["sd"]["center(day)"] == HalfNormal(20.0)


def test_prior_errors():
    rats = bglmm.datasets.load("rats")
    kw = dict(seed=1, chains=1, draws=5, warmup=5, progress=False)
    with pytest.raises(ValueError, match="unknown prior key 'tau'"):
        bglmm.fit(RATS, rats, priors={"tau": HalfNormal(1)}, **kw)
    with pytest.raises(ValueError, match=r"unknown random term\(s\) \['day'\]"):
        bglmm.fit(RATS, rats, priors={"sd": {"day": HalfStudentT(3, 1)}}, **kw)
    with pytest.raises(TypeError, match="must be a bglmm.priors.LKJ"):
        bglmm.fit(RATS, rats, priors={"cor": HalfNormal(1)}, **kw)
    with pytest.raises(ValueError, match="no correlations"):
        bglmm.fit("weight ~ 1 + (1 | rat)", rats, priors={"cor": LKJ(2)}, **kw)
    with pytest.raises(ValueError, match="mean has 3 values but there are 2 coefficients"):
        bglmm.fit(RATS, rats, priors={"beta": Normal([0, 0, 0], 1)}, **kw)
    with pytest.raises(TypeError, match="must be a bglmm.priors.Normal"):
        bglmm.fit(RATS, rats, priors={"beta": HalfNormal(1)}, **kw)
    with pytest.raises(ValueError, match="needs a random-effects term"):
        bglmm.fit("weight ~ day", rats, priors={"sd": HalfNormal(1)}, **kw)
    with pytest.raises(ValueError, match="gaussian and student families only"):
        bglmm.fit("weight ~ day", rats, "poisson", priors={"sigma": InverseGamma(1, 1)}, **kw)


# ---- progress bar ------------------------------------------------------------------------------


def test_progress_bar_only_on_a_terminal(capsys, monkeypatch):
    df = bglmm.datasets.load("rats")
    bglmm.fit(RATS, df, seed=1, chains=1, draws=50, warmup=50, threads=1, progress=True,
              check=False)
    assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal: silent
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bglmm.fit(RATS, df, seed=1, chains=1, draws=50, warmup=50, threads=1, progress=True,
              check=False)
    assert "sampling" in capsys.readouterr().err
    bglmm.fit(RATS, df, seed=1, chains=1, draws=50, warmup=50, threads=1, progress=False,
              check=False)
    assert capsys.readouterr().err == ""


def test_unknown_sampler_option_is_a_clear_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        bglmm.fit("weight ~ day", bglmm.datasets.load("rats"), bogus=1, **SMALL)


def test_nitrofen_interaction_glmm():
    wide = bglmm.datasets.load("nitrofen")
    wide["flea"] = np.arange(len(wide))
    long = wide.melt(id_vars=["flea", "conc"], value_vars=["brood1", "brood2", "brood3"],
                     var_name="brood", value_name="live")
    f = bglmm.fit("live ~ scale(conc) * brood + (1 | flea)", long, "poisson", seed=1, **SMALL)
    assert list(f.coords["coef"]) == ["Intercept", "scale(conc)", "brood[brood2]",
                                      "brood[brood3]", "scale(conc):brood[brood2]",
                                      "scale(conc):brood[brood3]"]
    assert len(f.ranef()) == 50 and f.kind == "glmm"
    # with the canonical log link and an intercept the score equations give sum(mu) = sum(y) at
    # the mode; the posterior mean of sum(mu) stays within a few percent of it
    mu = f.predict(kind="mean").mean(axis=0)
    assert abs(mu.sum() - long.live.sum()) < 0.05 * long.live.sum()


def test_cbind_response_gives_the_trials_of_new_rows():
    """For cbind(s, f) and s / n responses, predict(kind="response") on new rows takes the
    trials from the same columns (as brms does), instead of demanding trials=."""
    d = bglmm.datasets.load("cbpp")
    new = d.head(6).copy()
    new["size"] = [1, 2, 3, 50, 60, 70]
    new["incidence"] = 0
    for formula in ["cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    "incidence / size ~ period + (1 | herd)"]:
        fit = bglmm.fit(formula, d, family="binomial", chains=2, draws=100, warmup=100, seed=1,
                        progress=False, check=False)
        y = fit.predict(new, kind="response", seed=2)
        assert y.shape[1] == 6
        assert np.all(y <= new["size"].to_numpy()) and np.all(y >= 0)
        assert y[:, 3:].max() > 3  # 50-70 trials, not one
        # an explicit trials= still wins
        assert fit.predict(new, kind="response", trials=np.ones(6), seed=2).max() <= 1
    with pytest.raises(ValueError, match="trials"):
        fit.predict(new.drop(columns="size"), kind="response")
