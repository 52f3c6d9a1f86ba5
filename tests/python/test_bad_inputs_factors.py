"""Odd and malformed grouping factors in ``bglmm.fit`` with several random-effect blocks.

* a factor with a single level: the model is proper (the SD is informed by its prior alone),
  so it fits with one BglmmWarning that names the factor, whether that factor is the primary
  block or an extra one; a gaussian model whose only factor has one level (the linear mixed
  model needs 2 levels) is refused with an error naming the factor;
* a factor constant within another (classes within schools written as crossed terms): the
  nesting is detected, and the fit is the one of the explicitly nested formula (same draws);
  a slope whose covariate is constant within its factor fits (a proper, weakly identified
  posterior);
* a nested factor whose labels repeat across parents: ``(1 | a/b)`` is b within a, with one
  level per distinct (a, b) pair;
* a missing value in a factor: a ValueError naming the column;
* 10^5 levels of one row each, ``(1 | obs)``, with poisson: fits in bounded time and memory.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

import bglmm
from bglmm.api import _nesting, _primary_block
from bglmm.formula import build_spec

FAST = dict(chains=1, draws=20, warmup=20, seed=1, threads=1, progress=False, check=False)


def frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"g": np.arange(n) % 6, "one": "z", "x": rng.normal(size=n)})
    d["school"] = d["g"] // 2  # 3 schools; each class g lies in one school
    d["y"] = rng.poisson(2.0, n).astype(float)
    d["yg"] = rng.normal(size=n)
    d["yb"] = (rng.random(n) < 0.5).astype(float)
    return d


RESPONSE = {"poisson": "y", "gaussian": "yg", "bernoulli": "yb"}


def fit_recording(formula: str, data: pd.DataFrame, family: str, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = bglmm.fit(formula, data, family, **{**FAST, **kwargs})
    return f, [w for w in caught]


def assert_finite(f) -> None:
    for name, v in f.posterior.items():
        assert np.all(np.isfinite(v)), name


# ---- a factor with a single level ----------------------------------------------------------
@pytest.mark.parametrize("family", ["poisson", "gaussian", "bernoulli"])
@pytest.mark.parametrize("rhs, primary", [("x + (1 | g) + (1 | one)", "one"),
                                          ("x + (1 + x | g) + (1 | one)", "g")])
def test_single_level_factor_beside_another_fits_with_a_named_warning(family, rhs, primary):
    d = frame()
    f, caught = fit_recording(f"{RESPONSE[family]} ~ {rhs}", d, family)
    spec = f.spec
    assert spec.random[_primary_block(spec)].factor == primary
    messages = [str(w.message) for w in caught]
    assert len(caught) == 1 and issubclass(caught[0].category, bglmm.BglmmWarning), messages
    assert "grouping factor 'one'" in messages[0] and "single level ('z')" in messages[0]
    assert f.posterior["b_one"].shape == (1, 20, 1, 1)
    assert_finite(f)


def test_single_level_factor_alone():
    d = frame()
    # gaussian, one factor: the linear mixed model needs 2 levels; the error names the factor
    with pytest.raises(ValueError, match=r"grouping factor 'one' of the random term \(1 \| one\) "
                                         r"has a single level \('z'\).*at least 2 levels"):
        bglmm.fit("yg ~ x + (1 | one)", d, **FAST)
    # poisson, one factor (the GLMM core): fits, with the named warning
    f, caught = fit_recording("y ~ x + (1 | one)", d, "poisson")
    assert [str(w.message) for w in caught] == [
        "the grouping factor 'one' of the random term (1 | one) has a single level ('z'): its "
        "SD is informed by its prior alone"]
    assert_finite(f)


# ---- a factor constant within another --------------------------------------------------------
@pytest.mark.parametrize("family", ["poisson", "gaussian"])
def test_factor_constant_within_another_is_nested(family):
    # class g (6 levels) lies in one school (3 levels): written as crossed terms, the classes'
    # block gets the schools as parent (the nested moves run), and the fit is the one of the
    # nested formula (1 | school/g): the same blocks, levels and priors, so the same draws
    d = frame()
    y = RESPONSE[family]
    spec = build_spec(f"{y} ~ x + (1 | g) + (1 | school)", d, family)
    assert [b.factor for b in spec.random] == ["g", "school"]
    assert _nesting(spec) == [1, None] and _primary_block(spec) == 1
    crossed = bglmm.fit(f"{y} ~ x + (1 | school) + (1 | g)", d, family, **FAST)
    nested = bglmm.fit(f"{y} ~ x + (1 | school/g)", d, family, **FAST)
    assert_finite(crossed)
    assert nested.posterior["b_school:g"].shape == crossed.posterior["b_g"].shape == (1, 20, 6, 1)
    np.testing.assert_array_equal(nested.posterior["beta"], crossed.posterior["beta"])
    np.testing.assert_array_equal(nested.posterior["sd_school:g__Intercept"],
                                  crossed.posterior["sd_g__Intercept"])
    np.testing.assert_array_equal(nested.posterior["b_school:g"], crossed.posterior["b_g"])


def test_slope_constant_within_its_factor_fits():
    # w is constant within each level of g: (1 + w | g)'s slope and intercept are confounded
    # within a level, identified across levels and by the prior; a proper posterior
    d = frame()
    d["w"] = (d["g"] * 0.7 - 1.0).astype(float)
    f = bglmm.fit("y ~ x + (1 + w | g) + (1 | school)", d, "poisson", **FAST)
    assert f.posterior["b_g"].shape == (1, 20, 6, 2)
    assert_finite(f)


# ---- nested labels that repeat across parents -----------------------------------------------
def test_nested_labels_repeating_across_parents_are_within_parent():
    rng = np.random.default_rng(2)
    # 4 parents, children labelled 1, 2, 3 inside each (parent "s" has only 1 and 2)
    a = ["p"] * 6 + ["q"] * 6 + ["r"] * 6 + ["s"] * 4
    b = [1, 1, 2, 2, 3, 3] * 3 + [1, 1, 2, 2]
    d = pd.DataFrame({"a": a, "b": b, "y": rng.poisson(3.0, len(a)).astype(float)})
    pairs = d[["a", "b"]].drop_duplicates()
    spec = build_spec("y ~ 1 + (1 | a/b)", d, "poisson")
    assert [blk.factor for blk in spec.random] == ["a", "a:b"]
    inner = spec.random[1]
    assert len(inner.levels) == len(pairs) == 11  # not 3: b counts within a
    # each row's level is its (a, b) pair, and distinct pairs get distinct levels
    assert list(inner.groups) == [f"{x}:{y}" for x, y in zip(a, b)]
    assert len(set(zip(inner.codes, a, b))) == len(pairs)
    f = bglmm.fit("y ~ 1 + (1 | a/b)", d, "poisson", **FAST)
    assert f.posterior["b_a:b"].shape == (1, 20, 11, 1)
    assert list(f.coords["a:b"]) == sorted(f"{x}:{y}" for x, y in pairs.itertuples(index=False))
    assert f.posterior["b_a"].shape == (1, 20, 4, 1)
    # the crossed reading (1 | a) + (1 | b) would have 3 levels of b
    crossed = bglmm.fit("y ~ 1 + (1 | a) + (1 | b)", d, "poisson", **FAST)
    assert crossed.posterior["b_b"].shape[2] == 3


# ---- missing values in a factor ---------------------------------------------------------------
@pytest.mark.parametrize("formula, column, spoil", [
    ("y ~ x + (1 | g) + (1 | school)", "school", lambda s: s.astype(float).where(s.index != 3)),
    ("y ~ x + (1 | g/school)", "school", lambda s: s.astype(object).where(s.index != 3, None)),
    ("y ~ x + (1 | g) + (1 | school)", "g",
     lambda s: pd.Series(pd.Categorical(s.astype(str))).where(s.index != 0)),
    ("y ~ x + (1 | g:school) + (1 | one)", "one", lambda s: s.where(s.index != 5, np.nan)),
])
def test_missing_value_in_a_factor_names_the_column(formula, column, spoil):
    d = frame()
    d[column] = spoil(d[column])
    with pytest.raises(ValueError, match=rf"column '{column}' of data has 1 missing value"):
        bglmm.fit(formula, d, "poisson", **FAST)


# ---- 10^5 observation-level levels --------------------------------------------------------------
def test_100000_observation_level_effects_poisson():
    # y ~ 1 + (1 | g) + (1 | obs), 10^5 rows, obs one level per row (overdispersion), g 50
    # levels: the observation-level block is an extra block of 10^5 levels. Run in a child
    # interpreter to measure its peak memory: the draws of b_obs are 20 x 10^5 doubles (16 MB);
    # the fit must stay far below a dense rows x levels design (80 GB).
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import resource, time
        import numpy as np, pandas as pd, bglmm
        rng = np.random.default_rng(4)
        n = 100_000
        g = rng.integers(0, 50, n)
        eta = 0.5 + rng.normal(0, 0.4, 50)[g] + rng.normal(0, 0.3, n)
        d = pd.DataFrame({"y": rng.poisson(np.exp(eta)).astype(float), "g": g,
                          "obs": np.arange(n)})
        t = time.perf_counter()
        f = bglmm.fit("y ~ 1 + (1 | g) + (1 | obs)", d, "poisson", chains=1, draws=20,
                      warmup=20, seed=1, threads=1, progress=False, check=False)
        secs = time.perf_counter() - t
        b = f.posterior["b_obs"]
        ok = all(np.isfinite(v).all() for v in f.posterior.values())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
        print(b.shape[2], ok, round(float(np.median(f.posterior["beta"])), 3),
              round(secs, 1), round(peak))
    """)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    levels, ok, intercept, secs, peak = proc.stdout.split()
    print(f"\n10^5 observation-level effects: {secs} s, peak memory {peak} MiB")
    assert int(levels) == 100_000 and ok == "True"
    assert abs(float(intercept) - 0.5) < 0.3
    assert float(peak) < 1500, f"peak memory {peak} MiB"
