"""Linear mixed models with one grouping factor (hierarchical linear regression), array level.

    y = offset + X beta + Z b + e,   b_j ~ N_q(0, Sigma) per level j of ``group``,
    e ~ N(0, sigma^2 I),   beta ~ N(m0, V0),   Sigma ~ LKJ + SD priors or IW(nu0, S0),
    sigma^2 ~ IG(a0, b0).

``cov_prior``: :class:`~bglmm.priors.LKJ` (the separation strategy, per-term SD priors),
:class:`~bglmm.priors.InverseWishart`, or a prior on the SD (HalfCauchy / HalfStudentT /
UniformSD / HalfNormal / InverseGamma on the variance), which applies to every term.

The seeds' "all coefficients vary" form beta_j ~ N_p(theta, Sigma), theta ~ N(mu0, L0) is the
case Z = X: ``beta`` is theta and ``coef()`` reports beta_j = theta + b_j.

Sampler: first (Sigma, sigma^2) by Metropolis-Hastings on their marginal posterior with beta and
b integrated out (closed form from per-group cross-products; a random walk learned in warm-up
and, after warm-up, an independence t proposal), so that small variance components and
few-group covariances mix; then Gibbs steps: (beta, b) | Sigma, sigma^2 as one block — beta from
its marginal with b integrated out (per-group Woodbury through a Cholesky factor of
M_j = Z_j'Z_j + sigma^2 Sigma^-1), then b_j | beta from N(M_j^-1 Z_j'(y_j - X_j beta),
sigma^2 M_j^-1) with the same factor; sigma^2 | beta, b (inverse-gamma, residual sum of squares
from precomputed cross-products); Sigma | b (inverse-Wishart by Bartlett, slice sampling
under LKJ). Per-group work is
parallel over groups (OpenMP); draws do not depend on ``threads``.

Default priors (weakly informative, scaled to the data; all settable):

* beta: independent normals. A constant column (the intercept) gets N(mean(y), (10 sd(y))^2);
  any other column k gets N(0, (10 sd(y) / sd(x_k))^2).
* sigma^2: InverseGamma(1/2, s2/2), one prior observation at s2, the residual variance of the
  least-squares fit of y on X (an upper bound of sigma^2, as it also holds the group variation).
* Sigma, q = 1: HalfCauchy(scale = s / rms(z)) on the SD (Gelman 2006), s = sqrt(s2).
  q >= 2: LKJ(eta = 2) on the correlations and Half-Student-t(3, 2.5 s / rms(z_k)) on each SD
  (the separation strategy: unlike the inverse-Wishart it does not tie the SDs to the
  correlations, nor pull small variances up).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import _core
from ._chains import run_chains
from .data import (as_design, as_vector, check_count, check_full_rank, check_weights,
                   core_aligned, core_weights, moments, residual_variance, resolve_seed,
                   resolve_threads)
from .grouping import encode_groups
from .priors import LKJ, HalfStudentT, InverseGamma, Normal, covariance_prior_spec, has_flat_sd
from .results import Fit, keep_drawn, sd_cor_draws, stack_chains, stuck_chains, weighted_log_lik

#: the entries of a chain's result with one row per draw
_PER_DRAW = ("beta", "cov", "sigma", "b")

__all__ = ["LmmFit", "lmm", "default_lmm_priors"]

KEEP_EFFECTS_LIMIT = 20_000_000  # stored b draws (chains x draws x m x q) kept by default


def _as_y(y: Any) -> np.ndarray:
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ValueError(f"y must be one column, got {y.shape[1]}")
        y = y.iloc[:, 0]
    n = len(y) if np.ndim(y) else 0
    if n == 0:
        raise ValueError("y has no values")
    return as_vector(y, n, "y")


def default_lmm_priors(y: np.ndarray, X: np.ndarray, Z: np.ndarray,
                       weights: np.ndarray | None = None) -> dict[str, Any]:
    """The data-scaled default priors (see the module docs); the case weights count as
    frequencies."""
    mean_y, sd_y = (float(v) for v in moments(y, weights, ddof=1)) if y.size > 1 else (0.0, 1.0)
    sd_y = sd_y if sd_y > 0 else 1.0
    sd_x = moments(X, weights)[1]
    const = sd_x <= 1e-12 * (1.0 + np.abs(X).max(axis=0))
    mean = np.where(const, mean_y if y.size > 1 else float(np.mean(y)), 0.0)
    sd = np.where(const, 10.0 * sd_y, 10.0 * sd_y / np.where(const, 1.0, sd_x))
    s2 = residual_variance(X, y, weights)
    s2 = s2 if s2 > 0 else sd_y**2
    ms_z = moments(Z**2, weights)[0]
    ms_z = np.where(ms_z > 0, ms_z, 1.0)
    q = Z.shape[1]
    if q == 1:
        cov_prior: Any = HalfStudentT(1.0, float(np.sqrt(s2 / ms_z[0])))
    else:
        cov_prior = LKJ(sd=[HalfStudentT(3.0, float(2.5 * np.sqrt(s2 / v))) for v in ms_z])
    return {"prior": Normal(mean, sd), "sigma_prior": InverseGamma(0.5, 0.5 * s2),
            "cov_prior": cov_prior}


class LmmFit(Fit):
    """Posterior of a linear mixed model.

    Variables: ``beta`` (dims coef), ``b`` (dims group, term; when kept), ``Sigma`` (term, term_),
    ``sd_<term>`` and ``corr_<term1>__<term2>`` (scalars), ``sigma``, and ``icc`` (q = 1:
    Sigma / (Sigma + sigma^2)).
    """

    def __init__(self, *args: Any, data: dict[str, Any], b_mean: np.ndarray, b_sd: np.ndarray,
                 **kwargs: Any) -> None:
        self._data = data
        self._b_mean = b_mean
        self._b_sd = b_sd
        super().__init__(*args, **kwargs)

    def _stuck_moves(self) -> list[str]:
        # NaN: the collapsed move was off
        return stuck_chains("the collapsed move of (Sigma, sigma^2)",
                            self.attrs.get("collapsed_acceptance", []))

    @property
    def coef_names(self) -> list[str]:
        return list(self.coords["coef"])

    @property
    def term_names(self) -> list[str]:
        return list(self.coords["term"])

    @property
    def levels(self) -> list[Any]:
        return list(self.coords["group"])

    def _log_likelihood(self) -> dict[str, np.ndarray] | None:
        """Pointwise log-likelihood (chain, draw, obs) for WAIC/LOO, conditional on b_j; None
        when the draws of b were not kept or the array would exceed 5e7 numbers."""
        if "b" not in self.posterior:
            return None
        c, d = self.posterior["beta"].shape[:2]
        if c * d * self._data["y"].size > 50_000_000:
            return None
        eta = self.predict(kind="mean")
        sigma = self.posterior["sigma"][..., None]
        z = (self._data["y"] - eta) / sigma
        ll = -0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
        return {"y": weighted_log_lik(ll, self._data.get("weights"))}

    def _observed(self) -> dict[str, np.ndarray]:
        return {"y": self._data["y"]}

    def ranef(self) -> pd.DataFrame:
        """Posterior means of the random effects b_j, one row per group, one column per term."""
        return pd.DataFrame(self._b_mean, index=pd.Index(self.levels, name="group"),
                            columns=self.term_names)

    def ranef_sd(self) -> pd.DataFrame:
        """Posterior SDs of the random effects b_j."""
        return pd.DataFrame(self._b_sd, index=pd.Index(self.levels, name="group"),
                            columns=self.term_names)

    def _b_draws(self) -> np.ndarray:
        if "b" not in self.posterior:
            raise ValueError("the draws of b were not kept (keep_effects=False); refit with "
                             "keep_effects=True for group-level draws")
        return self.posterior["b"]

    def coef_draws(self) -> np.ndarray:
        """Draws of the group-level coefficients (chain, draw, group, coef): beta + b_j for the
        terms of Z that are also columns of X (by name), beta alone for the others."""
        beta = self.posterior["beta"]
        b = self._b_draws()
        out = np.repeat(beta[:, :, None, :], b.shape[2], axis=2).copy()
        for t, name in enumerate(self.term_names):
            if name in self.coef_names:
                out[..., self.coef_names.index(name)] += b[..., t]
        return out

    def coef(self) -> pd.DataFrame:
        """Posterior means of the group-level coefficients beta + b_j (see :meth:`coef_draws`)."""
        beta = self.posterior["beta"].mean(axis=(0, 1))
        out = np.repeat(beta[None, :], len(self.levels), axis=0)
        for t, name in enumerate(self.term_names):
            if name in self.coef_names:
                out[:, self.coef_names.index(name)] += self._b_mean[:, t]
        return pd.DataFrame(out, index=pd.Index(self.levels, name="group"), columns=self.coef_names)

    def predict(self, X: Any = None, Z: Any = None, group: Any = None, *,
                groups: str = "existing", kind: str = "mean", offset: Any = None,
                seed: int | None = None) -> np.ndarray:
        """Posterior predictive draws shaped (chain, draw, rows).

        ``X``, ``Z``, ``group`` describe the rows (default: the data). ``groups="existing"`` uses
        each row's b_j (its group must be in the data); ``groups="new"`` draws, per draw, one
        b_new ~ N(0, Sigma) for each distinct label in ``group`` (all rows one new group when
        ``group`` is None). ``kind="mean"``: X beta + Z b (+ offset); ``kind="response"``: plus
        N(0, sigma^2) noise.
        """
        if kind not in ("mean", "response"):
            raise ValueError(f"kind must be 'mean' or 'response', got {kind!r}")
        if groups not in ("existing", "new"):
            raise ValueError(f"groups must be 'existing' or 'new', got {groups!r}")
        d = self._data
        if X is None:
            Xn, Zn, codes = d["X"], d["Z"], d["codes"]
            off = d["offset"]
            labels = None if groups == "existing" else np.asarray(d["codes"])
        else:
            Xn, _ = as_design(X, "X")
            n = Xn.shape[0]
            if Xn.shape[1] != len(self.coef_names):
                raise ValueError(f"X has {Xn.shape[1]} columns, the model has {len(self.coef_names)}")
            if Z is None:
                if d["z_is_intercept"]:
                    Zn = np.ones((n, 1))
                else:
                    raise ValueError("Z is required for new rows (the model's Z is not an intercept)")
            else:
                Zn, _ = as_design(Z, "Z")
            if Zn.shape != (n, len(self.term_names)):
                raise ValueError(f"Z must have shape ({n}, {len(self.term_names)}), got {Zn.shape}")
            off = np.zeros(n) if offset is None else as_vector(offset, n, "offset")
            if group is None:
                if groups == "existing":
                    raise ValueError("group is required to predict existing groups for new rows")
                labels = np.zeros(n, dtype=np.int64)
            else:
                series = pd.Series(np.asarray(group, dtype=object))
                if len(series) != n:
                    raise ValueError(f"group has {len(series)} values, X has {n} rows")
                if groups == "existing":
                    lookup = {lv: j for j, lv in enumerate(self.levels)}
                    unknown = sorted({str(v) for v in series if v not in lookup})
                    if unknown:
                        raise ValueError(f"unknown group level(s) {unknown[:5]}; use groups='new' "
                                         "for groups not in the data")
                    codes = np.array([lookup[v] for v in series], dtype=np.int64)
                labels = pd.factorize(series)[0]
        beta = self.posterior["beta"]
        eta = np.einsum("cdp,np->cdn", beta, Xn) + off
        rng = np.random.default_rng(seed)
        if groups == "existing":
            b = self._b_draws()[:, :, codes, :]
            eta = eta + np.einsum("cdnq,nq->cdn", b, Zn)
        else:
            if group is None and X is not None:
                labels = np.zeros(Xn.shape[0], dtype=np.int64)
            n_new = int(labels.max()) + 1
            cov = self.posterior["Sigma"]
            chol = np.linalg.cholesky(cov)  # (chain, draw, q, q)
            z = rng.standard_normal(cov.shape[:2] + (n_new, cov.shape[-1]))
            b_new = np.einsum("cdqk,cdgk->cdgq", chol, z)
            eta = eta + np.einsum("cdnq,nq->cdn", b_new[:, :, labels, :], Zn)
        if kind == "mean":
            return eta
        return rng.normal(eta, self.posterior["sigma"][..., None])


def lmm(
    y: Any,
    X: Any,
    Z: Any = None,
    group: Any = None,
    *,
    offset: Any = None,
    weights: Any = None,
    prior: Normal | None = None,
    cov_prior: Any = None,
    sigma_prior: InverseGamma | None = None,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 500,
    thin: int = 1,
    seed: int | None = None,
    threads: int | None = None,
    keep_effects: bool | None = None,
    progress: bool = True,
    collapsed: bool = True,
    check: bool = True,
) -> LmmFit:
    """Fit a linear mixed model with one grouping factor by Gibbs sampling.

    Parameters
    ----------
    y : response (length n).
    X : fixed-effects design (n x p), array or DataFrame (its column names name ``beta``).
        Include a column of ones for an intercept. Must have full column rank.
    Z : random-effects design (n x q); default a column of ones (a random intercept) named
        "Intercept". Columns named like columns of X are the varying versions of those
        coefficients (used by :meth:`LmmFit.coef`).
    group : group label of each row (length n); at least 2 levels. Groups with one row are fine.
    offset : known part of the mean (length n).
    weights : case weights, one value >= 0 per row: each row's log-likelihood times its weight
        (a row of integer weight w counts as w copies; beta and b are fitted as with residual
        variances sigma^2 / w_i, and sigma^2 counts sum(w) observations).
    prior : :class:`~bglmm.priors.Normal` on beta (default: data-scaled, see module docs).
    cov_prior : :class:`~bglmm.priors.LKJ` (correlations, with per-term SD priors),
        :class:`~bglmm.priors.InverseWishart` on Sigma, or a prior on the SD of every term
        (HalfCauchy, HalfStudentT, UniformSD, HalfNormal, InverseGamma on the variance).
    sigma_prior : :class:`~bglmm.priors.InverseGamma` on sigma^2.
    chains, draws, warmup, thin, seed : MCMC settings (draws kept per chain, after thinning).
    threads : thread budget (None: all cores): min(chains, threads) chains run concurrently and
        the remaining threads parallelise the per-group updates inside each chain; the draws do
        not depend on it.
    keep_effects : store every draw of b (chains x draws x m x q numbers). Default: when that is
        at most 2e7 numbers; otherwise only posterior means/SDs of b are kept (``ranef()``).
    collapsed : run the collapsed Metropolis-Hastings move of (Sigma, sigma^2) before the Gibbs
        steps (default); False gives the plain blocked Gibbs sampler.
    check : warn (:class:`~bglmm.ConvergenceWarning`, once) when R-hat > 1.01 or bulk ESS < 100
        per chain for a reported parameter (beta, the SDs and correlations, sigma, icc; not
        b). Not for an interrupted fit.
    """
    ya = _as_y(y)
    n = ya.size
    Xa, x_names = as_design(X, "X")
    if Xa.shape[0] != n:
        raise ValueError(f"X has {Xa.shape[0]} rows but y has {n} values")
    if Z is None:
        Za, z_names = np.ones((n, 1)), ["Intercept"]
        z_is_intercept = True
    else:
        Za, z_names = as_design(Z, "Z")
        if Za.shape[0] != n:
            raise ValueError(f"Z has {Za.shape[0]} rows but y has {n} values")
        z_is_intercept = Za.shape[1] == 1 and bool(np.all(Za == 1.0))
    if group is None:
        raise TypeError("group is required (the grouping factor of the random effects)")
    grouping = encode_groups(group, n, "group", min_groups=2)
    off = np.zeros(n) if offset is None else as_vector(offset, n, "offset")
    wa = check_weights(weights, n)
    check_full_rank(Xa, x_names)
    p, q, m = Xa.shape[1], Za.shape[1], grouping.n_groups
    if len(set(z_names)) != q:
        raise ValueError(f"Z column names must be unique, got {z_names}")

    defaults = default_lmm_priors(ya - off, Xa, Za, wa)
    prior = defaults["prior"] if prior is None else prior
    if not isinstance(prior, Normal):
        raise TypeError(f"prior must be a bglmm.priors.Normal, got {type(prior).__name__}")
    m0, V0 = prior.to_arrays(p, "prior")
    sigma_prior = defaults["sigma_prior"] if sigma_prior is None else sigma_prior
    if not isinstance(sigma_prior, InverseGamma):
        raise TypeError("sigma_prior must be a bglmm.priors.InverseGamma on sigma^2")
    cov_prior = defaults["cov_prior"] if cov_prior is None else cov_prior
    default_sd = defaults["cov_prior"].sd if isinstance(defaults["cov_prior"], LKJ) else None
    cov_spec = covariance_prior_spec(cov_prior, q, "cov_prior", terms=z_names,
                                     default_sd=default_sd)
    if has_flat_sd(cov_spec) and m < 3:
        raise ValueError("a flat prior on the SD (UniformSD()) needs at least 3 groups")

    chains = check_count("chains", chains, 1)
    draws = check_count("draws", draws, 1)
    warmup = check_count("warmup", warmup, 0)
    thin = check_count("thin", thin, 1)
    seed_used = resolve_seed(seed)
    n_threads = resolve_threads(threads)
    if keep_effects is None:
        keep_effects = chains * draws * m * q <= KEEP_EFFECTS_LIMIT
    keep_effects = bool(keep_effects)

    Xs, Zs, ys, offs = (grouping.sort(Xa), grouping.sort(Za), grouping.sort(ya), grouping.sort(off))
    gs = grouping.group_start
    ws = core_weights(None if wa is None else grouping.sort(wa))
    Xs, Zs, ys, offs, gs, ws = core_aligned(Xs, Zs, ys, offs, gs, ws)

    def run_one(chain: int, inner_threads: int, callback: Any) -> dict:
        return _core.lmm_run(Xs, Zs, ys, offs, gs, m0, V0, sigma_prior.shape, sigma_prior.scale,
                             cov_spec, draws, warmup, thin,
                             inner_threads, keep_effects, seed_used, chain, callback,
                             bool(collapsed), weights=ws)

    results = run_chains(run_one, chains, n_threads, progress, warmup + draws * thin)
    kept, interrupted = keep_drawn(results, _PER_DRAW, draws)
    c = len(kept)

    cov = stack_chains(kept, "cov").reshape(c, -1, q, q)
    posterior: dict[str, np.ndarray] = {"beta": stack_chains(kept, "beta")}
    dims: dict[str, list[str]] = {"beta": ["coef"], "Sigma": ["term", "term_"]}
    summary_vars = ["beta"]
    for part in sd_cor_draws(cov, list(z_names), "sd_", "corr_"):
        posterior.update(part)
        summary_vars.extend(part)
    posterior["sigma"] = stack_chains(kept, "sigma")
    summary_vars.append("sigma")
    if q == 1:
        v = cov[..., 0, 0]
        posterior["icc"] = v / (v + posterior["sigma"] ** 2)
        summary_vars.append("icc")
    posterior["Sigma"] = cov
    if keep_effects:
        posterior["b"] = stack_chains(kept, "b").reshape(c, -1, m, q)
        dims["b"] = ["group", "term"]
    b_mean = np.mean([r["b_mean"] for r in kept], axis=0)
    b_sd = np.sqrt(np.maximum(
        np.mean([r["b_sd"] ** 2 + r["b_mean"] ** 2 for r in kept], axis=0) - b_mean**2, 0.0))
    fit = LmmFit(
        posterior,
        dims=dims,
        coords={"coef": x_names, "term": z_names, "term_": z_names, "group": grouping.levels},
        summary_vars=summary_vars,
        attrs={"prior": repr(prior), "cov_prior": repr(cov_prior),
               "sigma_prior": repr(sigma_prior),
               "residual_fallbacks": int(sum(r["residual_fallbacks"] for r in kept)),
               # per chain, after warm-up (nan when the move is off)
               "collapsed_acceptance": [float(r["collapsed_acceptance"]) if collapsed
                                        else float("nan") for r in kept]},
        seed=seed_used,
        interrupted=interrupted,
        sampler=("blocked Gibbs with a collapsed move of (Sigma, sigma^2) ((beta, b) jointly, "
                 "then sigma^2, then Sigma)" if collapsed else
                 "blocked Gibbs ((beta, b) jointly, then sigma^2, then Sigma)"),
        data={"X": Xa, "Z": Za, "y": ya, "offset": off, "codes": grouping.codes,
              "z_is_intercept": z_is_intercept, "weights": wa},
        b_mean=b_mean,
        b_sd=b_sd,
    )
    fit.priors = {"prior": prior, "cov_prior": cov_prior, "sigma_prior": sigma_prior}
    if check:
        fit._run_checks()
    return fit
