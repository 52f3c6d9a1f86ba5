"""Prior distributions, as plain declarative objects the samplers turn into arrays.

Every prior validates its own parameters and says which argument is wrong.

* :class:`Normal` — coefficients: ``Normal(mean, sd)`` (independent) or ``Normal(mean, cov=V)``.
* :class:`InverseGamma` — a variance (sigma^2 or tau^2): ``InverseGamma(shape, scale)``,
  density proportional to ``v^(-shape-1) exp(-scale / v)``.
* :class:`ScaledInvChiSquare` — ``(nu, s)``: the same as ``InverseGamma(nu/2, nu s^2/2)``.
* :class:`InverseWishart` — a covariance matrix: ``InverseWishart(df, scale)``, mean
  ``scale / (df - q - 1)``.
* :class:`HalfCauchy`, :class:`HalfStudentT`, :class:`HalfNormal`, :class:`UniformSD` — a
  standard deviation (Gelman 2006).
* :class:`Gamma` — a family's dispersion (negative binomial / beta-binomial ``phi``, gamma
  ``shape``): ``Gamma(shape, rate)``, density proportional to ``x^(shape-1) exp(-rate x)``;
  a plain number instead fixes the dispersion at that value (:func:`dispersion_prior_spec`).
* :class:`Beta` — a probability: the zero-inflated Poisson's ``zi`` (``Beta(a, b)``, density
  proportional to ``zi^(a-1) (1 - zi)^(b-1)``); a plain number in (0, 1) fixes it.
* :class:`LKJ` — a random-effect covariance by the separation strategy: Sigma = diag(s) Omega
  diag(s), Omega ~ LKJ(eta) and each SD s_k with its own prior (the default for every
  random-effect block; brms's and rstanarm's choice).

:func:`covariance_prior_spec` turns any prior on a covariance into the arrays the C++ core reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


# The default LKJ shape: 2 keeps the posterior off the boundary |correlation| = 1 where few
# groups leave a correlation unidentified (lme4's "singular fits"); for q = 2 it is Beta(2, 2)
# on (-1, 1), sd 0.45, which twenty or more groups overwhelm.
DEFAULT_LKJ_ETA = 2.0


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


@dataclass(frozen=True)
class Gamma:
    """Gamma(shape, rate) prior on a positive parameter (mean shape / rate)."""

    shape: float
    rate: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _positive("Gamma shape", self.shape))
        object.__setattr__(self, "rate", _positive("Gamma rate", self.rate))


@dataclass(frozen=True)
class Beta:
    """Beta(a, b) prior on a probability (mean a / (a + b))."""

    a: float
    b: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", _positive("Beta a", self.a))
        object.__setattr__(self, "b", _positive("Beta b", self.b))


# The default prior of a family's dispersion: Gamma(0.01, 0.01), brms's default for the
# negative binomial and gamma shape and the beta-binomial phi, so that fits can be compared
# with brms. Its density phi^-0.99 e^-0.01 phi is nearly flat on log phi from well below 0.01
# to about 100 and proper; the data dominate unless they say little about phi.
DEFAULT_DISPERSION_PRIOR = Gamma(0.01, 0.01)

# The default prior of the probability of a structural zero (zero_inflated_poisson's zi):
# uniform, Beta(1, 1), as brms.
DEFAULT_ZI_PRIOR = Beta(1.0, 1.0)


# The Student-t family's defaults, as brms: nu ~ Gamma(2, 0.1) (mean 20; most mass on moderately
# heavy tails, little below 2), sigma ~ Half-Student-t(3, 2.5 s) with s the data's scale.
DEFAULT_NU_PRIOR = Gamma(2.0, 0.1)


def default_dispersion_prior(name: str, scale: float = 1.0) -> Any:
    """The default prior of a family parameter called ``name`` (phi, shape, zi, and the
    Student-t's sigma and nu); ``scale``: the data's scale, for sigma."""
    if name == "sigma":
        return HalfStudentT(3.0, 2.5 * scale)
    return {"zi": DEFAULT_ZI_PRIOR, "nu": DEFAULT_NU_PRIOR}.get(name, DEFAULT_DISPERSION_PRIOR)


def dispersion_prior_spec(prior: Any, what: str = "phi") -> tuple[int, float, float]:
    """The (kind, a, b) triple the C++ dispersion step reads: kind 0 Gamma(a, b) on the
    dispersion, kind 1 the dispersion fixed at a (given as a plain positive number), kind 2
    Beta(a, b) on phi / (1 + phi). For ``what == "zi"`` (a probability, which the core holds as
    its odds phi = zi / (1 - zi)) the prior is a :class:`Beta` or a number in (0, 1)."""
    if what == "sigma":  # the Student-t's scale: a half-t (half-Cauchy) or a fixed value
        if isinstance(prior, HalfStudentT):  # HalfCauchy is the half-t with df 1
            return 3, float(prior.df), float(prior.scale)
        if isinstance(prior, (int, float, np.integer, np.floating)) and not isinstance(prior, bool):
            return 1, _positive("priors['sigma'] (a fixed value)", prior), 0.0
        raise TypeError(f"priors['sigma'] of the student family must be a "
                        f"bglmm.priors.HalfStudentT or HalfCauchy, or a positive number (a fixed "
                        f"value), got {type(prior).__name__}")
    if what == "zi":
        if isinstance(prior, Beta):
            return 2, float(prior.a), float(prior.b)
        if isinstance(prior, (int, float, np.integer, np.floating)) and not isinstance(prior, bool):
            zi = float(prior)
            if not 0.0 < zi < 1.0:
                raise ValueError(f"priors['zi'] (a fixed value) must lie strictly between 0 and "
                                 f"1, got {prior!r}")
            return 1, zi / (1.0 - zi), 0.0
        raise TypeError(f"priors['zi'] must be a bglmm.priors.Beta or a number in (0, 1) (a fixed "
                        f"value), got {type(prior).__name__}")
    if isinstance(prior, Gamma):
        return 0, float(prior.shape), float(prior.rate)
    if isinstance(prior, (int, float, np.integer, np.floating)) and not isinstance(prior, bool):
        return 1, _positive(f"priors[{what!r}] (a fixed value)", prior), 0.0
    raise TypeError(f"priors[{what!r}] must be a bglmm.priors.Gamma or a positive number (a fixed "
                    f"value), got {type(prior).__name__}")


def response_sd(y: Any, offset: Any = None, weights: Any = None) -> float:
    """The data's scale for the default priors of the identity-link families: sd(y - offset)
    (the case weights counting as frequencies), 1 if that is zero or undefined."""
    from .data import moments

    y = np.asarray(y, dtype=float) - (0.0 if offset is None else np.asarray(offset, dtype=float))
    s = float(moments(y, weights, ddof=1)[1]) if y.size > 1 else 0.0
    return s if s > 0 and np.isfinite(s) else 1.0


def family_dispersion_specs(family: Any, prior: Any,
                            scale: float = 1.0) -> list[tuple[int, float, float]]:
    """The (kind, a, b) triples of the priors of a family's parameters for the C++ samplers,
    the core's phi and phi2 in that order (a triple the samplers ignore where the family has
    no such parameter). ``prior``: None (the defaults), one prior (the family's first
    parameter; the others get their defaults), or a dict {name: prior} by the parameters'
    names (``phi``, ``shape``, ``zi``, ``sigma``, ``nu``); a prior is a :class:`Gamma` (a
    :class:`Beta` for zi, a :class:`HalfStudentT` for sigma) or a number that fixes the
    parameter. ``scale``: the data's scale (the default prior of the Student-t's sigma)."""
    names = family.parameters
    if prior is not None and not names:
        raise ValueError(f"dispersion_prior applies to the families with a dispersion "
                         f"(negbinomial, gamma, beta_binomial, zero-inflated), not "
                         f"{family.name!r}")
    if prior is None:
        given: dict[str, Any] = {}
    elif isinstance(prior, dict):
        given = dict(prior)
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError(f"dispersion_prior: {unknown} are not parameters of the "
                             f"{family.name} family ({', '.join(names)})")
    else:
        given = {names[0]: prior}
    out = []
    for k in range(2):
        if k < len(names):
            name = names[k]
            out.append(dispersion_prior_spec(
                given.get(name, default_dispersion_prior(name, scale)), name))
        else:
            out.append((0, 0.01, 0.01))
    return out


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


@dataclass(frozen=True)
class LKJ:
    """The separation-strategy prior on a q x q random-effect covariance Sigma = D Omega D:
    the correlation matrix Omega ~ LKJ(eta), density proportional to det(Omega)^(eta - 1)
    (Lewandowski, Kurowicka & Joe 2009), and D = diag(s_1..s_q) with a prior on each SD.

    ``eta = 1`` is uniform over correlation matrices (for q = 2 the correlation is uniform on
    (-1, 1)); ``eta > 1`` pulls towards independence (for q = 2, Beta(eta, eta) on (-1, 1)).
    ``sd``: the SD priors — one of HalfStudentT, HalfCauchy, HalfNormal, UniformSD or
    InverseGamma (on the variance) for every term, a list with one per term, or a dict
    ``{term: prior}``; None keeps the default data-scaled Half-Student-t(3, .) of each term.
    """

    eta: float = DEFAULT_LKJ_ETA
    sd: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "eta", _positive("LKJ eta", self.eta))


SCALE_PRIORS = (InverseGamma, HalfStudentT, HalfNormal, UniformSD)


def scale_prior_spec(prior: Any, what: str = "tau_prior") -> tuple[int, float, float]:
    """The (kind, a, b) triple the C++ scale step reads, for a prior on a group-level SD.

    Kinds: 0 Inverse-Gamma(a, b) on the variance, 1 half-Student-t(a = df, b = scale) on the SD,
    2 uniform(0, b) on the SD, 3 half-normal(b) on the SD.
    """
    if isinstance(prior, LogUniform):
        raise ValueError(
            f"{what}: a flat prior on log(sd) gives an improper posterior for a group-level "
            "standard deviation (Gelman 2006); use HalfCauchy, HalfStudentT, UniformSD or "
            "InverseGamma"
        )
    if isinstance(prior, InverseGamma):
        return 0, float(prior.shape), float(prior.scale)
    if isinstance(prior, HalfStudentT):
        return 1, float(prior.df), float(prior.scale)
    if isinstance(prior, UniformSD):
        return 2, 0.0, float(prior.upper)
    if isinstance(prior, HalfNormal):
        return 3, 0.0, float(prior.scale)
    raise TypeError(
        f"{what} must be InverseGamma, ScaledInvChiSquare, HalfStudentT, HalfCauchy, HalfNormal "
        f"or UniformSD from bglmm.priors, got {type(prior).__name__}"
    )


def sd_priors_per_term(sd: Any, q: int, terms: list[str] | None, default: list[Any] | None,
               what: str) -> list[Any]:
    """One SD prior per term from a single prior, a list or a dict {term: prior}."""
    if sd is None:
        if default is None:
            raise ValueError(f"{what}: give the SD priors (sd=...)")
        return list(default)
    if isinstance(sd, dict):
        names = list(terms) if terms is not None else [str(k) for k in range(q)]
        unknown = [k for k in sd if k not in names]
        if unknown:
            raise ValueError(f"{what}: unknown random term(s) {unknown} for the SD priors; the "
                             f"terms are {names}")
        out = []
        for k, name in enumerate(names):
            if name in sd:
                out.append(sd[name])
            elif default is not None:
                out.append(default[k])
            else:
                raise ValueError(f"{what}: no SD prior for term {name!r}")
        return out
    if isinstance(sd, (list, tuple)):
        if len(sd) != q:
            raise ValueError(f"{what}: {len(sd)} SD priors for {q} random terms")
        return list(sd)
    return [sd] * q


def covariance_prior_spec(prior: Any, q: int, what: str = "cov_prior",
                          terms: list[str] | None = None, default_sd: list[Any] | None = None,
                          ) -> dict[str, Any]:
    """The dict the C++ core reads for a prior on a q x q covariance: ``InverseWishart``;
    ``LKJ(eta, sd)``; or a prior on an SD (HalfStudentT, HalfNormal, UniformSD, InverseGamma on
    the variance), which applies to every term, with LKJ(eta = DEFAULT_LKJ_ETA) on the
    correlations when q > 1."""
    if isinstance(prior, InverseWishart):
        df, scale = prior.to_arrays(q, what)
        return {"kind": 0, "iw_df": float(df), "iw_scale": scale}
    if isinstance(prior, LKJ):
        eta, sds = prior.eta, sd_priors_per_term(prior.sd, q, terms, default_sd, what)
    elif isinstance(prior, (LogUniform,) + SCALE_PRIORS):
        eta, sds = DEFAULT_LKJ_ETA, [prior] * q
    else:
        raise TypeError(f"{what} must be a bglmm.priors.LKJ, InverseWishart or a prior on an SD "
                        "(HalfStudentT, HalfCauchy, HalfNormal, UniformSD, InverseGamma), got "
                        f"{type(prior).__name__}")
    kinds = [scale_prior_spec(sp, f"{what} (SD prior)") for sp in sds]
    return {"kind": 1, "sd_kind": [k for k, _, _ in kinds], "sd_a": [a for _, a, _ in kinds],
            "sd_b": [b for _, _, b in kinds], "eta": float(eta)}


def has_flat_sd(spec: dict[str, Any]) -> bool:
    """True when some SD has the improper flat prior UniformSD() (needs >= 3 groups)."""
    return spec["kind"] == 1 and any(k == 2 and np.isinf(b) for k, b in zip(spec["sd_kind"], spec["sd_b"]))


__all__ = [
    "LKJ",
    "covariance_prior_spec",
    "scale_prior_spec",
    "Normal",
    "InverseGamma",
    "Gamma",
    "dispersion_prior_spec",
    "family_dispersion_specs",
    "default_dispersion_prior",
    "Beta",
    "ScaledInvChiSquare",
    "InverseWishart",
    "HalfStudentT",
    "HalfCauchy",
    "HalfNormal",
    "UniformSD",
    "LogUniform",
]
