"""Simulation-based calibration (Talts et al. 2018), CI size.

For every family x link x sampler of the GLM (with the families with a dispersion --
negbinomial, gamma, beta_binomial, whose sampler alternates the Metropolis-Hastings step of beta
with a slice step of log phi -- phi ~ Gamma(2, 0.5) is ranked with beta; here the beta-binomial
runs its random-walk sampler with the logit link only), the hierarchical normal (exact and
Gibbs) and linear mixed model (Gibbs) samplers, and the GLMM Metropolis-within-Gibbs sampler
(Laplace and random-walk group kernels, poisson / binomial / bernoulli), and for the LMM and GLMM
samplers under covariance priors of the default family (LKJ(2) + Half-Student-t(3) SDs, q = 1,
2, 3), and the cumulative ordinal family's GLM sampler (logit; K = 4 categories, the
cutpoints ranked with beta): draw parameters from the prior, data from the model, fit, and
record the rank of each true parameter among L = 39 thinned posterior draws. For a correct
sampler the ranks are uniform on {0, ..., 39}. Each scalar parameter is tested three ways
(``bglmm.testing.rank_uniformity``): a chi-square test on 20 bins (any shape), and two directed
z-scores on u = (rank + 1/2)/40: its mean (a biased posterior, e.g. a sign error) and its
variance (a posterior too narrow -> U-shaped ranks, too wide -> humped).

Thresholds: 321 scalar parameters x 3 statistics are tested, so each uses a per-test level
near 5e-5 (chi-square p < 5e-5, |z| > 4.0): a correct sampler then fails this file with
probability at most about 6% (Bonferroni: 321 x (5e-5 + 2 x 6.3e-5) = 0.057), and the seeds are
fixed so the outcome is deterministic.
Power (``test_sbc_detects_wrong_posterior``): a sampler whose posterior variance is off by ~60%,
or whose prior variance is off by a factor 4, is rejected (|z_var| ~ 5-15 at R = 600); a
posterior biased by 0.2 of its SD moves z_mean by about 0.2 sqrt(R) (4.8 at R = 600); a
dispersion prior whose rate is 1.5 times the simulator's (prior mean of phi 2.7 instead of 4) is
rejected through phi's ranks (z_mean 7-8 at R = 600); a cumulative model fitted with its
cutpoints' prior sd halved is rejected through the cutpoints' ranks (|z| up to ~10 at R = 600).
The default-family cases are checked the same way (``test_sbc_detects_wrong_default_family_prior``:
the SD prior scales halved in the fit).

The full-size version (>= 500 replications per case and a results table) is
``python validation/sbc.py``.
"""

from __future__ import annotations

import re

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


# All but the beta-binomial's random-walk sampler with the probit and cloglog links: its
# likelihood is the costliest, and the random-walk step is the same code for every link, which
# only enters the likelihood (the independence cases cover it). validation/sbc.py runs them all.
GLM_CASES = [c for c in testing.glm_sbc_cases()
             if not re.fullmatch(r"glm-beta_binomial-(probit|cloglog)-random_walk.*", c.name)]


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


# The GLMM with a family's dispersion (the slice step of log phi closes each sweep), at R = 600:
# negbinomial with both group kernels, gamma, and the zero-inflated Poisson with the Laplace
# kernel. The beta-binomial cases (its likelihood costs ~4x the others: about a minute each), the
# zero-inflated Poisson with the random-walk kernel, the zero-inflated negative binomial and the
# Student-t run
# in validation/sbc.py (to keep the suite's time); in CI those are proven by the one-sweep
# Geweke tests of test_glmm.py.
# So does the cumulative family's GLMM case (see CUMULATIVE_CASES below).
VALIDATION_ONLY = ("glmm-zero_inflated_poisson-log-random_walk",
                   "glmm-zero_inflated_negbinomial-log-laplace", "glmm-student-identity-laplace",
                   "glmm-cumulative-logit-laplace", "glmm-cumulative-probit-laplace",
                   "glm-cumulative-probit-random_walk",
                   # the GLMM's q = 3 default-prior case (50 s): the LKJ steps at q = 3 are
                   # proven in CI by test_glmm.py's Geweke tests (centred and not)
                   "glmm-poisson-log-laplace-default-prior-q3")
GLMM_DISPERSION_CASES = [c for c in testing.glmm_dispersion_sbc_cases()
                         if not c.name.startswith("glmm-beta_binomial-")
                         and c.name not in VALIDATION_ONLY]


@pytest.mark.parametrize("case", GLMM_DISPERSION_CASES, ids=[c.name for c in GLMM_DISPERSION_CASES])
def test_glmm_dispersion_sbc(case):
    failures = run_case(case)
    assert not failures, f"{case.name} is not calibrated:\n" + "\n".join(failures)


# The zero-inflated Poisson GLMM with a zi formula (zi ~ w: the adaptive Metropolis-Hastings step
# of zi at the mean of w and the slope closes each sweep), at R = 600; the negative control fits
# with the slope's prior SD x0.4 (its prior variance off by a factor 6).
ZI_FORMULA_CASE = testing.glmm_sbc_case("zero_inflated_poisson", None, "laplace", zi_slope_sd=1.0)


def test_glmm_zero_inflation_formula_sbc():
    failures = run_case(ZI_FORMULA_CASE)
    assert not failures, f"{ZI_FORMULA_CASE.name} is not calibrated:\n" + "\n".join(failures)


def test_sbc_detects_a_wrong_zero_inflation_slope_prior():
    case = testing.glmm_sbc_case("zero_inflated_poisson", None, "laplace", zi_slope_sd=1.0,
                                 fit_zi_slope_sd_factor=0.4)
    assert run_case(case), f"SBC failed to flag the deliberately wrong case {case.name}"


# The covariance priors of the default family (LKJ(2) on the correlations, Half-Student-t(3, s_k)
# on each SD; a single SD: Half-Student-t(3, s)) with fixed scales, for the LMM's collapsed
# Metropolis-Hastings + Gibbs sampler (q = 1, 2, 3) and the GLMM's Laplace kernel with its slice
# step, interweaving and marginal move (poisson q = 1, 2 -- and q = 3 in validation/sbc.py; binomial-logit q = 1, 2). Full 600
# replications, for power against a small bias: with every posterior draw shifted by d posterior
# SDs (the LMM q = 1, 2 and poisson q = 1 cases, 3 seeds, 63 scalar parameters), this file's
# thresholds flagged 0% of the parameters at d = 0, 5% at d = 0.1, 94% at d = 0.2 (median
# |z_mean| 5.2) and 100% at d = 0.3. |z_mean| grows as sqrt(R): at R = 250 the median for
# d = 0.2 would be ~3.4, below the threshold of 4.
DEFAULT_PRIOR_CASES = [c for c in testing.default_prior_sbc_cases()
                       if c.name not in VALIDATION_ONLY]
R_DEFAULT_PRIOR = 600


@pytest.mark.parametrize("case", DEFAULT_PRIOR_CASES, ids=[c.name for c in DEFAULT_PRIOR_CASES])
def test_default_prior_sbc(case):
    failures = run_case(case, R_DEFAULT_PRIOR)
    assert not failures, f"{case.name} is not calibrated:\n" + "\n".join(failures)


# The cumulative ordinal family (K = 4; bglmm.testing.cumulative_sbc_case): bglmm.glm's
# random-walk sampler, with its slice steps of the cutpoints and joint independence step of beta
# and the cutpoints, n = 80, at R = 600 (about 20 s each; the logit link here, the probit in
# validation/sbc.py, where it passes too, and in CI by the quadrature test). Ranks
# of beta (2) and the 3 cutpoints. Data sets with an empty category (9-10% of them) are redrawn,
# parameters and all; the event is one of the data alone, so the ranks stay uniform. The GLMM
# cases (logit and probit, Laplace kernel, a random intercept over 10 groups of 8 rows; R >= 600)
# are in VALIDATION_ONLY, to keep this file's time; in CI the one-sweep Geweke tests of
# test_cumulative.py cover the GLMM's cutpoint steps.
CUMULATIVE_CASES = [c for c in testing.cumulative_sbc_cases() if c.name not in VALIDATION_ONLY]


@pytest.mark.parametrize("case", CUMULATIVE_CASES, ids=[c.name for c in CUMULATIVE_CASES])
def test_cumulative_sbc(case):
    failures = run_case(case)
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
    # the dispersion prior's rate x1.5 in the fit: its mean 2.7 instead of 4, so the slice step
    # of phi targets a posterior shifted down
    testing.glm_sbc_case("negbinomial", sampler="independence", fit_dispersion_rate_factor=1.5),
    testing.glm_sbc_case("gamma", sampler="independence", fit_dispersion_rate_factor=1.5),
    # the same in the GLMM: negbinomial, random-walk group kernel (the cheapest GLMM case)
    testing.glmm_sbc_case("negbinomial", None, "random_walk", fit_dispersion_rate_factor=1.5),
    # the zero-inflated Poisson GLMM fitted under zi ~ Beta(2, 8) (mean 0.2) while the data
    # come from Beta(2, 4) (mean 1/3)
    testing.glmm_sbc_case("zero_inflated_poisson", None, "random_walk",
                          fit_dispersion_rate_factor=2.0),
    # the cumulative GLM (logit) fitted with its cutpoints' prior sd halved (0.75 instead of
    # 1.5: the prior variance of each cutpoint off by a factor 4)
    *testing.wrong_cumulative_sbc_cases(),
]


@pytest.mark.parametrize("case", WRONG_CASES, ids=[c.name for c in WRONG_CASES])
def test_sbc_detects_wrong_posterior(case):
    assert run_case(case), f"SBC failed to flag the deliberately wrong case {case.name}"


# The default-family cases fitted with every SD prior scale halved (data from the right prior):
# the negative control of test_default_prior_sbc, at its number of replications.
WRONG_DEFAULT_PRIOR_CASES = testing.wrong_default_prior_sbc_cases()


@pytest.mark.parametrize("case", WRONG_DEFAULT_PRIOR_CASES,
                         ids=[c.name for c in WRONG_DEFAULT_PRIOR_CASES])
def test_sbc_detects_wrong_default_family_prior(case):
    assert run_case(case, R_DEFAULT_PRIOR), \
        f"SBC failed to flag the deliberately wrong case {case.name}"


def test_lkj_simulator():
    # The SBC cases draw correlation matrices by the vine method; a wrong simulator would make a
    # correct sampler fail (or, with a compensating sampler bug, pass). Every marginal
    # correlation of LKJ(eta) in dimension q is 2 Beta(eta - 1 + q/2, eta - 1 + q/2) - 1, and
    # LKJ(2) is LKJ(1) reweighted by det(Omega).
    import numpy as np
    from scipy import stats

    from bglmm.testing import _draw_lkj

    rng = np.random.default_rng(3)
    for q, eta in [(2, 2.0), (3, 2.0), (3, 1.0)]:
        R = np.array([_draw_lkj(rng, q, eta) for _ in range(2000)])
        assert np.all(np.linalg.eigvalsh(R)[:, 0] > 0)
        a = eta - 1 + q / 2
        for i, j in zip(*np.triu_indices(q, 1)):
            assert stats.kstest((R[:, i, j] + 1) / 2, stats.beta(a, a).cdf).pvalue > 1e-4
    R1 = np.array([_draw_lkj(rng, 3, 1.0) for _ in range(8000)])
    R2 = np.array([_draw_lkj(rng, 3, 2.0) for _ in range(8000)])
    w = np.linalg.det(R1)
    for f in (lambda R: R[:, 0, 1] * R[:, 0, 2] * R[:, 1, 2], lambda R: R[:, 0, 1] ** 2):
        x1, x2 = f(R1), f(R2)
        se = np.sqrt(x2.var() / x2.size + np.sum(w**2 * (x1 - np.sum(w * x1) / w.sum())**2)
                     / w.sum()**2)
        assert abs(np.sum(w * x1) / w.sum() - x2.mean()) < 4.5 * se


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
