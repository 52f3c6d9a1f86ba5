"""Property-based fuzzing (Hypothesis) of ``bglmm.fit``: random data frames and random formulas
over one to three grouping factors, every family, tiny MCMC sizes.

Data frames: 1-30 rows; a response for the family (counts, 0/1, proportions with a trials
column, reals), sometimes spoiled (NaN, +-inf, 1e308, negative or non-integer counts, y >
trials); a numeric covariate (finite, extreme, constant, NaN / inf); up to three grouping
columns, each one of: random labels of a few levels, a single level, one row per level
(observation-level), labels nested in another factor (repeating across parents) or crossed with
it, with labels as integers, strings, floats, booleans, categoricals, or with NaN / None.
Formulas: the response, a fixed part (``1``, ``x``, ``0 + x``, ``C(f1)``) and one to three
random terms: ``(1 | f)``, ``(1 + x | f)``, ``(1 + x || f)``, ``(0 + x | f)``, ``(1 | f1/f2)``,
``(1 | f1:f2)``, possibly naming a missing column or a factor twice.

The property: ``bglmm.fit(..., chains=1, draws=5, warmup=5, check=False, progress=False)``
either returns a fit whose every posterior variable has the shape (1, 5, ...) and no NaN or
infinite value, or raises one of ``ACCEPTABLE``:

* ``ValueError`` (including ``bglmm.formula.FormulaError``, a subclass): refused input;
* ``TypeError``: a wrong type (e.g. a non-numeric response);
* ``bglmm.NumericalError``: valid but numerically degenerate data.

Warnings: bglmm's own (``BglmmWarning``: e.g. a single-level factor) and NumPy's numerical
RuntimeWarnings are tolerated; any other warning category fails. Anything else (another
exception type, a crash, a hang) is a bug. Derandomized, ``max_examples`` set for about a
minute on a loaded 2-core machine. Longer runs: ``python validation/fuzz.py --minutes 30``
(its ``fit`` target is this file's strategy and property).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import bglmm

ACCEPTABLE = (ValueError, TypeError, bglmm.NumericalError)
DRAWS = 5

CI_SETTINGS = settings(max_examples=1500, deadline=None, derandomize=True, database=None,
                       suppress_health_check=list(HealthCheck))

FAMILIES = ["gaussian", "poisson", "binomial", "bernoulli"]
LINKS = {"gaussian": [None], "poisson": [None], "binomial": [None, "probit", "cloglog"],
         "bernoulli": [None, "probit"]}
SPECIAL = [np.nan, np.inf, -np.inf, 1e308, -1e308, 1e-308, -1.0, 0.5, 1e16]
FINITE = st.one_of(st.floats(-3, 3), st.floats(-1e6, 1e6), st.sampled_from([0.0, 1e-300, 1e12]))


@st.composite
def responses(draw, family: str, n: int):
    """(y, trials or None); mostly valid for the family, sometimes spoiled."""
    trials = None
    if family == "gaussian":
        y = np.array(draw(st.lists(FINITE, min_size=n, max_size=n)), float)
    else:
        top = draw(st.sampled_from([1, 5, 50, 10**6]))
        y = np.array(draw(st.lists(st.integers(0, top), min_size=n, max_size=n)), float)
        if family == "bernoulli":
            y = np.minimum(y, 1.0)
        if family == "binomial":
            trials = y + np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), float)
            trials = np.maximum(trials, 1.0)
    if draw(st.integers(0, 5)) == 0:  # spoil one value
        i = draw(st.integers(0, n - 1))
        y[i] = draw(st.sampled_from(SPECIAL))
    if trials is not None and draw(st.integers(0, 7)) == 0:
        trials[draw(st.integers(0, n - 1))] = draw(st.sampled_from([0.0, -1.0, 0.5, np.nan]))
    return y, trials


def _labels(draw, codes: np.ndarray, style: str) -> pd.Series:
    if style == "int":
        return pd.Series(codes)
    if style == "str":
        return pd.Series([f"L{c}" for c in codes])
    if style == "float":
        return pd.Series(codes * 0.5)
    if style == "bool":
        return pd.Series(codes % 2 == 0)
    if style == "category":
        return pd.Series(pd.Categorical([f"c{c}" for c in codes]))
    s = pd.Series(codes.astype(float))  # "nan" / "none": one missing label
    i = draw(st.integers(0, len(codes) - 1))
    s = s.astype(object) if style == "none" else s
    s.iloc[i] = None if style == "none" else np.nan
    return s


@st.composite
def factor_columns(draw, n: int, k: int) -> dict[str, pd.Series]:
    """k grouping columns f1..fk over n rows, each of a random kind."""
    cols: dict[str, pd.Series] = {}
    codes_by: list[np.ndarray] = []
    for j in range(k):
        kind = draw(st.sampled_from(["random", "random", "one-level", "one-row", "nested",
                                     "crossed"] if j else ["random", "random", "one-level",
                                                           "one-row"]))
        if kind == "one-level":
            codes = np.zeros(n, int)
        elif kind == "one-row":
            codes = np.arange(n)
        elif kind == "nested":  # children numbered within each parent: labels repeat
            parent = codes_by[draw(st.integers(0, j - 1))]
            codes = np.zeros(n, int)
            for p in np.unique(parent):
                rows = np.flatnonzero(parent == p)
                codes[rows] = np.arange(rows.size) % draw(st.integers(1, 3))
        elif kind == "crossed":
            codes = np.arange(n) % draw(st.integers(2, 4))
        else:
            m = draw(st.integers(1, max(1, min(6, n))))
            codes = np.array(draw(st.lists(st.integers(0, m - 1), min_size=n, max_size=n)))
        codes_by.append(codes)
        style = draw(st.sampled_from(["int", "str", "str", "float", "bool", "category", "nan",
                                      "none"]))
        cols[f"f{j + 1}"] = _labels(draw, codes, style)
    return cols


RANDOM_TERMS = ["(1 | {a})", "(1 | {a})", "(1 + x | {a})", "(1 + x || {a})", "(0 + x | {a})",
                "(1 | {a}/{b})", "(1 | {a}:{b})"]


@st.composite
def fit_calls(draw):
    n = draw(st.integers(1, 30))
    family = draw(st.sampled_from(FAMILIES))
    link = draw(st.sampled_from(LINKS[family]))
    y, trials = draw(responses(family, n))
    k = draw(st.integers(1, 3))
    data = {"y": y}
    if trials is not None:
        data["n"] = trials
    x_kind = draw(st.sampled_from(["normal", "normal", "extreme", "constant", "spoiled"]))
    if x_kind == "constant":
        x = np.full(n, 2.0)
    elif x_kind == "extreme":
        x = np.array(draw(st.lists(FINITE, min_size=n, max_size=n)), float)
    else:
        x = np.array(draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n)), float)
        if x_kind == "spoiled":
            x[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    data["x"] = x
    frame = pd.DataFrame(data)
    for name, col in draw(factor_columns(n, k)).items():
        frame[name] = col.to_numpy() if not isinstance(col.dtype, pd.CategoricalDtype) else col
    names = [f"f{j + 1}" for j in range(k)]
    terms = []
    for j in range(draw(st.integers(1, 3))):
        t = draw(st.sampled_from(RANDOM_TERMS))
        a = draw(st.sampled_from(names + (["nope"] if draw(st.integers(0, 15)) == 0 else [])))
        b = draw(st.sampled_from(names))
        terms.append(t.format(a=a, b=b))
    fixed = draw(st.sampled_from(["1", "x", "x", "0 + x", "C(f1)"]))
    lhs = "y" if family != "binomial" or draw(st.booleans()) else "y | trials(n)"
    formula = f"{lhs} ~ {fixed} + " + " + ".join(terms)
    kwargs = {"trials": "n"} if family == "binomial" and lhs == "y" else {}
    weights = draw(st.sampled_from([None, None, "valid", "zeros", "spoiled"]))
    if weights is not None:  # case weights, sometimes with zeros or a bad value
        w = np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=n,
                                   max_size=n)), float)
        if weights == "zeros":
            w[:] = 0.0
        elif weights == "spoiled":
            w[draw(st.integers(0, n - 1))] = draw(st.sampled_from([-1.0, np.nan, np.inf]))
        frame["w"] = w
        kwargs["weights"] = "w"
    return formula, frame, family, link, kwargs, draw(st.integers(0, 2**32))


def prop_fit(call):
    formula, frame, family, link, kwargs, seed = call
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = bglmm.fit(formula, frame, family, link, chains=1, draws=DRAWS, warmup=DRAWS,
                            seed=seed, threads=1, progress=False, check=False, **kwargs)
        except ACCEPTABLE as err:
            assert str(err), "an exception without a message"
            return
    # bglmm's own warnings and NumPy's numerical RuntimeWarnings only
    assert all(issubclass(w.category, RuntimeWarning) for w in caught), \
        [f"{w.category.__name__}: {w.message}" for w in caught]
    for name, v in fit.posterior.items():
        v = np.asarray(v)
        assert v.shape[:2] == (1, DRAWS), (name, v.shape)
        assert np.all(np.isfinite(v)), f"{name} has non-finite draws"
    # every factor (f1, or f1:f2 for a nested / interaction term) has one level per distinct
    # combination of its columns' values in the data
    for blk in fit.spec.random:
        distinct = len(frame[blk._factor_vars].drop_duplicates())
        assert fit.posterior[f"b_{blk.factor}"].shape[2] == distinct, (blk.factor, distinct)


test_fuzz_fit = CI_SETTINGS(given(fit_calls())(prop_fit))

def test_fuzz_property_detects_a_broken_fit(monkeypatch):
    # negative control: the same strategy and property must catch a fit that raises an
    # unexpected exception type on nested formulas, and one that returns NaN draws
    real = bglmm.fit

    def raises_on_nested(formula, *args, **kwargs):
        if "/" in formula:
            raise KeyError("boom")
        return real(formula, *args, **kwargs)

    def nan_draws(*args, **kwargs):
        f = real(*args, **kwargs)
        f.posterior["beta"][...] = np.nan
        return f

    # (no shrinking: the first falsifying example is enough here)
    quick = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck),
                     phases=[Phase.explicit, Phase.reuse, Phase.generate])
    for broken, error in [(raises_on_nested, KeyError), (nan_draws, AssertionError)]:
        monkeypatch.setattr(bglmm, "fit", broken)
        with pytest.raises(error):
            quick(given(fit_calls())(prop_fit))()
    monkeypatch.setattr(bglmm, "fit", real)


# (strategy, property) for validation/fuzz.py's long runs
TARGETS = {"fit": (fit_calls(), prop_fit)}
