"""Draws from the prior of a model fitted by :func:`bglmm.fit`, and of the data it implies
(prior predictive checks, brms's ``sample_prior``): the fixed effects, sigma, each random-effect
covariance, a family's dispersion, the random effects of the data's levels, and y for the data's
rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import priors as P
from .families import draw_response, inverse_link, to_core


def sd_draws(prior: Any, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws of a standard deviation from its prior."""
    if isinstance(prior, P.HalfStudentT):
        return prior.scale * np.abs(rng.standard_t(prior.df, size))
    if isinstance(prior, P.HalfNormal):
        return prior.scale * np.abs(rng.standard_normal(size))
    if isinstance(prior, P.UniformSD):
        if not np.isfinite(prior.upper):
            raise ValueError("UniformSD() without an upper bound is improper: no prior draws")
        return rng.uniform(0.0, float(prior.upper), size)
    if isinstance(prior, P.InverseGamma):  # on the variance
        return np.sqrt(1.0 / rng.gamma(prior.shape, 1.0 / prior.scale, size))
    raise ValueError(f"no prior draws for {prior!r}")


def lkj_cholesky(q: int, eta: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """Cholesky factors (size, q, q) of LKJ(eta) correlation matrices, by the C-vine: the
    partial correlations at level i are 2 Beta(a_i, a_i) - 1, a_i = eta + (q - 2 - i) / 2."""
    L = np.zeros((size, q, q))
    L[:, 0, 0] = 1.0
    partial = np.zeros((size, q, q))
    for i in range(q - 1):
        a = eta + (q - 2 - i) / 2.0
        partial[:, i + 1:, i] = 2.0 * rng.beta(a, a, (size, q - 1 - i)) - 1.0
    for j in range(1, q):
        rest = np.ones(size)
        for i in range(j):
            L[:, j, i] = partial[:, j, i] * np.sqrt(rest)
            rest = rest - L[:, j, i] ** 2
        L[:, j, j] = np.sqrt(np.maximum(rest, 0.0))
    return L


def covariance_draws(prior: Any, q: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws (size, q, q) of a random-effect covariance from its prior: an InverseWishart, an
    LKJ with SD priors, or (q = 1) one SD prior."""
    if isinstance(prior, P.InverseWishart):
        df, scale = prior.to_arrays(q)
        chol = np.linalg.cholesky(np.linalg.inv(scale))
        A = np.tril(rng.standard_normal((size, q, q)), -1)
        idx = np.arange(q)
        A[:, idx, idx] = np.sqrt(rng.chisquare(df - idx, (size, q)))
        LA = chol @ A
        return np.linalg.inv(LA @ np.swapaxes(LA, 1, 2))  # the inverse of a Wishart draw
    if isinstance(prior, P.LKJ):
        if prior.sd is None:
            raise ValueError("an LKJ prior without SD priors: no prior draws")
        sd_priors = list(prior.sd) if isinstance(prior.sd, (list, tuple)) else [prior.sd] * q
        s = np.column_stack([sd_draws(p, size, rng) for p in sd_priors])
        L = lkj_cholesky(q, float(prior.eta), size, rng)
        R = L @ np.swapaxes(L, 1, 2)
        return s[:, :, None] * R * s[:, None, :]
    return (sd_draws(prior, size, rng) ** 2)[:, None, None]


def dispersion_draws(prior: Any, name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws of a family's dispersion ``name`` (phi, shape, zi) from its prior: a
    :class:`~bglmm.priors.Gamma`, a :class:`~bglmm.priors.Beta` (zi), or a number that fixes it."""
    if isinstance(prior, P.Gamma):
        return rng.gamma(prior.shape, 1.0 / prior.rate, size)
    if isinstance(prior, P.Beta):
        return rng.beta(prior.a, prior.b, size)
    if isinstance(prior, P.HalfStudentT):  # the Student-t's sigma
        return sd_draws(prior, size, rng)
    P.dispersion_prior_spec(prior, name)  # a fixed value (validated)
    return np.full(size, float(prior))


def response_draws(family: Any, eta: np.ndarray, rng: np.random.Generator, *, sd: Any = None,
                   trials: Any = None, params: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """A draw of y per row of eta (draws, rows) of the linear predictor; ``params`` the family's
    parameters per draw by name (their reported scale: phi, shape, zi)."""
    mu = inverse_link(family.link, eta)
    if family.name == "gaussian":
        return rng.normal(mu, sd)
    if family.name == "poisson":
        return rng.poisson(np.minimum(mu, 1e15)).astype(float)
    if family.parameters:
        core = [to_core(k, np.asarray(params[k], dtype=float)) for k in family.parameters]
        core = [v[:, None] if v.ndim == 1 else v for v in core]  # (draws, 1), or (draws, rows)
        if family.is_count:
            mu = np.minimum(mu, 1e15)
        return draw_response(rng, family.name, mu, trials=trials, phi=core[0],
                             phi2=core[1] if len(core) > 1 else 1.0)
    n = np.ones(mu.shape[1]) if trials is None else np.asarray(trials)
    return rng.binomial(n.astype(np.int64), np.clip(mu, 0.0, 1.0)).astype(float)
