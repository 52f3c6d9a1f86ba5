"""Families and links: names, defaults, validation, and the codes the C++ core uses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (family, link) -> code of bglmm::FamilyLink in cpp/include/bglmm/glm.hpp
_CODES = {
    ("gaussian", "identity"): 0,
    ("poisson", "log"): 1,
    ("binomial", "logit"): 2,
    ("binomial", "probit"): 3,
    ("binomial", "cloglog"): 4,
}

LINKS = {
    "gaussian": ("identity",),
    "poisson": ("log",),
    "binomial": ("logit", "probit", "cloglog"),
    "bernoulli": ("logit", "probit", "cloglog"),
}

_ALIASES = {"normal": "gaussian", "binary": "bernoulli", "logistic": "bernoulli"}


@dataclass(frozen=True)
class Family:
    """A resolved family/link pair."""

    name: str  # gaussian, poisson, binomial, bernoulli
    link: str

    @property
    def code(self) -> int:
        base = "binomial" if self.name == "bernoulli" else self.name
        return _CODES[(base, self.link)]

    @property
    def has_trials(self) -> bool:
        return self.name in ("binomial", "bernoulli")

    @property
    def is_count(self) -> bool:
        return self.name in ("poisson", "binomial", "bernoulli")

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
        from scipy.special import ndtr  # scipy arrives with arviz

        return ndtr(eta)
    if link == "cloglog":
        return -np.expm1(-np.exp(eta))
    raise ValueError(f"unknown link {link!r}")
