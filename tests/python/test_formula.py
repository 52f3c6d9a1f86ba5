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


def test_several_factors_are_parsed_and_fitted(df):
    s = build_spec("y ~ x + (1 | g) + (1 | h)", df)
    assert [b.factor for b in s.random] == ["g", "h"]
    fit = bglmm.fit("y ~ x + (1 | g) + (1 | h)", df, chains=1, draws=5, warmup=5,
                    progress=False, check=False)
    assert {"sd_g__Intercept", "sd_h__Intercept"} <= set(fit.posterior)
    assert fit.posterior["b_g"].shape[2:] == (len(s.random[0].levels), 1)


def test_nested_factor_gives_two_blocks(df):
    s = build_spec("y ~ x + (1 | g/h)", df)
    assert [b.factor for b in s.random] == ["g", "g:h"]


# ---- random-effect blocks: codes, levels, several blocks -----------------------------------------


def assert_encoding(block, n):
    """The invariants of a block's factor encoding."""
    assert block.codes.dtype == np.int64 and block.codes.shape == (n,)
    assert block.Z.dtype == np.float64 and block.Z.shape == (n, block.q)
    assert block.Z.flags.c_contiguous
    codes, levels = pd.factorize(block.groups, sort=True)
    np.testing.assert_array_equal(block.codes, codes)
    assert block.levels == levels.tolist()
    assert block.n_levels == len(block.levels)
    assert [block.levels[c] for c in block.codes] == block.groups.tolist()


def test_codes_and_levels_of_one_factor(df):
    s = build_spec("y ~ x + (1 + x | g)", df)
    (b,) = s.random
    assert b.correlated and b.levels == [f"g{k}" for k in range(6)]
    np.testing.assert_array_equal(b.codes, np.repeat(np.arange(6), 4))
    assert_encoding(b, len(df))
    # numeric labels are sorted as numbers, and keep their type
    h = build_spec("y ~ x + (1 | h)", df.assign(h=np.tile([10, 9], 12))).random[0]
    assert h.levels == [9, 10] and h.groups.tolist() == np.tile([10, 9], 12).tolist()
    assert_encoding(h, len(df))


def test_crossed_factors_give_one_block_each(df):
    s = build_spec("y ~ x + (1 | g) + (1 + x | a)", df)
    assert [(b.factor, b.terms) for b in s.random] == [("g", ["Intercept"]), ("a", ["Intercept", "x"])]
    assert [b.label for b in s.random] == ["(1 | g)", "(1 + x | a)"]
    assert all(b.correlated for b in s.random)
    assert s.random[1].levels == ["hi", "lo", "mid"]
    np.testing.assert_array_equal(s.random[1].codes, pd.factorize(df.a, sort=True)[0])
    for b in s.random:
        assert_encoding(b, len(df))


def test_partially_crossed_factors():
    # schools x teachers: most teachers in one school, two teach in two
    d = pd.DataFrame({"school": list("AAAABBBBCC"), "teacher": ["t1", "t1", "t2", "t5", "t3", "t3",
                                                                 "t5", "t2", "t4", "t4"],
                      "y": np.arange(10.0)})
    s = build_spec("y ~ 1 + (1 | school) + (1 | teacher)", d)
    assert [b.factor for b in s.random] == ["school", "teacher"]
    assert [b.n_levels for b in s.random] == [3, 5]
    for b in s.random:
        assert_encoding(b, len(d))


def test_nested_labels_repeating_across_parents_are_distinct_levels():
    # class labels 1, 2 repeat in each school: class 1 of school A is not class 1 of school B
    d = pd.DataFrame({"school": np.repeat(["A", "B", "C"], 4), "cls": np.tile([1, 1, 2, 2], 3),
                      "y": np.arange(12.0), "x": np.linspace(0, 1, 12)})
    s = build_spec("y ~ x + (1 | school/cls)", d)
    a, ab = s.random
    assert (a.factor, ab.factor) == ("school", "school:cls")
    assert a.levels == ["A", "B", "C"]
    assert ab.levels == ["A:1", "A:2", "B:1", "B:2", "C:1", "C:2"]
    np.testing.assert_array_equal(ab.codes, np.repeat(np.arange(6), 2))
    assert ab.groups.tolist()[:4] == ["A:1", "A:1", "A:2", "A:2"]
    for b in s.random:
        assert_encoding(b, len(d))
    # the same blocks as written out, and the same as (1 | cls:school) up to the names
    t = build_spec("y ~ x + (1 | school) + (1 | school:cls)", d)
    assert [b.label for b in t.random] == [b.label for b in s.random] == ["(1 | school)",
                                                                          "(1 | school:cls)"]
    np.testing.assert_array_equal(t.random[1].codes, ab.codes)
    # slopes: one correlated block per factor
    u = build_spec("y ~ x + (1 + x | school/cls)", d)
    assert [(b.factor, b.terms) for b in u.random] == [("school", ["Intercept", "x"]),
                                                       ("school:cls", ["Intercept", "x"])]
    # the nested factor's labels in new data
    new = pd.DataFrame({"school": ["B", "C"], "cls": [2, 1], "x": [0.0, 1.0]})
    (_, la), (_, lab) = s.new_design(new)["blocks"]
    assert la.tolist() == ["B", "C"] and lab.tolist() == ["B:2", "C:1"]


def test_three_way_interaction_factor():
    rng = np.random.default_rng(1)
    n = 300
    d = pd.DataFrame({"p": rng.integers(0, 4, n), "q": rng.choice(["u", "v", "w"], n),
                      "r": rng.integers(0, 5, n).astype(float), "y": rng.normal(size=n)})
    (b,) = build_spec("y ~ 1 + (1 | p:q:r)", d).random
    expected = d.p.astype(str) + ":" + d.q + ":" + d.r.astype(str)
    assert b.groups.tolist() == expected.tolist()
    assert b.n_levels == expected.nunique()
    assert_encoding(b, n)


def test_double_bar_gives_one_uncorrelated_block_per_term(df):
    s = build_spec("y ~ x + (1 + x || g)", df)
    assert [(b.factor, b.terms, b.correlated) for b in s.random] == [
        ("g", ["Intercept"], False), ("g", ["x"], False)]
    assert [b.label for b in s.random] == ["(1 | g)", "(0 + x | g)"]
    np.testing.assert_array_equal(s.random[0].Z, np.ones((len(df), 1)))
    np.testing.assert_array_equal(s.random[1].Z, df[["x"]].to_numpy())
    # one factor, one encoding: the blocks share the arrays
    assert s.random[0].codes is s.random[1].codes and s.random[0].levels is s.random[1].levels
    assert s.random[0].groups is s.random[1].groups
    # (x || g) includes the intercept, as (x | g)
    assert [b.terms for b in build_spec("y ~ x + (x || g)", df).random] == [["Intercept"], ["x"]]
    # no intercept: one block for x, one for z
    assert [b.label for b in build_spec("y ~ x + (0 + x + z || g)", df).random] == [
        "(0 + x | g)", "(0 + z | g)"]


def test_double_bar_keeps_a_categorical_term_as_one_block(df):
    # lme4: (1 + a || g) = (1 | g) + (0 + a | g), and (0 + a | g) codes every level of a
    s = build_spec("y ~ x + (1 + a || g)", df)
    assert [b.terms for b in s.random] == [["Intercept"], ["a[hi]", "a[lo]", "a[mid]"]]
    assert [b.label for b in s.random] == ["(1 | g)", "(0 + a | g)"]
    np.testing.assert_array_equal(s.random[1].Z, pd.get_dummies(df.a).to_numpy(float))
    # while in one correlated block a is coded against the intercept
    (c,) = build_spec("y ~ x + (1 + a | g)", df).random
    assert c.terms == ["Intercept", "a[lo]", "a[mid]"] and c.label == "(1 + a | g)"


def test_double_bar_with_nested_factor(df):
    s = build_spec("y ~ x + (1 + x || g/h)", df)
    assert [(b.factor, b.terms) for b in s.random] == [
        ("g", ["Intercept"]), ("g", ["x"]), ("g:h", ["Intercept"]), ("g:h", ["x"])]
    assert not any(b.correlated for b in s.random)
    assert s.random[0].codes is s.random[1].codes and s.random[2].codes is s.random[3].codes
    assert s.random[2].n_levels == 12


def test_several_blocks_on_one_factor(df):
    s = build_spec("y ~ x + (1 | g) + (0 + x | g)", df)
    assert [b.label for b in s.random] == ["(1 | g)", "(0 + x | g)"]
    assert all(b.correlated for b in s.random)
    assert s.random[0].codes is s.random[1].codes
    # a block repeated as a whole is one block (as formulae merges x + x)
    assert len(build_spec("y ~ x + (1 | g) + (1 | g)", df).random) == 1
    assert [b.label for b in build_spec("y ~ x + (1 | g) + (1 + x || g)", df).random] == [
        "(1 | g)", "(0 + x | g)"]
    # (1 + x | g) stays one correlated block
    (b,) = build_spec("y ~ x + (1 + x | g)", df).random
    assert b.correlated and b.q == 2


def test_observation_level_and_single_level_factors(df):
    d = df.assign(obs=np.arange(len(df)), one="all")
    s = build_spec("count ~ x + (1 | obs)", d, "poisson")
    (b,) = s.random
    assert b.n_levels == len(d)
    np.testing.assert_array_equal(b.codes, np.arange(len(d)))
    (c,) = build_spec("y ~ x + (1 | one)", d).random  # the sampler warns; not an error here
    assert c.levels == ["all"] and not c.codes.any()


def test_new_design_of_every_block(df):
    s = build_spec("y ~ x + (1 + center(x) | g) + (0 + z || a) + (1 | g:h)", df)
    assert [b.label for b in s.random] == ["(1 + center(x) | g)", "(0 + z | a)", "(1 | g:h)"]
    new = pd.DataFrame({"x": [0.0, 5.0], "z": [1.0, -2.0], "g": ["g1", "g9"], "a": ["lo", "hi"],
                        "h": [2, 1]})
    blocks = s.new_design(new)["blocks"]
    assert len(blocks) == 3
    (z0, l0), (z1, l1), (z2, l2) = blocks
    # center() keeps the mean of the fitting data
    np.testing.assert_allclose(z0, np.column_stack([np.ones(2), new.x - df.x.mean()]))
    np.testing.assert_allclose(z1, new[["z"]].to_numpy())
    assert isinstance(l0, pd.Series) and l0.tolist() == ["g1", "g9"]
    assert l1.tolist() == ["lo", "hi"] and l2.tolist() == ["g1:2", "g9:1"]
    # and the fitting data through new_design gives the fitted Z and labels back
    for (z, lab), b in zip(s.new_design(df)["blocks"], s.random):
        np.testing.assert_allclose(z, b.Z)
        assert lab.tolist() == b.groups.tolist()


def test_large_factor_builds_without_a_rows_by_levels_matrix():
    import tracemalloc

    rng = np.random.default_rng(0)
    levels, n = 200_000, 400_000
    d = pd.DataFrame({"g": rng.permutation(np.repeat(np.arange(levels), n // levels)),
                      "x": rng.normal(size=n)})
    d["y"] = (rng.random(n) < 0.5).astype(float)
    tracemalloc.start()
    try:
        s = build_spec("y ~ x + (1 | g)", d, "bernoulli")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a dense rows x levels indicator would take 8 * n * levels = 640 GB (even as int8 80 GB).
    # A linear design keeps a few dozen float64 values per row: X (2), Z (1), y, trials,
    # offset, codes, factorize's hash table and temporaries; 512 bytes per row (205 MB) is
    # generous for that and ~3000 x below one byte per (row, level) cell.
    assert peak < 512 * n, f"peak {peak / 1e6:.0f} MB"
    (b,) = s.random
    assert b.n_levels == levels
    np.testing.assert_array_equal(b.codes, d.g.to_numpy())


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
        ("y ~ x + (1 + xx | g)", "gaussian", r"random term \(1 \+ xx \| g\) uses 'xx'.*did you mean 'x'"),
        ("y ~ x + (1 | g) + (1 + x | g)", "gaussian", r"\(1 \| g\) is in two blocks"),
        ("y ~ x + (1 + x | g) + (1 + z | g)", "gaussian",
         r"\(1 \| g\) is in two blocks, \(1 \+ x \| g\) and \(1 \+ z \| g\)"),
        ("y ~ x + (1 | g/gg)", "gaussian", r"grouping factor 'gg' is not a column"),
        ("y || trials(size) ~ x", "gaussian", r"unsupported response"),
        ("y ~ x + (1 | g || h)", "gaussian", r"cannot interpret"),
        ("y ~ 0 + (1 | g)", "gaussian", r"no fixed effects"),
        ("y ~ x + x", "gaussian", None),  # formulae merges duplicates: not an error
        ("y ~ x +", "gaussian", r"cannot parse"),
        ("~ x", "gaussian", r"no response"),
        ("y + x", "gaussian", r"no response"),
        ("y ~ x + (1 | g", "gaussian", r"cannot parse"),
        ("y ~ x | g", "gaussian", r"unexpected '\|'.*in parentheses"),
        ("y ~ x || g", "gaussian", r"unexpected '\|\|'.*in parentheses"),
        ("y ~ x + (1 | g))", "gaussian", r"unexpected '\)'"),
    ],
)
def test_bad_formulas(df, formula, family, match):
    if match is None:
        assert build_spec(formula, df, family).fixed_names == ["Intercept", "x"]
        return
    with pytest.raises(ValueError, match=match):
        build_spec(formula, df, family)


def test_bad_grouping_factors(df):
    d = df.copy()
    d.loc[[1, 3], "h"] = np.nan
    with pytest.raises(ValueError, match=r"column 'h' of data has 2 missing value"):
        build_spec("y ~ x + (1 | g/h)", d)
    with pytest.raises(ValueError, match=r"column 'h' of data has 2 missing value"):
        build_spec("y ~ x + (1 + x || h)", d)
    with pytest.raises(ValueError, match=r"random term \(1 \| gg\): grouping factor 'gg'"):
        build_spec("y ~ x + (1 + x || gg)", df)
    with pytest.raises(ValueError, match=r"random term \(1 \+ zz \| g\) uses 'zz'"):
        build_spec("y ~ x + (1 + zz | g) + (1 | h)", df)
    with pytest.raises(ValueError, match=r"random term \(1 \+ center\(zz\) \| a\) uses 'zz'"):
        build_spec("y ~ x + (1 | g) + (1 + center(zz) | a)", df)


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


# ---- R and patsy habits ------------------------------------------------------------------------


def test_unordered_categorical_keeps_its_category_order(df):
    # the first category is the reference level, as in R (not the alphabetically first)
    df = df.assign(a=pd.Categorical(df.a, categories=["mid", "lo", "hi", "unused"]))
    s = build_spec("y ~ a + (1 | g)", df)
    assert s.fixed_names == ["Intercept", "a[lo]", "a[hi]"]  # unused category dropped
    np.testing.assert_array_equal(s.X[:, 2], (df.a == "hi").to_numpy(float))
    # the design of new rows uses the same coding
    new = s.new_design(df.iloc[:3])
    np.testing.assert_array_equal(new["X"], s.X[:3])
    # also as a random-effect term and as a grouping factor
    r = build_spec("y ~ 1 + (1 + a | g)", df)
    assert r.random[0].terms == ["Intercept", "a[lo]", "a[hi]"]
    grp = df.assign(g=pd.Categorical(df.g, categories=[f"g{k}" for k in (5, 4, 3, 2, 1, 0)]))
    assert build_spec("y ~ 1 + (1 | g)", grp).random[0].levels == ["g5", "g4", "g3", "g2", "g1",
                                                                   "g0"]


def test_C_with_levels_and_with_sum_coding(df):
    s = build_spec("y ~ C(a, levels=['mid', 'hi', 'lo'])", df)
    assert s.fixed_names == ["Intercept", "C(a, levels=['mid', 'hi', 'lo'])[hi]",
                             "C(a, levels=['mid', 'hi', 'lo'])[lo]"]
    np.testing.assert_array_equal(s.X[:, 1], (df.a == "hi").to_numpy(float))
    np.testing.assert_array_equal(s.new_design(df.iloc[:5])["X"], s.X[:5])
    total = build_spec("y ~ C(a, Sum)", df)
    # sum-to-zero coding: the last level (mid, sorted) is -1 in every column
    assert total.X.shape == (24, 3)
    np.testing.assert_array_equal(total.X[(df.a == "mid").to_numpy(), 1:], -1.0)
    with pytest.raises(FormulaError, match=r"literal values .*levels=\['lo', 'mid', 'hi'\]"):
        build_spec("y ~ C(a, levels=[lo, mid])", df)
    with pytest.raises(FormulaError, match=r"x has values \['hi'\] that are not in the levels"):
        build_spec("y ~ C(a, levels=['lo', 'mid'])", df)
    # new rows may hold some of the levels only
    np.testing.assert_array_equal(s.new_design(df[df.a == "hi"])["X"], s.X[df.a == "hi"])
    with pytest.raises(FormulaError, match=r"for R's contr.sum write Sum, as in C\(x, Sum\)"):
        build_spec("y ~ C(a, contr.sum)", df)


@pytest.mark.parametrize("formula", ["y ~ x + C(a, Sum, levels=['mid', 'hi', 'lo'])",
                                     "y ~ x + C(a, levels=['mid', 'hi', 'lo'], Sum)"])
def test_C_with_a_coding_and_levels_predicts_for_some_levels(df, formula):
    s = build_spec(formula, df)
    # sum-to-zero coding in the given order: the last level (lo) is -1 in every column
    assert s.fixed_names == ["Intercept", "x", "C(a, Sum, levels=['mid', 'hi', 'lo'])[mid]",
                             "C(a, Sum, levels=['mid', 'hi', 'lo'])[hi]"]
    np.testing.assert_array_equal(s.X[(df.a == "lo").to_numpy(), 2:], -1.0)
    np.testing.assert_array_equal(s.X[(df.a == "mid").to_numpy(), 2:], [[1.0, 0.0]] * 8)
    # new rows with some of the levels only, also as a Categorical of other categories: the same
    # rows of the design (formulae's C() alone refuses them)
    for rows in (df[df.a == "hi"], df[df.a != "mid"].iloc[::3]):
        np.testing.assert_array_equal(s.new_design(rows)["X"], s.X[rows.index])
        as_cat = rows.assign(a=pd.Categorical(rows.a))
        np.testing.assert_array_equal(s.new_design(as_cat)["X"], s.X[rows.index])


def test_factor_makes_a_column_categorical(df):
    s = build_spec("y ~ factor(h) + (1 + factor(h) | g)", df)
    assert s.fixed_names == ["Intercept", "factor(h)[2]"]
    np.testing.assert_array_equal(s.X[:, 1], (df.h == 2).to_numpy(float))
    assert s.random[0].terms == ["Intercept", "factor(h)[2]"]
    np.testing.assert_array_equal(s.new_design(df.iloc[2:6])["X"], s.X[2:6])
    with pytest.raises(FormulaError, match=r"categorical as it is; write \(1 \| g\)"):
        build_spec("y ~ x + (1 | factor(g))", df)


def test_caret_is_a_power_inside_I_and_crossing_outside(df):
    s = build_spec("y ~ x + I(x^2) + (1 + I(x^2) | g)", df)
    assert s.fixed_names == ["Intercept", "x", "I(x ** 2)"]
    np.testing.assert_allclose(s.X[:, 2], df.x**2)
    np.testing.assert_allclose(s.random[0].Z[:, 1], df.x**2)
    np.testing.assert_allclose(s.new_design(df.iloc[:4])["X"][:, 2], df.x[:4] ** 2)
    # R: (a + b)^2 is the main effects and the two-way interactions
    cross = build_spec("y ~ (x + z + e)^2", df)
    assert cross.fixed_names == ["Intercept", "x", "z", "e", "x:z", "x:e", "z:e"]
    # x^2 outside I() is x crossed with itself, i.e. x: an error that says what to write
    with pytest.raises(FormulaError, match=r"x\^2 .* just x .*write I\(x\^2\) or "
                                           r"poly\(x, 2, raw=TRUE\)"):
        build_spec("y ~ x^2", df)
    with pytest.raises(FormulaError, match=r"write I\(e\^2\)"):
        build_spec("e^2 ~ x", df)  # the response too
    np.testing.assert_allclose(build_spec("I(e^2) ~ x", df).y, df.e**2)


def test_R_habits_in_a_fit_and_its_predictions():
    d = bglmm.datasets.load("sleepstudy")
    d["half"] = np.where(d.Days > 4, "late", "early")
    f = bglmm.fit("Reaction ~ poly(Days, 2, raw=TRUE) + C(half, levels=['late', 'early']) + "
                  "(1 + I(Days^2) | Subject)", d, seed=1, chains=1, draws=50, warmup=50,
                  progress=False, check=False)
    assert list(f.coords["coef"])[-1] == "C(half, levels=['late', 'early'])[early]"
    assert f.predict(d.iloc[:4]).shape == (50, 4)  # rows of one of the levels


def test_raw_polynomial_with_R_spelling(df):
    s = build_spec("y ~ poly(x, 2, raw=TRUE) + (1 | g)", df)
    np.testing.assert_allclose(s.X[:, 1:], np.column_stack([df.x, df.x**2]))
    assert len(s.fixed_names) == 3
    orth = build_spec("y ~ poly(x, 2, raw=FALSE)", df)
    np.testing.assert_allclose(orth.X[:, 1:].T @ orth.X[:, 1:], np.eye(2), atol=1e-12)
