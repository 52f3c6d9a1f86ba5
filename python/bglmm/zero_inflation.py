"""The zero-inflation's own linear predictor (brms's ``zi ~ x``) for the zero-inflated families.

Row i's probability of a structural zero is ``zi_i = inv_logit(x_zi,i' alpha)``. The C++ core
samples it as the family's odds at the covariates' means (``e^l0``, under the ``zi`` prior: a
Beta on the probability there, as brms puts intercept priors on centred predictors) and the
slopes of the centred columns, ``alpha_k ~ N(0, sd_k^2)`` (default ``sd_k = 2.5 / sd(x_k)``,
rstanarm's scaling for logistic regression). The posterior reports the coefficients on the
log-odds scale with the formula's own intercept, ``zi_beta`` (dim ``zi_coef``), as brms's
``b_zi_*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import as_design

#: the slopes' default prior SD is this over the column's SD (logistic scale, as rstanarm)
SLOPE_SCALE = 2.5


@dataclass
class ZiDesign:
    """A zi formula's design (with its intercept column) and the slopes' prior."""

    X: np.ndarray        # n x p_zi, the intercept's column included
    names: list[str]
    intercept: int       # the intercept's column
    means: np.ndarray    # the other columns' means (the core's centring)
    prior_sd: np.ndarray  # their prior SDs

    @property
    def slopes(self) -> list[int]:
        return [k for k in range(self.X.shape[1]) if k != self.intercept]

    def core_kwargs(self) -> dict[str, np.ndarray]:
        """The centred slope columns and their prior SDs, as the C++ samplers take them."""
        centred = self.X[:, self.slopes] - self.means
        return {"zi_x": np.ascontiguousarray(centred, dtype=float),
                "zi_prior_sd": np.ascontiguousarray(self.prior_sd, dtype=float)}

    def coefficients(self, odds: np.ndarray, slopes: np.ndarray) -> np.ndarray:
        """The formula's coefficients (..., p_zi) on the log-odds scale from the core's draws:
        the odds at the means (...) and the slopes (..., p_zi - 1)."""
        out = np.empty(odds.shape + (self.X.shape[1],))
        out[..., self.slopes] = slopes
        out[..., self.intercept] = np.log(odds) - slopes @ self.means
        return out


def prepare(zi_X: Any, n: int, family: Any, prior: Any = None) -> ZiDesign | None:
    """Check a zi design (an array or DataFrame with an intercept column of ones) for a family;
    ``prior``: None (the default SDs), or a :class:`~bglmm.priors.Normal` with mean 0 on the
    slopes (a scalar SD, or one per slope)."""
    from .priors import Normal

    if zi_X is None:
        if prior is not None:
            raise ValueError("zi_prior needs a zi formula (zi_X)")
        return None
    if not family.is_zero_inflated:
        raise ValueError(f"a zi formula applies to the zero-inflated families "
                         f"(zero_inflated_poisson, zero_inflated_negbinomial), not {family.name!r}")
    X, names = as_design(zi_X)
    names = [str(v) for v in names]
    if X.shape[0] != n:
        raise ValueError(f"the zi design has {X.shape[0]} rows, the data {n}")
    if not np.all(np.isfinite(X)):
        raise ValueError("the zi design has missing or infinite values")
    ones = [k for k in range(X.shape[1]) if np.all(X[:, k] == 1.0)]
    if not ones:
        raise ValueError("the zi formula needs its intercept (the probability of a structural "
                         "zero at the covariates' means): drop '0 +' / '- 1'")
    intercept = ones[0]
    slopes = [k for k in range(X.shape[1]) if k != intercept]
    if not slopes:
        raise ValueError("a zi formula with an intercept alone is the family's own zi: leave "
                         "zi= out")
    means = X[:, slopes].mean(axis=0)
    sd_x = X[:, slopes].std(axis=0)
    flat = [names[k] for k, s in zip(slopes, sd_x) if not s > 0]
    if flat:
        raise ValueError(f"zi formula column(s) {flat} are constant")
    if np.linalg.matrix_rank(X[:, slopes] - means) < len(slopes):
        raise ValueError("the zi formula's columns are collinear")
    if prior is None:
        prior_sd = SLOPE_SCALE / sd_x
    else:
        if not isinstance(prior, Normal):
            raise TypeError("zi_prior must be a bglmm.priors.Normal (on the zi slopes)")
        m0, V0 = prior.to_arrays(len(slopes), "zi_prior")
        if np.any(m0 != 0.0) or np.any(V0 != np.diag(np.diag(V0))):
            raise ValueError("zi_prior: the zi slopes take independent Normal(0, sd) priors")
        prior_sd = np.sqrt(np.diag(V0))
    return ZiDesign(np.ascontiguousarray(X, dtype=float), names, intercept, means,
                    np.asarray(prior_sd, dtype=float))


def row_odds(zi_beta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The odds of a structural zero per draw and row, (..., rows), from coefficient draws
    (..., p_zi) and a design (rows, p_zi)."""
    return np.exp(np.clip(zi_beta @ X.T, -700.0, 700.0))


def row_params(family: Any, phi: Any, phi2: Any, zi_beta: np.ndarray | None,
               zi_X: Any) -> tuple[Any, Any]:
    """The core's phi and phi2, broadcasting against (..., rows), with a zi formula's odds per
    row (from its coefficient draws ``zi_beta`` (..., p_zi) and design ``zi_X``) in place of
    the family's; unchanged when ``zi_beta`` is None (no zi formula)."""
    if zi_beta is None:
        return phi, phi2
    odds = row_odds(zi_beta, np.asarray(zi_X, dtype=float))
    if family.name == "zero_inflated_poisson":
        return odds, phi2
    return phi, odds


def posterior_draws(z: ZiDesign, posterior: dict[str, np.ndarray], kept: list[dict[str, Any]]
                    ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Replaces the family's ``zi`` draws (the probability at the covariates' means) in
    ``posterior`` by the formula's coefficients ``zi_beta``; returns their dims and coords."""
    from .results import stack_chains

    zi = posterior.pop("zi")
    slopes = stack_chains(kept, "zi_coef")
    posterior["zi_beta"] = z.coefficients(zi / (1.0 - zi), slopes)
    return {"zi_beta": ["zi_coef"]}, {"zi_coef": list(z.names)}
