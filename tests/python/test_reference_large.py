"""Posteriors of data sets larger than one likelihood block, against independent references.

The GLM sampler sums its log-likelihood over chunks of 2,048 rows, and the GLMM's per-group
kernels work through each group's rows in padded blocks of up to 64. Here:

* GLMs (logistic and poisson, 2 coefficients) with n = 5,003 rows — three chunks, the last one
  partial, and 5,003 is a multiple of no block or padding size — fitted with both the
  random-walk and the independence sampler;
* random-intercept GLMMs (poisson and logistic) with groups of 65 to 201 rows — one to four
  blocks per group, with and without a partial (padded) last block — fitted with the default
  Laplace kernel and with the random-walk kernel, under a half-normal and a half-Student-t prior
  on the random-effect SD.

The references are computed in this file with NumPy/SciPy only (no bglmm code):

* GLM: the posterior mean and sd of each coefficient by trapezoidal quadrature on a 2-D grid
  laid over the Laplace approximation (beta = mode + L u, u on a regular grid over +-8);
* GLMM: the marginal likelihood of (beta0, log tau) — each group's intercept integrated out by
  adaptive Gauss-Hermite quadrature (20 nodes around the mode of the integrand, scaled by its
  curvature) — times the priors and the Jacobian tau of log tau, then quadrature over
  (beta0, log tau): a regular grid in log tau over everything within e^-30 of the peak of the
  profile, and for each log tau a regular grid in beta0 centred at the conditional mode and
  scaled by the conditional curvature. The offsets take four values, so each group's rows are
  summed into four cells (successes and rows per offset level) before integrating; the sampler
  sees every row. Both grids are far finer than needed: halving the spacing and widening them
  moves the reference by less than 1e-7.

Agreement: for each parameter, |MCMC mean - reference mean| <= 4 mcse_mean and
|MCMC sd - reference sd| <= 4 mcse_sd, with ArviZ's MCSEs (which account for autocorrelation).
For a correct sampler each such check fails with probability ~6e-5; the seeds are fixed, so the
tests are deterministic. Each test also runs the same check against a reference computed from a
slightly wrong data set — the GLM without its last, partial chunk (rows 4,096 to 5,002); the GLMM
with every group cut to its first block of 64 rows, the two errors a block-handling bug would
make — and requires it to fail, so the tolerance is tight enough to catch that class of error.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, special

import bglmm
from bglmm.results import import_arviz

az = import_arviz()

Z = 4.0


# ---------------------------------------------------------------------------------------------
# The check: means and sds within Z Monte-Carlo standard errors
# ---------------------------------------------------------------------------------------------
def z_scores(draws: dict[str, np.ndarray], ref_mean: dict[str, float],
             ref_sd: dict[str, float]) -> dict[str, float]:
    """|MCMC - reference| / MCSE for the mean and the sd of each (chain, draw) array."""
    out = {}
    for name, x in draws.items():
        x = np.asarray(x, dtype=float)
        mcse_mean = float(az.mcse(x, method="mean"))
        mcse_sd = float(az.mcse(x, method="sd"))
        out[f"mean {name}"] = abs(x.mean() - ref_mean[name]) / mcse_mean
        out[f"sd {name}"] = abs(x.std(ddof=1) - ref_sd[name]) / mcse_sd
    return out


def assert_agrees(draws, reference, control):
    """The fit agrees with `reference` within Z MCSE and disagrees with `control`."""
    z = z_scores(draws, *reference)
    assert max(z.values()) <= Z, f"MCMC vs reference, |diff| / MCSE: {z}"
    z_control = z_scores(draws, *control)
    assert max(z_control.values()) > Z, (
        f"the check cannot tell the reference from the perturbed control: {z_control}")


# ---------------------------------------------------------------------------------------------
# GLM: n = 5,003 rows, 2 coefficients
# ---------------------------------------------------------------------------------------------
N_ROWS = 5003
GLM_CHUNK = 2048  # rows per likelihood chunk in the GLM sampler
GLM_PRIOR_MEAN = np.array([0.0, 0.5])
GLM_PRIOR_SD = np.array([2.0, 1.0])


def glm_log_lik(family: str, X: np.ndarray, y: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Log-likelihood (up to a constant) at each row of betas (k, 2), written with scipy."""
    eta = betas @ X.T
    if family == "bernoulli":
        return special.log_expit(np.where(y > 0, eta, -eta)).sum(axis=1)
    return (y * eta - np.exp(eta)).sum(axis=1)


def glm_reference(family: str, X: np.ndarray, y: np.ndarray, points: int = 41,
                  width: float = 8.0) -> tuple[dict[str, float], dict[str, float]]:
    """Posterior mean and sd of each coefficient by 2-D grid quadrature."""

    def log_post(b):
        b = np.atleast_2d(b)
        prior = -0.5 * np.sum(((b - GLM_PRIOR_MEAN) / GLM_PRIOR_SD) ** 2, axis=1)
        return glm_log_lik(family, X, y, b) + prior

    mode = optimize.minimize(lambda b: -log_post(b)[0], np.zeros(2), method="BFGS",
                             options={"gtol": 1e-9}).x
    eta = X @ mode
    w = special.expit(eta) * special.expit(-eta) if family == "bernoulli" else np.exp(eta)
    hessian = (X * w[:, None]).T @ X + np.diag(GLM_PRIOR_SD**-2.0)
    L = np.linalg.cholesky(np.linalg.inv(hessian))
    u = np.linspace(-width, width, points)
    nodes = mode + np.array(np.meshgrid(u, u, indexing="ij")).reshape(2, -1).T @ L.T
    logw = np.concatenate([log_post(c) for c in np.array_split(nodes, 8)])
    weights = np.exp(logw - logw.max())
    weights /= weights.sum()
    edge = weights.reshape(points, points)
    assert max(edge[0].max(), edge[-1].max(), edge[:, 0].max(), edge[:, -1].max()) < 1e-12
    mean = weights @ nodes
    sd = np.sqrt(weights @ (nodes - mean) ** 2)
    return ({f"beta{k}": mean[k] for k in range(2)}, {f"beta{k}": sd[k] for k in range(2)})


@pytest.fixture(scope="module", params=["bernoulli", "poisson"])
def glm_case(request):
    family = request.param
    rng = np.random.default_rng(20240611)
    x = rng.standard_normal(N_ROWS)
    X = np.column_stack([np.ones(N_ROWS), x])
    if family == "bernoulli":
        y = (rng.uniform(size=N_ROWS) < special.expit(-0.4 + 0.7 * x)).astype(float)
    else:
        y = rng.poisson(np.exp(0.3 + 0.5 * x)).astype(float)
    reference = glm_reference(family, X, y)
    # control: the likelihood without the last, partial chunk of rows
    full = N_ROWS // GLM_CHUNK * GLM_CHUNK
    control = glm_reference(family, X[:full], y[:full])
    return family, X, y, reference, control


@pytest.mark.parametrize("sampler", ["random_walk", "independence"])
def test_glm_more_rows_than_one_chunk_matches_quadrature(glm_case, sampler):
    family, X, y, reference, control = glm_case
    assert N_ROWS > 2 * GLM_CHUNK and N_ROWS % 8 != 0
    # the random walk keeps ~1 draw in 8 (ESS); twice the draws keep the control's expected
    # |diff| / MCSE for the sds (their 10% difference) near 7 rather than 5
    fit = bglmm.glm(X, y, family=family, sampler=sampler,
                    prior=bglmm.priors.Normal(GLM_PRIOR_MEAN, GLM_PRIOR_SD), chains=4,
                    draws=5000 if sampler == "random_walk" else 2500, warmup=500, seed=17)
    draws = {f"beta{k}": fit.draws[..., k] for k in range(2)}
    assert_agrees(draws, reference, control)


# ---------------------------------------------------------------------------------------------
# GLMM: random intercept, groups of 65 to 201 rows
# ---------------------------------------------------------------------------------------------
GROUP_SIZES = [150, 97, 65, 128, 201, 80]  # 64-row blocks: 2+22, 1+33, 1+1, 2, 3+9, 1+16
GROUP_EFFECTS = np.array([-0.5, 0.3, 0.8, -0.2, 0.1, -0.7])
BLOCK = 64
GH_NODES, GH_WEIGHTS = np.polynomial.hermite.hermgauss(20)

GLMM_CASES = {
    # family: (true intercept, prior on beta0 (mean, sd), prior on tau)
    "poisson": (0.4, (0.0, 2.0), bglmm.priors.HalfNormal(1.0)),
    "bernoulli": (-0.2, (0.5, 1.5), bglmm.priors.HalfStudentT(3.0, 1.0)),
}


def log_prior_tau(prior, tau):
    """Log density of the SD prior (up to a constant), written here from its definition."""
    if isinstance(prior, bglmm.priors.HalfNormal):
        return -0.5 * (tau / prior.scale) ** 2
    return -0.5 * (prior.df + 1) * np.log1p((tau / prior.scale) ** 2 / prior.df)


def cell_terms(family, y, n, eta):
    """Log-likelihood (up to a constant), its derivative and minus its second derivative in
    eta, for y successes (poisson: the sum of counts) over n rows sharing one eta."""
    if family == "poisson":
        mu = n * np.exp(eta)
        return y * eta - mu, y - mu, mu
    p = special.expit(eta)
    ll = y * special.log_expit(eta) + (n - y) * special.log_expit(-eta)
    return ll, y - n * p, n * p * (1 - p)


def to_cells(y, offset, group):
    """(groups, offset levels) arrays: offset, response total and row count of each cell."""
    levels = np.unique(offset)
    gi, li = np.unique(group, return_inverse=True)[1], np.searchsorted(levels, offset)
    total = np.zeros((gi.max() + 1, levels.size))
    rows = np.zeros_like(total)
    np.add.at(total, (gi, li), y)
    np.add.at(rows, (gi, li), 1.0)
    return np.broadcast_to(levels, total.shape), total, rows


def log_marginal_likelihood(family, cells, beta0, tau):
    """sum_j log int prod_{i in j} f(y_i | off_i + beta0 + b) N(b | 0, tau^2) db, up to a
    constant, for arrays beta0, tau of one shape: adaptive Gauss-Hermite over each group's b."""
    off, total, rows = cells
    b0, t = beta0[:, None, None], tau[:, None, None]
    b = np.zeros(beta0.shape + (total.shape[0], 1))   # (nodes, groups, 1): the inner modes
    for _ in range(200):  # Newton on the (log-concave) integrand, steps capped at 1
        _, u, w = cell_terms(family, total, rows, off + b0 + b)
        step = (u.sum(-1, keepdims=True) - b / t**2) / (w.sum(-1, keepdims=True) + 1 / t**2)
        b = b + np.clip(step, -1.0, 1.0)
        if np.all(np.abs(step) <= 1e-10 * t):
            break
    _, _, w = cell_terms(family, total, rows, off + b0 + b)
    s = 1 / np.sqrt(w.sum(-1, keepdims=True) + 1 / t**2)
    nodes = b + np.sqrt(2) * s * GH_NODES               # (nodes, groups, 20)
    ll = cell_terms(family, total[:, None, :], rows[:, None, :],
                    off[:, None, :] + (b0 + nodes)[..., None])[0].sum(-1)
    log_integrand = ll - 0.5 * (nodes / t) ** 2 - np.log(t) + GH_NODES**2
    return (np.log(s[..., 0]) + special.logsumexp(log_integrand, b=GH_WEIGHTS, axis=-1)).sum(-1)


def glmm_log_posterior(family, cells, beta_prior, tau_prior, beta0, log_tau):
    """log p(beta0, log tau | y) up to a constant: priors, Jacobian tau, marginal likelihood."""
    m0, s0 = beta_prior
    tau = np.exp(log_tau)
    return (-0.5 * ((beta0 - m0) / s0) ** 2 + log_prior_tau(tau_prior, tau) + log_tau
            + log_marginal_likelihood(family, cells, beta0, tau))


def glmm_reference(family, y, offset, group, beta_prior, tau_prior, dx=0.15, drop=30.0,
                   points=19, width=7.0):
    """Posterior mean and sd of beta0 and tau by quadrature over (beta0, log tau)."""
    cells = to_cells(y, offset, group)

    def lp(b, x):
        return glmm_log_posterior(family, cells, beta_prior, tau_prior, b, x)

    mode = optimize.minimize(lambda th: -lp(th[:1], th[1:])[0], np.zeros(2),
                             method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9}).x
    # the range of log tau: where the profile (beta0 at its conditional mode) is within e^-drop
    # of its peak; conditional modes and curvatures of beta0 by Newton with central differences
    x = mode[1] + np.arange(-60.0, 20.0, 0.5)
    b, h = np.full_like(x, mode[0]), 1e-4
    with np.errstate(all="ignore"):  # far tails: prior terms ~ -1e17, differences meaningless
        for _ in range(50):
            f0, fp, fm = lp(b, x), lp(b + h, x), lp(b - h, x)
            d1, d2 = (fp - fm) / (2 * h), (fp - 2 * f0 + fm) / h**2
            step = np.clip(np.where(d2 < 0, -d1 / d2, 0.0), -1.0, 1.0)
            b = b + step
            if np.max(np.abs(step) * np.sqrt(np.abs(d2))) < 1e-4:
                break
        profile = lp(b, x)
    keep = np.flatnonzero(np.isfinite(profile) & (d2 < 0) & (profile > np.nanmax(profile) - drop))
    assert 0 < keep[0] and keep[-1] < x.size - 1 and keep.size == keep[-1] - keep[0] + 1
    log_tau = np.arange(x[keep[0] - 1], x[keep[-1] + 1], dx)
    center = np.interp(log_tau, x[keep], b[keep])
    scale = np.exp(np.interp(log_tau, x[keep], -0.5 * np.log(-d2[keep])))
    beta0 = center[:, None] + scale[:, None] * np.linspace(-width, width, points)
    log_tau = np.broadcast_to(log_tau[:, None], beta0.shape)
    logw = lp(beta0.ravel(), log_tau.ravel()).reshape(beta0.shape) + np.log(scale)[:, None]
    weights = np.exp(logw - logw.max())
    weights /= weights.sum()
    assert max(weights[:, [0, -1]].max(), weights[[0, -1]].sum(axis=1).max()) < 1e-10
    values = {"beta0": beta0, "tau": np.exp(log_tau)}
    mean = {k: float(np.sum(weights * v)) for k, v in values.items()}
    sd = {k: float(np.sqrt(np.sum(weights * (v - mean[k]) ** 2))) for k, v in values.items()}
    return mean, sd


def test_glmm_reference_inner_quadrature_matches_scipy_quad():
    """The reference's adaptive Gauss-Hermite marginal of one group, log int exp(ll(b))
    N(b | 0, tau^2) db, against scipy's adaptive quad (GH leaves out the constant log sqrt(pi))."""
    rng = np.random.default_rng(5)
    offset = 0.4 * (rng.integers(0, 4, 97) - 1.5)
    for family in ("poisson", "bernoulli"):
        eta = 0.5 + offset
        y = (rng.poisson(np.exp(eta)) if family == "poisson"
             else rng.uniform(size=97) < special.expit(eta)).astype(float)
        off, total, rows = cells = to_cells(y, offset, np.zeros(97))
        for beta0, tau in [(0.2, 0.5), (-0.4, 0.05), (1.0, 2.0)]:
            agh = log_marginal_likelihood(family, cells, np.array([beta0]), np.array([tau]))[0]

            def log_integrand(b, beta0=beta0, tau=tau):
                ll = cell_terms(family, total, rows, off + beta0 + b)[0].sum()
                return ll - 0.5 * (b / tau) ** 2 - np.log(np.sqrt(2 * np.pi) * tau)

            peak = optimize.minimize_scalar(lambda b: -log_integrand(b)).x
            top = log_integrand(peak)
            value = integrate.quad(lambda b: np.exp(log_integrand(b) - top), peak - 10 * tau,
                                   peak + 10 * tau, points=[peak], limit=200, epsabs=0,
                                   epsrel=1e-12)[0]
            assert agh - 0.5 * np.log(np.pi) == pytest.approx(top + np.log(value), abs=1e-9)


@pytest.fixture(scope="module", params=list(GLMM_CASES))
def glmm_case(request):
    family = request.param
    intercept, beta_prior, tau_prior = GLMM_CASES[family]
    rng = np.random.default_rng(31)
    group = np.repeat(np.arange(len(GROUP_SIZES)), GROUP_SIZES)
    offset = 0.4 * (rng.integers(0, 4, group.size) - 1.5)
    eta = intercept + offset + GROUP_EFFECTS[group]
    y = (rng.poisson(np.exp(eta)) if family == "poisson"
         else rng.uniform(size=group.size) < special.expit(eta)).astype(float)
    # rows in a shuffled order (the sampler sorts them by group)
    order = rng.permutation(group.size)
    y, offset, group = y[order], offset[order], group[order]
    reference = glmm_reference(family, y, offset, group, beta_prior, tau_prior)
    # control: every group cut to its first block of 64 rows
    rank = np.empty(group.size, dtype=int)
    for j in range(len(GROUP_SIZES)):
        rank[group == j] = np.arange(GROUP_SIZES[j])
    first = rank < BLOCK
    control = glmm_reference(family, y[first], offset[first], group[first], beta_prior,
                             tau_prior)
    return family, y, offset, group, reference, control


@pytest.mark.parametrize("sampler", ["laplace", "random_walk"])
def test_glmm_groups_larger_than_one_block_match_quadrature(glmm_case, sampler):
    family, y, offset, group, reference, control = glmm_case
    assert min(GROUP_SIZES) > BLOCK
    _, (m0, s0), tau_prior = GLMM_CASES[family]
    fit = bglmm.glmm(y, np.ones((y.size, 1)), group=group, family=family, offset=offset,
                     prior=bglmm.priors.Normal(m0, s0), random_prior=tau_prior,
                     sampler=sampler, chains=4, draws=2500, warmup=1000, seed=23)
    draws = {"beta0": fit.posterior["beta"][..., 0], "tau": fit.posterior["sd_Intercept"]}
    assert_agrees(draws, reference, control)
