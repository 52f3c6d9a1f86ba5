"""Simulation-based calibration (Talts et al. 2018), CI size.

For every family x link x sampler of the GLM, the hierarchical normal (exact and Gibbs) and
linear mixed model (Gibbs) samplers, and the GLMM Metropolis-within-Gibbs sampler (Laplace and
random-walk group kernels, poisson / binomial / bernoulli): draw parameters from the prior, data from the model, fit, and
record the rank of each true parameter among L = 39 thinned posterior draws. For a correct
sampler the ranks are uniform on {0, ..., 39}. Each scalar parameter is tested three ways
(``bglmm.testing.rank_uniformity``): a chi-square test on 20 bins (any shape), and two directed
z-scores on u = (rank + 1/2)/40: its mean (a biased posterior, e.g. a sign error) and its
variance (a posterior too narrow -> U-shaped ranks, too wide -> humped).

Thresholds: about 100 scalar parameters x 3 statistics are tested, so each uses a per-test level
near 5e-5 (chi-square p < 5e-5, |z| > 4.0): a correct sampler then fails this file with
probability about 2% (Bonferroni), and the seeds are fixed so the outcome is deterministic.
Power (``test_sbc_detects_wrong_posterior``): a sampler whose posterior variance is off by ~60%,
or whose prior variance is off by a factor 4, is rejected (|z_var| ~ 5-15 at R = 600).

The full-size version (>= 500 replications per case and a results table) is
``python validation/sbc.py``.
"""

from __future__ import annotations

import pytest

from bglmm import testing

L = 39  # posterior draws per replication (L + 1 = 40 possible ranks, 20 bins of 2)
R = 600  # replications per case
SEED = 20240501
CHI2_ALPHA = 5e-5
Z_MAX = 4.0  # two-sided p = 6e-5


def calibration_failures(rows: list[dict]) -> list[str]:
    bad = []
    for r in rows:
        if r["p_value"] < CHI2_ALPHA or abs(r["z_mean"]) > Z_MAX or abs(r["z_var"]) > Z_MAX:
            bad.append(f"{r['name']}: chi2 p = {r['p_value']:.2g}, z_mean = {r['z_mean']:.2f}, "
                       f"z_var = {r['z_var']:.2f}, counts = {r['counts'].tolist()}")
    return bad


def run_case(case: testing.SbcCase, replications: int = R) -> list[str]:
    ranks = testing.sbc_ranks(case, replications, L, seed=SEED)
    return calibration_failures(testing.rank_uniformity(ranks, L, bins=20))


GLM_CASES = testing.glm_sbc_cases()


@pytest.mark.parametrize("case", GLM_CASES, ids=[c.name for c in GLM_CASES])
def test_glm_sbc(case):
    failures = run_case(case)
    assert not failures, f"{case.name} is not calibrated:\n" + "\n".join(failures)


HIERARCHICAL_CASES = testing.hierarchical_sbc_cases()


@pytest.mark.parametrize("case", HIERARCHICAL_CASES, ids=[c.name for c in HIERARCHICAL_CASES])
def test_hierarchical_sbc(case):
    failures = run_case(case)
    assert not failures, f"{case.name} is not calibrated:\n" + "\n".join(failures)


GLMM_CASES = testing.glmm_sbc_cases()
R_GLMM = 250  # the GLMM fits cost ~5x more; 250 replications still give |z_var| ~ 4-10 for a
# posterior variance off by 60%


@pytest.mark.parametrize("case", GLMM_CASES, ids=[c.name for c in GLMM_CASES])
def test_glmm_sbc(case):
    failures = run_case(case, R_GLMM)
    assert not failures, f"{case.name} is not calibrated:\n" + "\n".join(failures)


# Deliberately wrong samplers (the fit targets a different posterior from the one that generated
# the data); each must be flagged, which shows the test above has the power to catch a kernel
# with a wrong variance.
WRONG_CASES = [
    # residual sd 30% too large / 25% too small in the likelihood: posterior variance off by
    # a factor 1.7 / 0.56
    testing.glm_sbc_case("gaussian", sampler="conjugate", fit_sigma_factor=1.3),
    testing.glm_sbc_case("gaussian", sampler="random_walk", fit_sigma_factor=0.75),
    testing.glm_sbc_case("gaussian", sampler="independence", fit_sigma_factor=1.3),
    # prior sd halved: prior variance off by a factor 4
    testing.glm_sbc_case("bernoulli", "logit", "random_walk", fit_prior_sd_factor=0.5),
    testing.glm_sbc_case("binomial", "cloglog", "independence", fit_prior_sd_factor=0.5),
    testing.glm_sbc_case("poisson", sampler="random_walk", fit_prior_sd_factor=0.5),
]


@pytest.mark.parametrize("case", WRONG_CASES, ids=[c.name for c in WRONG_CASES])
def test_sbc_detects_wrong_posterior(case):
    assert run_case(case), f"SBC failed to flag the deliberately wrong case {case.name}"


def test_rank_uniformity_statistics_on_exact_uniform_ranks():
    # Ranks drawn exactly uniformly pass; ranks piled at the ends (a too-narrow posterior) and
    # ranks shifted up (a biased posterior) fail through the matching directed statistic.
    import numpy as np

    rng = np.random.default_rng(1)
    uniform = {"a": rng.integers(0, L + 1, size=(R, 3))}
    assert not calibration_failures(testing.rank_uniformity(uniform, L, bins=20))
    u_shaped = {"a": np.where(rng.random(R) < 0.5, rng.integers(0, 8, R), rng.integers(32, 40, R))}
    rows = testing.rank_uniformity(u_shaped, L, bins=20)
    assert rows[0]["z_var"] > Z_MAX and calibration_failures(rows)
    shifted = {"a": np.minimum(rng.integers(0, L + 1, R) + 8, L)}
    rows = testing.rank_uniformity(shifted, L, bins=20)
    assert rows[0]["z_mean"] > Z_MAX and calibration_failures(rows)
