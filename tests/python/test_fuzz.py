"""Property-based fuzzing (Hypothesis) of the array-level entry points, CI size.

Arbitrary shapes, dtypes and values (NaN, inf, huge, tiny, negative, non-integer), group labels
(strings, floats, NaN, None, objects, one level, wrong length), family / link / sampler names,
priors and MCMC settings go into the public entry points (glm, hierarchical_normal, lmm, glmm)
and straight into the compiled ``_core`` GLM functions. The property: the call either returns finite draws of the right
shape or raises ValueError / TypeError / bglmm.NumericalError; anything else (another exception
type, a crash, a hang) is a bug. Runs are derandomized (a fixed example sequence) and bounded by
``max_examples`` (about half a minute in total on a loaded 2-core machine).

Longer runs: ``python validation/fuzz.py --minutes 30`` (random seeds, many more examples).
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bglmm
from bglmm import _core
from bglmm.priors import InverseGamma, Normal

ACCEPTABLE = (ValueError, TypeError, bglmm.NumericalError)

CI_SETTINGS = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                       suppress_health_check=list(HealthCheck))

# Values that stress validation and numerics: special floats, huge and tiny magnitudes, and
# plain small counts (so that many examples get past validation and actually sample).
SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 1e-308, 5e-324,
                           1e15, 1e16, 2.0**53 + 1, -1.0, 0.5])
COUNTS = st.integers(0, 20).map(float)
VALUES = st.one_of(COUNTS, COUNTS, COUNTS, st.floats(-50, 50), SPECIAL)
DTYPES = st.sampled_from([np.float64, np.float64, np.float32, np.int64, np.int32, np.bool_,
                          np.uint8, np.complex128, np.str_, object])


def _cast(values: np.ndarray, dtype) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if dtype is object:
            return values.astype(object)
        if dtype is np.str_:
            return values.astype(str)
        if np.issubdtype(dtype, np.integer) or dtype is np.bool_:
            return np.nan_to_num(values, nan=0, posinf=1, neginf=-1).astype(dtype)
        return values.astype(dtype)


@st.composite
def arrays(draw, shape):
    values = draw(hnp.arrays(np.float64, shape, elements=VALUES))
    return _cast(values, draw(DTYPES))


FINITE = st.one_of(st.floats(-5, 5), st.floats(-1e6, 1e6), st.sampled_from([0.0, 1e-300, 1e12, -1e12]))


@st.composite
def valid_glm_calls(draw):
    # Well-formed calls with finite but possibly extreme values: these get past validation and
    # exercise the sampler itself (mode finding, proposals, acceptance) on odd data.
    n = draw(st.integers(1, 12))
    p = draw(st.integers(1, 3))
    X = np.ones((n, p))
    if p > 1:
        X[:, 1:] = draw(hnp.arrays(np.float64, (n, p - 1), elements=FINITE))
    family = draw(st.sampled_from(["gaussian", "poisson", "binomial", "bernoulli"]))
    link = None if family in ("gaussian", "poisson") else draw(st.sampled_from(["logit", "probit", "cloglog"]))
    kwargs = {}
    if family == "gaussian":
        y = draw(hnp.arrays(np.float64, (n,), elements=FINITE))
        kwargs["sampler"] = draw(st.sampled_from(["auto", "random_walk", "independence"]))
        if kwargs["sampler"] != "auto" or draw(st.booleans()):
            kwargs["sigma"] = draw(st.sampled_from([1e-3, 0.5, 1.0, 1e3]))
    else:
        kwargs["sampler"] = draw(st.sampled_from(["random_walk", "independence"]))
        kwargs["proposal"] = draw(st.sampled_from(["fisher", "crossproduct"]))
        top = draw(st.sampled_from([1, 5, 10**6, 10**12]))
        y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, top))).astype(float)
        if family == "bernoulli":
            y = np.minimum(y, 1.0)
        if family == "binomial":
            kwargs["trials"] = y + draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, 5))) + (y == 0)
    if draw(st.booleans()):
        kwargs["offset"] = draw(hnp.arrays(np.float64, (n,), elements=st.floats(-30, 30)))
    if draw(st.booleans()):
        kwargs["prior"] = Normal(draw(st.floats(-5, 5)), draw(st.sampled_from([1e-3, 0.1, 1.0, 10.0, 1e4])))
    kwargs.update(chains=draw(st.integers(1, 2)), draws=draw(st.integers(1, 6)),
                  warmup=draw(st.integers(0, 20)), thin=draw(st.integers(1, 2)),
                  seed=draw(st.integers(0, 2**64 - 1)), threads=draw(st.sampled_from([None, 1, 2])))
    return X, y, family, link, kwargs


@st.composite
def glm_calls(draw):
    if draw(st.integers(0, 2)) == 0:
        return draw(valid_glm_calls())
    n = draw(st.integers(0, 12))
    p = draw(st.integers(0, 3))
    x_shape = draw(st.sampled_from([(n, p), (n, p), (n, p), (n,), (n, p, 1), (n + 1, p)]))
    X = draw(arrays(x_shape))
    if draw(st.booleans()) and X.ndim == 2 and X.shape[1] > 0 and X.dtype.kind == "f":
        X[:, 0] = 1.0  # an intercept, so more examples are full rank
    y = draw(arrays(draw(st.sampled_from([(n,), (n,), (n,), (max(n - 1, 0),), (n, 1), (n, 2)]))))
    family = draw(st.sampled_from(["gaussian", "poisson", "binomial", "bernoulli", "Normal",
                                   "logistic", "gamma", "", 3]))
    link = draw(st.sampled_from([None, None, "identity", "log", "logit", "probit", "cloglog",
                                 "inverse"]))
    kwargs = {}
    if draw(st.booleans()):
        kwargs["trials"] = draw(arrays((n,))) if draw(st.booleans()) else draw(st.integers(-2, 30))
    if draw(st.booleans()):
        kwargs["offset"] = draw(arrays((n,)))
    prior = draw(st.sampled_from(["none", "scalar", "vector", "cov", "bad-type"]))
    if prior == "scalar":
        kwargs["prior"] = Normal(draw(VALUES), draw(VALUES))
    elif prior == "vector":
        k = draw(st.integers(0, 4))
        kwargs["prior"] = Normal(draw(arrays((k,))), draw(arrays((k,))))
    elif prior == "cov":
        k = draw(st.integers(0, 4))
        kwargs["prior"] = Normal(0.0, cov=draw(arrays((k, k))))
    elif prior == "bad-type":
        kwargs["prior"] = draw(st.sampled_from([1.0, "normal", InverseGamma(1.0, 1.0)]))
    if draw(st.booleans()):
        kwargs["sigma"] = draw(st.one_of(VALUES, st.just("1")))
    if draw(st.booleans()):
        kwargs["sigma_prior"] = draw(st.sampled_from([InverseGamma(1.0, 1.0), InverseGamma(1e-300, 1e300), "ig"]))
    kwargs["sampler"] = draw(st.sampled_from(["auto", "auto", "random_walk", "independence",
                                              "conjugate", "gibbs", None]))
    kwargs["proposal"] = draw(st.sampled_from(["fisher", "fisher", "crossproduct", "x"]))
    kwargs["chains"] = draw(st.integers(-1, 2))
    kwargs["draws"] = draw(st.one_of(st.integers(-1, 6), st.just(2.0)))
    kwargs["warmup"] = draw(st.integers(-1, 6))
    kwargs["thin"] = draw(st.integers(0, 3))
    kwargs["seed"] = draw(st.one_of(st.integers(-1, 2**64), st.just(None), st.just(1.5), st.just("1")))
    kwargs["threads"] = draw(st.one_of(st.none(), st.integers(-1, 4)))
    if draw(st.booleans()):
        kwargs["target_acceptance"] = draw(st.one_of(st.floats(-1, 2), st.just(np.nan)))
    return X, y, family, link, kwargs


def _check_fit(fit, chains, draws):
    beta = fit.draws
    assert beta.ndim == 3 and beta.shape[:2] == (chains, draws)
    assert np.all(np.isfinite(beta))
    for v in fit.posterior.values():
        assert np.all(np.isfinite(v))


def prop_glm(call):
    X, y, family, link, kwargs = call
    with warnings.catch_warnings(record=True) as caught:
        # Numerical RuntimeWarnings are tolerated here (stray overflow warnings are reported by
        # test_bad_inputs.py); everything else must be a clean result or a clean exception.
        warnings.simplefilter("always")
        try:
            fit = bglmm.glm(X, y, family, link, **kwargs)
        except ACCEPTABLE:
            return
    assert all(issubclass(w.category, RuntimeWarning) for w in caught), [str(w.message) for w in caught]
    _check_fit(fit, kwargs["chains"], kwargs["draws"])


test_fuzz_glm = CI_SETTINGS(given(glm_calls())(prop_glm))


@st.composite
def core_glm_calls(draw):
    # Straight into the compiled function: mismatched sizes, out-of-range codes and settings
    # (one third of the calls well formed, so that the sampler itself runs).
    if draw(st.integers(0, 2)) == 0:
        X, y, family, link, kw = draw(valid_glm_calls())
        fam = bglmm.resolve_family(family, link)
        n, p = X.shape
        code = fam.code
        method = {"auto": 2, "random_walk": 0, "independence": 1}[kw["sampler"]]
        return dict(
            x=np.ascontiguousarray(X), y=y, trials=np.asarray(kw.get("trials", np.ones(n)), float),
            offset=np.asarray(kw.get("offset", np.zeros(n)), float), family_link=code,
            prior_mean=np.zeros(p), prior_cov=np.eye(p) * draw(st.sampled_from([1e-4, 1.0, 1e4])),
            sigma2_shape=1.0, sigma2_scale=1.0, draws=kw["draws"], warmup=kw["warmup"],
            thin=kw["thin"], method=method, proposal_covariance=draw(st.integers(0, 1)),
            target_acceptance=draw(st.floats(0.05, 0.95)), initial_scale=draw(st.sampled_from([0.0, 1e-6, 1.0, 1e6])),
            known_sigma=kw.get("sigma", 0.0) if method != 2 or "sigma" in kw else 0.0,
            threads=draw(st.integers(0, 2)), seed=kw["seed"], chain=draw(st.integers(0, 3)))
    n = draw(st.integers(0, 8))
    p = draw(st.integers(0, 3))
    f64 = lambda shape: hnp.arrays(np.float64, shape, elements=VALUES)  # noqa: E731
    X = np.ascontiguousarray(draw(f64(draw(st.sampled_from([(n, p), (n, p), (n + 1, p)])))))
    vec = lambda: np.ascontiguousarray(draw(f64(draw(st.sampled_from([(n,), (n,), (n + 1,)])))))  # noqa: E731
    k = draw(st.sampled_from([p, p, p + 1]))
    mean = draw(f64((k,)))
    cov = draw(st.one_of(f64((k, k)), st.just(np.eye(k)), st.just(np.eye(p))))
    args = dict(
        x=X, y=vec(), trials=vec(), offset=vec(),
        family_link=draw(st.integers(-2, 7)), prior_mean=mean, prior_cov=cov,
        sigma2_shape=draw(VALUES), sigma2_scale=draw(VALUES),
        draws=draw(st.integers(-2, 5)), warmup=draw(st.integers(-2, 5)),
        thin=draw(st.integers(-1, 3)), method=draw(st.integers(-1, 4)),
        proposal_covariance=draw(st.integers(-1, 3)),
        target_acceptance=draw(st.one_of(VALUES, st.floats(0, 1))),
        initial_scale=draw(VALUES), known_sigma=draw(VALUES),
        threads=draw(st.integers(-1, 4)), seed=draw(st.integers(0, 2**64 - 1)),
        chain=draw(st.integers(0, 3)),
    )
    return args


def prop_core_run_glm_chain(args):
    # The compiled layer re-checks what it needs: it may refuse (ValueError etc.) or run, but it
    # must never crash the interpreter or raise an unexpected exception type.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = _core.run_glm_chain(**args)
        except ACCEPTABLE:
            return
    assert int(res["draws_done"]) == max(args["draws"], 0) or res["interrupted"]
    assert np.asarray(res["beta"]).shape[0] == int(res["draws_done"])


test_fuzz_core_run_glm_chain = CI_SETTINGS(given(core_glm_calls())(prop_core_run_glm_chain))


@st.composite
def core_helper_calls(draw):
    fn = draw(st.sampled_from(["glm_mode", "glm_pointwise_log_lik"]))
    args = draw(core_glm_calls())
    m = draw(st.integers(0, 3))
    beta = draw(hnp.arrays(np.float64, (m, draw(st.integers(0, 3))), elements=VALUES))
    phi = draw(hnp.arrays(np.float64, (draw(st.sampled_from([m, m + 1])),), elements=VALUES))
    return fn, args, beta, phi


def prop_core_helpers(call):
    fn, args, beta, phi = call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            if fn == "glm_mode":
                _core.glm_mode(args["x"], args["y"], args["trials"], args["offset"],
                               args["family_link"], args["prior_mean"], args["prior_cov"],
                               args["known_sigma"], args["threads"])
            else:
                _core.glm_pointwise_log_lik(args["x"], args["y"], args["trials"], args["offset"],
                                            args["family_link"], beta, phi, args["threads"])
        except ACCEPTABLE:
            return


test_fuzz_core_helpers = CI_SETTINGS(given(core_helper_calls())(prop_core_helpers))

GROUP_LABELS = st.sampled_from(["ints", "strings", "floats", "with-nan", "with-none", "one-level",
                                "wrong-length", "objects", "bools"])


@st.composite
def grouped_calls(draw):
    # The grouped entry points: hierarchical_normal, lmm, glmm.
    fn = draw(st.sampled_from(["hierarchical_normal", "lmm", "glmm"]))
    if draw(st.integers(0, 2)) == 0:  # well formed, values finite but possibly extreme
        n = draw(st.integers(4, 14))
        group = np.arange(n) % draw(st.integers(2, 4))
        X = np.column_stack([np.ones(n), draw(hnp.arrays(np.float64, (n,), elements=FINITE))])
        kw = {"chains": draw(st.integers(1, 2)), "draws": draw(st.integers(1, 4)),
              "warmup": draw(st.integers(0, 10)), "seed": draw(st.integers(0, 2**63))}
        if fn == "glmm":
            y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, draw(st.sampled_from([1, 10, 10**9]))))).astype(float)
            kw.update(family=draw(st.sampled_from(["poisson", "bernoulli"])), check=False, threads=1,
                      sampler=draw(st.sampled_from(["laplace", "random_walk"])), Z=None)
            if kw["family"] == "bernoulli":
                y = np.minimum(y, 1.0)
        else:
            y = draw(hnp.arrays(np.float64, (n,), elements=FINITE))
            if fn == "lmm":
                kw.update(threads=1, Z=draw(st.sampled_from([None, "X"])))
        return fn, y, X, group, kw
    n = draw(st.integers(0, 14))
    m = draw(st.integers(1, 5))
    kind = draw(GROUP_LABELS)
    codes = np.arange(n) % m
    if kind == "strings":
        group = np.array([f"g{c}" for c in codes])
    elif kind == "floats":
        group = codes * 0.5
    elif kind == "with-nan":
        group = np.where(codes == 0, np.nan, codes * 1.0)
    elif kind == "with-none":
        group = [None if c == 0 else c for c in codes]
    elif kind == "one-level":
        group = np.zeros(n)
    elif kind == "wrong-length":
        group = np.arange(n + 1) % m
    elif kind == "objects":
        group = np.array([object()] * n, dtype=object)
    elif kind == "bools":
        group = codes % 2 == 0
    else:
        group = codes
    y = draw(arrays((n,)))
    X = draw(arrays(draw(st.sampled_from([(n, 2), (n, 1), (n, 2), (n + 1, 2), (n,)]))))
    if draw(st.booleans()) and X.ndim == 2 and X.shape[1] > 0 and X.dtype.kind == "f":
        X[:, 0] = 1.0
    kw = {"chains": draw(st.integers(0, 2)), "draws": draw(st.integers(0, 4)),
          "warmup": draw(st.integers(0, 4)), "seed": draw(st.one_of(st.integers(0, 10), st.just("x")))}
    if fn == "hierarchical_normal":
        v = draw(st.sampled_from(["none", "sigma", "se"]))
        if v == "sigma":
            kw["sigma"] = draw(VALUES)
        elif v == "se":
            kw["se"] = draw(arrays((n,)))
        kw["sampler"] = draw(st.sampled_from(["gibbs", "exact", "x"]))
    else:
        kw["threads"] = draw(st.one_of(st.none(), st.integers(-1, 3)))
        kw["Z"] = draw(st.sampled_from([None, "X", "bad"]))
    if fn == "glmm":
        kw["family"] = draw(st.sampled_from(["poisson", "binomial", "bernoulli", "gaussian", "gamma"]))
        kw["sampler"] = draw(st.sampled_from(["laplace", "random_walk", "x"]))
        kw["check"] = False
        if draw(st.booleans()):
            kw["trials"] = draw(arrays((n,)))
    return fn, y, X, group, kw


def prop_grouped(call):
    fn, y, X, group, kw = call
    kw = dict(kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if fn == "hierarchical_normal":
                fit = bglmm.hierarchical_normal(y, group, **kw)
            else:
                z = kw.pop("Z")
                Z = X if z == "X" else (np.ones((3, 3)) if z == "bad" else None)
                if fn == "lmm":
                    fit = bglmm.lmm(y, X, Z, group, **kw)
                else:
                    fit = bglmm.glmm(y, X, Z, group, **kw)
        except ACCEPTABLE:
            return
    assert all(issubclass(w.category, RuntimeWarning) for w in caught), [str(w.message) for w in caught]
    for name, v in fit.posterior.items():
        assert np.all(np.isfinite(v)), name
        assert v.shape[:2] == (kw["chains"], kw["draws"])


test_fuzz_grouped = CI_SETTINGS(given(grouped_calls())(prop_grouped))

# (strategy, property) per target, for validation/fuzz.py's long runs
TARGETS = {
    "glm": (glm_calls(), prop_glm),
    "core_run_glm_chain": (core_glm_calls(), prop_core_run_glm_chain),
    "core_helpers": (core_helper_calls(), prop_core_helpers),
    "grouped": (grouped_calls(), prop_grouped),
}
