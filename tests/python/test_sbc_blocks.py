"""Simulation-based calibration (Talts et al. 2018) of ``bglmm.fit`` with two random-effect
blocks (K = 2): crossed ``(1 | a) + (1 | b)`` and nested ``(1 | a/b)``, for the gaussian,
poisson and bernoulli (logit) families, at bglmm.fit's default priors.

Each replication draws a parameter set from the prior, data from the model, fits the data with
``bglmm.fit`` (the formula path: build_spec, default_priors, the GLMM core with one primary and
one extra block, its translation / nested / scale moves) and records the rank of each true value
among L = 39 thinned posterior draws; the ranks are tested for uniformity as in test_sbc.py
(chi-square on 20 bins and the z-scores of the rank mean and variance, ``rank_uniformity``).

The priors. For poisson and bernoulli the defaults (``bglmm.api.default_priors(spec)``) do not
look at the response: slope N(0, (2.5 / sd(x))^2), intercept N(0, 10^2 (1 + (mean x / sd x)^2)),
each SD Half-Student-t(3, 2.5). The design (x and the factors) is fixed per case, so the
simulator draws from exactly the priors that ``bglmm.fit(formula, data, family)`` then uses with
``priors=None`` (the test asserts that the two agree, response and all). For the gaussian
family the defaults are scaled by the data (sd(y), mean(y), the residual variance) and a prior
that looks at y breaks SBC; as in test_sbc.py's default-prior cases, the scale is fixed while the
family and its form are kept: the defaults at s = 1 (those of the same design for a log-scale
family, i.e. the data-free part of default_priors) and sigma^2 ~ Inverse-Gamma(1/2, 1/2) (the
default's one prior observation at a residual variance of 1), passed explicitly.

Poisson data sets with a count above 10^5 are redrawn, parameters and all (the default intercept
prior, N(0, 10^2), would otherwise give counts beyond any double-precision rate): a rejection
that looks at the data alone leaves the truth a draw from the posterior of the data it comes
with, so the ranks stay uniform for a correct sampler (as in testing.glmm_default_sbc_case).

Thresholds as test_sbc.py: chi-square p < 5e-5 or |z| > 4.0 flags a parameter. Ranked: beta
(intercept and slope), the two SDs, sigma (gaussian) and the effects of the first two levels of
each factor: 8-9 scalars x 3 statistics per case, 6 passing cases, ~150 tests at a per-test
level of ~6e-5: a correct sampler fails this file with probability ~1%. R = 250 replications
(each fit ~40 ms: ~10 s per case).

Results (seeds fixed): gaussian, bernoulli and poisson, crossed and nested, are calibrated at
the defaults. The poisson cases first failed (slope ranks U-shaped, z_var ~ 6-7, chi-square
p ~ 1e-9): the free fixed effects' Newton step could start hundreds of posterior SDs from the
posterior and never accept (fixed in the chains' start, regression test in
test_glmm_newton_stuck.py). The poisson cases also run with the default prior family at the
moderate fixed scales of test_sbc.py's GLMM default-prior cases.

Negative controls (``test_sbc_blocks_detects_wrong_sd_prior``, crossed bernoulli and nested
gaussian): the simulator draws the SDs from the prior with its scale x3 while the fit keeps the
defaults; the same rank test must flag an SD (R = 150: z_mean 7.6-10).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

import bglmm
from bglmm import priors as P
from bglmm import testing
from bglmm.api import default_priors
from bglmm.formula import build_spec

L = 39            # posterior draws per replication: 40 possible ranks, 20 bins of 2
R = 250           # replications per case
R_CONTROL = 150   # replications of the negative controls
SEED = 20250611
CHI2_ALPHA = 5e-5
Z_MAX = 4.0
THIN = 10
WARMUP = 200
MAX_COUNT = 1e5
N_EFFECTS = 2     # effects of the first levels of each factor that are ranked


def calibration_failures(rows: list[dict]) -> list[str]:
    bad = []
    for r in rows:
        if r["p_value"] < CHI2_ALPHA or abs(r["z_mean"]) > Z_MAX or abs(r["z_var"]) > Z_MAX:
            bad.append(f"{r['name']}: chi2 p = {r['p_value']:.2g}, z_mean = {r['z_mean']:.2f}, "
                       f"z_var = {r['z_var']:.2f}, counts = {r['counts'].tolist()}")
    return bad


def design(kind: str) -> pd.DataFrame:
    """The fixed design of a case: factors and one N(0, 1) covariate (drawn once)."""
    rng = np.random.default_rng(7 if kind == "crossed" else 8)
    if kind == "crossed":  # 8 x 6 levels, 2 rows per cell: 96 rows
        a, b = np.meshgrid(np.arange(8), np.arange(6), indexing="ij")
        a, b = np.repeat(a.ravel(), 2), np.repeat(b.ravel(), 2)
        labels_a, labels_b = [f"a{i}" for i in a], [f"b{j}" for j in b]
    else:  # 6 parents x 3 children x 3 rows: 54 rows; child labels repeat across parents
        a = np.repeat(np.arange(6), 9)
        b = np.tile(np.repeat(np.arange(3), 3), 6)
        labels_a, labels_b = [f"a{i}" for i in a], [f"c{j}" for j in b]
    return pd.DataFrame({"a": labels_a, "b": labels_b, "x": rng.standard_normal(a.size),
                         "y": np.zeros(a.size)})


FORMULAS = {"crossed": "y ~ x + (1 | a) + (1 | b)", "nested": "y ~ x + (1 | a/b)"}


# "moderate" cases: the default family (Normal beta, Half-Student-t(3) SDs) at fixed scales of
# the size test_sbc.py's GLMM default-prior cases use, passed explicitly
MODERATE_BETA = P.Normal(mean=[0.3, -0.2], sd=[1.0, 0.7])
MODERATE_SD = P.HalfStudentT(3.0, 0.8)


def case_priors(kind: str, family: str, moderate: bool = False) -> tuple[dict, list[str], bool]:
    """(priors, block keys, passed explicitly to fit?) of a case; see the module docstring."""
    frame = design(kind)
    fam = "poisson" if family == "gaussian" else family
    spec = build_spec(FORMULAS[kind], frame, fam)
    pri = default_priors(spec)
    keys = [b.factor for b in spec.random]
    if moderate:
        pri = {"beta": MODERATE_BETA, **{k: MODERATE_SD for k in keys}}
    if family == "gaussian":
        pri = dict(pri, sigma=P.InverseGamma(0.5, 0.5))
    return pri, keys, family == "gaussian" or moderate


def blocks_sbc_case(kind: str, family: str, *, sd_scale_factor: float = 1.0,
                    moderate: bool = False) -> testing.SbcCase:
    """An SBC case of bglmm.fit with two random intercepts (``kind`` "crossed" / "nested").

    ``sd_scale_factor`` != 1 makes the simulator draw each SD from its prior with the scale
    multiplied by the factor (the fit keeps the true defaults): a deliberately wrong case."""
    frame0 = design(kind)
    formula = FORMULAS[kind]
    pri, keys, explicit = case_priors(kind, family, moderate)
    m_beta, V_beta = pri["beta"].to_arrays(2)
    sd_beta = np.sqrt(np.diag(V_beta))
    spec0 = build_spec(formula, frame0, "poisson" if family == "gaussian" else family)
    blocks = spec0.random
    X = spec0.X
    name = f"fit-{kind}-{family}" + ("-moderate-priors" if moderate else "")
    if sd_scale_factor != 1.0:
        name += f"-WRONG-sd-prior-scale-x{sd_scale_factor:g}"

    def simulate(rng: np.random.Generator):
        while True:
            beta = m_beta + sd_beta * rng.standard_normal(2)
            sds = [testing._draw_scale(rng, pri[k]) * sd_scale_factor for k in keys]
            effects = [rng.normal(0.0, s, len(blk.levels)) for s, blk in zip(sds, blocks)]
            eta = X @ beta + sum(e[blk.codes] for e, blk in zip(effects, blocks))
            truth = {"beta": beta}
            for k, s, e in zip(keys, sds, effects):
                truth[f"sd_{k}"] = s
                truth[f"b_{k}"] = e[:N_EFFECTS]
            if family == "gaussian":
                sigma = testing._draw_scale(rng, pri["sigma"])
                truth["sigma"] = sigma
                y = eta + rng.normal(0.0, sigma, eta.size)
            elif family == "poisson":
                y = rng.poisson(np.exp(np.minimum(eta, 16.0))).astype(float)
                if y.max() > MAX_COUNT:
                    continue
            else:
                y = (rng.random(eta.size) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
            return truth, {"frame": frame0.assign(y=y)}

    def fit(data, L_, seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bglmm.BglmmWarning)
            f = bglmm.fit(formula, data["frame"], family, priors=pri if explicit else None,
                          chains=1, draws=L_, thin=THIN, warmup=WARMUP, seed=seed, threads=1,
                          progress=False, check=False)
        post = f.posterior
        out = {"beta": post["beta"][0]}
        if family == "gaussian":
            out["sigma"] = post["sigma"][0]
        for k in keys:
            out[f"sd_{k}"] = post[f"sd_{k}__Intercept"][0]
            out[f"b_{k}"] = post[f"b_{k}"][0][:, :N_EFFECTS, 0]
        return out

    return testing.SbcCase(name, simulate, fit, {"kind": kind, "family": family})



CASES = [(kind, family) for kind in ("crossed", "nested")
         for family in ("gaussian", "poisson", "bernoulli")]


def run_case(case: testing.SbcCase, replications: int = R) -> tuple[list[str], list[dict], float]:
    t0 = time.perf_counter()
    ranks = testing.sbc_ranks(case, replications, L, seed=SEED)
    rows = testing.rank_uniformity(ranks, L, bins=20)
    return calibration_failures(rows), rows, time.perf_counter() - t0


def _summary(rows: list[dict]) -> str:
    return "; ".join(f"{r['name']} p={r['p_value']:.2g} zm={r['z_mean']:.1f} zv={r['z_var']:.1f}"
                     for r in rows)


def _params(kind, family):
    return pytest.param(kind, family, id=f"{kind}-{family}")


@pytest.mark.parametrize("kind, family", [_params(k, f) for k, f in CASES])
def test_sbc_two_blocks(kind, family):
    reps = R
    failures, rows, secs = run_case(blocks_sbc_case(kind, family), reps)
    print(f"\n{kind}-{family}: {reps} replications in {secs:.0f} s; {_summary(rows)}")
    assert not failures, f"{kind}-{family} is not calibrated:\n" + "\n".join(failures)


@pytest.mark.parametrize("kind", ["crossed", "nested"])
def test_sbc_two_blocks_poisson_moderate_priors(kind):
    # Poisson with the default prior family at the moderate fixed scales of test_sbc.py's GLMM
    # default-prior cases (smaller counts than the exact defaults give)
    failures, rows, secs = run_case(blocks_sbc_case(kind, "poisson", moderate=True))
    print(f"\n{kind}-poisson-moderate: {R} replications in {secs:.0f} s; {_summary(rows)}")
    assert not failures, f"{kind}-poisson-moderate is not calibrated:\n" + "\n".join(failures)


@pytest.mark.parametrize("kind, family", [("crossed", "bernoulli"), ("nested", "gaussian")])
def test_sbc_blocks_detects_wrong_sd_prior(kind, family):
    # Negative control: the simulator's SD prior scale x3, the fit at the (true) defaults; the
    # posterior of each SD is pulled towards the smaller default scale, so the SDs' ranks pile
    # up at the top. The same rank test must flag an SD, with fewer replications (R_CONTROL).
    failures, rows, secs = run_case(blocks_sbc_case(kind, family, sd_scale_factor=3.0),
                                    R_CONTROL)
    print(f"\nnegative control {kind}-{family}: {R_CONTROL} replications in {secs:.0f} s; "
          f"{_summary(rows)}")
    assert any(f.startswith("sd_") for f in failures), \
        "SBC failed to flag the SD prior scale x3:\n" + _summary(rows)


@pytest.mark.parametrize("kind", ["crossed", "nested"])
@pytest.mark.parametrize("family", ["poisson", "bernoulli"])
def test_simulator_priors_are_bglmm_fit_defaults(kind, family):
    # The log / logit-scale defaults depend on the design only: the priors the simulator draws
    # from are those bglmm.fit resolves for a simulated data set (any response).
    pri, keys, explicit = case_priors(kind, family)
    assert not explicit
    rng = np.random.default_rng(1)
    truth, data = blocks_sbc_case(kind, family).simulate(rng)
    f = bglmm.fit(FORMULAS[kind], data["frame"], family, chains=1, draws=2, warmup=2, seed=1,
                  threads=1, progress=False, check=False)
    assert repr(f.priors) == repr(pri)
    assert keys == (["a", "b"] if kind == "crossed" else ["a", "a:b"])
    for k in keys:
        assert pri[k] == P.HalfStudentT(3.0, 2.5)
