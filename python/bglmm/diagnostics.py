"""Convergence diagnostics on NumPy: rank-normalised split R-hat, bulk and tail ESS, MCSE.

The definitions are those of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for assessing convergence of
MCMC", Bayesian Analysis 16(2). The effective sample size is Stan's: the chains' autocovariances
by FFT, combined with the between-chain variance, summed with Geyer's initial monotone sequence.

Every function takes the draws of one scalar quantity shaped (chain, draw) (a 1-D array is one
chain) and returns a float: NaN when the draws contain NaN or there are fewer than 4 draws per
chain (R-hat: also fewer than 2 chains). This module needs NumPy only, so that a fit's summary
and its convergence check do not import ArviZ.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["rhat", "ess_bulk", "ess_tail", "ess_mean", "mcse_mean", "summary_diagnostics",
           "normal_quantile", "rank_normalize", "split_chains"]

MIN_DRAWS = 4  # per chain, below which the diagnostics are undefined (NaN)

# ---- the standard normal quantile function ------------------------------------------------
# Acklam's rational approximation (relative error < 1.2e-9), then one Halley step on
# Phi(x) - p, which brings it to double precision.
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01, 1.0)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00, 1.0)
_P_LOW = 0.02425
_erfc = np.frompyfunc(math.erfc, 1, 1)


def _poly(coefs: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    """Horner's evaluation of sum coefs[i] x^(n-1-i)."""
    out = np.full_like(x, coefs[0])
    for c in coefs[1:]:
        out = out * x + c
    return out


def normal_quantile(p: np.ndarray | float) -> np.ndarray:
    """The standard normal quantile function Phi^-1(p) (``scipy.special.ndtri``), elementwise;
    -inf / inf at 0 / 1 and NaN outside [0, 1]."""
    p = np.asarray(p, dtype=float)
    q = np.minimum(p, 1.0 - p)  # the lower tail; the upper one by symmetry
    inner = (q > 0) & (q <= 0.5)
    qs = np.where(inner, q, 0.25)  # 0.25 where q is 0 or out of range keeps the formulas finite
    central = qs >= _P_LOW
    r = qs - 0.5
    x_central = _poly(_A, r * r) * r / _poly(_B, r * r)
    t = np.sqrt(-2.0 * np.log(np.where(central, 0.25, qs)))
    x_tail = _poly(_C, t) / _poly(_D, t)
    x = np.where(central, x_central, x_tail)
    # Halley step on f(x) = Phi(x) - q, Phi(x) = erfc(-x / sqrt 2) / 2 (x <= 0: no cancellation)
    e = 0.5 * np.asarray(_erfc(-x / math.sqrt(2.0)), dtype=float) - qs
    u = e * math.sqrt(2.0 * math.pi) * np.exp(0.5 * x * x)
    x = x - u / (1.0 + 0.5 * x * u)
    x = np.where(p > 0.5, -x, x)
    x = np.where(q == 0, np.where(p > 0.5, np.inf, -np.inf), x)
    return np.where(inner | (q == 0), x, np.nan)


@functools.lru_cache(maxsize=16)
def _blom_scores(size: int) -> np.ndarray:
    """Normal scores of the average ranks 1, 1.5, 2, ..., size of `size` values (Blom's offset
    3/8): entry k belongs to the rank (k + 2) / 2."""
    rank = np.arange(2, 2 * size + 1) / 2.0
    scores = normal_quantile((rank - 0.375) / (size + 0.25))
    scores.flags.writeable = False
    return scores


# ---- building blocks --------------------------------------------------------------------------
def _as_chains(draws: np.ndarray) -> np.ndarray:
    """The draws as a float (chain, draw) array."""
    x = np.asarray(draws, dtype=float)
    if x.ndim not in (1, 2):
        raise ValueError(f"draws must be shaped (chain, draw) or (draw,), got {x.shape}")
    return x[np.newaxis] if x.ndim == 1 else x


def _undefined(x: np.ndarray, min_chains: int = 1) -> bool:
    """True when a diagnostic of `x` (chain, draw) is NaN: NaN draws or too short / few chains."""
    return x.shape[0] < min_chains or x.shape[1] < MIN_DRAWS or bool(np.isnan(x).any())


def split_chains(x: np.ndarray) -> np.ndarray:
    """Each chain cut into its first and its last half (the middle draw of an odd number
    dropped): (chain, draw) -> (2 chain, draw // 2)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def rank_normalize(x: np.ndarray) -> np.ndarray:
    """The normal scores of the ranks of all of `x`, pooled over chains (ties get their average
    rank): Phi^-1((rank - 3/8) / (size + 1/4)), shaped as `x`."""
    flat = x.ravel()
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    first = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    past = np.append(first[1:], flat.size)
    # a run of ties at sorted positions first .. past-1 has the average rank (first + past + 1) / 2
    twice = np.empty(flat.size, dtype=np.intp)
    twice[order] = np.repeat(first + past, past - first)
    return _blom_scores(flat.size)[twice - 1].reshape(x.shape)


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Each chain's autocovariance at lags 0 .. draw-1 (divided by the number of draws), by FFT."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()  # zero-padded past 2n: no circular wrap-around
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(spectrum * np.conjugate(spectrum), n=size, axis=1)[:, :n] / n


def _ess(chains: np.ndarray) -> float:
    """Effective sample size of (chain, draw) draws, as Stan computes it (no splitting here).

    The autocorrelation at lag t combines the chains: rho_t = 1 - (W - mean acov_t) / var+.
    The pair sums rho_2k + rho_2k+1 are taken while positive (Geyer's initial positive
    sequence; at most up to lag n - 3), each capped by the one before (initial monotone
    sequence); of the pair that ends the sequence only the even lag counts, and only when it is
    positive or the pair's sum is not negative. tau = -1 + 2 sum(pairs) + that lag, at least
    1 / log10(draws); ESS = draws / tau.
    """
    m, n = chains.shape
    if np.isnan(chains).any():
        return math.nan
    if chains.max() - chains.min() < np.finfo(float).resolution:
        return float(chains.size)  # constant draws
    acov = _autocovariance(chains)
    within = acov[:, 0].mean() * n / (n - 1.0)
    var_plus = within * (n - 1.0) / n
    if m > 1:
        var_plus += chains.mean(axis=1).var(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (within - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    last_pair = max((n - 3) // 2, 0)  # pairs (2k, 2k+1) with 2k < n - 2 are looked at
    pairs = rho[0:2 * last_pair + 2:2] + rho[1:2 * last_pair + 2:2]
    stops = np.flatnonzero(~(pairs > 0))
    stop = int(stops[0]) if stops.size else last_pair  # the last pair looked at
    if np.isnan(rho[:2 * stop + 2]).any():
        return math.nan
    even = rho[2 * stop]
    tail = even if (pairs[stop] >= 0 or even > 0) else 0.0
    tau = -1.0 + 2.0 * np.minimum.accumulate(pairs[:stop]).sum() + tail
    tau = max(tau, 1.0 / math.log10(chains.size))
    return chains.size / tau


def _rhat(chains: np.ndarray) -> float:
    """Gelman-Rubin R-hat of (chain, draw) draws (no splitting or normalising here)."""
    n = chains.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = n * chains.mean(axis=1).var(ddof=1)
        within = chains.var(axis=1, ddof=1).mean()
        return float(np.sqrt((between / within + n - 1.0) / n))


def _max_defined(a: float, b: float) -> float:
    """max(a, b), NaN if a is NaN, a if only b is NaN."""
    return a if math.isnan(a) or math.isnan(b) else max(a, b)


def _min_defined(a: float, b: float) -> float:
    """min(a, b), NaN if a is NaN, a if only b is NaN."""
    return a if math.isnan(a) or math.isnan(b) else min(a, b)


# ---- the diagnostics ------------------------------------------------------------------------
def rhat(draws: np.ndarray) -> float:
    """Rank-normalised split R-hat: the larger of the bulk R-hat (split chains, normal scores of
    the pooled ranks) and the tail R-hat (the same on |draw - median|, the median of all draws).
    NaN for fewer than 2 chains."""
    x = _as_chains(draws)
    if _undefined(x, min_chains=2):
        return math.nan
    bulk = _rhat(rank_normalize(split_chains(x)))
    folded = np.abs(x - np.median(x))
    return _max_defined(bulk, _rhat(rank_normalize(split_chains(folded))))


def ess_bulk(draws: np.ndarray) -> float:
    """Bulk effective sample size: the ESS of the normal scores of the split chains' ranks."""
    x = _as_chains(draws)
    if _undefined(x):
        return math.nan
    return _ess(rank_normalize(split_chains(x)))


def ess_tail(draws: np.ndarray, prob: tuple[float, float] = (0.05, 0.95)) -> float:
    """Tail effective sample size: the smaller ESS of the split chains' indicators
    draw <= q for the 5% and the 95% quantile q of all draws."""
    x = _as_chains(draws)
    if _undefined(x):
        return math.nan
    low, high = np.quantile(x, prob)
    return _min_defined(_ess(split_chains((x <= low).astype(float))),
                        _ess(split_chains((x <= high).astype(float))))


def ess_mean(draws: np.ndarray) -> float:
    """The ESS of the mean: of the split chains' draws as they are."""
    x = _as_chains(draws)
    if _undefined(x):
        return math.nan
    return _ess(split_chains(x))


def mcse_mean(draws: np.ndarray) -> float:
    """Monte Carlo standard error of the posterior mean: sd / sqrt(ESS of the mean)."""
    x = _as_chains(draws)
    if _undefined(x):
        return math.nan
    return math.sqrt(x.var(ddof=1) / ess_mean(x))


def summary_diagnostics(draws: np.ndarray) -> tuple[float, float, float, float]:
    """(mcse_mean, ess_bulk, ess_tail, r_hat) of one quantity's (chain, draw) draws (the
    functions above, sharing the rank-normalised split chains)."""
    x = _as_chains(draws)
    if _undefined(x):
        return math.nan, math.nan, math.nan, math.nan
    z = rank_normalize(split_chains(x))
    r_hat = math.nan
    if x.shape[0] >= 2:
        folded = np.abs(x - np.median(x))
        r_hat = _max_defined(_rhat(z), _rhat(rank_normalize(split_chains(folded))))
    return mcse_mean(x), _ess(z), ess_tail(x), r_hat
