"""The hierarchical normal (random-effects) model, array level.

    y_i ~ N(theta_{g(i)}, v_i),   theta_j ~ N(mu, tau^2),   mu ~ N(m0, s0^2) or flat

with three variance settings:

* ``sigma=None, se=None`` — a common unknown variance v_i = sigma^2 with an Inverse-Gamma prior
  (one-way random-effects ANOVA, e.g. pulp brightness by operator);
* ``sigma=s`` — a common known standard deviation (Efron-Morris baseball);
* ``se=array`` — known per-observation standard errors (meta-analysis; eight schools, where each
  row is its own group).

Priors on tau (``tau_prior``): :class:`~bglmm.priors.InverseGamma` /
:func:`~bglmm.priors.ScaledInvChiSquare` on tau^2 (conjugate);
:class:`~bglmm.priors.HalfStudentT` / :func:`~bglmm.priors.HalfCauchy` on tau (exact Gibbs by the
parameter expansion of Wand et al. 2011: tau^2 | c ~ IG(nu/2, nu/c), c ~ IG(1/2, 1/s^2));
:class:`~bglmm.priors.UniformSD` (flat on tau; conjugate IG((m-1)/2, ss/2) when unbounded, a slice
step on log tau when bounded); :class:`~bglmm.priors.HalfNormal` (slice step on log tau).
:class:`~bglmm.priors.LogUniform` (flat on log tau) is refused: the posterior is improper.

Samplers (``sampler=``; the default ``"auto"`` is ``"exact"`` with known variances, else
``"gibbs"``):

* ``"gibbs"`` — each sweep first moves (tau, sigma) by Metropolis-Hastings with mu and theta
  integrated out (the collapsed move: the group means give ybar_j ~ N(mu, tau^2 + v_j) in
  closed form, v_j the known variance of ybar_j or sigma^2 / n_j, and with an unknown sigma
  the within-group sum of squares adds sigma^2's chi-square term), in (log tau, log sigma):
  a random walk whose covariance is learned in warm-up and, after warm-up, an independence
  t proposal fitted to the second half of warm-up, both frozen once warm-up ends. Then the
  blocked Gibbs steps: (mu, theta) | tau, sigma as one block (mu from its marginal with theta
  integrated out, then theta | mu), tau^2 | theta, mu by the prior's step, sigma^2 | theta.
  Without the collapsed move (``collapsed=False``) tau and theta move in lock-step when tau is
  small and the chain crawls: eight schools under bglmm.fit's default priors gives a bulk ESS
  for tau of a few dozen from 4 x 1000 draws, against about the number of draws with it.
* ``"exact"`` — known variances only (``sigma=`` or ``se=``), any of the tau priors above:
  independent draws of tau from its marginal posterior p(tau | y) (BDA3 eq. 5.21, with a
  normal prior on mu if given) by inverse-CDF sampling on a grid of ``grid_points`` cells in
  u = tau / (tau + c) (uniform within a cell), then mu | tau, y and theta | mu, tau, y exactly.
  The draws are independent (ESS about the number of draws); warm-up and thinning are not
  needed and ignored. Setting up the grid costs ``grid_points`` x (number of groups)
  evaluations per chain (about 5 s with 100,000 groups), then each draw costs what a Gibbs
  sweep does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import _core
from ._chains import run_chains
from .data import as_vector, check_count, core_aligned, resolve_seed, resolve_threads
from .grouping import encode_groups
from .priors import HalfNormal, HalfStudentT, InverseGamma, LogUniform, Normal, UniformSD, scale_prior_spec
from .results import Fit, keep_drawn, stack_chains

#: the entries of a chain's result with one row per draw
_PER_DRAW = ("theta", "mu", "tau", "sigma")

__all__ = ["HierarchicalNormalFit", "hierarchical_normal", "scale_prior_spec"]


def _mu_prior_spec(prior: Any) -> tuple[float, float]:
    if prior is None:
        return 0.0, float("inf")
    if not isinstance(prior, Normal):
        raise TypeError(f"mu_prior must be a bglmm.priors.Normal or None (flat), got {type(prior).__name__}")
    mean, cov = prior.to_arrays(1, "mu_prior")
    return float(mean[0]), float(np.sqrt(cov[0, 0]))


class HierarchicalNormalFit(Fit):
    """Posterior of the hierarchical normal model.

    Variables: ``theta`` (dims group), ``mu``, ``tau``, ``sigma`` (unknown common variance only)
    and ``icc`` = tau^2 / (tau^2 + sigma^2) (whenever sigma is common, known or not).
    """

    def __init__(self, *args: Any, data: dict[str, Any], **kwargs: Any) -> None:
        self._data = data
        super().__init__(*args, **kwargs)

    @property
    def levels(self) -> list[Any]:
        return list(self.coords["group"])

    def _sigma_draws(self) -> np.ndarray | None:
        if "sigma" in self.posterior:
            return self.posterior["sigma"]
        if self._data["sigma"] is not None:
            return np.full(self.posterior["mu"].shape, float(self._data["sigma"]))
        return None

    def _log_likelihood(self) -> dict[str, np.ndarray]:
        """Pointwise log-likelihood (chain, draw, obs), obs in the caller's row order."""
        d = self._data
        theta = self.posterior["theta"][:, :, d["codes"]]
        if d["row_sd"] is not None:
            sd = d["row_sd"]
        else:
            sd = self._sigma_draws()[..., None]
        z = (d["y"] - theta) / sd
        return {"y": -0.5 * z**2 - np.log(sd) - 0.5 * np.log(2 * np.pi)}

    def _observed(self) -> dict[str, np.ndarray]:
        return {"y": self._data["y"]}

    def ranef(self) -> pd.DataFrame:
        """Posterior mean and sd of each theta_j, the raw group mean, and the shrinkage
        1 - (E[theta_j] - E[mu]) / (ybar_j - E[mu]) towards the grand mean."""
        theta = self.posterior["theta"]
        mean = theta.mean(axis=(0, 1))
        mu = float(self.posterior["mu"].mean())
        ybar = self._data["group_mean"]
        with np.errstate(divide="ignore", invalid="ignore"):
            shrink = 1.0 - (mean - mu) / (ybar - mu)
        return pd.DataFrame({"mean": mean, "sd": theta.std(axis=(0, 1), ddof=1),
                             "group_mean": ybar, "shrinkage": shrink},
                            index=pd.Index(self.levels, name="group"))

    def predict(self, group: Any = None, *, groups: str = "existing", kind: str = "response",
                n_new: int = 1, se: Any = None, seed: int | None = None) -> np.ndarray:
        """Posterior predictive draws shaped (chain, draw, k).

        ``groups="existing"``: for the levels in ``group`` (default all), theta_j of those groups
        (``kind="mean"``) or a new observation y ~ N(theta_j, v) (``kind="response"``).
        ``groups="new"``: ``n_new`` new groups, theta_new ~ N(mu, tau^2) from the population,
        then y ~ N(theta_new, v). The noise v is sigma^2 (known or a posterior draw) or, with
        per-observation standard errors, ``se`` (default: the existing rows' se; required for
        new groups).
        """
        if kind not in ("mean", "response"):
            raise ValueError(f"kind must be 'mean' or 'response', got {kind!r}")
        rng = np.random.default_rng(seed)
        theta = self.posterior["theta"]
        if groups == "existing":
            if group is None:
                idx = np.arange(theta.shape[2])
            else:
                labels = list(np.atleast_1d(np.asarray(group, dtype=object)))
                lookup = {lv: j for j, lv in enumerate(self.levels)}
                unknown = [lv for lv in labels if lv not in lookup]
                if unknown:
                    raise ValueError(f"unknown group level(s) {unknown[:5]}; use groups='new' for "
                                     "groups not in the data")
                idx = np.array([lookup[lv] for lv in labels], dtype=int)
            mean = theta[:, :, idx]
        elif groups == "new":
            n_new = check_count("n_new", n_new, 1)
            mu, tau = self.posterior["mu"], self.posterior["tau"]
            mean = rng.normal(mu[..., None], tau[..., None], size=mu.shape + (n_new,))
            idx = None
        else:
            raise ValueError(f"groups must be 'existing' or 'new', got {groups!r}")
        if kind == "mean":
            return mean
        sig = self._sigma_draws()
        if sig is not None and se is None:
            noise_sd = sig[..., None]
        else:
            if se is None:
                if idx is None:
                    raise ValueError("se= is required to predict new observations of new groups "
                                     "when the data have per-observation standard errors")
                noise_sd = self._data["group_se"][idx]
            else:
                noise_sd = np.asarray(se, dtype=float)
                if np.any(~np.isfinite(noise_sd)) or np.any(noise_sd < 0):
                    raise ValueError("se must be finite and non-negative")
        return rng.normal(mean, noise_sd)


def hierarchical_normal(
    y: Any,
    group: Any = None,
    *,
    sigma: float | None = None,
    se: Any = None,
    mu_prior: Normal | None = None,
    tau_prior: Any = None,
    sigma_prior: InverseGamma | None = None,
    sampler: str = "auto",
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 500,
    thin: int = 1,
    seed: int | None = None,
    grid_points: int = 4000,
    threads: int | None = None,
    progress: bool = True,
    check: bool = True,
    collapsed: bool = True,
) -> HierarchicalNormalFit:
    """Fit the hierarchical normal model y_i ~ N(theta_g(i), v_i), theta_j ~ N(mu, tau^2).

    Parameters
    ----------
    y : responses (length n).
    group : group label of each row (length n). None: every row is its own group (the
        meta-analysis layout: one estimate per study with its ``se``). At least 2 groups.
    sigma : known common standard deviation of y around theta (e.g. the binomial SD of a batting
        average). Give at most one of ``sigma`` and ``se``.
    se : known per-row standard errors (all > 0).
    mu_prior : ``Normal(m0, s0)`` on mu; default None = flat (improper, posterior proper).
    tau_prior : prior on the between-group SD (see the module docs). Default: the weakly
        informative ``HalfCauchy(scale = sd(y))`` (Gelman 2006), scaled to the data.
    sigma_prior : Inverse-Gamma on sigma^2 (unknown variance only). Default
        ``InverseGamma(1/2, s2/2)``: one prior observation at s2, the pooled within-group variance
        (the variance of y when no group has two rows).
    sampler : "auto" (default: "exact" with known variances, "gibbs" otherwise), "gibbs" or
        "exact" (known variances only; independent draws).
    chains, draws, warmup, thin, seed : MCMC settings (the exact sampler ignores warmup/thin).
    grid_points : cells of the tau grid of the exact sampler.
    threads : chains run concurrently on up to this many threads (None: all cores); the draws
        do not depend on it.
    check : warn (:class:`~bglmm.ConvergenceWarning`, once) when R-hat > 1.01 or bulk ESS < 100
        per chain for mu, tau, sigma or icc (not theta). Not for an interrupted fit.
    collapsed : ``sampler="gibbs"``: run the collapsed Metropolis-Hastings move of (tau, sigma)
        before the Gibbs steps (default); False gives the plain blocked Gibbs sampler.
    """
    if isinstance(y, pd.DataFrame):
        raise TypeError("y must be a vector, not a DataFrame")
    y_arr = np.asarray(y) if not isinstance(y, pd.Series) else y
    n = len(y_arr) if np.ndim(y_arr) else 0
    if n == 0:
        raise ValueError("y has no values")
    ya = as_vector(y, n, "y")
    if group is None:
        group = np.arange(n)
    grouping = encode_groups(group, n, "group", min_groups=2)
    m = grouping.n_groups
    if sigma is not None and se is not None:
        raise ValueError("give sigma (a common known SD) or se (per-row standard errors), not both")
    known_sigma = None
    if sigma is not None:
        try:
            if isinstance(sigma, (str, bytes, bool)):
                raise TypeError
            known_sigma = float(sigma)
        except (TypeError, ValueError):
            raise TypeError(f"sigma must be a number, got {type(sigma).__name__}") from None
        if not np.isfinite(known_sigma) or known_sigma <= 0:
            raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
        var_known = np.full(n, known_sigma**2)
    elif se is not None:
        se_arr = as_vector(se, n, "se")
        if np.any(se_arr <= 0):
            raise ValueError(f"se has {int((se_arr <= 0).sum())} non-positive values; standard "
                             "errors must be > 0")
        var_known = se_arr**2
    else:
        var_known = np.empty(0)
    known = var_known.size > 0

    if not isinstance(sampler, str) or sampler not in ("auto", "gibbs", "exact"):
        raise ValueError(f"sampler must be 'gibbs' or 'exact' (or 'auto', the default: exact with "
                         f"known variances, else gibbs), got {sampler!r}")
    if sampler == "auto":
        sampler = "exact" if known else "gibbs"
    if sampler == "exact" and not known:
        raise ValueError("sampler='exact' needs known variances (sigma= or se=); with an unknown "
                         "sigma use sampler='gibbs'")

    sd_y = float(np.std(ya, ddof=1)) if n > 1 else 0.0
    if tau_prior is None:
        tau_prior = HalfStudentT(1.0, sd_y if sd_y > 0 else 1.0)
    tau_kind, tau_a, tau_b = scale_prior_spec(tau_prior, "tau_prior")
    if tau_kind == 2 and np.isinf(tau_b) and m < 3:
        raise ValueError("a flat prior on tau (UniformSD()) needs at least 3 groups for a proper "
                         f"posterior; the data have {m}")
    mu_mean, mu_sd = _mu_prior_spec(mu_prior)

    ys = grouping.sort(ya)
    vs = grouping.sort(var_known) if known else np.empty(0)
    gs = grouping.group_start
    sizes = grouping.sizes
    sums = np.add.reduceat(ys, gs[:-1])
    group_mean = sums / sizes
    a0 = b0 = 0.0
    if not known:
        if sigma_prior is None:
            within = float(((ys - np.repeat(group_mean, sizes)) ** 2).sum())
            dof = n - m
            s2 = within / dof if dof > 0 and within > 0 else (sd_y**2 if sd_y > 0 else 1.0)
            sigma_prior = InverseGamma(0.5, 0.5 * s2)
        if not isinstance(sigma_prior, InverseGamma):
            raise TypeError("sigma_prior must be a bglmm.priors.InverseGamma on sigma^2")
        a0, b0 = sigma_prior.shape, sigma_prior.scale
    elif sigma_prior is not None:
        raise ValueError("sigma_prior applies only when sigma is unknown (no sigma=, no se=)")

    chains = check_count("chains", chains, 1)
    draws = check_count("draws", draws, 1)
    warmup = check_count("warmup", warmup, 0)
    thin = check_count("thin", thin, 1)
    grid_points = check_count("grid_points", grid_points, 100)
    if not isinstance(collapsed, (bool, np.bool_)):
        raise TypeError(f"collapsed must be True or False, got {collapsed!r}")
    seed_used = resolve_seed(seed)
    exact = sampler == "exact"
    if exact:
        warmup, thin = 0, 1

    ys, vs, gs = core_aligned(ys, vs, gs)

    def run_one(chain: int, inner_threads: int, callback: Any) -> dict:
        return _core.hier_normal_run(ys, vs, gs, mu_mean, mu_sd, tau_kind, tau_a, tau_b, a0, b0,
                                     draws, warmup, thin, exact, grid_points, seed_used, chain,
                                     callback, bool(collapsed))

    results = run_chains(run_one, chains, resolve_threads(threads), progress,
                         warmup + draws * thin)
    kept, interrupted = keep_drawn(results, _PER_DRAW, draws)

    posterior: dict[str, np.ndarray] = {
        "mu": stack_chains(kept, "mu"),
        "tau": stack_chains(kept, "tau"),
    }
    summary_vars = ["mu", "tau"]
    if not known:
        posterior["sigma"] = stack_chains(kept, "sigma")
        summary_vars.append("sigma")
    common_sigma = posterior.get("sigma", known_sigma)
    if common_sigma is not None:
        t2 = posterior["tau"] ** 2
        posterior["icc"] = t2 / (t2 + np.asarray(common_sigma) ** 2)
        summary_vars.append("icc")
    posterior["theta"] = stack_chains(kept, "theta")
    group_se = None
    if known:
        # known sampling SD of each group mean: 1/sqrt(sum 1/v_i)
        group_se = 1.0 / np.sqrt(np.add.reduceat(1.0 / vs, gs[:-1]))
    prior_text = type(tau_prior).__name__
    attrs = {"tau_prior": repr(tau_prior), "mu_prior": repr(mu_prior),
             "variance": "unknown" if not known else ("known sigma" if known_sigma else "known se")}
    gibbs_text = "blocked Gibbs"
    if not exact and collapsed:
        gibbs_text += " with a collapsed move of (tau, sigma)" if not known else \
            " with a collapsed move of tau"
        attrs["collapsed_acceptance"] = float(np.mean([r["collapsed_acceptance"] for r in kept]))
    fit = HierarchicalNormalFit(
        posterior,
        dims={"theta": ["group"]},
        coords={"group": grouping.levels},
        summary_vars=summary_vars,
        attrs=attrs,
        seed=seed_used,
        interrupted=interrupted,
        sampler=("exact (tau on a grid from its marginal)" if exact else gibbs_text)
        + f", tau prior {prior_text}",
        data={"group_mean": group_mean if not known else
              np.add.reduceat(ys / vs, gs[:-1]) / np.add.reduceat(1.0 / vs, gs[:-1]),
              "sigma": known_sigma, "group_se": group_se, "sizes": sizes, "y": ya,
              "codes": grouping.codes, "row_sd": np.sqrt(var_known) if se is not None else None},
    )
    if check:
        fit._run_checks()
    return fit
