"""Several random-effect blocks in the GLMM core (random_blocks.hpp, steps/extra_blocks.hpp):
crossed and nested factors, uncorrelated terms, observation-level effects.

Geweke tests of the extra blocks' steps (levels, Sigma_k, translation, scale move) with a
negative control; bitwise thread independence; a crossed design against its truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import digamma

import bglmm
from bglmm import _core

# ---- Geweke joint-distribution tests -------------------------------------------------------
# As in test_glmm.py: from a prior draw, alternate one sweep and y ~ p(y | theta); the draws of
# theta must follow the prior. z-scores from 50 batch means; |z| < 4.5 per moment.


def _batch_z(funcs, exact):
    """z-scores of the chain means of g(theta) against their exact prior moments, with the MCSE
    from 50 batch means."""
    z = {}
    for key, v in funcs.items():
        batches = v[: len(v) // 50 * 50].reshape(50, -1).mean(axis=1)
        z[key] = (v.mean() - exact[key]) / (batches.std(ddof=1) / np.sqrt(50))
    return z


def _blocks_geweke_z(family_code, q_extra, *, primary_centred=True, lkj=False,
                     sampler_scale=1.0, iterations=80000, trials=1.0, seed=11,
                     level_covariate=False):
    rng = np.random.default_rng(0)
    m, k = 4, 3
    n = m * k
    x = np.round(rng.normal(size=n), 2)
    if level_covariate:  # constant within the extra block's levels: a weighted translation
        x = np.round(rng.normal(size=3), 2)[np.arange(n) % 3]
    X = np.ascontiguousarray(np.column_stack([np.ones(n), x]))
    Z = np.ascontiguousarray(X[:, :1])  # primary: random intercept
    gs = np.arange(0, n + 1, k, dtype=np.int64)
    codes = (np.arange(n) % 3).astype(np.int64)  # crossed with the primary groups
    Zk = np.ascontiguousarray(X[:, :q_extra])  # its columns equal X's: translation moves
    start = np.array([0, 4, 8, 12], dtype=np.int64)
    rows = np.argsort(codes, kind="stable").astype(np.int64)
    m0 = np.array([0.2, -0.1])
    V0 = np.array([[0.25, 0.05], [0.05, 0.16]])
    primary = {"kind": 0, "iw_df": 7.0, "iw_scale": np.array([[0.3 * 5.0]])}  # E = 0.3
    if lkj:
        scales = np.array([0.6, 0.4])[:q_extra]
        extra_prior = {"kind": 1, "sd_kind": [3] * q_extra, "sd_a": [0.0] * q_extra,
                       "sd_b": list(scales * sampler_scale), "eta": 2.0}
        ES = np.diag(scales**2)
    else:
        nu = q_extra + 6.0
        ES = np.array([[0.35, 0.05], [0.05, 0.2]])[:q_extra, :q_extra]
        extra_prior = {"kind": 0, "iw_df": nu, "iw_scale": ES * (nu - q_extra - 1) * sampler_scale}
    gaussian = family_code == 0
    a0, b0 = (4.0, 1.5) if gaussian else (0.0, 0.0)
    pairs = [(0, 0)] if primary_centred else []
    extra = [{"codes": codes, "z": Zk, "level_start": start, "level_rows": rows,
              "cov_prior": extra_prior}]
    d = _core.glmm_geweke(X, Z, np.zeros(n), np.full(n, trials), np.zeros(n), gs, family_code,
                          pairs, m0, V0, primary, a0, b0, {"kernel": 0, "threads": 1},
                          iterations, seed, extra)
    p, q = 2, 1
    base = p + q * q + q + 1
    funcs, exact = {}, {}
    for j in range(p):
        funcs[f"beta{j}"], exact[f"beta{j}"] = d[:, j], m0[j]
        funcs[f"beta{j}^2"], exact[f"beta{j}^2"] = d[:, j] ** 2, V0[j, j] + m0[j] ** 2
    funcs["Sigma"], exact["Sigma"] = d[:, p], 0.3
    for a in range(q_extra):
        s_aa = d[:, base + a * q_extra + a]
        funcs[f"Sk{a}{a}"], exact[f"Sk{a}{a}"] = s_aa, ES[a, a]
        bk = d[:, base + q_extra * q_extra + a]
        funcs[f"bk{a}"], exact[f"bk{a}"] = bk, 0.0
        funcs[f"bk{a}^2"], exact[f"bk{a}^2"] = bk**2, ES[a, a]
        if lkj:
            funcs[f"Sk{a}{a}^2"], exact[f"Sk{a}{a}^2"] = s_aa**2, 3 * ES[a, a] ** 2
    if q_extra == 2 and not lkj:
        funcs["Sk01"], exact["Sk01"] = d[:, base + 1], ES[0, 1]
    if gaussian:
        funcs["phi"], exact["phi"] = d[:, p + q * q + q], b0 / (a0 - 1)
    return _batch_z(funcs, exact)


@pytest.mark.parametrize(
    "family_code, q_extra, primary_centred, lkj",
    [
        (1, 1, True, False),   # poisson, crossed random intercept, intercept centred
        (1, 2, False, True),   # poisson, crossed intercept + slope under LKJ, all free
        (2, 1, False, False),  # logistic, crossed random intercept, free intercept
        (2, 2, True, False),   # logistic, crossed (1 + x) with inverse-Wishart
        (0, 1, True, False),   # gaussian (exact level steps) + residual variance
        (0, 2, False, True),   # gaussian, two terms under LKJ: the exact non-centred scale step
    ],
)
def test_geweke_extra_block(family_code, q_extra, primary_centred, lkj):
    z = _blocks_geweke_z(family_code, q_extra, primary_centred=primary_centred, lkj=lkj)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


def test_geweke_extra_block_level_covariate():
    # x constant within the crossed factor's levels: beta_x translates against its intercepts
    z = _blocks_geweke_z(2, 1, primary_centred=False, level_covariate=True)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


def test_geweke_extra_block_detects_a_prior_mismatch():
    # negative control: the sampler uses twice the prior scale of the extra block's Sigma
    z = _blocks_geweke_z(1, 1, sampler_scale=2.0)
    assert max(abs(z["Sk00"]), abs(z["bk0^2"])) > 8, {k: round(v, 1) for k, v in z.items()}


# ---- nested blocks: (1 | a/b) and (1 | a/b/c) ------------------------------------------------
# The nested translation, the parent's scale move and the collapsed move of both SDs (with each
# parent level's split integrated out) run only for nested blocks; these designs give parents
# one, two and three children.


def _nested_geweke_z(family_code, *, three_levels=False, config=None, iterations=80000, seed=5):
    rng = np.random.default_rng(1)
    child = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 4, 5, 5, 6, 6])  # 7 children of 4 parents
    parent_of_child = np.array([0, 1, 1, 2, 2, 3, 3])
    n = child.size
    gs = np.array([0, 4, 8, 12, 16], dtype=np.int64)  # rows sorted by parent
    x = np.round(rng.normal(size=n), 2)
    X = np.ascontiguousarray(np.column_stack([np.ones(n), x]))
    Z = np.ascontiguousarray(X[:, :1])
    ones = np.ones((n, 1))

    def block(codes, prior_e, parent, parent_level):
        codes = codes.astype(np.int64)
        m = codes.max() + 1
        start = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=m))]).astype(np.int64)
        rows = np.argsort(codes, kind="stable").astype(np.int64)
        return {"codes": codes, "z": ones, "level_start": start, "level_rows": rows,
                "cov_prior": {"kind": 0, "iw_df": 7.0, "iw_scale": np.array([[prior_e * 5.0]])},
                "parent": parent, "parent_level": list(parent_level)}

    extra = [block(child, 0.35, -1, parent_of_child)]
    E = [0.35]
    if three_levels:  # observation pairs within the children: 10 grandchildren
        grand = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 5, 6, 7, 7, 8, 9])
        extra.append(block(grand, 0.2, 0, [0, 0, 1, 2, 3, 3, 4, 5, 6, 6]))
        E.append(0.2)
    m0 = np.array([0.2, -0.1])
    V0 = np.array([[0.25, 0.05], [0.05, 0.16]])
    primary = {"kind": 0, "iw_df": 7.0, "iw_scale": np.array([[0.3 * 5.0]])}  # E = 0.3
    gaussian = family_code == 0
    a0, b0 = (4.0, 1.5) if gaussian else (0.0, 0.0)
    cfg = {"kernel": 0, "threads": 1, **(config or {})}
    d = _core.glmm_geweke(X, Z, np.zeros(n), np.ones(n), np.zeros(n), gs, family_code, [(0, 0)],
                          m0, V0, primary, a0, b0, cfg, iterations, seed, extra)
    p = 2
    funcs, exact = {}, {}
    for j in range(p):
        funcs[f"beta{j}"], exact[f"beta{j}"] = d[:, j], m0[j]
        funcs[f"beta{j}^2"], exact[f"beta{j}^2"] = d[:, j] ** 2, V0[j, j] + m0[j] ** 2
    funcs["Sigma"], exact["Sigma"] = d[:, p], 0.3
    funcs["b0^2"], exact["b0^2"] = d[:, p + 1] ** 2, 0.3
    col = p + 3  # after beta (p), Sigma (1), b_0 (1) and phi (1)
    for k, e in enumerate(E):
        funcs[f"S{k}"], exact[f"S{k}"] = d[:, col], e
        # IW(7, 5e) in one dimension: inverse-gamma(3.5, 2.5e), whose S^2 has no variance
        funcs[f"log S{k}"], exact[f"log S{k}"] = np.log(d[:, col]), np.log(2.5 * e) - digamma(3.5)
        funcs[f"bk{k}"], exact[f"bk{k}"] = d[:, col + 1], 0.0
        funcs[f"bk{k}^2"], exact[f"bk{k}^2"] = d[:, col + 1] ** 2, e
        col += 2
    return _batch_z(funcs, exact)


@pytest.mark.parametrize("family_code, three_levels", [(1, False), (2, False), (1, True)])
def test_geweke_nested_blocks(family_code, three_levels):
    z = _nested_geweke_z(family_code, three_levels=three_levels)
    bad = {k: round(v, 1) for k, v in z.items() if abs(v) > 4.5}
    assert not bad, f"prior moments not recovered: {bad}"


def test_geweke_detects_a_wrong_collapsed_target():
    # negative control: the collapsed target without the normaliser h_p^{-1/2} of the integral
    # over each parent's split
    z = _nested_geweke_z(1, config={"collapsed_drop_normaliser": True})
    assert max(abs(v) for v in z.values()) > 8, {k: round(v, 1) for k, v in z.items()}


def test_two_factor_fit_is_bitwise_identical_across_thread_counts():
    rng = np.random.default_rng(3)
    n = 600
    df = {"a": rng.integers(0, 30, n), "b": rng.integers(0, 12, n), "x": rng.normal(size=n)}
    eta = 0.2 + 0.5 * df["x"] + rng.normal(0, 0.8, 30)[df["a"]] + rng.normal(0, 0.4, 12)[df["b"]]
    df["y"] = rng.poisson(np.exp(eta)).astype(float)
    import pandas as pd

    frame = pd.DataFrame(df)
    fits = [bglmm.fit("y ~ x + (1 | a) + (1 + x | b)", frame, family="poisson", seed=4, chains=1,
                      draws=30, warmup=40, threads=t, progress=False, check=False,
                      min_rows_per_thread=1) for t in (1, 2, 3)]
    for f in fits[1:]:
        for name in ("beta", "b_a", "b_b", "Sigma_a", "Sigma_b"):
            assert np.array_equal(fits[0].posterior[name], f.posterior[name]), name
