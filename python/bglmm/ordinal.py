"""The cumulative ordinal family (McCullagh 1980; brms ``cumulative``, ordinal's ``clm`` /
``clmm``): y in K ordered categories, P(y <= k) = F(c_k - eta) for k = 1 .. K - 1, F the
logistic (``link="logit"``) or standard normal (``"probit"``) CDF, ordered cutpoints c_1 < ... <
c_{K-1}, and a linear predictor without an intercept (the cutpoints take its place).

Responses are the categories' numbers 1 .. K (the order of an ordered pandas Categorical, or of
the sorted distinct values of integers or booleans); the fit keeps the categories' labels.

Prior: each cutpoint ~ N(0, s^2), jointly restricted to the ordered set (the order statistics
of K - 1 draws from N(0, s^2)); default s = 5 (``priors={"cutpoints": Normal(0, s)}``). The
C++ core samples with an intercept beta_0 in X and the cutpoints relative to it
(cpp/include/bglmm/steps/cutpoints.hpp); this module builds that design and prior and holds the
family's NumPy densities (log-likelihood, category probabilities, draws of y).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .priors import Normal

DEFAULT_CUTPOINT_SD = 5.0


def ordinal_response(y: Any, what: str = "the response") -> tuple[np.ndarray, list[Any]]:
    """The categories' numbers 1 .. K (float) and their labels, from an ordered pandas
    Categorical, integers or booleans. Unordered categoricals and strings, gaps in integer
    levels, unused categories and a single category are errors naming the fix."""
    if isinstance(y, (pd.Series, pd.Index)) and isinstance(y.dtype, pd.CategoricalDtype):
        y = pd.Categorical(y)
    if isinstance(y, pd.Categorical):
        if not y.ordered:
            raise ValueError(
                f"{what} is an unordered categorical; the cumulative family needs the categories' "
                f"order: make it ordered, e.g. pd.Categorical(x, categories=[...], ordered=True)")
        if np.any(y.codes < 0):
            raise ValueError(f"{what} has missing values")
        counts = np.bincount(y.codes, minlength=len(y.categories))
        if np.any(counts == 0):
            unused = [str(c) for c, k in zip(y.categories, counts) if k == 0]
            raise ValueError(
                f"{what} has categories without observations ({', '.join(unused)}); their "
                "cutpoints would not be identified: drop them (Series.cat.remove_unused_categories())")
        codes, labels = y.codes.astype(float) + 1.0, list(y.categories)
    else:
        arr = np.asarray(y)
        if arr.dtype == bool:
            arr = arr.astype(float)
        if arr.dtype.kind not in "iuf":
            raise ValueError(
                f"{what} must be an ordered pandas Categorical or integers for the cumulative "
                f"family, got values of type {arr.dtype}")
        arr = arr.astype(float).reshape(-1)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} has missing or infinite values")
        if np.any(arr != np.round(arr)):
            raise ValueError(f"{what} has non-integer values; ordinal responses are whole numbers "
                             "(or an ordered Categorical)")
        values = np.unique(arr)
        gaps = sorted(set(range(int(values[0]), int(values[-1]) + 1)) - set(values.astype(int)))
        if gaps:
            raise ValueError(
                f"{what} has levels with gaps: no observations at {', '.join(map(str, gaps))} "
                f"between {values[0]:g} and {values[-1]:g}; renumber the categories or pass an "
                "ordered Categorical of the levels observed")
        codes = np.searchsorted(values, arr).astype(float) + 1.0
        labels = [int(v) for v in values]
    if len(labels) < 2:
        raise ValueError(f"{what} has a single category ({labels[0]!r}); an ordinal model needs "
                         "at least two")
    return np.ascontiguousarray(codes), labels


def cutpoint_sd(prior: Any) -> float:
    """s of the cutpoints' prior N(0, s^2) (a :class:`bglmm.priors.Normal` with mean 0)."""
    if prior is None:
        return DEFAULT_CUTPOINT_SD
    if not isinstance(prior, Normal) or np.ndim(prior.mean) or np.ndim(prior.sd) or prior.cov is not None:
        raise TypeError("priors['cutpoints'] must be a scalar bglmm.priors.Normal(0, s) "
                        "(the same prior on every cutpoint)")
    if float(prior.mean) != 0.0:
        raise ValueError("priors['cutpoints'] must have mean 0 (each cutpoint ~ N(0, s^2))")
    return float(prior.sd)


def core_design(X: np.ndarray, names: list[str]) -> np.ndarray:
    """X with the core's intercept as its first column; X itself must have none."""
    const = np.all(X == X[:1], axis=0) if X.shape[0] else np.zeros(X.shape[1], bool)
    if np.any(const):
        j = int(np.where(const)[0][0])
        raise ValueError(
            f"the cumulative family has no intercept (its cutpoints take its place), but column "
            f"{names[j]!r} of X is constant; drop it")
    return np.ascontiguousarray(np.column_stack([np.ones(X.shape[0]), X]))


def core_prior(m0: np.ndarray, V0: np.ndarray, sd: float, categories: int) -> tuple[np.ndarray, np.ndarray]:
    """The core's prior on (beta_0, beta): beta_0 ~ N(mean of the cutpoints relative to it,
    s^2 / (K - 1)), which the core keeps current, independent of beta ~ N(m0, V0)."""
    p = len(m0)
    mean = np.concatenate([[0.0], m0])
    cov = np.zeros((p + 1, p + 1))
    cov[0, 0] = sd**2 / (categories - 1)
    cov[1:, 1:] = V0
    return mean, cov


def _cdf(link: str, x: np.ndarray) -> np.ndarray:
    from scipy import special

    return special.expit(x) if link == "logit" else special.ndtr(x)


def _log_cdf(link: str, x: np.ndarray) -> np.ndarray:
    from scipy import special

    return special.log_expit(x) if link == "logit" else special.log_ndtr(x)


def category_probabilities(eta: np.ndarray, cutpoints: np.ndarray, link: str) -> np.ndarray:
    """P(y = k), k = 1 .. K, for eta (S, n) and cutpoints (S, K - 1): an array (S, n, K)."""
    eta = np.asarray(eta, dtype=float)
    c = np.asarray(cutpoints, dtype=float)[:, None, :]
    cdf = _cdf(link, c - eta[..., None])  # (S, n, K - 1)
    ones = np.ones(cdf.shape[:-1] + (1,))
    upper = np.concatenate([cdf, ones], axis=-1)
    lower = np.concatenate([0.0 * ones, cdf], axis=-1)
    return np.clip(upper - lower, 0.0, 1.0)


def log_density(y: np.ndarray, eta: np.ndarray, cutpoints: np.ndarray, link: str) -> np.ndarray:
    """log P(y_i | eta, cutpoints) for y the categories' numbers 1 .. K: eta (S, n), cutpoints
    (S, K - 1); an array (S, n). Differences of CDFs are taken in the tail that keeps them
    accurate (the links are symmetric: 1 - F(x) = F(-x))."""
    eta = np.asarray(eta, dtype=float)
    c = np.asarray(cutpoints, dtype=float)
    S = c.shape[0]
    k = np.asarray(y, dtype=int) - 1
    padded = np.concatenate([np.full((S, 1), -np.inf), c, np.full((S, 1), np.inf)], axis=1)
    a = padded[:, k + 1] - eta  # upper threshold
    b = padded[:, k] - eta      # lower threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        upper_tail = b > 0  # both in the upper tail: 1 - F(b) - (1 - F(a)) = F(-b) - F(-a)
        hi = np.where(upper_tail, _log_cdf(link, -b), _log_cdf(link, a))
        lo = np.where(upper_tail, _log_cdf(link, -a), _log_cdf(link, b))
        diff = lo - hi  # <= 0
        out = hi + np.where(diff > -0.6931471805599453, np.log(-np.expm1(diff)),
                            np.log1p(-np.exp(diff)))
    return out


def draw_categories(rng: np.random.Generator, eta: np.ndarray, cutpoints: np.ndarray,
                    link: str) -> np.ndarray:
    """One draw of y (the categories' numbers 1 .. K, float) per entry of eta (S, n)."""
    cdf = _cdf(link, np.asarray(cutpoints, dtype=float)[:, None, :] - np.asarray(eta)[..., None])
    u = rng.random(np.shape(eta))
    return (1.0 + (u[..., None] >= cdf).sum(axis=-1)).astype(float)


def core_arrays(X: np.ndarray, names: list[str], y: Any, prior_mean: np.ndarray,
                prior_cov: np.ndarray, cut_prior: Any) -> dict[str, Any]:
    """What the array-level samplers hand the core for a cumulative model: the design with its
    intercept first, the response's category codes 0 .. K - 1, the prior on (beta_0, beta), and
    the core's keyword arguments; plus the response's numbers 1 .. K and the categories."""
    y_num, categories = ordinal_response(y)
    K = len(categories)
    sd = cutpoint_sd(cut_prior)
    mean, cov = core_prior(prior_mean, prior_cov, sd, K)
    return {"X": core_design(X, names), "y": y_num, "y_core": y_num - 1.0, "categories": categories,
            "prior_mean": mean, "prior_cov": cov,
            "kwargs": {"categories": K, "cutpoint_sd": sd, "intercept_col": 0}}


def posterior_parts(cutpoints: np.ndarray, categories: list[Any]) -> tuple[dict, dict, dict]:
    """The posterior variable ``cutpoint`` (chain, draw, K - 1), its dims and coords (1 .. K - 1:
    summary rows ``cutpoint[1]`` ...)."""
    K = len(categories)
    return ({"cutpoint": cutpoints}, {"cutpoint": ["cutpoint_index"]},
            {"cutpoint_index": list(range(1, K))})


def predict_from_eta(kind: str, eta: np.ndarray, cutpoints: np.ndarray, link: str,
                     rng: np.random.Generator) -> np.ndarray:
    """``kind="mean"``: the category probabilities (..., rows, K); ``"response"``: draws of the
    categories' numbers 1 .. K (..., rows). eta (..., rows), cutpoints (..., K - 1)."""
    lead = eta.shape[:-1]
    e = eta.reshape(-1, eta.shape[-1])
    c = cutpoints.reshape(-1, cutpoints.shape[-1])
    if kind == "mean":
        out = category_probabilities(e, c, link)
        return out.reshape(lead + out.shape[1:])
    return draw_categories(rng, e, c, link).reshape(eta.shape)
