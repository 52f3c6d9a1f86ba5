"""Families and links: names, defaults, validation, and the codes the C++ core uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# (family, link) -> code of bglmm::FamilyLink in cpp/include/bglmm/glm.hpp
_CODES = {
    ("gaussian", "identity"): 0,
    ("poisson", "log"): 1,
    ("binomial", "logit"): 2,
    ("binomial", "probit"): 3,
    ("binomial", "cloglog"): 4,
    ("negbinomial", "log"): 5,
    ("gamma", "log"): 6,
    ("beta_binomial", "logit"): 7,
    ("beta_binomial", "probit"): 8,
    ("beta_binomial", "cloglog"): 9,
    ("zero_inflated_poisson", "log"): 10,
    ("zero_inflated_negbinomial", "log"): 11,
    ("student", "identity"): 12,
    ("cumulative", "logit"): 13,
    ("cumulative", "probit"): 14,
}

LINKS = {
    "gaussian": ("identity",),
    "poisson": ("log",),
    "binomial": ("logit", "probit", "cloglog"),
    "bernoulli": ("logit", "probit", "cloglog"),
    "negbinomial": ("log",),
    "gamma": ("log",),
    "beta_binomial": ("logit", "probit", "cloglog"),
    "zero_inflated_poisson": ("log",),
    "zero_inflated_negbinomial": ("log",),
    "student": ("identity",),
    "cumulative": ("logit", "probit"),
}

_ALIASES = {"normal": "gaussian", "binary": "bernoulli", "logistic": "bernoulli",
            "negative_binomial": "negbinomial", "nb": "negbinomial",
            "betabinomial": "beta_binomial", "zip": "zero_inflated_poisson",
            "zeroinflatedpoisson": "zero_inflated_poisson", "zinb": "zero_inflated_negbinomial",
            "zero_inflated_negative_binomial": "zero_inflated_negbinomial",
            "student_t": "student", "studentt": "student", "t": "student",
            "ordinal": "cumulative", "ordered": "cumulative"}

# The parameters a family has besides its linear predictor, which the samplers update, under
# the names they go by (posterior variables and prior keys): var = mu + mu^2/phi (negbinomial),
# mu^2/shape (gamma), n mu (1 - mu) (n + phi)/(1 + phi) (beta_binomial); zi, the probability of
# a structural zero (zero_inflated_poisson: var = (1 - zi) mu (1 + zi mu); and with the
# negative binomial's phi in zero_inflated_negbinomial); the Student-t's scale sigma and degrees
# of freedom nu. The C++ core holds them as phi and phi2 (cpp/include/bglmm/family_params.hpp),
# zi as its odds zi / (1 - zi).
FAMILY_PARAMETERS = {"negbinomial": ("phi",), "gamma": ("shape",), "beta_binomial": ("phi",),
                     "zero_inflated_poisson": ("zi",),
                     "zero_inflated_negbinomial": ("phi", "zi"),
                     "student": ("sigma", "nu")}
# every name above but sigma (the gaussian's too), in the summaries' order
DISPERSION_VARIABLES = ("phi", "shape", "zi", "nu")


def to_core(name: str, value: Any) -> Any:
    """A family parameter as the C++ core holds it: zi -> its odds zi / (1 - zi); the others
    as they are."""
    if name == "zi":
        value = np.asarray(value, dtype=float)
        return value / (1.0 - value)
    return value


def from_core(name: str, value: Any) -> Any:
    """The inverse of :func:`to_core`: the odds -> zi = phi / (1 + phi)."""
    if name == "zi":
        value = np.asarray(value, dtype=float)
        return value / (1.0 + value)
    return value


@dataclass(frozen=True)
class Family:
    """A resolved family/link pair."""

    name: str  # gaussian, poisson, binomial, bernoulli, negbinomial, gamma, beta_binomial
    link: str

    @property
    def code(self) -> int:
        base = "binomial" if self.name == "bernoulli" else self.name
        return _CODES[(base, self.link)]

    @property
    def has_trials(self) -> bool:
        return self.name in ("binomial", "bernoulli", "beta_binomial")

    @property
    def needs_trials(self) -> bool:
        """Trials must be given (every trials family but bernoulli)."""
        return self.has_trials and self.name != "bernoulli"

    @property
    def is_count(self) -> bool:
        return self.name in ("poisson", "binomial", "bernoulli", "negbinomial", "beta_binomial",
                             "zero_inflated_poisson", "zero_inflated_negbinomial")

    @property
    def is_zero_inflated(self) -> bool:
        """zero_inflated_poisson or zero_inflated_negbinomial (a zi formula is theirs alone)."""
        return self.name in ("zero_inflated_poisson", "zero_inflated_negbinomial")

    @property
    def is_ordinal(self) -> bool:
        """The cumulative ordinal family (cutpoints instead of an intercept; bglmm.ordinal)."""
        return self.name == "cumulative"

    @property
    def parameters(self) -> tuple[str, ...]:
        """Names of the family's parameters besides eta (phi, shape, zi), in the core's order."""
        return FAMILY_PARAMETERS.get(self.name, ())

    @property
    def dispersion2(self) -> str | None:
        """Name of the family's second parameter (the core's phi2), None if it has none."""
        return self.parameters[1] if len(self.parameters) > 1 else None

    @property
    def dispersion(self) -> str | None:
        """Name of the family's first parameter (phi, shape, zi), None if it has none."""
        return self.parameters[0] if self.parameters else None

    def __str__(self) -> str:
        return f"{self.name}({self.link})"


def resolve_family(family: str | Family, link: str | None = None) -> Family:
    """Validate a family name (and optional link) and return a :class:`Family`."""
    if isinstance(family, Family):
        if link is not None and link != family.link:
            return resolve_family(family.name, link)
        return family
    if not isinstance(family, str):
        raise TypeError(f"family must be a string such as 'poisson', got {type(family).__name__}")
    name = _ALIASES.get(family.lower(), family.lower())
    if name not in LINKS:
        raise ValueError(
            f"unknown family {family!r}; supported families are {', '.join(sorted(LINKS))}"
        )
    if link is None:
        link = LINKS[name][0]
    if not isinstance(link, str):
        raise TypeError(f"link must be a string, got {type(link).__name__}")
    link = link.lower()
    if link not in LINKS[name]:
        raise ValueError(
            f"unknown link {link!r} for family {name!r}; supported links: {', '.join(LINKS[name])}"
        )
    return Family(name, link)


def inverse_link(link: str, eta: np.ndarray) -> np.ndarray:
    """mu = h(eta), vectorised, in overflow-safe forms (the NumPy twin of cpp/include/bglmm/links)."""
    eta = np.asarray(eta, dtype=float)
    if link == "identity":
        return eta
    if link == "log":
        return np.exp(eta)
    if link == "logit":
        e = np.exp(-np.abs(eta))  # branch on the sign of eta: no overflow for large |eta|
        return np.where(eta >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if link == "probit":
        from scipy.special import ndtr  # scipy arrives with formulae (and ArviZ)

        return ndtr(eta)
    if link == "cloglog":
        return -np.expm1(-np.exp(eta))
    raise ValueError(f"unknown link {link!r}")


def response_mean(family: str, mu: np.ndarray, phi: Any = 1.0, phi2: Any = 1.0) -> np.ndarray:
    """E[y] from the inverse-linked mu and the core's parameters (broadcasting): (1 - zi) mu for
    the zero-inflated families (zi = odds / (1 + odds): phi, or phi2 for the negative
    binomial's), mu for the others (brms's ``posterior_epred``)."""
    if family == "zero_inflated_poisson":
        return mu / (1.0 + np.asarray(phi))
    if family == "zero_inflated_negbinomial":
        return mu / (1.0 + np.asarray(phi2))
    return mu


def draw_response(rng: np.random.Generator, family: str, mu: np.ndarray, *,
                  trials: np.ndarray | None = None, sigma: Any = 1.0, phi: Any = 1.0,
                  phi2: Any = 1.0) -> np.ndarray:
    """One draw of y given the mean mu, as float64 (the posterior predictive's last step).

    ``trials`` for the binomial families (default 1), ``sigma`` the gaussian residual SD,
    ``phi`` and ``phi2`` the family's parameters as the C++ core holds them (negbinomial phi,
    gamma shape, beta_binomial phi, the zero-inflated families' odds of a structural zero: phi
    for the zero_inflated_poisson, phi2 for the zero_inflated_negbinomial, whose phi is the
    negative binomial's); arrays broadcast against mu.
    """
    if family == "gaussian":
        return rng.normal(mu, sigma)
    if family == "poisson":
        return rng.poisson(mu).astype(float)
    if family == "student":  # scale phi, degrees of freedom phi2
        return mu + np.asarray(phi) * rng.standard_t(np.broadcast_to(phi2, np.shape(mu)))
    if family == "zero_inflated_poisson":  # a structural zero with probability phi / (1 + phi)
        zero = rng.random(np.shape(mu)) < np.asarray(phi) / (1.0 + np.asarray(phi))
        return np.where(zero, 0.0, rng.poisson(mu).astype(float))
    if family == "zero_inflated_negbinomial":
        zero = rng.random(np.shape(mu)) < np.asarray(phi2) / (1.0 + np.asarray(phi2))
        return np.where(zero, 0.0, draw_response(rng, "negbinomial", mu, phi=phi))
    if family == "negbinomial":  # a gamma-Poisson mixture with mean mu, shape phi
        return rng.poisson(rng.gamma(phi, mu / phi)).astype(float)
    if family == "gamma":
        return rng.gamma(phi, mu / phi)
    n = np.ones_like(mu) if trials is None else np.asarray(trials)
    n = np.broadcast_to(n, np.shape(mu)).astype(np.int64)
    if family in ("binomial", "bernoulli"):
        return rng.binomial(n, np.clip(mu, 0.0, 1.0)).astype(float)
    if family == "beta_binomial":
        # Beta(phi mu, phi (1 - mu)) needs both shapes > 0: mu is kept 1e-12 inside (0, 1)
        m = np.clip(mu, 1e-12, 1.0 - 1e-12)
        return rng.binomial(n, rng.beta(phi * m, phi * (1.0 - m))).astype(float)
    raise ValueError(f"unknown family {family!r}")
