"""Generalized linear mixed models with one grouping factor, array level.

    eta_i = offset_i + x_i' beta + z_i' b_{g(i)},   y_i ~ F(h(eta_i))
    b_j ~ N_q(0, Sigma) iid over the levels j of the grouping factor
    beta ~ N_p(m0, V0),   Sigma ~ LKJ + SD priors, Inverse-Wishart(nu0, S0), or a prior on its SDs

Families: poisson (log), binomial with trials and bernoulli (logit, probit, cloglog), gaussian
(identity; mainly for cross-checks against the conjugate Gibbs sampler of :func:`bglmm.lmm`),
and with a dispersion phi: negbinomial (log; var = mu + mu^2/phi), gamma (log; shape phi),
beta_binomial (logit, probit, cloglog; with trials), zero_inflated_poisson (log; a structural
zero with probability zi, sampled as its odds phi = zi / (1 - zi)) and zero_inflated_negbinomial
(log; the negative binomial's phi and zi).
Both forms of the course notes are this model: "all coefficients vary by group",
beta_j ~ N_p(theta, Sigma), is X = Z (theta = beta, beta_j = beta + b_j); "mixed" has some
columns of X without a random term.

Metropolis-within-Gibbs (one sweep, in this order):

1. each group's coefficients by Metropolis-Hastings, in parallel over groups (OpenMP, dynamic
   schedule): ``sampler="laplace"`` (default) proposes from N(m, H^-1), one Newton/IWLS step
   from the current value (H = Z_j'WZ_j + Sigma^-1), MH-corrected with the reverse proposal;
   ``sampler="random_walk"`` is the course notes' N(b_j, c_j Sigma), c_j starting at
   ``rw_scale`` (1/2) and adapted per group during warm-up, frozen afterwards;
2. fixed effects that carry a random term (the same column in X and Z), and group-level
   covariates (columns constant within every group, attached to the random intercept's mean),
   by exact Gibbs in the centred parameterisation (``parameterization="centered"``, default);
3. the other fixed effects by a block Metropolis-Hastings step whose log-likelihood is a
   parallel per-group sum added in a fixed order: with ``sampler="laplace"`` a Newton (IWLS)
   proposal N(beta_F + H^-1 g, H^-1) with the reverse density in the ratio, which also shifts
   each group's random intercept by -xbar_j' (beta_F' - beta_F) (xbar_j: the group means of
   those columns), so only their within-group part has to fight the random effects; with
   ``sampler="random_walk"`` a random walk N(beta_F, c V_F), V_F the inverse curvature, c tuned
   in warm-up;
4. Sigma by inverse-Wishart Gibbs (the SD-prior step for q = 1; slice sampling under LKJ), then, with the Laplace
   kernel, an interweaving step (ASIS, Yu & Meng 2011): with eta_j = L^-1 (b_j - mean) held
   fixed (Sigma = LL'), the centred means and L are redrawn jointly by a Newton-proposal
   Metropolis step in the non-centred parameterisation gamma_j = mean_j + L eta_j. The Gibbs
   steps alone explore Sigma slowly when groups carry little information about their
   effects; the non-centred step is fast exactly then, and interweaving the two is fast in
   both regimes;
   after warm-up also an independence Metropolis move of the centred means and Sigma that
   keeps each group's effects at the same standardised position within a Gaussian
   approximation of its conditional posterior (frozen at the end of warm-up) and proposes
   from a multivariate t fitted to the warm-up draws: in the intermediate regime, where both
   parameterisations are slow, it comes close to drawing Sigma from its marginal posterior;
5. gaussian: sigma^2 by inverse-gamma Gibbs; negbinomial, gamma, beta_binomial and the
   zero-inflated families: each family parameter by a slice step on its logarithm (logit zi)
   given the linear predictor (the full log-likelihood over all rows, summed in fixed chunks).

Draws do not depend on the number of threads (counter-based random numbers per group).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from . import _core
from . import ordinal as _ordinal
from . import zero_inflation as _zero_inflation
from ._chains import run_chains
from .data import (as_design, as_vector, check_count, check_full_rank, check_weights,
                   core_aligned, core_weights, moments, resolve_seed, resolve_threads,
                   response_arrays)
from .families import Family, draw_response, inverse_link, resolve_family, response_mean
from .grouping import encode_groups
from .priors import (
    LKJ,
    HalfStudentT,
    InverseGamma,
    InverseWishart,
    Normal,
    covariance_prior_spec,
    family_dispersion_specs,
    response_sd,
    has_flat_sd,
)
from .results import (Fit, core_family_params, family_parameter_draws, keep_drawn, sd_cor_draws,
                      stack_chains, stuck_chains, user_stacklevel, weighted_log_lik)
from .warnings import AcceptanceWarning, BglmmWarning

#: the entries of a chain's result with one row per draw
_PER_DRAW = ("beta", "sigma", "b", "phi", "phi2", "cutpoints", "zi_coef", "log_lik", "group_accept_mean", "fixed_accepted",
             "extra_sigma", "extra_b")

_KERNELS = {"laplace": 0, "random_walk": 1, "rw": 1}

# the C++ driver's marginal_status codes: whether the marginal move ran after warm-up, and if
# not, why
_MARGINAL_STATUS = {0: "on", 1: "not requested", 2: "no warm-up", 3: "not fitted",
                    4: "not reached"}

DEFAULT_PRIOR = Normal(0.0, 10.0)

__all__ = ["glmm", "GlmmFit"]


class GlmmFit(Fit):
    """Posterior of a GLMM fitted by :func:`glmm`.

    Variables: ``beta`` (chain, draw, coef), ``Sigma`` (chain, draw, term, term_),
    ``sd_<term>``, ``corr_<a>__<b>`` (double underscore, as :func:`bglmm.lmm`), ``b`` (chain, draw, group, term; if kept) and, for the
    gaussian family, ``sigma``. ``group_acceptance`` holds each group's acceptance rate per
    chain; ``acceptance_summary()`` its min / median / max.
    """

    def __init__(self, *args: Any, data: dict[str, Any], family: Family, **kwargs: Any) -> None:
        self._data = data
        self.family = family
        super().__init__(*args, **kwargs)

    # ---- accessors ------------------------------------------------------------------------
    @property
    def term_names(self) -> list[str]:
        return list(self.coords["term"])

    @property
    def coef_names(self) -> list[str]:
        return list(self.coords["coef"])

    @property
    def levels(self) -> list[Any]:
        return list(self.coords["group"])

    @property
    def group_acceptance(self) -> np.ndarray:
        """(chain, group): acceptance rate of each group's MH update over the sampling phase."""
        return np.asarray(self.attrs["group_acceptance"])

    def acceptance_summary(self) -> pd.DataFrame:
        """min / median / max over groups of the per-group acceptance rates, one row per chain,
        and the block step's acceptance rate (NaN when every fixed effect is centred)."""
        acc = self.group_acceptance
        fixed = np.asarray(self.attrs["fixed_acceptance"], dtype=float)
        return pd.DataFrame({"group_min": acc.min(axis=1), "group_median": np.median(acc, axis=1),
                             "group_max": acc.max(axis=1), "fixed": fixed},
                            index=pd.Index(range(acc.shape[0]), name="chain"))

    def summary(self, var_names: list[str] | None = None, prob: float = 0.95) -> pd.DataFrame:
        table = super().summary(var_names, prob)
        s = self.acceptance_summary()
        table.attrs["group_acceptance"] = {"min": float(s.group_min.min()),
                                           "median": float(s.group_median.median()),
                                           "max": float(s.group_max.max())}
        return table

    # ---- diagnostics ------------------------------------------------------------------------
    def _stuck_moves(self) -> list[str]:
        a = self.attrs
        out = []
        acc = self.group_acceptance
        for c in range(acc.shape[0]):
            zero = np.flatnonzero(acc[c] == 0.0)
            if zero.size:
                names = [str(self.levels[j]) for j in zero[:10]]
                more = f" and {zero.size - 10} more" if zero.size > 10 else ""
                out.append(f"the Metropolis-Hastings step of group(s) {', '.join(names)}{more} "
                           f"in chain {c}")
        moves = [("fixed_acceptance", "the block step of the fixed effects "
                  + ", ".join(n for n in self.coef_names if n not in a.get("centred", []))),
                 ("interweave_acceptance", "the interweaving step of the means and Sigma"),
                 ("marginal_acceptance", "the marginal move of the means and Sigma"),
                 ("zi_acceptance", "the zi formula's step")]
        for key, what in moves:
            # NaN: the move did not run (no free fixed effect, switched off, random walk)
            out += stuck_chains(what, a.get(key, []))
        return out

    def _sampler_warnings(self) -> None:
        a = self.attrs
        kernel = 0 if a["sampler_kernel"] == "laplace" else 1
        pf = int(np.sum(np.isfinite(np.asarray(a["fixed_acceptance"], dtype=float))) > 0)
        _check_acceptance(self, kernel, float(a["target_acceptance"]), pf)
        _check_marginal_move(self)

    def _need_b(self, name: str = "b") -> np.ndarray:
        if name not in self.posterior:
            raise ValueError("the group effects were not kept (keep_group_effects=False)")
        return self.posterior[name]

    def group_coefficients(self) -> np.ndarray:
        """Draws (chain, draw, group, term) of each group's coefficients on the Z columns:
        beta_c + b_j for a term whose column is also in X (the course notes' beta_j), b_j else."""
        b = self._need_b()
        out = b.copy()
        for k, c in enumerate(self.attrs["term_in_X"]):
            if c >= 0:
                out[..., k] += self.posterior["beta"][..., c][..., None]
        return out

    def ranef(self) -> pd.DataFrame:
        """Posterior means of b_j, one row per group, one column per term."""
        b = self._need_b()
        return pd.DataFrame(b.mean(axis=(0, 1)), index=pd.Index(self.levels, name="group"),
                            columns=self.term_names)

    def coef(self) -> pd.DataFrame:
        """Posterior means of the group coefficients (see :meth:`group_coefficients`)."""
        return pd.DataFrame(self.group_coefficients().mean(axis=(0, 1)),
                            index=pd.Index(self.levels, name="group"), columns=self.term_names)

    # ---- log-likelihood ---------------------------------------------------------------------
    def _flat_b(self) -> np.ndarray:
        b = self._need_b()
        c, s = b.shape[:2]
        return np.ascontiguousarray(b.reshape(c * s, -1))

    def _phi_draws(self) -> tuple[np.ndarray, np.ndarray]:
        """The core's phi and phi2 per (chain, draw): sigma^2 (gaussian) or the family's
        parameters, else 1."""
        shape = self.posterior["beta"].shape[:2]
        if self.family.dispersion is None:
            sigma2 = self.posterior["sigma"] ** 2 if "sigma" in self.posterior else np.ones(shape)
            return sigma2, np.ones(shape)
        return core_family_params(self.family, self.posterior, self.attrs, shape)

    def _row_params(self, zi_X: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """phi and phi2 per (chain, draw, row) (broadcasting): a zi formula's odds per row
        (its design ``zi_X``, default the data's, in the caller's row order)."""
        phi, phi2 = (v[..., None] for v in self._phi_draws())
        return _zero_inflation.row_params(self.family, phi, phi2, self.posterior.get("zi_beta"),
                                          self._data["zi_X_original"] if zi_X is None else zi_X)

    def pointwise_log_lik(self) -> np.ndarray:
        """log p(y_i | draw), shaped (chain, draw, obs) in the caller's row order (without the
        case weights, which the ArviZ log-likelihood group multiplies in)."""
        d = self._data
        beta = self.posterior["beta"]
        c, s, p = beta.shape
        if self.family.is_ordinal:
            eta = self.predict(kind="link").reshape(c * s, -1)
            cut = self.posterior["cutpoint"].reshape(c * s, -1)
            return _ordinal.log_density(d["y_original"], eta, cut, self.family.link).reshape(c, s, -1)
        if "zi_beta" in self.posterior:  # odds per row: the densities of bglmm.api
            from .api import _log_density

            phi, phi2 = self._row_params()
            return _log_density(self.family, d["y_original"], self.predict(kind="link"),
                                phi=phi, phi2=phi2)
        phi, phi2 = (np.ascontiguousarray(v.reshape(c * s)) for v in self._phi_draws())
        extra = d.get("extra", [])
        extra_core = [{k: e[k] for k in ("codes", "z", "level_start", "level_rows")}
                      for e in extra]
        extra_b = [np.ascontiguousarray(self._need_b(f"b_{e['name']}").reshape(c * s, -1))
                   for e in extra]
        ll = _core.glmm_pointwise_log_lik(
            d["X"], d["Z"], d["y"], d["trials"], d["offset"], d["group_start"],
            self.family.code, np.ascontiguousarray(beta.reshape(c * s, p)), self._flat_b(),
            phi, d["threads"], extra_core, extra_b,
            phi2=phi2 if self.family.dispersion2 else np.empty(0))
        ll = d["grouping"].unsort(ll, axis=1)
        return ll.reshape(c, s, -1)

    def _log_likelihood(self) -> dict[str, np.ndarray] | None:
        if "b" not in self.posterior:
            return None
        return {"y": weighted_log_lik(self.pointwise_log_lik(),
                                      self._data.get("weights_original"))}

    def _observed(self) -> dict[str, np.ndarray]:
        return {"y": self._data["y_original"]}

    # ---- prediction --------------------------------------------------------------------------
    def predict(self, X: Any = None, Z: Any = None, group: Any = None, *,
                groups: str = "existing", kind: str = "mean", offset: Any = None,
                trials: Any = None, seed: int | None = None, zi_X: Any = None) -> np.ndarray:
        """Posterior (predictive) draws (chain, draw, rows) for the rows of (X, Z, group);
        default: the fitted data.

        groups : ``"existing"`` uses each row's fitted b_j (levels must be in the fit);
            ``"new"`` draws b ~ N(0, Sigma) per draw for each distinct level of ``group`` (each
            row is its own new group when ``group`` is None).
        kind : ``"link"`` (eta), ``"mean"`` (h(eta): rate or probability) or ``"response"``
            (a draw of y; binomial needs ``trials`` for new rows, a zi formula their ``zi_X``).
        """
        if groups not in ("existing", "new"):
            raise ValueError(f"groups must be 'existing' or 'new', got {groups!r}")
        if kind not in ("link", "mean", "response"):
            raise ValueError(f"kind must be 'link', 'mean' or 'response', got {kind!r}")
        d = self._data
        rng = np.random.default_rng(seed)
        beta = self.posterior["beta"]
        if X is None:
            if Z is not None or group is not None or offset is not None:
                raise ValueError("give X (and Z, group, offset) together for new rows")
            Xn, Zn, off = d["X_original"], d["Z_original"], d["offset_original"]
            labels = np.asarray(d["codes"])
            codes = labels
        else:
            Xn, _ = as_design(X)
            if Xn.shape[1] != beta.shape[2]:
                raise ValueError(f"X has {Xn.shape[1]} columns, the model has {beta.shape[2]}")
            n = Xn.shape[0]
            q = len(self.term_names)
            if Z is None:
                if self.attrs["z_is_intercept"]:
                    Zn = np.ones((n, 1))
                else:
                    raise ValueError("Z is required for new rows (the random-effect design)")
            else:
                Zn = _random_design(Z, Xn, None, n)[0]
            if Zn.shape[1] != q:
                raise ValueError(f"Z has {Zn.shape[1]} columns, the model has {q}")
            off = np.zeros(n) if offset is None else as_vector(offset, n, "offset")
            codes = None
            if group is not None:
                labels = pd.Series(np.asarray(group, dtype=object) if np.ndim(group) else group)
                if len(labels) != n:
                    raise ValueError(f"group has {len(labels)} values but X has {n} rows")
                if labels.isna().any():
                    raise ValueError("group has missing values")
                if groups == "existing":
                    index = pd.Index(self.levels)
                    codes = index.get_indexer(labels)
                    if (codes < 0).any():
                        bad = list(pd.unique(labels[codes < 0])[:5])
                        raise ValueError(f"group level(s) {bad} are not in the fitted data; use "
                                         "groups='new' to draw effects for new groups")
                else:
                    codes = pd.factorize(labels)[0]
            elif groups == "existing":
                raise ValueError("group is required to predict for existing groups")
        eta = np.einsum("cdp,np->cdn", beta, Xn) + off
        extra = d.get("extra", [])
        if extra:
            if X is not None:
                raise ValueError("predicting new rows of a model with several random-effect "
                                 "blocks needs each block's levels: use bglmm.fit's predict")
            for e in extra:
                bk = self._need_b(f"b_{e['name']}")
                if groups == "existing":
                    eta = eta + np.einsum("cdnq,nq->cdn", bk[:, :, e["codes_original"], :],
                                          e["Z_original"])
                else:
                    L = np.linalg.cholesky(self.posterior[f"Sigma_{e['name']}"])
                    u = rng.standard_normal(beta.shape[:2] + (len(e["levels"]), L.shape[-1]))
                    b_new = np.einsum("cdqr,cdlr->cdlq", L, u)
                    eta = eta + np.einsum("cdnq,nq->cdn", b_new[:, :, e["codes_original"], :],
                                          e["Z_original"])
        if groups == "existing":
            b = self._need_b()
            eta = eta + np.einsum("cdnq,nq->cdn", b[:, :, codes, :], Zn)
        else:
            n_new = int(codes.max()) + 1 if codes is not None else Xn.shape[0]
            codes = np.arange(Xn.shape[0]) if codes is None else codes
            L = np.linalg.cholesky(self.posterior["Sigma"])
            u = rng.standard_normal(beta.shape[:2] + (n_new, L.shape[-1]))
            b_new = np.einsum("cdqr,cdlr->cdlq", L, u)
            eta = eta + np.einsum("cdnq,nq->cdn", b_new[:, :, codes, :], Zn)
        if kind == "link":
            return eta
        if self.family.is_ordinal:  # category probabilities (..., K) or categories 1 .. K
            return _ordinal.predict_from_eta(kind, eta, self.posterior["cutpoint"],
                                             self.family.link, rng)
        mu = inverse_link(self.family.link, eta)
        if "zi_beta" in self.posterior and X is not None and zi_X is None:
            raise ValueError("the model has a zi formula: new rows need their zi_X")
        if kind == "mean":  # the zero-inflated families: (1 - zi) mu, brms's posterior_epred
            if not self.family.is_zero_inflated:
                return mu
            return response_mean(self.family.name, mu, *self._row_params(zi_X))
        fam = self.family
        n_tr = None
        if fam.has_trials:
            if X is None:
                n_tr = d["trials_original"]
            elif fam.needs_trials:
                if trials is None:
                    raise ValueError(f"trials is required to predict {fam.name} responses for "
                                     "new rows")
                n_tr = as_vector(trials, mu.shape[-1], "trials")
        sigma = self.posterior["sigma"][..., None] if "sigma" in self.posterior else 1.0
        phi, phi2 = self._row_params(zi_X)
        return draw_response(rng, fam.name, mu, trials=n_tr, sigma=sigma, phi=phi, phi2=phi2)


def _random_design(Z: Any, Xa: np.ndarray, x_names: list[str] | None, n: int,
                   X_frame: Any = None) -> tuple[np.ndarray, list[str]]:
    """The random-effects design: None (random intercept), a list of X column names, or an
    array / DataFrame."""
    if Z is None:
        return np.ones((n, 1)), ["Intercept"]
    if isinstance(Z, str):
        Z = [Z]
    if isinstance(Z, (list, tuple)) and all(isinstance(z, str) for z in Z):
        if x_names is None:
            raise TypeError("Z given as column names needs X as a DataFrame")
        cols = []
        for name in Z:
            if name in ("1", "Intercept", "(Intercept)") and name not in x_names:
                cols.append(np.ones(n))
                continue
            if name not in x_names:
                raise ValueError(f"random-effect term {name!r} is not a column of X "
                                 f"(columns: {', '.join(x_names)})")
            cols.append(Xa[:, x_names.index(name)])
        return np.column_stack(cols), ["Intercept" if z in ("1", "(Intercept)") else z for z in Z]
    Za, names = as_design(Z, "Z")
    if Za.shape[0] != n:
        raise ValueError(f"Z has {Za.shape[0]} rows but X has {n}")
    if not isinstance(Z, (pd.DataFrame, pd.Series)):
        names = [f"z{k}" for k in range(Za.shape[1])]
    return Za, names


def _covariance_prior(prior: Any, q: int, Z: np.ndarray, terms: list[str],
                      weights: np.ndarray | None = None) -> dict[str, Any]:
    """The core's covariance-prior dict. Default: q = 1, InverseWishart(2, 1) (IG(1, 1/2) on the
    variance); q > 1, LKJ with Half-Student-t(3, 2.5 / sd(z_k)) on each SD (2.5 for a constant
    column), the log/logit-scale version of bglmm.fit's defaults."""
    zsd = moments(Z, weights)[1]
    zsd = np.where(zsd > 1e-12 * (1.0 + np.abs(Z).max(axis=0)), zsd, 1.0)
    default_sd = [HalfStudentT(3.0, float(2.5 / v)) for v in zsd]
    if prior is None:
        prior = InverseWishart(2.0, np.eye(1)) if q == 1 else LKJ(sd=default_sd)
    return covariance_prior_spec(prior, q, "random_prior", terms=terms, default_sd=default_sd)


def glmm(
    y: Any,
    X: Any,
    Z: Any = None,
    group: Any = None,
    family: str | Family = "poisson",
    link: str | None = None,
    *,
    trials: Any = None,
    offset: Any = None,
    weights: Any = None,
    prior: Normal | None = None,
    random_prior: Any = None,
    cov_prior: Any = None,
    sigma_prior: InverseGamma | None = None,
    dispersion_prior: Any = None,
    cutpoint_prior: Normal | None = None,
    zi_X: Any = None,
    zi_prior: Normal | None = None,
    sampler: str = "laplace",
    parameterization: str = "centered",
    rw_scale: float = 0.5,
    target_acceptance: float | None = None,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    thin: int = 1,
    keep_group_effects: bool = True,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    check: bool = True,
    min_rows_per_thread: int = 2000,
    interweave: bool = True,
    marginal_move: bool = True,
    random_blocks: list[dict[str, Any]] | None = None,
    translation: bool = True,
) -> GlmmFit:
    """Fit a GLMM by Metropolis-within-Gibbs: one grouping factor (``Z``, ``group``), plus any
    number of further random-effect blocks (``random_blocks``: crossed or nested factors,
    uncorrelated terms, observation-level effects).

    Parameters
    ----------
    y : response (counts for poisson/binomial, 0/1 for bernoulli), length n.
    X : fixed-effects design (n, p), array or DataFrame (names become ``coef``); include a
        column of ones for an intercept.
    Z : random-effects design (n, q): an array / DataFrame, a list of column names of X (use
        "Intercept" or "1" for a column of ones not in X), or None for a random intercept. A Z
        column equal to an X column makes that coefficient vary by group around its fixed effect.
    group : grouping factor, length n (any labels; missing values are an error).
    family, link : poisson (log), binomial / bernoulli (logit, probit, cloglog), gaussian,
        negbinomial (log), gamma (log), beta_binomial (logit, probit, cloglog),
        zero_inflated_poisson (log), zero_inflated_negbinomial (log).
    trials : binomial numbers of trials; offset : known part of eta (e.g. log exposure).
    weights : case weights, one value >= 0 per row: each row's log-likelihood times its weight
        (a row of integer weight w counts as w copies of it).
    prior : :class:`~bglmm.priors.Normal` on beta (default N(0, 10^2) each).
    random_prior : :class:`~bglmm.priors.InverseWishart` on Sigma (default IW(q + 1, I):
        uniform marginal correlations); for q = 1 also InverseGamma on the variance or
        HalfStudentT / HalfCauchy / HalfNormal / UniformSD on the SD. ``cov_prior`` is an
        alias (the name :func:`bglmm.lmm` uses).
    sigma_prior : gaussian only: Inverse-Gamma on sigma^2 (default IG(1/2, var(y)/2)).
    dispersion_prior : negbinomial, gamma, beta_binomial only — a :class:`bglmm.priors.Gamma`
        on the dispersion (``phi``; the gamma family's ``shape``; default Gamma(0.01, 0.01),
        as brms), or a positive number to fix it; zero_inflated_poisson: a
        :class:`bglmm.priors.Beta` on ``zi`` (default Beta(1, 1)) or a number in (0, 1); a dict
        {name: prior} for a family with two (zero_inflated_negbinomial: phi and zi). A slice step on its logarithm updates it
        after every sweep.
    cutpoint_prior : cumulative only (y an ordered Categorical or integers; X without an
        intercept) — Normal(0, s) on each cutpoint, jointly ordered (default s = 5); their draws
        are the posterior variable ``cutpoint`` (bglmm.ordinal).
    zi_X, zi_prior : the zero-inflated families only — the design (n, p_zi; with a column of
        ones) of the zero-inflation's own linear predictor, logit zi_i = zi_X_i' zi_beta, and
        a :class:`Normal` (mean 0) on its slopes (default 2.5 / sd(column)); the ``zi`` prior
        then applies at the columns' means. Posterior variable ``zi_beta`` (dim ``zi_coef``)
        instead of ``zi`` (:mod:`bglmm.zero_inflation`).
    sampler : "laplace" (default) or "random_walk" (the course notes' kernel).
    parameterization : "centered" (Gibbs for the fixed effects with a random term; best when
        groups carry much data) or "noncentered" (all fixed effects in the block step).
    rw_scale : the random walk's starting c_j (proposal N(b_j, c_j Sigma)).
    target_acceptance : the random walk's target for the c_j adaptation (default 0.44 for
        q = 1, 0.35 else); the warning thresholds are set around it.
    chains, draws, warmup, thin : MCMC sizes (draws kept per chain, after thinning).
    keep_group_effects : store every b_j draw (needed for ranef, predict for existing groups,
        and the pointwise log-likelihood); False keeps memory small for very many groups.
    seed : integer for reproducible draws (None: fresh entropy, recorded in ``fit.seed``).
    threads : threads for the per-group updates (None: all cores). Draws do not depend on it.
    interweave : with ``sampler="laplace"``, add the interweaving (non-centred) step for the
        centred means and Sigma to each sweep (one more pass over the data; far better mixing
        of the SDs and correlations).
    marginal_move : with ``sampler="laplace"`` and warm-up, add after warm-up an independence
        Metropolis move of the centred means and Sigma that carries every b_j along a Gaussian
        approximation of its conditional posterior, frozen at the end of warm-up (one more pass
        over the data; near-independent draws of Sigma when groups are moderately
        informative, the regime where both parameterisations mix slowly).
    min_rows_per_thread : use at most n / min_rows_per_thread threads (small data run faster
        serially; a parallel region costs microseconds, far more on a loaded machine).
    check : warn (:class:`~bglmm.ConvergenceWarning`, once) when R-hat > 1.01 or bulk ESS < 100
        per chain for a reported parameter (beta, SDs, correlations, sigma; not b) or when a
        Metropolis move accepted nothing in a chain, and (:class:`~bglmm.AcceptanceWarning`)
        when acceptance is far from its target or the marginal move switched itself off (too
        short a warm-up). Not for an interrupted fit; ``fit.attrs["marginal_status"]`` records,
        per chain, whether the marginal move ran ("on") and if not why.
    random_blocks : further blocks b_{k,j} ~ N(0, Sigma_k), each a dict with ``name`` (unique;
        it names the variables ``b_<name>``, ``Sigma_<name>``, ``sd_<name>__<term>``,
        ``cor_<name>__<a>__<b>``), ``Z`` (n, q_k; DataFrame columns or ``terms`` name the
        terms), ``group`` (labels, length n) or ``codes`` (int, length n) with ``levels``, and
        ``prior`` (as ``random_prior``; default as for ``Z``), and optionally ``parent``
        (``"primary"`` or another block's name) when the block's levels are nested in that
        block's (class within school): a nested translation move then shifts each parent
        level's effect against its children's. Each block's levels are updated
        in parallel by Laplace-proposal Metropolis-Hastings over a per-row linear predictor
        (never a dense rows x levels design), followed by Sigma_k | b_k, a translation move
        against each fixed effect whose column equals one of the block's (keeps crossed
        designs mixing as levels grow) and a non-centred scale move of the block's SDs.
    translation : run those translation moves (False only to measure what they bring).
    """
    fam = resolve_family(family, link)
    Xa, x_names = as_design(X, allow_empty=fam.is_ordinal)
    n, p = Xa.shape
    y_given = y
    if fam.is_ordinal:
        y = _ordinal.ordinal_response(y, "y")[0]
    elif cutpoint_prior is not None:
        raise ValueError(f"cutpoint_prior applies to the cumulative family only, not {fam.name!r}")
    ya, ta, off = response_arrays(y, trials, offset, n, fam)
    wa = check_weights(weights, n)
    check_full_rank(Xa, x_names)
    X_user, names_user = Xa, list(x_names)
    ordinal = None
    if fam.is_ordinal:  # the core samples with an intercept first (bglmm.ordinal)
        m_user, V_user = (DEFAULT_PRIOR if prior is None else prior).to_arrays(p, "prior")
        ordinal = _ordinal.core_arrays(Xa, x_names, y_given, m_user, V_user, cutpoint_prior)
        Xa, x_names, p = ordinal["X"], ["(cutpoints)"] + list(x_names), p + 1
    Za, z_names = _random_design(Z, Xa, x_names if isinstance(X, (pd.DataFrame, pd.Series))
                                 else None, n)
    q = Za.shape[1]
    if q > 12:
        raise ValueError(f"Z has {q} columns; at most 12 random-effect terms are supported")
    check_full_rank(Za, z_names, "Z")
    grouping = encode_groups(group, n, "group")
    m = grouping.n_groups
    if m == 1:
        warnings.warn("group has a single level: Sigma is informed by its prior alone",
                      BglmmWarning, stacklevel=user_stacklevel())

    if not isinstance(parameterization, str) or parameterization not in ("centered", "noncentered"):
        raise ValueError("parameterization must be 'centered' or 'noncentered'")
    term_in_X = []
    for k in range(q):
        match = -1
        for j in range(p):
            if j not in term_in_X and np.array_equal(Xa[:, j], Za[:, k]):
                match = j
                break
        term_in_X.append(match)
    Xs, Zs = grouping.sort(Xa), grouping.sort(Za)
    centred: list[tuple[int, int]] = []
    if parameterization == "centered":
        centred = [(j, k) for k, j in enumerate(term_in_X) if j >= 0]
        intercept = [k for k in range(q) if np.all(Za[:, k] == 1.0)]
        if intercept:
            # group-level covariates (constant within every group) join the random
            # intercept's mean: exact Gibbs instead of the block Metropolis step
            first = Xs[np.repeat(grouping.group_start[:-1], grouping.sizes)]
            constant = np.all(Xs == first, axis=0)
            taken = {j for j, _ in centred}
            centred += [(j, intercept[0]) for j in range(p) if constant[j] and j not in taken]

    prior = DEFAULT_PRIOR if prior is None else prior
    if not isinstance(prior, Normal):
        raise TypeError(f"prior must be a bglmm.priors.Normal, got {type(prior).__name__}")
    m0, V0 = (prior.to_arrays(p, "prior") if ordinal is None
              else (ordinal["prior_mean"], ordinal["prior_cov"]))
    if cov_prior is not None:
        if random_prior is not None:
            raise ValueError("give random_prior or cov_prior (an alias), not both")
        random_prior = cov_prior
    cov_spec = _covariance_prior(random_prior, q, Za, z_names, wa)
    if has_flat_sd(cov_spec) and m < 3:
        raise ValueError("a flat prior on the SD (UniformSD()) needs at least 3 groups")

    a0 = b0 = 0.0
    if fam.name == "gaussian":
        if sigma_prior is None:
            var = float(moments(ya - off, wa)[1]) ** 2 if n > 1 else 1.0
            sigma_prior = InverseGamma(0.5, 0.5 * max(var, 1e-12))
        if not isinstance(sigma_prior, InverseGamma):
            raise TypeError("sigma_prior must be a bglmm.priors.InverseGamma on sigma^2")
        a0, b0 = sigma_prior.shape, sigma_prior.scale
    elif sigma_prior is not None:
        raise ValueError(f"sigma_prior applies to the gaussian family only, not {fam.name!r}")
    specs = family_dispersion_specs(fam, dispersion_prior, response_sd(ya, off, wa))
    zi_design = _zero_inflation.prepare(zi_X, n, fam, zi_prior)

    if not isinstance(sampler, str) or sampler.lower() not in _KERNELS:
        raise ValueError(f"unknown sampler {sampler!r}; use 'laplace' or 'random_walk'")
    kernel = _KERNELS[sampler.lower()]
    chains = check_count("chains", chains, 1)
    draws = check_count("draws", draws, 1)
    warmup = check_count("warmup", warmup, 0)
    thin = check_count("thin", thin, 1)
    rw_scale = float(rw_scale)
    if not np.isfinite(rw_scale) or rw_scale <= 0:
        raise ValueError(f"rw_scale must be positive, got {rw_scale}")
    if target_acceptance is None:
        target_acceptance = 0.44 if q == 1 else 0.35
    if not 0.05 <= float(target_acceptance) <= 0.95:
        raise ValueError(f"target_acceptance must be in [0.05, 0.95], got {target_acceptance}")
    seed_used = resolve_seed(seed)
    n_threads = resolve_threads(threads)

    # rows sorted by group: the core reads each group's rows as one block
    ys, ts, offs = grouping.sort(ya if ordinal is None else ordinal["y_core"]), \
        grouping.sort(ta), grouping.sort(off)
    core_kw = {} if ordinal is None else dict(ordinal["kwargs"])
    if zi_design is not None:  # its centred columns, sorted as the rows
        zi_core = zi_design.core_kwargs()
        core_kw.update(zi_x=grouping.sort(zi_core["zi_x"]), zi_prior_sd=zi_core["zi_prior_sd"])
    ws = core_weights(None if wa is None else grouping.sort(wa))
    gs = grouping.group_start
    config = {"draws": draws, "warmup": warmup, "thin": thin, "threads": 1,
              "kernel": kernel, "rw_scale": rw_scale, "rw_target": float(target_acceptance),
              "fixed_target": 0.44 if p - len(centred) == 1 else 0.3,
              "keep_group_effects": bool(keep_group_effects), "interweave": bool(interweave),
              "marginal_move": bool(marginal_move), "translation": bool(translation),
              "min_rows_per_thread": check_count("min_rows_per_thread", min_rows_per_thread, 1)}

    extra = _extra_blocks(random_blocks, n, grouping, wa)
    extra_core = [{k: e[k] for k in ("codes", "z", "level_start", "level_rows", "cov_prior",
                                     "parent", "parent_level") if k in e}
                  for e in extra]

    Xs, Zs, ys, ts, offs, gs, ws, extra_core = core_aligned(Xs, Zs, ys, ts, offs, gs, ws,
                                                            extra_core)

    def run_one(chain: int, inner_threads: int, callback: Any) -> dict:
        return _core.run_glmm_chain(
            Xs, Zs, ys, ts, offs, gs, fam.code, centred, m0, V0, cov_spec, a0, b0,
            dict(config, threads=inner_threads), seed_used, chain, callback, extra_core,
            *specs[0], *specs[1], weights=ws, **core_kw)

    # chains run concurrently when there are threads for it (each with its share)
    results = run_chains(run_one, chains, n_threads, progress, warmup + draws * thin)
    kept, interrupted = keep_drawn(results, _PER_DRAW, draws)
    n_chains = len(kept)

    sigma = stack_chains(kept, "sigma").reshape(n_chains, -1, q, q)
    posterior: dict[str, np.ndarray] = {"beta": stack_chains(kept, "beta")}
    dims: dict[str, list[str]] = {"beta": ["coef"], "Sigma": ["term", "term_"]}
    ordinal_parts = None
    if ordinal is not None:  # without the core's intercept; the cutpoints c = theta - beta_0
        posterior["beta"] = posterior["beta"][..., 1:]
        ordinal_parts = _ordinal.posterior_parts(stack_chains(kept, "cutpoints"),
                                                 ordinal["categories"])
        posterior.update(ordinal_parts[0])
        dims.update(ordinal_parts[1])
    summary_vars = ["beta"] + (["cutpoint"] if ordinal is not None else [])
    for part in sd_cor_draws(sigma, list(z_names), "sd_", "corr_"):
        posterior.update(part)
        summary_vars.extend(part)
    if fam.name == "gaussian":
        posterior["sigma"] = np.sqrt(stack_chains(kept, "phi"))
        summary_vars.append("sigma")
    drawn, fixed = family_parameter_draws(fam, specs, kept, ("phi", "phi2"))
    posterior.update(drawn)
    zi_parts = None
    if zi_design is not None:  # the formula's coefficients instead of zi
        zi_parts = _zero_inflation.posterior_draws(zi_design, posterior, kept)
        dims.update(zi_parts[0])
    summary_vars.extend(k for k in posterior if k in drawn or k == "zi_beta")
    posterior["Sigma"] = sigma
    if keep_group_effects:
        posterior["b"] = stack_chains(kept, "b").reshape(n_chains, -1, m, q)
        dims["b"] = ["group", "term"]
    coords: dict[str, list[Any]] = {"coef": names_user, "term": z_names, "term_": z_names,
                                    "group": grouping.levels}
    if ordinal_parts is not None:
        coords.update(ordinal_parts[2])
    if zi_parts is not None:
        coords.update(zi_parts[1])
    for k, e in enumerate(extra):
        name, terms, qk = e["name"], e["terms"], len(e["terms"])
        sig = np.stack([np.asarray(r["extra_sigma"][k]) for r in kept]).reshape(n_chains, -1, qk, qk)
        tdim = f"{name}__term"
        posterior[f"Sigma_{name}"] = sig
        dims[f"Sigma_{name}"] = [tdim, tdim + "_"]
        coords[tdim] = list(terms)
        coords[tdim + "_"] = list(terms)
        for part in sd_cor_draws(sig, list(terms), f"sd_{name}__", f"cor_{name}__"):
            posterior.update(part)
            summary_vars.extend(part)
        if keep_group_effects:
            posterior[f"b_{name}"] = np.stack([np.asarray(r["extra_b"][k]) for r in kept]).reshape(
                n_chains, -1, len(e["levels"]), qk)
            dims[f"b_{name}"] = [name, tdim]
            coords[name] = list(e["levels"])
    sample_stats = {"log_lik_kernel": stack_chains(kept, "log_lik"),
                    "group_acceptance_rate": stack_chains(kept, "group_accept_mean"),
                    "fixed_accepted": stack_chains(kept, "fixed_accepted").astype(bool)}
    pf = p - len(centred)
    group_acc = stack_chains(kept, "group_acceptance")
    attrs = {
        "family": fam.name,
        "link": fam.link,
        "sampler_kernel": "laplace" if kernel == 0 else "random_walk",
        "parameterization": parameterization,
        "group_acceptance": group_acc,
        "group_warmup_acceptance": stack_chains(kept, "group_warmup_acceptance"),
        "rw_scale": stack_chains(kept, "rw_scale"),
        "target_acceptance": float(target_acceptance),
        "fixed_acceptance": [float(r["fixed_acceptance"]) if pf else float("nan") for r in kept],
        # NaN where the move did not run (random-walk kernel, interweave=False, or the marginal
        # move off: marginal_status says why)
        "interweave_acceptance": [float(r["interweave_acceptance"]) for r in kept],
        "marginal_acceptance": [float(r["marginal_acceptance"]) for r in kept],
        "marginal_status": [_MARGINAL_STATUS[int(r["marginal_status"])] for r in kept],
        "marginal_warmup_draws": [int(r["marginal_warmup_draws"]) for r in kept],
        "marginal_dim": int(kept[0]["marginal_dim"]),
        "warmup_seconds": [float(r["warmup_seconds"]) for r in kept],
        "sampling_seconds": [float(r["sampling_seconds"]) for r in kept],
        "sampling_sweeps": [int(r["sampling_sweeps"]) for r in kept],
        "threads_used": int(kept[0]["threads_used"]),
        # (the cumulative family's core intercept is not a reported coefficient)
        "term_in_X": term_in_X if ordinal is None else [j - 1 if j > 0 else -1 for j in term_in_X],
        "centred": [x_names[j] for j, _ in centred],
        "z_is_intercept": bool(q == 1 and np.all(Za == 1.0)),
        "n_obs": n,
        "n_groups": m,
        "extra_blocks": [e["name"] for e in extra],
        "extra_level_acceptance": [[float(v) for v in r["extra_level_acceptance"]] for r in kept],
        "extra_scale_acceptance": [[float(v) for v in r["extra_scale_acceptance"]] for r in kept],
    }
    attrs.update(fixed)
    if zi_design is not None:
        attrs["zi_acceptance"] = [float(r["zi_acceptance"]) for r in kept]
    if ordinal is not None:
        attrs["categories"] = [str(c) for c in ordinal["categories"]]
        attrs["cutpoint_sd"] = ordinal["kwargs"]["cutpoint_sd"]
    if kernel == 1 and pf:  # the random-walk block step's frozen scale c (unused by Laplace)
        attrs["fixed_scale"] = [float(r["fixed_scale"]) for r in kept]
    kernel_name = ("Laplace/IWLS-proposal" if kernel == 0 else "random-walk") + \
        " Metropolis-within-Gibbs"
    fit = GlmmFit(
        posterior,
        dims=dims,
        coords=coords,
        sample_stats=sample_stats,
        summary_vars=summary_vars,
        attrs=attrs,
        seed=seed_used,
        interrupted=interrupted,
        sampler=kernel_name,
        data={"X": Xs, "Z": Zs, "y": ys, "trials": ts, "offset": offs, "group_start": gs,
              "grouping": grouping, "threads": n_threads, "X_original": X_user, "Z_original": Za,
              "offset_original": off, "trials_original": ta, "y_original": ya,
              "weights_original": wa,
              "X_core_names": x_names,
              "zi_X_original": None if zi_design is None else zi_design.X,
              "codes": grouping.codes, "extra": extra},
        family=fam,
    )
    if check:
        fit._run_checks()
    return fit


def _extra_blocks(blocks: Any, n: int, grouping: Any,
                  weights: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The further random-effect blocks laid out for the core: rows in the primary block's
    order, each block's level codes, term matrix and CSR index of its levels' rows."""
    if blocks is None:
        return []
    if not isinstance(blocks, (list, tuple)):
        raise TypeError("random_blocks must be a list of dicts")
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for k, blk in enumerate(blocks):
        if not isinstance(blk, dict):
            raise TypeError(f"random_blocks[{k}] must be a dict, got {type(blk).__name__}")
        name = str(blk.get("name", f"block{k + 1}"))
        if name in names:
            raise ValueError(f"random_blocks: the name {name!r} is used twice")
        names.add(name)
        if "Z" not in blk:
            raise ValueError(f"random_blocks[{k}] ({name!r}) needs Z (rows x terms)")
        Zk, znames = as_design(blk["Z"], f"Z of block {name!r}")
        if Zk.shape[0] != n:
            raise ValueError(f"Z of block {name!r} has {Zk.shape[0]} rows, the data {n}")
        terms = list(blk.get("terms") or (znames if isinstance(blk["Z"], (pd.DataFrame, pd.Series))
                                          else [f"z{j}" for j in range(Zk.shape[1])]))
        if len(terms) != Zk.shape[1]:
            raise ValueError(f"block {name!r}: {len(terms)} term names for {Zk.shape[1]} columns")
        if Zk.shape[1] > 12:
            raise ValueError(f"block {name!r} has {Zk.shape[1]} terms; at most 12 are supported")
        check_full_rank(Zk, terms, f"Z of block {name!r}")
        if "codes" in blk:
            codes = np.asarray(blk["codes"])
            levels = list(blk["levels"]) if "levels" in blk else list(range(int(codes.max()) + 1))
            if codes.shape != (n,) or not np.issubdtype(codes.dtype, np.integer):
                raise ValueError(f"codes of block {name!r} must be {n} integers")
            if codes.min() < 0 or codes.max() >= len(levels):
                raise ValueError(f"codes of block {name!r} must lie in [0, {len(levels)})")
            codes = codes.astype(np.int64, copy=False)
        else:
            enc = encode_groups(blk.get("group"), n, f"group of block {name!r}")
            codes, levels = enc.codes, enc.levels
        m_k = len(levels)
        codes_sorted = np.ascontiguousarray(codes[grouping.order])
        counts = np.bincount(codes_sorted, minlength=m_k)
        start = np.zeros(m_k + 1, dtype=np.int64)
        np.cumsum(counts, out=start[1:])
        rows = np.argsort(codes_sorted, kind="stable").astype(np.int64)
        cov_spec = _covariance_prior(blk.get("prior"), Zk.shape[1], Zk, terms, weights)
        out.append({"name": name, "terms": terms, "levels": levels, "codes_original": codes,
                    "Z_original": Zk, "codes": codes_sorted,
                    "z": grouping.sort(Zk), "level_start": start,
                    "level_rows": rows, "cov_prior": cov_spec, "nested_in": blk.get("parent")})
    index = {e["name"]: k for k, e in enumerate(out)}
    for e in out:
        parent = e.pop("nested_in")
        if parent is None:
            continue
        if parent == "primary":
            pcodes, pidx = grouping.codes, -1
        elif parent in index and parent != e["name"]:
            pcodes, pidx = out[index[parent]]["codes_original"], index[parent]
        else:
            raise ValueError(f"block {e['name']!r}: parent {parent!r} is not 'primary' or "
                             "another block's name")
        e["parent"], e["parent_level"] = pidx, _parent_levels(e["codes_original"], pcodes,
                                                               len(e["levels"]), e["name"])
    return out


def _parent_levels(codes: np.ndarray, parent_codes: np.ndarray, m: int, name: str) -> np.ndarray:
    """The parent level of each level of a nested factor (each level within one parent level)."""
    parent = np.full(m, -1, dtype=np.int64)
    parent[codes] = parent_codes
    if np.any(parent[codes] != parent_codes):
        raise ValueError(f"block {name!r} is not nested in its parent: a level spans several "
                         "parent levels")
    return parent


def _check_acceptance(fit: GlmmFit, kernel: int, target: float, pf: int) -> None:
    s = fit.acceptance_summary()
    med = float(s.group_median.median())
    low = float(s.group_min.min())
    messages = []
    if kernel == 0:
        # the Laplace proposal is close to each group's conditional posterior: acceptance
        # well below 1/2 means that approximation is poor (very little data per group)
        if med < 0.5:
            messages.append(f"median per-group acceptance {med:.2f} of the Laplace kernel is low")
    else:
        if med < target / 2 or med > min(0.95, 2 * target):
            messages.append(f"median per-group acceptance {med:.2f} is far from the target {target:.2f}")
    if low < 0.02:
        messages.append(f"some group accepts only {low:.3f} of its proposals")
    if pf:
        fixed = float(np.nanmin(s.fixed))
        # Newton proposal (laplace): near 1 when the conditional is close to normal;
        # random walk: tuned towards 0.3 (0.44 for one coefficient)
        if (kernel == 0 and fixed < 0.3) or (kernel == 1 and (fixed < 0.08 or fixed > 0.8)):
            messages.append(f"the fixed-effects block step accepts {fixed:.2f} of its proposals")
    if messages:
        warnings.warn("; ".join(messages) + "; consider more warm-up or the other sampler",
                      AcceptanceWarning, stacklevel=user_stacklevel())


def _check_marginal_move(fit: GlmmFit) -> None:
    """Warn when the marginal move was asked for but switched itself off in some chain (its
    acceptance is then NaN, not 0: it did not run)."""
    status = fit.attrs["marginal_status"]
    counts = fit.attrs["marginal_warmup_draws"]
    dim = fit.attrs["marginal_dim"]
    reasons: dict[str, list[int]] = {}
    for c, st in enumerate(status):
        if st == "no warm-up":
            why = "there was no warm-up (warmup=0) to fit its proposal from"
        elif st == "not fitted":
            why = (f"its proposal could not be fitted from the {counts[c]} warm-up draws of the "
                   f"{dim} numbers it moves (too few draws, or their covariance is singular)")
        else:
            continue
        reasons.setdefault(why, []).append(c)
    if reasons:
        parts = [f"in chain(s) {', '.join(str(c) for c in chains)}: {why}"
                 for why, chains in reasons.items()]
        warnings.warn("the marginal move (an independence move of the random-effect means and "
                      "Sigma after warm-up) was switched off " + "; ".join(parts) +
                      ". Sigma may mix slowly without it: run a longer warm-up (it learns its "
                      "proposal from the last three quarters of warm-up)",
                      AcceptanceWarning, stacklevel=user_stacklevel())
