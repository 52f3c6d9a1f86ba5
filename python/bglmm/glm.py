"""Bayesian generalized linear models (no random effects), array level.

    y_i ~ F(h(offset_i + x_i' beta)),   beta ~ N(m0, V0)

Samplers (``sampler=``):

* ``"random_walk"`` — Metropolis-Hastings with proposal N(beta, c V), V the inverse posterior
  curvature (X'WX + V0^-1)^-1 at a penalised-IWLS mode (``proposal="fisher"``) or the seeds'
  sigma_hat^2 (X'X)^-1 (``proposal="crossproduct"``); c is tuned during warm-up only, towards
  ``target_acceptance``, and frozen afterwards. Default for non-gaussian families.
* ``"independence"`` — Metropolis-Hastings with a multivariate-t(8) proposal centred at the mode
  with scale V; needs no tuning and mixes far better when the posterior is close to normal.
* ``"conjugate"`` — gaussian/identity only, exact independent draws: with known ``sigma``,
  beta ~ N(m0, V0) gives a normal posterior; with unknown sigma, the normal-inverse-gamma prior
  beta | sigma^2 ~ N(m0, sigma^2 V0), sigma^2 ~ Inverse-Gamma(a0, b0) gives a
  normal-inverse-gamma posterior (so there the prior on beta is in units of sigma). Default for
  the gaussian family.

Families with a dispersion — ``"negbinomial"`` (NB2, var = mu + mu^2/phi; phi is MASS's theta,
brms's shape), ``"gamma"`` (var = mu^2/shape), ``"beta_binomial"`` (p ~ Beta(phi mu,
phi (1 - mu))), ``"zero_inflated_poisson"`` (a structural zero with probability zi) and
``"zero_inflated_negbinomial"`` (both phi and zi) — alternate the Metropolis-Hastings step of beta given the dispersion with a
slice step on its logarithm (on logit zi); the proposal is built at the joint mode. The
dispersion's prior is ``dispersion_prior``: a :class:`bglmm.priors.Gamma` (default
:data:`bglmm.priors.DEFAULT_DISPERSION_PRIOR`, Gamma(0.01, 0.01) as brms) or a number that
fixes it; for zi a :class:`bglmm.priors.Beta` (default Beta(1, 1), as brms) or a number in
(0, 1). Its draws are the posterior variable ``phi`` (``shape`` for the gamma family, ``zi``
for the zero-inflated Poisson).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import _core
from . import ordinal as _ordinal
from . import zero_inflation as _zero_inflation
from ._chains import run_chains
from .data import (
    as_design,
    as_vector,
    check_count,
    check_full_rank,
    check_magnitude,
    check_weights,
    core_aligned,
    core_weights,
    moments,
    response_arrays,
    resolve_seed,
    resolve_threads,
)
from .families import Family, draw_response, inverse_link, resolve_family, response_mean
from .priors import InverseGamma, Normal, family_dispersion_specs, response_sd
from .results import (Fit, core_family_params, family_parameter_draws, keep_completed,
                      stack_chains, stuck_chains, weighted_log_lik)

_METHODS = {"random_walk": 0, "rw": 0, "mh": 0, "independence": 1, "conjugate": 2}
_PROPOSALS = {"fisher": 0, "crossproduct": 1}

DEFAULT_PRIOR = Normal(0.0, 10.0)


class GlmFit(Fit):
    """Posterior of a Bayesian GLM; ``fit.draws`` is the (chain, draw, coef) array of beta."""

    def __init__(self, *args: Any, data: dict[str, Any], family: Family, **kwargs: Any) -> None:
        self._data = data
        self.family = family
        super().__init__(*args, **kwargs)

    @property
    def draws(self) -> np.ndarray:
        return self.posterior["beta"]

    @property
    def coef_names(self) -> list[str]:
        return list(self.coords["coef"])

    @property
    def acceptance_rate(self) -> np.ndarray:
        """Acceptance rate per chain over the sampling phase."""
        return np.asarray(self.attrs["acceptance_rate"])

    def summary(self, var_names: list[str] | None = None, prob: float = 0.95) -> pd.DataFrame:
        table = super().summary(var_names, prob)
        table["acceptance"] = float(np.mean(self.acceptance_rate))
        if "zi_acceptance" in self.attrs:  # a zi formula's rows: its own step's rate
            zi_rows = [str(i).startswith("zi_beta[") for i in table.index]
            table.loc[zi_rows, "acceptance"] = float(np.mean(self.attrs["zi_acceptance"]))
        return table

    def _stuck_moves(self) -> list[str]:
        # (the exact conjugate sampler reports acceptance 1)
        return (stuck_chains("the Metropolis-Hastings step of beta", self.acceptance_rate)
                + stuck_chains("the zi formula's step", self.attrs.get("zi_acceptance", [])))

    def _sigma_draws(self) -> np.ndarray:
        if "sigma" in self.posterior:
            return self.posterior["sigma"]
        known = self.attrs.get("known_sigma", 1.0)
        return np.full(self.draws.shape[:2], float(known))

    def _phi_draws(self) -> tuple[np.ndarray, np.ndarray]:
        """The core's phi and phi2 per (chain, draw): sigma^2 (gaussian) or the family's
        parameters, else 1."""
        if self.family.dispersion is None:
            return self._sigma_draws() ** 2, np.ones(self.draws.shape[:2])
        return core_family_params(self.family, self.posterior, self.attrs, self.draws.shape[:2])

    def _row_params(self, zi_X: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """phi and phi2 per (chain, draw, row) (broadcasting): a zi formula's odds per row
        (its design ``zi_X``, default the data's)."""
        phi, phi2 = (v[..., None] for v in self._phi_draws())
        return _zero_inflation.row_params(self.family, phi, phi2, self.posterior.get("zi_beta"),
                                          self._data["zi_X"] if zi_X is None else zi_X)

    def _log_likelihood(self) -> dict[str, np.ndarray]:
        d = self._data
        c, s, p = self.draws.shape
        if self.family.is_ordinal:
            eta = self.linear_predictor().reshape(c * s, -1)
            cut = self.posterior["cutpoint"].reshape(c * s, -1)
            ll = _ordinal.log_density(d["y"], eta, cut, self.family.link)
            return {"y": weighted_log_lik(ll.reshape(c, s, -1), d.get("weights"))}
        if "zi_beta" in self.posterior:  # odds per row: the densities of bglmm.api
            from .api import _log_density

            phi, phi2 = self._row_params()
            ll = _log_density(self.family, d["y"], self.linear_predictor(), phi=phi, phi2=phi2)
            return {"y": weighted_log_lik(ll, d.get("weights"))}
        beta = np.ascontiguousarray(self.draws.reshape(c * s, p))
        phi, phi2 = (np.ascontiguousarray(v.reshape(c * s)) for v in self._phi_draws())
        ll = _core.glm_pointwise_log_lik(d["X"], d["y"], d["trials"], d["offset"],
                                          self.family.code, beta, phi,
                                          phi2=phi2 if self.family.dispersion2 else np.empty(0))
        return {"y": weighted_log_lik(ll.reshape(c, s, -1), d.get("weights"))}

    def _observed(self) -> dict[str, np.ndarray]:
        return {"y": self._data["y"]}

    def linear_predictor(self, X: Any = None, offset: Any = None) -> np.ndarray:
        """Draws of eta = offset + X beta, shaped (chain, draw, rows)."""
        if X is None:
            Xn, off = self._data["X"], self._data["offset"]
        else:
            Xn, _ = as_design(X)
            if Xn.shape[1] != self.draws.shape[2]:
                raise ValueError(f"X has {Xn.shape[1]} columns, the model has {self.draws.shape[2]}")
            off = np.zeros(len(Xn)) if offset is None else as_vector(offset, len(Xn), "offset")
        return np.einsum("cdp,np->cdn", self.draws, Xn) + off

    def predict(self, X: Any = None, *, kind: str = "mean", offset: Any = None,
                trials: Any = None, seed: int | None = None, zi_X: Any = None) -> np.ndarray:
        """Posterior (predictive) draws for the rows of X (default: the data), (chain, draw, rows).

        ``kind="mean"``: the mean mu = h(eta) (for binomial, a probability; for the
        zero-inflated families the expected response (1 - zi) mu, as brms's posterior_epred);
        ``kind="response"``: a draw of y from the family (binomial: counts out of ``trials``;
        with a zi formula, new rows need their ``zi_X``).
        Cumulative family: ``"mean"`` gives the category probabilities (chain, draw, rows, K),
        ``"response"`` draws of the categories' numbers 1 .. K.
        """
        if self.family.is_ordinal:
            if kind not in ("mean", "response"):
                raise ValueError(f"kind must be 'mean' or 'response', got {kind!r}")
            return _ordinal.predict_from_eta(kind, self.linear_predictor(X, offset),
                                             self.posterior["cutpoint"], self.family.link,
                                             np.random.default_rng(seed))
        mu = inverse_link(self.family.link, self.linear_predictor(X, offset))
        if kind not in ("mean", "response"):
            raise ValueError(f"kind must be 'mean' or 'response', got {kind!r}")
        if "zi_beta" in self.posterior and X is not None and zi_X is None:
            raise ValueError("the model has a zi formula: new rows need their zi_X")
        if kind == "mean":
            if not self.family.is_zero_inflated:
                return mu
            return response_mean(self.family.name, mu, *self._row_params(zi_X))
        rng = np.random.default_rng(seed)
        n = None
        if not self.family.has_trials:
            pass
        elif X is None:
            n = self._data["trials"]
        elif self.family.name == "bernoulli":
            n = np.ones(mu.shape[-1])
        else:
            if trials is None:
                raise ValueError(f"trials is required to predict {self.family.name} responses "
                                 "for new rows")
            n = as_vector(trials, mu.shape[-1], "trials")
        phi, phi2 = self._row_params(zi_X)
        return draw_response(rng, self.family.name, mu, trials=n,
                             sigma=self._sigma_draws()[..., None], phi=phi, phi2=phi2)


def glm(
    X: Any,
    y: Any,
    family: str | Family = "gaussian",
    link: str | None = None,
    *,
    trials: Any = None,
    offset: Any = None,
    weights: Any = None,
    prior: Normal | None = None,
    sigma: float | None = None,
    sigma_prior: InverseGamma | None = None,
    dispersion_prior: Any = None,
    cutpoint_prior: Normal | None = None,
    zi_X: Any = None,
    zi_prior: Normal | None = None,
    sampler: str = "auto",
    proposal: str = "fisher",
    target_acceptance: float | None = None,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    thin: int = 1,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    check: bool = True,
) -> GlmFit:
    """Fit a Bayesian GLM by MCMC.

    Parameters
    ----------
    X : array (n, p) or DataFrame (column names become coefficient names). Include a column of
        ones for an intercept (not for the cumulative family: its cutpoints take its place).
    y : response of length n (counts for the count families; 0/1 for
        bernoulli; positive for gamma; for cumulative an ordered pandas Categorical or integers
        without gaps, modelled as the categories' numbers 1 .. K).
    family, link : "gaussian" (identity), "poisson" (log), "binomial" or "bernoulli" (logit,
        probit, cloglog), "negbinomial" (log; aliases "negative_binomial", "nb"), "gamma" (log),
        "beta_binomial" (logit, probit, cloglog), "zero_inflated_poisson" (log; "zip"),
        "zero_inflated_negbinomial" (log; "zinb"), "student" (identity), "cumulative" (logit,
        probit; bglmm.ordinal).
    trials : numbers of trials (required for binomial and beta_binomial).
    offset : known part of the linear predictor (e.g. log exposure).
    weights : case weights (lme4's prior weights, brms's ``weights``), one value >= 0 per row:
        each row's log-likelihood is multiplied by its weight, so a row of integer weight w
        counts as w copies of it (gaussian: beta is fitted as with residual variances
        sigma^2 / w_i, and sigma^2 counts sum(w) observations).
    prior : :class:`bglmm.priors.Normal` on beta; default Normal(0, 10) on every coefficient.
    sigma : gaussian only — a known residual standard deviation; None means unknown, with
        ``sigma_prior`` (default Inverse-Gamma(1/2, var(y)/2) on sigma^2, i.e. one prior
        observation at the sample variance).
    dispersion_prior : negbinomial, gamma, beta_binomial only — a :class:`bglmm.priors.Gamma`
        on phi (the gamma family's shape), default Gamma(0.01, 0.01) (brms's default); or a
        positive number, which fixes it. zero_inflated_poisson: a :class:`bglmm.priors.Beta` on
        zi (default Beta(1, 1)) or a number in (0, 1). A dict {name: prior} gives the priors of
        a family with two (zero_inflated_negbinomial: ``{"phi": ..., "zi": ...}``).
    cutpoint_prior : cumulative only — Normal(0, s) on each cutpoint, jointly ordered (default
        s = 5); the draws are the posterior variable ``cutpoint`` (chain, draw, K - 1).
    zi_X : the zero-inflated families only — the design (n, p_zi; with a column of ones) of the
        zero-inflation's own linear predictor, logit zi_i = zi_X_i' zi_beta (brms's
        ``zi ~ x``; :mod:`bglmm.zero_inflation`). The ``zi`` prior of ``dispersion_prior``
        then applies to zi at the columns' means; ``zi_prior`` (a :class:`Normal` with mean 0)
        to the slopes, default Normal(0, 2.5 / sd(column)). The draws are the posterior
        variable ``zi_beta`` (dim ``zi_coef``) instead of ``zi``.
    sampler : "auto", "random_walk", "independence" or "conjugate" (see the module docs).
    chains, draws, warmup, thin : MCMC sizes (draws kept per chain, after thinning).
    seed : integer for reproducible draws (None: fresh entropy, stored in ``fit.seed``).
    threads : threads for the likelihood over observations (None: all cores). Draws do not
        depend on it.
    check : warn (:class:`~bglmm.ConvergenceWarning`, once) when R-hat > 1.01 or bulk ESS < 100
        per chain for a coefficient (or sigma), or when the Metropolis-Hastings step accepted
        nothing in a chain. Not for an interrupted fit.
    """
    fam = resolve_family(family, link)
    Xa, names = as_design(X, allow_empty=fam.is_ordinal)
    n, p = Xa.shape
    y_given = y
    if fam.is_ordinal:
        y = _ordinal.ordinal_response(y, "y")[0]
    elif cutpoint_prior is not None:
        raise ValueError(f"cutpoint_prior applies to the cumulative family only, not {fam.name!r}")
    ya, ta, off = response_arrays(y, trials, offset, n, fam)
    wa = check_weights(weights, n)
    check_magnitude(Xa, "X")
    check_full_rank(Xa, names)

    prior = DEFAULT_PRIOR if prior is None else prior
    if not isinstance(prior, Normal):
        raise TypeError(f"prior must be a bglmm.priors.Normal, got {type(prior).__name__}")
    m0, V0 = prior.to_arrays(p, "prior")

    if not isinstance(sampler, str):
        raise TypeError("sampler must be a string")
    method_name = sampler.lower()
    if method_name == "auto":
        method_name = "conjugate" if fam.name == "gaussian" else "random_walk"
    if method_name not in _METHODS:
        raise ValueError(f"unknown sampler {sampler!r}; use one of auto, random_walk, independence, conjugate")
    if method_name == "conjugate" and fam.name != "gaussian":
        raise ValueError("sampler='conjugate' needs family='gaussian'")
    if proposal not in _PROPOSALS:
        raise ValueError(f"unknown proposal {proposal!r}; use 'fisher' or 'crossproduct'")

    known_sigma = 0.0
    a0 = b0 = 0.0
    if fam.name == "gaussian":
        if sigma is not None:
            known_sigma = float(sigma)
            if not np.isfinite(known_sigma) or known_sigma <= 0:
                raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
        elif method_name != "conjugate":
            raise ValueError("Metropolis sampling of a gaussian model needs a known sigma=; "
                             "leave sampler='auto' for the exact conjugate sampler")
        if sigma is None:
            if sigma_prior is None:
                var = float(moments(ya - off, wa)[1]) ** 2 if n > 1 else 1.0
                sigma_prior = InverseGamma(0.5, 0.5 * max(var, 1e-12))
            if not isinstance(sigma_prior, InverseGamma):
                raise TypeError("sigma_prior must be a bglmm.priors.InverseGamma on sigma^2")
            a0, b0 = sigma_prior.shape, sigma_prior.scale
    elif sigma is not None or sigma_prior is not None:
        raise ValueError(f"sigma/sigma_prior apply to the gaussian family only, not {fam.name!r}")
    specs = family_dispersion_specs(fam, dispersion_prior, response_sd(ya, off, wa))
    zi_design = _zero_inflation.prepare(zi_X, n, fam, zi_prior)
    zi_kwargs = {} if zi_design is None else zi_design.core_kwargs()

    chains = check_count("chains", chains, 1)
    draws = check_count("draws", draws, 1)
    warmup = check_count("warmup", warmup, 0)
    thin = check_count("thin", thin, 1)
    if target_acceptance is None:
        target_acceptance = 0.44 if p == 1 else (0.35 if p == 2 else 0.3)
    if not 0.05 <= float(target_acceptance) <= 0.95:
        raise ValueError(f"target_acceptance must be in [0.05, 0.95], got {target_acceptance}")
    seed_used = resolve_seed(seed)
    n_threads = resolve_threads(threads)
    if method_name == "conjugate":
        warmup = 0

    X_core, y_core, m0_core, V0_core, core_kw = Xa, ya, m0, V0, {}
    if fam.is_ordinal:  # the core's intercept and prior (bglmm.ordinal)
        core = _ordinal.core_arrays(Xa, names, y_given, m0, V0, cutpoint_prior)
        X_core, y_core, core_kw = core["X"], core["y_core"], core["kwargs"]
        m0_core, V0_core = core["prior_mean"], core["prior_cov"]

    X_core, y_core, ta, off, w_core = core_aligned(X_core, y_core, ta, off, core_weights(wa))

    def run_one(chain: int, inner_threads: int, callback: Any) -> dict:
        return _core.run_glm_chain(
            X_core, y_core, ta, off, fam.code, m0_core, V0_core, a0, b0, draws, warmup, thin,
            _METHODS[method_name], _PROPOSALS[proposal], float(target_acceptance), 0.0,
            known_sigma, inner_threads, seed_used, chain, callback, *specs[0], *specs[1],
            weights=w_core, **core_kw, **zi_kwargs,
        )

    results = run_chains(run_one, chains, n_threads, progress, warmup + draws * thin)
    kept, interrupted = keep_completed(results, draws)

    posterior = {"beta": stack_chains(kept, "beta")}
    dims = {"beta": ["coef"]}
    coords: dict[str, list[Any]] = {"coef": names}
    if fam.is_ordinal:  # without the core's intercept; the cutpoints c = theta - beta_0
        posterior["beta"] = posterior["beta"][..., 1:]
        parts = _ordinal.posterior_parts(stack_chains(kept, "cutpoints"), core["categories"])
        posterior.update(parts[0])
        dims.update(parts[1])
        coords.update(parts[2])
    if fam.name == "gaussian" and known_sigma == 0.0:
        posterior["sigma"] = stack_chains(kept, "sigma")
    drawn, fixed = family_parameter_draws(fam, specs, kept, ("dispersion", "dispersion2"))
    posterior.update(drawn)
    if zi_design is not None:
        zi_dims, zi_coords = _zero_inflation.posterior_draws(zi_design, posterior, kept)
        dims.update(zi_dims)
        coords.update(zi_coords)
    sample_stats = {"lp": stack_chains(kept, "log_posterior"),
                    "accepted": stack_chains(kept, "accepted").astype(bool)}
    attrs = {
        "family": fam.name,
        "link": fam.link,
        "acceptance_rate": [float(r["acceptance_rate"]) for r in kept],
        "warmup_acceptance_rate": [float(r["warmup_acceptance_rate"]) for r in kept],
        "proposal_scale": [float(r["proposal_scale"]) for r in kept],
        "known_sigma": known_sigma if known_sigma > 0 else 1.0,
    }
    if fam.is_ordinal:
        # the joint independence move of (beta, cutpoints) (NaN where it could not be set up)
        attrs["joint_acceptance"] = [float(r["joint_acceptance"]) for r in kept]
        attrs["categories"] = [str(c) for c in core["categories"]]
        attrs["cutpoint_sd"] = core["kwargs"]["cutpoint_sd"]
    attrs.update(fixed)
    if zi_design is not None:
        attrs["zi_acceptance"] = [float(r["zi_acceptance"]) for r in kept]
    fit = GlmFit(
        posterior,
        dims=dims,
        coords=coords,
        sample_stats=sample_stats,
        attrs=attrs,
        seed=seed_used,
        interrupted=interrupted,
        sampler={"random_walk": "random-walk Metropolis-Hastings", "rw": "random-walk Metropolis-Hastings",
                 "mh": "random-walk Metropolis-Hastings",
                 "independence": "independence Metropolis-Hastings (t proposal)",
                 "conjugate": "exact conjugate (normal" + ("" if known_sigma else "-inverse-gamma") + ")"}[method_name],
        data={"X": Xa, "y": ya, "trials": ta, "offset": off, "weights": wa,
              "zi_X": None if zi_design is None else zi_design.X},
        family=fam,
    )
    fit.mode = kept[0]["mode"]
    fit.proposal_covariance = kept[0]["proposal_covariance"]
    if check:
        fit._run_checks()
    return fit
