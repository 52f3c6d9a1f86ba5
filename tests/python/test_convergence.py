"""The convergence check of every entry point (bglmm.glm, lmm, hierarchical_normal, glmm and
bglmm.fit): exactly one ConvergenceWarning naming the parameters, pointing at the caller's line
(not at bglmm's own code), none with check=False or for an interrupted fit; Metropolis moves
that accepted nothing.

The checked fitting calls are on one line (the line after ``line = _next_line()``, or a
lambda's), so that a warning's (filename, lineno) can be compared with the caller's.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
import pytest

import bglmm
from bglmm import _core

SHORT = dict(chains=2, draws=30, warmup=30, threads=1)  # far too short to converge


def _next_line() -> int:
    return inspect.currentframe().f_back.f_lineno + 1


def _of(caught, category):
    return [w for w in caught if issubclass(w.category, category)]


def _assert_points_at(w, line):
    assert (w.filename, w.lineno) == (__file__, line), (w.filename, w.lineno, str(w.message))


@pytest.fixture(scope="module")
def poisson_data():
    rng = np.random.default_rng(3)
    n = 200
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(0.3 + 0.5 * x)).astype(float)
    return pd.DataFrame({"Intercept": 1.0, "x": x}), y


@pytest.fixture(scope="module")
def glmm_data():
    rng = np.random.default_rng(5)
    m, k = 30, 6
    g = np.repeat(np.arange(m), k)
    x = rng.normal(size=m * k)
    y = rng.poisson(np.exp(0.2 + rng.normal(0, 0.7, m)[g] + 0.4 * x)).astype(float)
    return pd.DataFrame({"Intercept": 1.0, "x": x}), y, g


# ---- one warning, at the caller's line, naming the parameters ----------------------------------


def test_glm_warns_once_at_the_callers_line(poisson_data):
    X, y = poisson_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        bglmm.glm(X, y, "poisson", sampler="random_walk", seed=1, **SHORT)
    conv = _of(caught, bglmm.ConvergenceWarning)
    assert len(conv) == 1 and len(caught) == 1
    _assert_points_at(conv[0], line)
    assert "beta[Intercept]" in str(conv[0].message) and "beta[x]" in str(conv[0].message)


def test_lmm_warns_once_at_the_callers_line():
    rats = bglmm.datasets.load("rats")
    X = pd.DataFrame({"Intercept": 1.0, "day": rats.day - rats.day.mean()})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        bglmm.lmm(rats.weight, X, X, rats.rat, seed=1, chains=2, draws=20, warmup=5, threads=1)
    conv = _of(caught, bglmm.ConvergenceWarning)
    assert len(conv) == 1 and len(caught) == 1
    _assert_points_at(conv[0], line)
    text = str(conv[0].message)
    assert "R-hat > 1.01" in text or "bulk ESS" in text
    assert "b[" not in text  # the per-group effects are not checked


def test_hierarchical_normal_gibbs_warns_once_at_the_callers_line():
    es = bglmm.datasets.load("eight_schools")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        bglmm.hierarchical_normal(es.y, es.school, se=es.sigma, sampler="gibbs", seed=1, **SHORT)
    conv = _of(caught, bglmm.ConvergenceWarning)
    assert len(conv) == 1 and len(caught) == 1
    _assert_points_at(conv[0], line)
    assert "tau" in str(conv[0].message)
    assert "theta" not in str(conv[0].message)


def test_glmm_warns_once_at_the_callers_line(glmm_data):
    X, y, g = glmm_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        bglmm.glmm(y, X, None, g, "poisson", seed=1, **SHORT)
    conv = _of(caught, bglmm.ConvergenceWarning)
    assert len(conv) == 1
    for w in caught:  # the acceptance warnings too
        assert issubclass(w.category, bglmm.BglmmWarning)
        _assert_points_at(w, line)
    assert "sd_Intercept" in str(conv[0].message) or "beta[" in str(conv[0].message)


FORMULAS = [
    ("glm", "fledged ~ age", "sparrows", "poisson", {}),
    ("lmm", "weight ~ day + (1 | rat)", "rats", "gaussian", {}),
    ("hierarchical_normal", "y | se(sigma) ~ 1 + (1 | school)", "eight_schools", "gaussian",
     {"sampler": "gibbs"}),
    ("glmm", "cbind(incidence, size - incidence) ~ C(period) + (1 | herd)", "cbpp", "binomial",
     {}),
]


@pytest.mark.parametrize("kind, formula, data, family, options", FORMULAS,
                         ids=[f[0] for f in FORMULAS])
def test_fit_warns_once_at_the_callers_line(kind, formula, data, family, options):
    df = bglmm.datasets.load(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        fit = bglmm.fit(formula, df, family, seed=2, progress=False, **SHORT, **options)
    assert fit.kind == kind
    conv = _of(caught, bglmm.ConvergenceWarning)
    assert len(conv) == 1, [str(w.message) for w in caught]  # the inner sampler stays silent
    for w in caught:
        _assert_points_at(w, line)
    # named as in fit.summary(), and nothing else
    rows = list(fit.summary().index)
    text = str(conv[0].message)
    named = [r for r in rows if r in text]
    assert named, text
    assert "b[" not in text and "theta" not in text


def test_user_function_gets_the_warning():
    df = bglmm.datasets.load("sparrows")

    def my_analysis():
        return bglmm.fit("fledged ~ age", df, "poisson", seed=2, progress=False, **SHORT)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        my_analysis()
    (w,) = caught
    assert w.filename == __file__
    assert w.lineno == my_analysis.__code__.co_firstlineno + 1


def test_check_false_silences_every_entry_point(poisson_data, glmm_data):
    X, y = poisson_data
    Xg, yg, g = glmm_data
    es = bglmm.datasets.load("eight_schools")
    rats = bglmm.datasets.load("rats")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bglmm.glm(X, y, "poisson", sampler="random_walk", seed=1, check=False, **SHORT)
        bglmm.lmm(rats.weight, np.ones((150, 1)), None, rats.rat, seed=1, check=False, **SHORT)
        bglmm.hierarchical_normal(es.y, es.school, se=es.sigma, sampler="gibbs", seed=1,
                                  check=False, **SHORT)
        bglmm.glmm(yg, Xg, None, g, "poisson", seed=1, check=False, **SHORT)
        for _, formula, data, family, options in FORMULAS:
            bglmm.fit(formula, bglmm.datasets.load(data), family, seed=2, progress=False,
                      check=False, **SHORT, **options)
    assert [str(w.message) for w in caught] == []


def test_converged_fits_do_not_warn(poisson_data):
    X, y = poisson_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bglmm.glm(X, y, "poisson", sampler="independence", seed=1, threads=1)
        fit = bglmm.fit("weight ~ day + (1 | rat)", bglmm.datasets.load("rats"), seed=1,
                        progress=False, threads=1)
    assert [str(w.message) for w in caught] == []
    assert fit.check_convergence() == []


# ---- interrupted fits: InterruptedWarning only ---------------------------------------------------


def _interrupting(real):
    def run(*args, **kwargs):
        out = real(*args, **kwargs)
        out["interrupted"] = True  # as if Ctrl-C came just after the last draw
        return out
    return run


@pytest.mark.parametrize("entry", ["lmm", "glmm", "fit"])
def test_interrupted_fits_do_not_check_convergence(monkeypatch, glmm_data, entry):
    Xg, yg, g = glmm_data
    rats = bglmm.datasets.load("rats")
    monkeypatch.setattr(_core, "lmm_run", _interrupting(_core.lmm_run))
    monkeypatch.setattr(_core, "run_glmm_chain", _interrupting(_core.run_glmm_chain))
    call = {
        "lmm": lambda: bglmm.lmm(rats.weight, np.ones((150, 1)), None, rats.rat, seed=1, **SHORT),
        "glmm": lambda: bglmm.glmm(yg, Xg, None, g, "poisson", seed=1, warmup=0, chains=2,
                                   draws=30, threads=1),  # marginal move off: no warning either
        "fit": lambda: bglmm.fit("weight ~ day + (1 | rat)", rats, seed=1, progress=False, **SHORT),
    }[entry]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = call()
    assert fit.interrupted
    assert [w.category for w in caught] == [bglmm.InterruptedWarning]
    _assert_points_at(caught[0], call.__code__.co_firstlineno)


# ---- Metropolis moves that accepted nothing --------------------------------------------------------


def test_glm_step_that_accepted_nothing_is_reported(poisson_data):
    X, y = poisson_data
    fit = bglmm.glm(X, y, "poisson", sampler="independence", seed=1, threads=1)
    assert fit._stuck_moves() == []
    fit.attrs["acceptance_rate"] = [0.0, 0.6, 0.0, 0.7]  # as a stuck chain would report
    with pytest.warns(bglmm.ConvergenceWarning, match=r"accepted nothing: the "
                      r"Metropolis-Hastings step of beta in chain\(s\) 0, 2"):
        fit.check_convergence()


def test_glmm_moves_that_accepted_nothing_are_reported(glmm_data):
    X, y, g = glmm_data
    fit = bglmm.fit("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": X.x, "g": g}), "poisson",
                    seed=1, progress=False, threads=1)
    inner = fit.inner
    assert inner._stuck_moves() == []
    assert np.all(np.asarray(inner.attrs["marginal_acceptance"]) > 0)
    inner.attrs["marginal_acceptance"] = [0.0, 0.4, 0.5, 0.0]
    inner.attrs["interweave_acceptance"] = [0.9, 0.0, 0.9, 0.9]
    inner.attrs["group_acceptance"] = np.asarray(inner.attrs["group_acceptance"]).copy()
    inner.attrs["group_acceptance"][3, [4, 7]] = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _next_line()
        fit.check_convergence()
    (w,) = caught
    _assert_points_at(w, line)
    text = str(w.message)
    assert "the marginal move of the means and Sigma in chain(s) 0, 3" in text
    assert "the interweaving step of the means and Sigma in chain(s) 1" in text
    assert "Metropolis-Hastings step of group(s) 4, 7 in chain 3" in text
    # moves that did not run (NaN) are not moves that accepted nothing
    inner.attrs["marginal_acceptance"] = [float("nan")] * 4
    inner.attrs["interweave_acceptance"] = [float("nan")] * 4
    assert inner._stuck_moves() == ["the Metropolis-Hastings step of group(s) 4, 7 in chain 3"]
