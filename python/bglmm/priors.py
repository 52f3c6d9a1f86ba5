"""Prior distributions, as plain declarative objects the samplers turn into arrays.

Every prior validates its own parameters and says which argument is wrong.

* :class:`Normal` — coefficients: ``Normal(mean, sd)`` (independent) or ``Normal(mean, cov=V)``.
* :class:`InverseGamma` — a variance (sigma^2 or tau^2): ``InverseGamma(shape, scale)``,
  density proportional to ``v^(-shape-1) exp(-scale / v)``.
* :class:`ScaledInvChiSquare` — ``(nu, s)``: the same as ``InverseGamma(nu/2, nu s^2/2)``.
* :class:`InverseWishart` — a covariance matrix: ``InverseWishart(df, scale)``, mean
  ``scale / (df - q - 1)``.
* :class:`HalfCauchy`, :class:`HalfStudentT`, :class:`HalfNormal`, :class:`UniformSD` — a
  standard deviation (Gelman 2006), for samplers that support them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return v


def _check_spd(name: str, matrix: np.ndarray) -> None:
    if not np.allclose(matrix, matrix.T, rtol=1e-10, atol=1e-12 * np.abs(matrix).max()):
        raise ValueError(f"{name} must be symmetric")
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite") from None


@dataclass(frozen=True)
class Normal:
    """Multivariate normal prior on coefficients.

    ``Normal(0, 10)`` puts independent N(0, 10^2) priors on every coefficient; ``sd`` and
    ``mean`` may also be vectors, or ``cov`` a full covariance matrix.
    """

    mean: Any = 0.0
    sd: Any = None
    cov: Any = None

    def __post_init__(self) -> None:
        if self.sd is not None and self.cov is not None:
            raise ValueError("Normal prior: give sd or cov, not both")
        if self.sd is None and self.cov is None:
            raise ValueError("Normal prior: give sd (or cov)")

    def to_arrays(self, p: int, what: str = "prior") -> tuple[np.ndarray, np.ndarray]:
        """Mean vector (p,) and covariance matrix (p, p) for p coefficients."""
        mean = np.asarray(self.mean, dtype=float)
        if mean.ndim == 0:
            mean = np.full(p, float(mean))
        if mean.shape != (p,):
            raise ValueError(f"{what}: mean has {mean.size} values but there are {p} coefficients")
        if not np.all(np.isfinite(mean)):
            raise ValueError(f"{what}: mean must be finite")
        if self.cov is not None:
            cov = np.asarray(self.cov, dtype=float)
            if cov.ndim == 0:
                cov = np.eye(p) * float(cov)
            if cov.shape != (p, p):
                raise ValueError(
                    f"{what}: covariance has shape {cov.shape} but there are {p} coefficients"
                )
            if not np.all(np.isfinite(cov)):
                raise ValueError(f"{what}: covariance must be finite")
            _check_spd(f"{what}: covariance", cov)
        else:
            sd = np.asarray(self.sd, dtype=float)
            if sd.ndim == 0:
                sd = np.full(p, float(sd))
            if sd.shape != (p,):
                raise ValueError(f"{what}: sd has {sd.size} values but there are {p} coefficients")
            if not np.all(np.isfinite(sd)) or np.any(sd <= 0):
                raise ValueError(f"{what}: sd must be positive and finite")
            if np.any(sd > 1e100) or np.any(sd < 1e-100):
                raise ValueError(f"{what}: sd must lie in [1e-100, 1e100] (its square must be "
                                 "a finite, non-zero double)")
            cov = np.diag(sd**2)
        return mean, np.ascontiguousarray(cov)


@dataclass(frozen=True)
class InverseGamma:
    """Inverse-Gamma(shape, scale) prior on a variance."""

    shape: float
    scale: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _positive("InverseGamma shape", self.shape))
        object.__setattr__(self, "scale", _positive("InverseGamma scale", self.scale))


def ScaledInvChiSquare(nu: float, s: float) -> InverseGamma:  # noqa: N802 (a constructor)
    """Scaled-inverse-chi-square(nu, s^2) on a variance, i.e. Inverse-Gamma(nu/2, nu s^2/2)."""
    nu = _positive("ScaledInvChiSquare nu", nu)
    s = _positive("ScaledInvChiSquare s", s)
    return InverseGamma(nu / 2.0, nu * s * s / 2.0)


@dataclass(frozen=True)
class InverseWishart:
    """Inverse-Wishart(df, scale) prior on a q x q covariance matrix."""

    df: float
    scale: Any = field(default=None)

    def to_arrays(self, q: int, what: str = "InverseWishart prior") -> tuple[float, np.ndarray]:
        df = _positive(f"{what} df", self.df)
        if df <= q - 1:
            raise ValueError(f"{what}: df = {df:g} must exceed q - 1 = {q - 1}")
        scale = np.eye(q) if self.scale is None else np.asarray(self.scale, dtype=float)
        if scale.ndim == 0:
            scale = np.eye(q) * float(scale)
        if scale.shape != (q, q):
            raise ValueError(f"{what}: scale has shape {scale.shape}, expected ({q}, {q})")
        if not np.all(np.isfinite(scale)):
            raise ValueError(f"{what}: scale must be finite")
        _check_spd(f"{what}: scale", scale)
        return df, np.ascontiguousarray(scale)


@dataclass(frozen=True)
class HalfStudentT:
    """Half-Student-t(df, scale) prior on a standard deviation (Gelman 2006)."""

    df: float
    scale: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "df", _positive("HalfStudentT df", self.df))
        object.__setattr__(self, "scale", _positive("HalfStudentT scale", self.scale))


def HalfCauchy(scale: float) -> HalfStudentT:  # noqa: N802 (a constructor)
    """Half-Cauchy(scale) on a standard deviation: the half-Student-t with 1 degree of freedom."""
    return HalfStudentT(1.0, scale)


@dataclass(frozen=True)
class HalfNormal:
    """Half-normal(scale) prior on a standard deviation."""

    scale: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _positive("HalfNormal scale", self.scale))


@dataclass(frozen=True)
class UniformSD:
    """Flat prior on a standard deviation, on (0, upper) (upper may be infinite)."""

    upper: float = float("inf")

    def __post_init__(self) -> None:
        if not (float(self.upper) > 0):
            raise ValueError(f"UniformSD upper must be positive, got {self.upper!r}")


@dataclass(frozen=True)
class LogUniform:
    """Flat prior on log(sd). Accepted as an object, refused by every hierarchical sampler:
    with it the posterior of a group-level SD is improper (Gelman 2006)."""


__all__ = [
    "Normal",
    "InverseGamma",
    "ScaledInvChiSquare",
    "InverseWishart",
    "HalfStudentT",
    "HalfCauchy",
    "HalfNormal",
    "UniformSD",
    "LogUniform",
]
