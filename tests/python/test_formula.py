"""Formula parsing and design matrices (bglmm.formula.build_spec): every formula feature, and
the errors that name the culprit. No sampling here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bglmm
from bglmm.formula import FormulaError, build_spec


@pytest.fixture
def df():
    rng = np.random.default_rng(3)
    n = 24
    return pd.DataFrame({
        "y": rng.normal(size=n),
        "count": rng.poisson(3.0, size=n),
        "size": np.full(n, 10),
        "x": np.linspace(0.0, 2.3, n),
        "z": rng.normal(size=n),
        "a": np.tile(["lo", "mid", "hi"], n // 3),
        "g": np.repeat([f"g{k}" for k in range(6)], 4),
        "h": np.tile([1, 2], n // 2),
        "e": rng.uniform(1.0, 3.0, size=n),
    })


def nitrofen_long() -> pd.DataFrame:
    wide = bglmm.datasets.load("nitrofen")
    wide["flea"] = np.arange(len(wide))
    long = wide.melt(id_vars=["flea", "conc"], value_vars=["brood1", "brood2", "brood3"],
                     var_name="brood", value_name="live")
    return long


# ---- fixed part --------------------------------------------------------------------------------


def test_numeric_predictors_and_intercept(df):
    s = build_spec("y ~ x + z", df)
    assert s.fixed_names == ["Intercept", "x", "z"]
    np.testing.assert_array_equal(s.X, np.column_stack([np.ones(len(df)), df.x, df.z]))
    np.testing.assert_array_equal(s.y, df.y)
    assert s.random == [] and s.trials is None and s.offset is None
    s0 = build_spec("y ~ 0 + x", df)
    assert s0.fixed_names == ["x"]
    assert build_spec("y ~ x - 1", df).fixed_names == ["x"]


def test_categorical_predictor_treatment_coding(df):
    s = build_spec("y ~ a", df)
    # sorted levels hi < lo < mid: 'hi' is the reference
    assert s.fixed_names == ["Intercept", "a[lo]", "a[mid]"]
    np.testing.assert_array_equal(s.X[:, 1], (df.a == "lo").to_numpy(float))
    np.testing.assert_array_equal(s.X[:, 2], (df.a == "mid").to_numpy(float))
    c = build_spec("y ~ C(h)", df)  # a numeric column made categorical
    assert c.fixed_names == ["Intercept", "C(h)[2]"]


def test_interaction_conc_times_brood():
    long = nitrofen_long()
    s = build_spec("live ~ conc * brood + (1 | flea)", long, "poisson")
    assert s.fixed_names == ["Intercept", "conc", "brood[brood2]", "brood[brood3]",
                             "conc:brood[brood2]", "conc:brood[brood3]"]
    b2 = (long.brood == "brood2").to_numpy(float)
    np.testing.assert_array_equal(s.X[:, 4], long.conc.to_numpy() * b2)
    assert s.random[0].factor == "flea" and s.random[0].groups.nunique() == 50


def test_poly_matches_r():
    d = pd.DataFrame({"y": [1.0, 2, 3, 4, 5], "x": [1.0, 2, 3, 4, 5]})
    s = build_spec("y ~ poly(x, 2)", d)
    # R: poly(1:5, 2) — closed form: (x - 3) / sqrt(10) and (x^2 - 6x + 7) / sqrt(14)
    x = d.x.to_numpy()
    np.testing.assert_allclose(s.X[:, 1], (x - 3) / np.sqrt(10), atol=1e-12)
    np.testing.assert_allclose(s.X[:, 2], (x**2 - 6 * x + 7) / np.sqrt(14), atol=1e-12)


def test_poly4_orthonormal_on_tumors():
    tumors = bglmm.datasets.load("tumors")
    s = build_spec("count ~ poly(location, 4) + (1 + poly(location, 4) | mouse)", tumors,
                   "poisson")
    P = s.X[:, 1:]
    np.testing.assert_allclose(P.T @ P, np.eye(4), atol=1e-10)  # orthonormal columns
    np.testing.assert_allclose(P.sum(axis=0), 0.0, atol=1e-10)  # orthogonal to the intercept
    # the same column space as raw powers of location
    raw = np.column_stack([tumors.location**k for k in range(5)])
    coef, *_ = np.linalg.lstsq(raw, P, rcond=None)
    np.testing.assert_allclose(raw @ coef, P, atol=1e-8)
    block = s.random[0]
    assert block.q == 5 and block.terms[0] == "Intercept"
    np.testing.assert_array_equal(block.Z, s.X)


def test_center_and_scale_are_stateful(df):
    s = build_spec("y ~ center(x) + scale(z)", df)
    np.testing.assert_allclose(s.X[:, 1], df.x - df.x.mean())
    # formulae's scale() divides by the population sd (ddof=0), R's scale() by ddof=1
    np.testing.assert_allclose(s.X[:, 2], (df.z - df.z.mean()) / df.z.std(ddof=0))
    new = pd.DataFrame({"x": [0.0, 10.0], "z": [0.0, 1.0]})
    d = s.new_design(new)
    # new rows use the mean and sd of the fitting data
    np.testing.assert_allclose(d["X"][:, 1], new.x - df.x.mean())
    np.testing.assert_allclose(d["X"][:, 2], (new.z - df.z.mean()) / df.z.std(ddof=0))


def test_offsets(df):
    s = build_spec("count ~ x + offset(np.log(e))", df, "poisson")
    assert s.fixed_names == ["Intercept", "x"]
    np.testing.assert_allclose(s.offset, np.log(df.e))
    s2 = build_spec("count ~ x", df, "poisson", offset="e")
    np.testing.assert_allclose(s2.offset, df.e)
    np.testing.assert_allclose(s.new_design(df.iloc[:3])["offset"], np.log(df.e[:3]))


# ---- random part -------------------------------------------------------------------------------


def test_correlated_random_slope(df):
    s = build_spec("y ~ x + (1 + x | g)", df)
    (block,) = s.random
    assert block.factor == "g" and block.terms == ["Intercept", "x"]
    np.testing.assert_array_equal(block.Z, np.column_stack([np.ones(len(df)), df.x]))
    assert block.groups.tolist() == df.g.tolist()
    assert block.label == "(1 + x | g)"
    # lme4: (x | g) includes the intercept
    assert build_spec("y ~ x + (x | g)", df).random[0].terms == ["Intercept", "x"]
    assert build_spec("y ~ x + (0 + x | g)", df).random[0].terms == ["x"]


def test_interaction_factor(df):
    s = build_spec("y ~ x + (1 | g:h)", df)
    assert s.random[0].factor == "g:h"
    assert s.random[0].groups.iloc[0] == f"{df.g[0]}:{df.h[0]}"


def test_several_factors_are_parsed_and_refused_by_fit(df):
    s = build_spec("y ~ x + (1 | g) + (1 | h)", df)
    assert [b.factor for b in s.random] == ["g", "h"]
    with pytest.raises(ValueError, match="one grouping factor"):
        bglmm.fit("y ~ x + (1 | g) + (1 | h)", df, chains=1, draws=5, warmup=5, progress=False)


def test_nested_factor_gives_two_blocks(df):
    s = build_spec("y ~ x + (1 | g/h)", df)
    assert [b.factor for b in s.random] == ["g", "g:h"]


# ---- responses ---------------------------------------------------------------------------------


def test_binomial_response_forms():
    cbpp = bglmm.datasets.load("cbpp")
    forms = [
        ("cbind(incidence, size - incidence) ~ C(period) + (1 | herd)", {}),
        ("incidence / size ~ C(period) + (1 | herd)", {}),
        ("incidence | trials(size) ~ C(period) + (1 | herd)", {}),
        ("incidence ~ C(period) + (1 | herd)", {"trials": "size"}),
        ("incidence ~ C(period) + (1 | herd)", {"trials": cbpp["size"].to_numpy()}),
        # arguments are Python expressions, not formula operations
        ("incidence / (size + 0) ~ C(period) + (1 | herd)", {}),
        ("incidence | trials(size * 1) ~ C(period) + (1 | herd)", {}),
    ]
    for formula, kw in forms:
        s = build_spec(formula, cbpp, "binomial", **kw)
        np.testing.assert_array_equal(s.y, cbpp.incidence)
        np.testing.assert_array_equal(s.trials, cbpp["size"])
        assert s.fixed_names == ["Intercept", "C(period)[2]", "C(period)[3]", "C(period)[4]"]


def test_known_standard_errors():
    es = bglmm.datasets.load("eight_schools")
    for s in (build_spec("y | se(sigma) ~ 1 + (1 | school)", es),
              build_spec("y ~ 1 + (1 | school)", es, se="sigma")):
        np.testing.assert_array_equal(s.se, es.sigma)
        assert s.random[0].groups.tolist() == list("ABCDEFGH")


def test_response_expression(df):
    s = build_spec("np.exp(y) ~ x", df)
    np.testing.assert_allclose(s.y, np.exp(df.y))


def test_bernoulli_gets_unit_trials(df):
    d = df.assign(hit=(df.y > 0).astype(int))
    s = build_spec("hit ~ x", d, "bernoulli")
    np.testing.assert_array_equal(s.trials, np.ones(len(d)))


# ---- errors naming the culprit -----------------------------------------------------------------


@pytest.mark.parametrize(
    "formula, family, match",
    [
        ("y ~ xx + z", "gaussian", r"'xx'.*not a column.*did you mean 'x'"),
        ("yy ~ x", "gaussian", r"response 'yy' uses 'yy'.*did you mean 'y'"),
        ("y ~ x + (1 | gg)", "gaussian", r"random term \(1 \| gg\).*grouping factor 'gg'.*did you mean 'g'"),
        ("y ~ x + (1 + x | nothere)", "gaussian", r"grouping factor 'nothere' is not a column"),
        ("cbind(count, size - count) ~ x", "poisson", r"binomial count.*family is 'poisson'.*family='binomial'"),
        ("count / size ~ x", "gaussian", r"proportion.*family is 'gaussian'"),
        ("count ~ x", "binomial", r"family 'binomial' needs the number of trials"),
        ("y ~ x", "poisson", r"response 'y' does not fit family poisson\(log\)"),
        ("count ~ x", "bernoulli", r"response 'count' does not fit family bernoulli"),
        ("y ~ x + (1 | g) + (0 + x | g)", "gaussian", r"same factor 'g'.*\(1 \+ x \| g\)"),
        ("y ~ x + (1 + x || g)", "gaussian", r"'\|\|'"),
        ("y ~ 0 + (1 | g)", "gaussian", r"no fixed effects"),
        ("y ~ x + x", "gaussian", None),  # formulae merges duplicates: not an error
        ("y ~ x +", "gaussian", r"cannot parse"),
        ("~ x", "gaussian", r"no response"),
        ("y + x", "gaussian", r"no response"),
        ("y ~ x + (1 | g", "gaussian", r"cannot parse"),
    ],
)
def test_bad_formulas(df, formula, family, match):
    if match is None:
        assert build_spec(formula, df, family).fixed_names == ["Intercept", "x"]
        return
    with pytest.raises(ValueError, match=match):
        build_spec(formula, df, family)


def test_missing_values_are_counted_and_named(df):
    d = df.copy()
    d.loc[[2, 5, 7], "z"] = np.nan
    with pytest.raises(ValueError, match=r"column 'z' of data has 3 missing value"):
        build_spec("y ~ x + z", d)
    d2 = df.copy()
    d2.loc[0, "g"] = None
    with pytest.raises(ValueError, match=r"column 'g' of data has 1 missing value"):
        build_spec("y ~ x + (1 | g)", d2)
    # a column the formula does not use may have missing values
    assert build_spec("y ~ x", d).n == len(d)


def test_argument_errors(df):
    with pytest.raises(TypeError, match="formula must be a string"):
        build_spec(3, df)
    with pytest.raises(TypeError, match="data must be a pandas DataFrame"):
        build_spec("y ~ x", df.to_numpy())
    with pytest.raises(ValueError, match=r"trials='sze' is not a column.*did you mean 'size'"):
        build_spec("count ~ x", df, "binomial", trials="sze")
    with pytest.raises(ValueError, match="already gives the trials"):
        build_spec("count / size ~ x", df, "binomial", trials="size")
    with pytest.raises(ValueError, match="se apply to the gaussian family only|gaussian family only"):
        build_spec("count ~ x", df, "poisson", se="e")
    with pytest.raises(ValueError, match="unknown family"):
        build_spec("y ~ x", df, "gamma-ish")
    with pytest.raises(TypeError, match="categorical"):
        build_spec("a ~ x", df)


def test_new_design_errors(df):
    s = build_spec("y ~ x + a + (1 | g)", df)
    with pytest.raises(ValueError, match=r"newdata lacks column\(s\) \['a'\]"):
        s.new_design(df[["x", "g"]])
    with pytest.raises(TypeError, match="newdata must be a pandas DataFrame"):
        s.new_design({"x": [1.0]})


# ---- robustness: arbitrary formula text never escapes as an unexpected exception ---------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="yxzag~+-*:/|()01 ,", max_size=24))
def test_random_formula_text_raises_only_clear_errors(df, text):
    try:
        build_spec(text, df)
    except (ValueError, TypeError):
        pass
