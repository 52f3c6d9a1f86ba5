"""``bglmm.fit(formula, data, ...)``: formulas on DataFrames, the sampler chosen for the model,
and a :class:`FormulaFit` that names, summarises, predicts, plots and saves the posterior.

Which sampler runs:

=================================  ===============================================================
model                              sampler (array-level entry point)
=================================  ===============================================================
no random term                     :func:`bglmm.glm` — exact conjugate draws for gaussian/identity,
                                   independence Metropolis-Hastings (t proposal at the mode)
                                   otherwise, and a slice step on the log of a negbinomial,
                                   gamma, beta_binomial or zero-inflation dispersion
gaussian, ``(... | g)``            :func:`bglmm.lmm` — blocked Gibbs sampler (conjugate)
gaussian, ``se=``, ``(1 | g)``     :func:`bglmm.hierarchical_normal` — known sampling variances
                                   (meta-analysis, eight schools): independent exact draws (tau
                                   from its marginal posterior on a grid), or
                                   ``sampler="gibbs"``
other families, ``(... | g)``      :func:`bglmm.glmm` — Metropolis-within-Gibbs (and a slice step
                                   on the log of a negbinomial, gamma, beta_binomial or
                                   zero-inflation dispersion)
several random-effect blocks       :func:`bglmm.glmm` with ``random_blocks`` (every family;
(crossed, nested, ``||``)          gaussian level steps are exact Gibbs draws)
=================================  ===============================================================

Default priors are weakly informative and scaled by the data (documented in :func:`fit`); the
priors actually used are in ``fit.priors``.

Every fit is checked (``check=True``): one :class:`~bglmm.ConvergenceWarning`, pointing at the
line that called :func:`fit`, names the reported parameters with R-hat > 1.01 or bulk ESS < 100
per chain, and the Metropolis moves that accepted nothing.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd

from . import priors as P
from . import ordinal
from .families import DISPERSION_VARIABLES, Family, draw_response, inverse_link, response_mean
from .data import moments, residual_variance
from .formula import ModelSpec, build_spec
from .results import Fit, core_family_params, import_arviz, sd_cor_draws, weighted_log_lik

__all__ = ["fit", "load", "FormulaFit", "default_priors"]

_PRIOR_KEYS = ("beta", "sigma", "sd", "cor", "Sigma", "cutpoints") + DISPERSION_VARIABLES


# ---------------------------------------------------------------------------------------------
# priors


def _scale_of_response(spec: ModelSpec) -> float:
    """The data scale of the linear predictor: sd(y) for the identity link (gaussian, student),
    1 on the log/logit scale."""
    if spec.family.link != "identity":
        return 1.0
    return P.response_sd(spec.y, spec.offset, spec.weights)


def _residual_variance(spec: ModelSpec) -> float:
    """Residual variance of the least-squares fit of y - offset on X (sd(y)^2 as a fallback);
    the case weights count as frequencies, here and in the other data scales."""
    y = spec.y - (spec.offset if spec.offset is not None else 0.0)
    s2 = residual_variance(spec.X, y, spec.weights)
    if not s2 > 0:
        s2 = float(moments(y, spec.weights)[1]) ** 2 if spec.n > 1 else 1.0
    return s2 if s2 > 0 else 1.0


def _column_scales(M: np.ndarray, weights: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is_constant, mean, sd) per column of a design matrix."""
    mean, sd = moments(M, weights)
    const = sd <= 1e-12 * np.maximum(1.0, np.abs(mean))
    return const, mean, np.where(const, 1.0, sd)


def default_priors(spec: ModelSpec) -> dict[str, Any]:
    """Weakly informative priors scaled by the data (in the spirit of rstanarm and brms).

    With s = sd(y) for the gaussian family and s = 1 otherwise (log and logit scales):

    * ``beta``: a slope on a column x_j gets N(0, (2.5 s / sd(x_j))^2); the intercept gets
      N(m, v) with m = mean(y) (gaussian) or 0, and v = (10 s)^2 (1 + sum_j (mean(x_j) /
      sd(x_j))^2) — the variance that a N(m, (10 s)^2) prior on the intercept at the mean of the
      predictors implies for the intercept at x = 0.
    * ``sigma`` (gaussian): Inverse-Gamma(1/2, s2/2) on sigma^2, one prior observation at s2, the
      residual variance of the least-squares fit of y on the fixed effects (an upper bound of
      sigma^2, as it also holds the group variation). Without random effects the exact
      conjugate sampler needs beta | sigma^2 ~ N(m0, sigma^2 V0): V0 is the ``beta`` prior above
      divided by s2, so that at sigma^2 = s2 the prior on beta is the one described.
    * the random-effect covariance, by the separation strategy Sigma = diag(s) Omega diag(s)
      (as brms and rstanarm): each term's SD gets Half-Student-t(3, 2.5 s_z), with
      s_z = s / sd(z) for a slope column z and s for the intercept (key ``"sd"``, a dict
      {term: prior} when q > 1); for q > 1 the correlation matrix gets LKJ(2) (key ``"cor"``),
      which keeps the posterior off the |correlation| = 1 boundary that few groups leave
      unidentified. ``InverseWishart`` under key ``"Sigma"`` replaces both.
    * known standard errors (``se``, the hierarchical normal model): the same prior on the
      intercept mu and Half-Student-t(3, 2.5 s) on the between-group SD tau.
    * the cumulative family (no intercept): each cutpoint N(0, 5^2), jointly ordered (key
      ``"cutpoints"``; :mod:`bglmm.ordinal`) — on the logit scale, cutpoints within +-10 (the
      probability of a category boundary between 0.00005 and 0.99995) at two prior SDs.
    * a zi formula (zero-inflated families): ``zi``'s prior (Beta(1, 1)) on the probability
      of a structural zero at the covariates' means, and N(0, (2.5 / sd(x_j))^2) on each slope
      (key ``"zi_beta"``; :mod:`bglmm.zero_inflation`).
    """
    s = _scale_of_response(spec)
    const, mean, sd = _column_scales(spec.X, spec.weights)
    prior_sd = np.where(const, 0.0, 2.5 * s / sd)
    centre = np.where(const, 0.0, mean / sd)
    v_int = (10 * s) ** 2 * (1.0 + float(np.sum(centre**2)))
    prior_sd = np.where(const, np.sqrt(v_int), prior_sd)
    m = np.zeros(spec.X.shape[1])
    if spec.family.link == "identity":
        y = spec.y - (spec.offset if spec.offset is not None else 0.0)
        m = np.where(const, float(moments(y, spec.weights)[0]), 0.0)
    out: dict[str, Any] = {"beta": P.Normal(mean=m, sd=prior_sd)}
    if spec.family.is_ordinal:
        from .ordinal import DEFAULT_CUTPOINT_SD

        out["cutpoints"] = P.Normal(0.0, DEFAULT_CUTPOINT_SD)
    if spec.family.name == "gaussian" and spec.se is None:
        out["sigma"] = P.InverseGamma(0.5, 0.5 * _residual_variance(spec))
    for name in spec.family.parameters:  # phi, shape, zi, the Student-t's sigma and nu
        out[name] = P.default_dispersion_prior(name, s)
    if spec.zi_X is not None:  # the zi formula's slopes (bglmm.zero_inflation)
        out["zi_beta"] = P.Normal(0.0, _zi_design(spec, None).prior_sd)
    if len(spec.random) == 1:
        block = spec.random[0]
        sd = _default_sd_priors(block, s, spec.weights)
        if block.q == 1:
            out["sd"] = sd[0]
        else:
            out["sd"] = dict(zip(block.terms, sd))
            out["cor"] = P.LKJ()
    else:
        for key, block in zip(_block_keys(spec), spec.random):
            sd = _default_sd_priors(block, s, spec.weights)
            out[key] = sd[0] if block.q == 1 else P.LKJ(sd=sd)
    return out


def _zi_design(spec: ModelSpec, prior: Any) -> Any:
    """The zi formula's design and slope prior (bglmm.zero_inflation.ZiDesign)."""
    from . import zero_inflation

    X = pd.DataFrame(spec.zi_X, columns=spec.zi_names)
    return zero_inflation.prepare(X, spec.n, spec.family, prior)


def _zi_arguments(spec: ModelSpec, used: dict[str, Any]) -> dict[str, Any]:
    """The samplers' zi_X and zi_prior (none without a zi formula)."""
    if spec.zi_X is None:
        return {}
    return {"zi_X": pd.DataFrame(spec.zi_X, columns=spec.zi_names), "zi_prior": used["zi_beta"]}


def _default_sd_priors(block: Any, s: float, weights: np.ndarray | None = None) -> list[Any]:
    """Half-Student-t(3, 2.5 s_z) per term: s_z = s / sd(z) for a slope, s for a constant."""
    zconst, _, zsd = _column_scales(block.Z, weights)
    sz = np.where(zconst, s, s / zsd)
    return [P.HalfStudentT(3.0, float(2.5 * v)) for v in sz]


def _block_keys(spec: ModelSpec) -> list[str]:
    """The name of each random-effect block in ``priors`` and ``fit.priors``: its factor, or
    (several blocks on one factor) its label ``(0 + x | g)``."""
    factors = [b.factor for b in spec.random]
    return [b.factor if factors.count(b.factor) == 1 else b.label for b in spec.random]


def _covariance_prior(used: dict[str, Any], block: Any) -> Any:
    """The prior on the block's covariance that the samplers take, from the resolved priors."""
    if "Sigma" in used:
        return used["Sigma"]
    sd = used["sd"]
    if block.q == 1:
        return next(iter(sd.values())) if isinstance(sd, dict) else sd
    if not isinstance(sd, dict):
        sd = {t: sd for t in block.terms}
    return P.LKJ(eta=used["cor"].eta, sd=[sd[t] for t in block.terms])


def _merge_sd(current: Any, given: Any, block: Any, key: str) -> Any:
    """SD priors after `given` (one prior, a list or a dict {term: prior}) over `current`:
    one prior for a single term, else a dict {term: prior}."""
    base = [current[t] for t in block.terms] if isinstance(current, dict) else [current] * block.q
    merged = P.sd_priors_per_term(given, block.q, block.terms, base, f"priors[{key!r}]")
    return merged[0] if block.q == 1 else dict(zip(block.terms, merged))


def _resolve_priors(spec: ModelSpec, given: Any) -> dict[str, Any]:
    used = default_priors(spec)
    if given is None:
        return used
    if isinstance(given, P.Normal):
        given = {"beta": given}
    if not isinstance(given, dict):
        raise TypeError("priors must be a dict such as {'beta': bglmm.priors.Normal(0, 5)}")
    if "zi_beta" in given:
        given = dict(given)
        value = given.pop("zi_beta")
        if spec.zi_X is None:
            raise ValueError("priors['zi_beta'] (the zi formula's slopes) needs zi= in fit()")
        _zi_design(spec, value)  # validates now
        used["zi_beta"] = value
    if len(spec.random) > 1:
        return _resolve_block_priors(spec, used, given)
    factor = spec.random[0].factor if spec.random else None
    block = spec.random[0] if spec.random else None
    for key, value in given.items():
        k = key
        if factor is not None and key == factor:
            k = ("Sigma" if isinstance(value, P.InverseWishart)
                 else "cor" if isinstance(value, P.LKJ) else "sd")
        if k not in _PRIOR_KEYS:
            raise ValueError(f"unknown prior key {key!r}; use {', '.join(_PRIOR_KEYS)}")
        if k == "cutpoints":
            _check_common_prior(spec, k, value)
        if k == "beta" and not isinstance(value, P.Normal):
            raise TypeError(f"priors['beta'] must be a bglmm.priors.Normal, got {type(value).__name__}")
        if k == "sigma" and spec.family.name == "student":
            P.dispersion_prior_spec(value, k)  # validates now
        elif k == "sigma":
            if spec.family.name != "gaussian":
                raise ValueError(
                    f"priors['sigma'] applies to the gaussian and student families only, not "
                    f"{spec.family.name!r}")
            if spec.se is not None:
                raise ValueError("priors['sigma'] does not apply with known standard errors (se=)")
        if k in DISPERSION_VARIABLES:
            _check_common_prior(spec, k, value)
        if k in ("sd", "cor", "Sigma") and block is None:
            raise ValueError(f"priors[{key!r}] needs a random-effects term in the formula")
        if k == "beta":
            value.to_arrays(spec.X.shape[1], "priors['beta']")  # validates the length now
        elif k == "Sigma":
            if isinstance(value, P.LKJ):
                k = "cor"
            elif not isinstance(value, P.InverseWishart):
                raise TypeError(f"priors[{key!r}] must be a bglmm.priors.InverseWishart or LKJ, "
                                f"got {type(value).__name__}")
            else:
                value.to_arrays(block.q, f"priors[{key!r}]")
                used.pop("sd", None)
                used.pop("cor", None)
        if k == "cor":
            if not isinstance(value, P.LKJ):
                raise TypeError(f"priors[{key!r}] must be a bglmm.priors.LKJ, got {type(value).__name__}")
            if block.q == 1:
                raise ValueError(f"priors[{key!r}]: the random effects {block.label} have one term, "
                                 "no correlations")
            used.pop("Sigma", None)
            if value.sd is not None:  # LKJ(eta, sd=...) sets the SD priors too
                used["sd"] = _merge_sd(used.get("sd"), value.sd, block, key)
                value = P.LKJ(eta=value.eta)
            used.setdefault("sd", default_priors(spec)["sd"])
        if k == "sd":
            used.pop("Sigma", None)
            value = _merge_sd(default_priors(spec)["sd"], value, block, key)
            if block.q > 1:
                used.setdefault("cor", P.LKJ())
        used[k] = value
        if k in ("sd", "cor"):
            P.covariance_prior_spec(_covariance_prior(used, block), block.q, f"priors[{key!r}]",
                                    terms=block.terms)  # validates now
    return used


def _check_common_prior(spec: ModelSpec, key: str, value: Any) -> None:
    if key == "cutpoints":
        if not spec.family.is_ordinal:
            raise ValueError(f"priors['cutpoints'] applies to the cumulative family only, not "
                             f"{spec.family.name!r}")
        from .ordinal import cutpoint_sd

        cutpoint_sd(value)  # validates now
    elif key in DISPERSION_VARIABLES:
        names = spec.family.parameters
        if key not in names:
            raise ValueError(f"priors[{key!r}] does not apply to the {spec.family.name} family"
                             + (f"; its parameters are {', '.join(map(repr, names))}"
                                if names else ""))
        P.dispersion_prior_spec(value, key)  # validates now
    elif key == "beta":
        if not isinstance(value, P.Normal):
            raise TypeError(f"priors['beta'] must be a bglmm.priors.Normal, got {type(value).__name__}")
        value.to_arrays(spec.X.shape[1], "priors['beta']")
    elif key == "sigma" and spec.family.name != "student":
        if spec.family.name != "gaussian":
            raise ValueError(f"priors['sigma'] applies to the gaussian and student families only, "
                             f"not {spec.family.name!r}")
        if spec.se is not None:
            raise ValueError("priors['sigma'] does not apply with known standard errors (se=)")


def _block_prior_with(current: Any, value: Any, block: Any, key: str, default_sd: list[Any]) -> Any:
    """A block's covariance prior after `value` (an InverseWishart, an LKJ with or without SD
    priors, one SD prior for every term, or a dict {term: SD prior}) is applied over `current`
    (``default_sd``: the block's default SD priors, where `current` has none)."""
    if isinstance(value, P.InverseWishart):
        value.to_arrays(block.q, f"priors[{key!r}]")
        return value
    if isinstance(current, P.LKJ):
        eta, base = current.eta, list(current.sd) if current.sd is not None else default_sd
    elif isinstance(current, P.InverseWishart) or current is None:
        eta, base = P.DEFAULT_LKJ_ETA, default_sd
    else:  # one term: its SD prior
        eta, base = P.DEFAULT_LKJ_ETA, [current]
    if isinstance(value, P.LKJ):
        if block.q == 1:
            raise ValueError(f"priors[{key!r}]: the random effects {block.label} have one term, "
                             "no correlations")
        eta = value.eta
        value = value.sd
    merged = P.sd_priors_per_term(value, block.q, block.terms, base, f"priors[{key!r}]")
    return merged[0] if block.q == 1 else P.LKJ(eta=eta, sd=merged)


def _resolve_block_priors(spec: ModelSpec, used: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Several random-effect blocks: ``"sd"`` (one prior, or a dict keyed by term) and
    ``"cor"`` (LKJ) apply to every block; a factor's name (or a block's key, see
    :func:`_block_keys`) to that factor's blocks."""
    keys = _block_keys(spec)
    by_factor: dict[str, list[int]] = {}
    for i, b in enumerate(spec.random):
        by_factor.setdefault(b.factor, []).append(i)
    for key, value in given.items():
        if key in ("beta", "sigma", "cutpoints") + DISPERSION_VARIABLES:
            _check_common_prior(spec, key, value)
            used[key] = value
            continue
        if key in keys or key in by_factor:
            targets = [keys.index(key)] if key in keys else by_factor[key]
        elif key in ("sd", "cor"):
            targets = list(range(len(spec.random)))
            if key == "cor":
                if not isinstance(value, P.LKJ):
                    raise TypeError(f"priors['cor'] must be a bglmm.priors.LKJ, got {type(value).__name__}")
                targets = [i for i in targets if spec.random[i].q > 1]
                if not targets:
                    raise ValueError("priors['cor']: no random-effect block has several terms")
        elif key == "Sigma":
            raise ValueError("with several random-effect blocks, give an InverseWishart under the "
                             f"factor's name, e.g. priors={{{keys[0]!r}: InverseWishart(...)}}")
        else:
            raise ValueError(f"unknown prior key {key!r}; use beta, sigma, sd, cor or a grouping "
                             f"factor: {', '.join(dict.fromkeys(keys))}")
        for i in targets:
            block = spec.random[i]
            v = value
            if key == "sd" and isinstance(value, dict):
                # {term: prior}: only the terms this block has
                v = {t: p for t, p in value.items() if t in block.terms}
                unknown = [t for t in value if not any(t in b.terms for b in spec.random)]
                if unknown:
                    raise ValueError(f"priors['sd'] names term(s) {unknown} that no random-effect "
                                     "block has")
                if not v:
                    continue
            default_sd = _default_sd_priors(block, _scale_of_response(spec), spec.weights)
            used[keys[i]] = _block_prior_with(used[keys[i]], v, block, key, default_sd)
            P.covariance_prior_spec(used[keys[i]], block.q, f"priors[{key!r}]", terms=block.terms)
    return used


# ---------------------------------------------------------------------------------------------
# fitting


def fit(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "gaussian",
    link: str | None = None,
    *,
    trials: Any = None,
    offset: Any = None,
    se: Any = None,
    weights: Any = None,
    zi: str | None = None,
    priors: Any = None,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    thin: int = 1,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    check: bool = True,
    **options: Any,
) -> FormulaFit:
    """Fit a Bayesian (generalized) linear mixed model written as an lme4-style formula.

    Parameters
    ----------
    formula : ``"y ~ x1 + x2 + (1 | g)"``. Fixed part: numeric and categorical columns
        (treatment coding; ``C(x)`` makes a numeric column categorical), interactions
        ``a:b`` and ``a * b``, ``poly(x, d)`` (orthonormal, as R), ``center(x)``, ``scale(x)``,
        ``I(...)``, numpy functions (``np.log(x)``), ``offset(...)``, ``0 +`` or ``- 1`` to drop
        the intercept. Random part: any number of blocks ``(1 | g)``, ``(1 + x | g)``
        (correlated intercept and slopes), ``(1 + x || g)`` (uncorrelated), crossed factors
        ``(1 | a) + (1 | b)``, nested ``(1 | a/b)`` (= ``(1 | a) + (1 | a:b)``), interaction
        factors ``g1:g2``, observation-level ``(1 | obs)``. Response: a column or an
        expression; binomial ``cbind(successes, failures)``, ``successes / trials`` or
        ``successes | trials(n)``; gaussian with known standard errors ``y | se(s)``; case
        weights ``y | weights(w)`` (brms; several terms join by ``+``:
        ``s | trials(n) + weights(w)``).
    zi : the zero-inflated families — a formula of the probability of a structural zero,
        ``"~ x1 + x2"`` (brms's ``zi ~ x1 + x2``; fixed effects, with the intercept):
        logit zi_i = x_i' zi_beta. Its coefficients are the posterior variable ``zi_beta``
        (summary rows ``zi_beta[Intercept]``, ``zi_beta[x1]``, ...) instead of ``zi``; the
        ``zi`` prior applies to the probability at the covariates' means, ``"zi_beta"`` (a
        :class:`~bglmm.priors.Normal` with mean 0) to the slopes. Default: the family's one
        ``zi`` for every row.
    data : pandas DataFrame with the columns the formula uses (no missing values in them).
    family, link : "gaussian" (identity), "poisson" (log), "binomial"/"bernoulli" (logit, probit,
        cloglog), "negbinomial" (log; "negative_binomial", "nb"), "gamma" (log) and
        "beta_binomial" (logit, probit, cloglog; with trials), "zero_inflated_poisson"
        (log; "zip") and "zero_inflated_negbinomial" (log; "zinb"), whose parameters (``phi``;
        the gamma's ``shape``; the probability ``zi`` of a structural zero) are sampled too,
        with or without random effects.
    trials, offset, se : a column name or an array (binomial trials; a known part of the linear
        predictor such as log exposure; known standard errors of y for meta-analysis).
    weights : a column name or an array of case weights >= 0 (lme4's prior weights, brms's
        ``weights``): each row's log-likelihood is multiplied by its weight, so a row of integer
        weight w counts as w copies of it (gaussian: beta and the group effects are fitted as
        with residual variances sigma^2 / w_i, and sigma^2 counts sum(w) observations, where
        lme4 counts the rows). The pointwise log-likelihood (``loo``, ``waic``) holds the
        weighted terms; predictions do not depend on the weights. Every family; not with known
        standard errors.
    priors : dict with keys ``"beta"`` (:class:`~bglmm.priors.Normal`), ``"sigma"``
        (:class:`~bglmm.priors.InverseGamma` on sigma^2), ``"sd"`` (one random-effect column:
        ``HalfStudentT``, ``HalfNormal``, ``UniformSD`` or ``InverseGamma`` on the variance) or
        ``"Sigma"`` (:class:`~bglmm.priors.InverseWishart`); the grouping factor's name is
        accepted for ``sd``/``Sigma``. With several blocks, ``"sd"`` and ``"cor"`` apply to
        every block and a factor's name to that factor's blocks. ``"phi"`` / ``"shape"``: the
        dispersion's :class:`~bglmm.priors.Gamma` prior (default Gamma(0.01, 0.01), as brms),
        or a number that fixes it; ``"zi"``: a :class:`~bglmm.priors.Beta` (default Beta(1, 1))
        or a number in (0, 1). Missing keys get :func:`default_priors`. For a gaussian
        model without random effects the exact conjugate sampler puts the ``beta`` prior
        conditionally on sigma, scaled to equal the given prior at sigma^2 = the least-squares
        residual variance (recorded as ``fit.priors["beta (conjugate, per unit sigma)"]``).
    chains, draws, warmup, thin : MCMC sizes (draws kept per chain).
    seed : integer for reproducible draws (None: fresh entropy, recorded in ``fit.seed``).
    threads : threads of the C++ core (None: all cores); draws do not depend on it.
    progress : show a progress bar (on a terminal or in Jupyter, by ``tqdm.auto``) that
        counts the warm-up and the sampling iterations separately, preceded by "preparing the
        data" when the formula, design and starting values take more than a second.
    check : warn, once (:class:`~bglmm.ConvergenceWarning`), when a reported parameter (fixed
        effects, random-effect SDs and correlations, sigma; not the per-group effects) has
        R-hat > 1.01 or bulk ESS < 100 per chain, or a Metropolis move accepted nothing; the GLMM
        sampler also warns (:class:`~bglmm.AcceptanceWarning`) about acceptance rates far from
        their targets. Not for an interrupted fit. False skips the checks.
    **options : passed to the array-level sampler (e.g. ``sampler="independence"`` for
        :func:`bglmm.glm`, ``sampler="gibbs"`` for known standard errors).
    """
    from formulae.environment import Environment

    from ._progress import fit_phases, preparing

    _check_options(None, options)
    env = Environment.capture(1)
    with preparing(progress), fit_phases(warmup):  # "preparing the data" if it takes > 1 s
        spec = build_spec(formula, data, family, link, trials=trials, offset=offset, se=se,
                          weights=weights, zi=zi, env=env)
        _check_options(spec, options)
        used = _resolve_priors(spec, priors)
        mcmc = dict(chains=chains, draws=draws, warmup=warmup, thin=thin, seed=seed,
                    threads=threads, progress=progress)
        # the array-level sampler does not check: the fit below does, once, under its own names
        inner, kind = _run(spec, used, mcmc, dict(options, check=False))
    out = FormulaFit.from_inner(inner, spec, data, used, kind=kind,
                                arguments={"trials": trials, "offset": offset, "se": se,
                                           "weights": weights, "zi": zi})
    if check:
        out._run_checks()
    return out


_FIT_ARGUMENTS = ("formula", "data", "family", "link", "trials", "offset", "se", "weights", "zi",
                  "priors",
                  "chains", "draws", "warmup", "thin", "seed", "threads", "progress", "check")
# set by fit itself, not sampler options
_TAKEN = _FIT_ARGUMENTS + ("prior", "cov_prior", "random_prior", "sigma_prior", "mu_prior",
                           "tau_prior", "random_blocks", "zi_X", "zi_prior")


def _samplers(spec: ModelSpec | None) -> dict[str, Any]:
    """The array-level sampler that fits `spec` (as :func:`_run_model` chooses), by name;
    every sampler when `spec` is None."""
    from .glm import glm
    from .glmm import glmm
    from .hierarchical import hierarchical_normal
    from .lmm import lmm

    every = {"glm": glm, "lmm": lmm, "glmm": glmm, "hierarchical_normal": hierarchical_normal}
    if spec is None:
        return every
    if not spec.random:
        return {"glm": glm}
    if len(spec.random) > 1 or spec.family.name != "gaussian":
        return {"glmm": glmm}
    return {"hierarchical_normal" if spec.se is not None else "lmm":
            hierarchical_normal if spec.se is not None else lmm}


def _check_options(spec: ModelSpec | None, options: dict[str, Any]) -> None:
    """A TypeError naming fit() for an option no sampler takes (with the argument probably
    meant), or (given the model) one its sampler does not take."""
    from ._kwargs import check_options, sampler_options

    if not options:
        return
    known = set().union(*(sampler_options(f, _TAKEN) for f in _samplers(None).values()))
    if spec is None:
        check_options(options, known, known | set(_FIT_ARGUMENTS), "fit")
        return
    (name, func), = _samplers(spec).items()
    check_options(options, sampler_options(func, _TAKEN), known, "fit", sampler=name)


def _single_level_factors(spec: ModelSpec) -> None:
    """A grouping factor with a single level: the gaussian one-factor samplers (the linear mixed
    model, the hierarchical normal model) need at least 2 levels, an error naming the factor;
    otherwise the model is proper (the SD is informed by its prior alone): one warning naming
    each such factor (the samplers' own, unnamed "group has a single level" warning is
    silenced by :func:`_run`)."""
    from .results import user_stacklevel
    from .warnings import BglmmWarning

    seen: list[str] = []
    for b in spec.random:
        if len(b.levels) != 1 or b.factor in seen:
            continue
        seen.append(b.factor)
        if spec.family.name == "gaussian" and len(spec.random) == 1:
            raise ValueError(
                f"the grouping factor {b.factor!r} of the random term {b.label} has a single "
                f"level ({b.levels[0]!r}); a gaussian model with one grouping factor needs at "
                "least 2 levels: drop the term, or add a second grouping factor")
        warnings.warn(f"the grouping factor {b.factor!r} of the random term {b.label} has a "
                      f"single level ({b.levels[0]!r}): its SD is informed by its prior alone",
                      BglmmWarning, stacklevel=user_stacklevel())


def _run(spec: ModelSpec, used: dict[str, Any], mcmc: dict[str, Any], options: dict[str, Any]):
    _single_level_factors(spec)
    with warnings.catch_warnings():
        # named by _single_level_factors instead
        warnings.filterwarnings("ignore", message="group has a single level")
        return _run_model(spec, used, mcmc, options)


def _run_model(spec: ModelSpec, used: dict[str, Any], mcmc: dict[str, Any],
               options: dict[str, Any]):
    fam = spec.family
    X = pd.DataFrame(spec.X, columns=spec.fixed_names)
    if not spec.random:
        if spec.se is not None:
            raise ValueError(
                "known standard errors (se) need a random-effects term, e.g. y | se(s) ~ 1 + (1 | study)"
            )
        from .glm import glm

        beta = used["beta"]
        sigma_prior = used.get("sigma") if fam.name == "gaussian" else None
        if fam.name == "gaussian" and options.get("sampler", "auto") in ("auto", "conjugate"):
            # the conjugate prior is beta | sigma^2 ~ N(m0, sigma^2 V0): express the (absolute)
            # prior in units of sigma at its least-squares estimate
            s2 = _residual_variance(spec)
            m0, V0 = beta.to_arrays(spec.X.shape[1], "priors['beta']")
            beta = P.Normal(mean=m0, cov=V0 / s2)
            used["beta (conjugate, per unit sigma)"] = beta
        if fam.name != "gaussian" and not fam.is_ordinal:
            # the t-proposal independence sampler centred at the mode mixes far better than the
            # random walk on these posteriors (close to normal): ESS ~ draws
            options.setdefault("sampler", "independence")
        inner = glm(X, spec.y, fam, trials=spec.trials if fam.needs_trials else None,
                    offset=spec.offset, weights=spec.weights, prior=beta, sigma_prior=sigma_prior,
                    dispersion_prior=_family_priors(fam, used),
                    **_cutpoint_prior(fam, used), **_zi_arguments(spec, used), **mcmc, **options)
        return inner, "glm"
    if len(spec.random) > 1:
        return _run_blocks(spec, used, mcmc, options), "glmm"
    block = spec.random[0]
    Z = pd.DataFrame(block.Z, columns=block.terms)
    cov_prior = _covariance_prior(used, block)
    if fam.name == "gaussian":
        if spec.se is not None:
            return _run_known_se(spec, used, mcmc, options), "hierarchical_normal"
        from .lmm import lmm

        inner = lmm(spec.y, X, Z, block.groups, offset=spec.offset, weights=spec.weights,
                    prior=used["beta"],
                    cov_prior=cov_prior, sigma_prior=used["sigma"], **mcmc, **options)
        return inner, "lmm"
    from .glmm import glmm

    inner = glmm(spec.y, X, Z, block.groups, family=fam,
                 trials=spec.trials if fam.needs_trials else None, offset=spec.offset,
                 weights=spec.weights, prior=used["beta"], random_prior=cov_prior,
                 dispersion_prior=_family_priors(fam, used),
                 **_cutpoint_prior(fam, used), **_zi_arguments(spec, used), **mcmc, **options)
    return inner, "glmm"


def _primary_block(spec: ModelSpec) -> int:
    """The block the rows are sorted by, which gets the GLMM sampler's centring, interweaving
    and marginal moves: the most terms, then the fewest levels (most data per level)."""
    return min(range(len(spec.random)),
               key=lambda i: (-spec.random[i].q, len(spec.random[i].levels), i))


def _nesting(spec: ModelSpec) -> list[int | None]:
    """For each block, the block of another factor whose levels contain its levels (class
    within school; an observation-level factor within any), the finest such; else None."""
    out: list[int | None] = []
    for i, b in enumerate(spec.random):
        best = None
        for j, a in enumerate(spec.random):
            if a.factor == b.factor or len(a.levels) >= len(b.levels):
                continue
            parent = np.full(len(b.levels), -1, dtype=np.int64)
            parent[b.codes] = a.codes
            if np.array_equal(parent[b.codes], a.codes) and (
                    best is None or len(a.levels) > len(spec.random[best].levels)):
                best = j
        out.append(best)
    return out


def _run_blocks(spec: ModelSpec, used: dict[str, Any], mcmc: dict[str, Any],
                options: dict[str, Any]):
    """Several random-effect blocks: the GLMM core for every family (gaussian: its level steps
    are exact Gibbs draws), one block primary, the others as random_blocks."""
    from .glmm import glmm

    if spec.se is not None:
        raise ValueError("known standard errors (se) support one random intercept, (1 | group)")
    fam = spec.family
    keys = _block_keys(spec)
    primary = _primary_block(spec)
    X = pd.DataFrame(spec.X, columns=spec.fixed_names)
    main = spec.random[primary]
    parents = _nesting(spec)
    extra = [{"name": f"blk{i}", "Z": b.Z, "terms": list(b.terms), "codes": b.codes,
              "levels": list(b.levels), "prior": used[keys[i]],
              "parent": None if parents[i] is None else
              ("primary" if parents[i] == primary else f"blk{parents[i]}")}
             for i, b in enumerate(spec.random) if i != primary]
    kwargs = dict(options)
    if fam.name == "gaussian":
        kwargs["sigma_prior"] = used["sigma"]
    if fam.dispersion is not None:
        kwargs["dispersion_prior"] = _family_priors(fam, used)
    kwargs.update(_cutpoint_prior(fam, used))
    kwargs.update(_zi_arguments(spec, used))
    # the primary's integer codes as its group labels: levels 0..m-1 in the blocks' order
    inner = glmm(spec.y, X, pd.DataFrame(main.Z, columns=main.terms), main.codes, family=fam,
                 trials=spec.trials if fam.needs_trials else None, offset=spec.offset,
                 weights=spec.weights,
                 prior=used["beta"], random_prior=used[keys[primary]], random_blocks=extra,
                 **mcmc, **kwargs)
    inner.attrs["primary_block"] = primary
    return inner


def _run_known_se(spec: ModelSpec, used, mcmc, options):
    from .hierarchical import hierarchical_normal

    if spec.weights is not None:
        raise ValueError("weights do not combine with known standard errors (se): the "
                         "standard errors already say how much each row counts")
    block = spec.random[0]
    if block.terms != ["Intercept"] or spec.fixed_names != ["Intercept"] or spec.offset is not None:
        raise ValueError(
            "with known standard errors (se) bglmm fits the hierarchical normal model "
            "y | se(s) ~ 1 + (1 | group): only an intercept and a random intercept"
        )
    mcmc = dict(mcmc)
    mcmc.pop("threads", None)  # a single-threaded sampler
    tau_prior = used.get("sd")
    if tau_prior is None:  # an InverseWishart(df, S) on a 1 x 1 covariance is IG(df/2, S/2)
        df, scale = used["Sigma"].to_arrays(1, "priors['Sigma']")
        tau_prior = P.InverseGamma(df / 2.0, float(scale[0, 0]) / 2.0)
    return hierarchical_normal(spec.y, block.groups, se=spec.se, mu_prior=used["beta"],
                               tau_prior=tau_prior, **mcmc, **options)


def _standardise_hierarchical_normal(inner: Fit) -> tuple[dict, dict, dict, list[str]]:
    """mu, tau, theta of the hierarchical normal model as beta, sd_Intercept, b = theta - mu,
    Sigma = tau^2 (the names of the mixed models), with theta kept."""
    post = inner.posterior
    mu, tau, theta = post["mu"], post["tau"], post["theta"]
    posterior = {"beta": mu[..., None], "sd_Intercept": tau, "b": (theta - mu[..., None])[..., None],
                 "Sigma": (tau**2)[..., None, None], "theta": theta}
    dims = {"beta": ["coef"], "b": ["group", "term"], "Sigma": ["term", "term_"],
            "theta": ["group"]}
    coords = {"coef": ["Intercept"], "term": ["Intercept"], "term_": ["Intercept"],
              "group": list(inner.coords["group"])}
    return posterior, dims, coords, ["beta", "sd_Intercept"]


# ---------------------------------------------------------------------------------------------
# the fit object


def _factor_blocks(spec: ModelSpec) -> dict[str, list[int]]:
    """Each grouping factor (in order of appearance) and the indices of its blocks."""
    out: dict[str, list[int]] = {}
    for i, b in enumerate(spec.random):
        out.setdefault(b.factor, []).append(i)
    return out


def _name_by_factor(inner: Fit, posterior: dict, dims: dict, coords: dict, summary_vars: list[str],
                    spec: ModelSpec, primary: int):
    """The random effects named by their grouping factor f (brms's convention):
    ``sd_<f>__<term>``, ``cor_<f>__<a>__<b>`` (within a correlated block), ``b_<f>`` (dims
    ``<f>``, ``<f>__term``) and ``Sigma_<f>`` (block-diagonal over the factor's blocks). The
    sampler's own names (its primary block's ``b``/``Sigma``, the others' ``*_blk<i>``) go."""
    def draws(i: int, what: str):
        name = what if i == primary else f"{what}_blk{i}"
        return posterior.get(name)

    own = ("beta", "cutpoint", "sigma", "icc", "theta", "zi_beta") + DISPERSION_VARIABLES
    keep = {k: v for k, v in posterior.items() if k in own}  # (not per factor)
    new_dims = {k: v for k, v in dims.items() if k in keep}
    new_coords = {k: v for k, v in coords.items() if k in ("coef", "cutpoint_index", "zi_coef")}
    if "theta" in keep:
        new_coords["group"] = coords["group"]
    sds: list[str] = []
    cors: list[str] = []
    for f, idx in _factor_blocks(spec).items():
        terms = [t for i in idx for t in spec.random[i].terms]
        if len(set(terms)) < len(terms):
            raise ValueError(f"the random-effect blocks on {f!r} repeat a term ({terms}); "
                             "give each term once per grouping factor")
        sig = [draws(i, "Sigma") for i in idx]
        q = len(terms)
        shape = sig[0].shape[:2]
        Sigma = np.zeros(shape + (q, q))
        at = 0
        for i, s_i in zip(idx, sig):
            qi = spec.random[i].q
            Sigma[..., at:at + qi, at:at + qi] = s_i
            block_sds, block_cors = sd_cor_draws(s_i, list(spec.random[i].terms), f"sd_{f}__",
                                                 f"cor_{f}__")
            keep.update(block_sds)
            keep.update(block_cors)
            sds.extend(block_sds)
            cors.extend(block_cors)
            at += qi
        tdim = f"{f}__term"
        keep[f"Sigma_{f}"] = Sigma
        new_dims[f"Sigma_{f}"] = [tdim, tdim + "_"]
        new_coords[tdim] = terms
        new_coords[tdim + "_"] = terms
        bs = [draws(i, "b") for i in idx]
        if all(b is not None for b in bs):
            keep[f"b_{f}"] = np.concatenate(bs, axis=-1) if len(bs) > 1 else bs[0]
            new_dims[f"b_{f}"] = [f, tdim]
            # one block: the sampler's own level order; several: the codes the blocks share
            new_coords[f] = (list(coords["group"]) if len(spec.random) == 1
                             else list(spec.random[idx[0]].levels))
    tail = [k for k in ("sigma",) + DISPERSION_VARIABLES + ("zi_beta", "icc")
            if k in summary_vars]
    head = ["beta"] + (["cutpoint"] if "cutpoint" in keep else [])
    return keep, new_dims, new_coords, head + sds + cors + tail


def _quantile_table(draws: np.ndarray, index: Any, prob: float = 0.95) -> pd.DataFrame:
    """mean, sd and central interval of draws shaped (samples, k)."""
    lo, hi = (1 - prob) / 2, (1 + prob) / 2
    return pd.DataFrame(
        {
            "mean": draws.mean(axis=0),
            "sd": draws.std(axis=0, ddof=1),
            f"{100 * lo:g}%": np.quantile(draws, lo, axis=0),
            "50%": np.median(draws, axis=0),
            f"{100 * hi:g}%": np.quantile(draws, hi, axis=0),
        },
        index=index,
    )


def _brms_table(draws: np.ndarray, index: Any, prob: float) -> pd.DataFrame:
    """Estimate (mean), Est.Error (sd) and the central `prob` interval (columns
    Q<lower>, Q<upper>) of draws shaped (samples, k), as brms's tables."""
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob!r}")
    lo, hi = (1 - prob) / 2, (1 + prob) / 2
    return pd.DataFrame({"Estimate": draws.mean(axis=0), "Est.Error": draws.std(axis=0, ddof=1),
                         f"Q{100 * lo:g}": np.quantile(draws, lo, axis=0),
                         f"Q{100 * hi:g}": np.quantile(draws, hi, axis=0)}, index=index)


class FormulaFit(Fit):
    """The posterior of a model fitted by :func:`bglmm.fit`.

    ``summary()`` (fixed effects, random-effect SDs and correlations, sigma), ``ranef()``,
    ``coef()``, ``predict(newdata, ...)``, ``to_inference_data()``, ``waic()``, ``loo()``,
    ``plot_trace()``, ``plot_forest()``, ``plot_ppc()``, ``conditional_effects(term)``,
    ``save(path)``; ``priors`` holds the priors used and ``spec`` the model arrays; ``inner`` is
    the array-level fit (None after :func:`bglmm.load`).
    """

    def __init__(self, posterior, *, spec: ModelSpec | None, formula: str, family: Family,
                 priors: dict[str, Any], kind: str, data: pd.DataFrame | None,
                 log_likelihood: Any = None, observed: Any = None,
                 arguments: dict[str, Any] | None = None, **kwargs: Any) -> None:
        interrupted = kwargs.pop("interrupted", False)
        super().__init__(posterior, **kwargs)
        self.interrupted = interrupted
        self.spec = spec
        self.formula = formula
        self.family = family
        self.priors = priors
        self.kind = kind
        self.inner: Fit | None = None
        self._data = data
        self._ll = log_likelihood
        self._obs = observed
        self._arguments = arguments or {}

    @classmethod
    def from_inner(cls, inner: Fit, spec: ModelSpec, data: pd.DataFrame, used: dict[str, Any],
                   *, kind: str, arguments: dict[str, Any]) -> FormulaFit:
        if spec.categories is not None:  # the cumulative family's labels, not their numbers
            inner.attrs["categories"] = [str(c) for c in spec.categories]
        if kind == "hierarchical_normal":
            posterior, dims, coords, summary_vars = _standardise_hierarchical_normal(inner)
        else:
            posterior, dims, coords = inner.posterior, inner.dims, dict(inner.coords)
            hidden = {"b", "Sigma", "theta"}
            summary_vars = [k for k in inner.summary_vars
                            if k not in hidden and "group" not in dims.get(k, [])]
        if spec.random:
            posterior, dims, coords, summary_vars = _name_by_factor(
                inner, posterior, dims, coords, summary_vars, spec,
                int(inner.attrs.get("primary_block", 0)))
        # the observation coordinate: the data's row labels when unique, else positions
        coords["obs"] = np.asarray(data.index) if data.index.is_unique else np.arange(len(data))
        columns = sorted(set(spec._columns) | _lhs_columns(spec, data) | {
            a for a in arguments.values() if isinstance(a, str) and a in data.columns})
        out = cls(
            posterior, spec=spec, formula=spec.formula, family=spec.family, priors=used,
            kind=kind, data=data[columns].reset_index(drop=True), log_likelihood=inner._log_likelihood,
            observed=inner._observed, arguments=arguments, dims=dims, coords=coords,
            sample_stats=inner.sample_stats, summary_vars=summary_vars, attrs=inner.attrs,
            seed=inner.seed, interrupted=inner.interrupted, sampler=inner.sampler,
        )
        out.inner = inner
        return out

    # ---- ArviZ ----------------------------------------------------------------------------
    def _log_likelihood(self):
        """The sampler's pointwise log-likelihood, else (after :func:`load`) one computed from
        the draws and the data; None when the group effects were not kept."""
        ll = self._ll() if callable(self._ll) else self._ll
        if ll is None and self.spec is not None:
            ll = self._pointwise_log_lik()
        return ll

    def _observed(self):
        obs = self._obs() if callable(self._obs) else self._obs
        if obs is None and self.spec is not None:
            obs = {"y": self.spec.y}
        return obs

    def _pointwise_log_lik(self) -> dict[str, np.ndarray] | None:
        """log p(y_i | draw) per draw and row, (chain, draw, obs), conditional on the group
        effects; None when they were not kept."""
        if any(f"b_{f}" not in self.posterior for f in self._factors()):
            return None
        spec = self.spec
        eta = self.predict(kind="link")  # (S, n)
        sd = None
        if self.family.name == "gaussian":
            sd = spec.se if spec.se is not None else self._flat("sigma")[:, None]
        n = spec.trials if self.family.needs_trials else None
        phi = phi2 = None
        if self.family.is_ordinal:
            ll = ordinal.log_density(spec.y, eta, self._flat("cutpoint"), self.family.link)
            return {"y": weighted_log_lik(ll, spec.weights).reshape(self.n_chains, self.n_draws,
                                                                    -1)}
        if self.family.dispersion is not None:
            phi, phi2 = self._row_params(slice(None), spec.zi_X)
        ll = _log_density(self.family, spec.y, eta, sd=sd, trials=n, phi=phi, phi2=phi2)
        return {"y": weighted_log_lik(ll, spec.weights).reshape(self.n_chains, self.n_draws, -1)}

    def to_inference_data(self, log_likelihood: bool = False, posterior_predictive: bool = False,
                          prior: bool = False):
        """ArviZ InferenceData: posterior (dims coef, group, term), sample_stats, observed_data,
        constant_data (the data columns the model uses); with ``log_likelihood=True`` the
        pointwise log-likelihood (dim obs; draws x rows numbers, so off by default —
        :meth:`loo` and :meth:`waic` compute it themselves); with
        ``posterior_predictive=True`` a draw of y per posterior draw
        (:meth:`posterior_predictive`, seeded by the fit's seed), for ``az.plot_ppc``; with
        ``prior=True`` the groups ``prior`` (:meth:`prior_draws`, one chain of as many draws as
        the posterior has) and ``prior_predictive`` (:meth:`prior_predictive`), for
        ``az.plot_ppc(..., group="prior")``."""
        idata = super().to_inference_data(log_likelihood=log_likelihood)
        if prior:
            self._add_prior_groups(idata)
        if posterior_predictive:
            import xarray as xr

            reps = self.posterior_predictive(seed=self.seed)
            obs = idata.observed_data["y"].coords["obs"].values
            idata.add_groups(posterior_predictive=xr.Dataset(
                {"y": (("chain", "draw", "obs"), reps.reshape(self.n_chains, self.n_draws, -1))},
                coords={"chain": idata.posterior.chain.values,
                        "draw": idata.posterior.draw.values, "obs": obs}))
        idata.posterior.attrs["formula"] = self.formula
        idata.posterior.attrs["family"] = self.family.name
        idata.posterior.attrs["link"] = self.family.link
        if self._data is not None:
            import xarray as xr

            variables = {}
            for c in self._data.columns:
                col = self._data[c]
                attrs = {}
                if isinstance(col.dtype, pd.CategoricalDtype):
                    attrs = {"categories": json.dumps([str(v) for v in col.cat.categories]),
                             "ordered": int(col.cat.ordered)}
                    col = col.astype(str)
                values = col.to_numpy()
                if values.dtype == object:
                    values = values.astype(str)
                variables[str(c)] = xr.DataArray(values, dims=["row"], attrs=attrs)
            idata.add_groups(constant_data=xr.Dataset(variables))
        return idata

    def _add_prior_groups(self, idata: Any) -> None:
        import xarray as xr

        size = self.n_chains * self.n_draws
        params, y = self._prior_sample(size, self.seed)
        coords = {"chain": [0], "draw": np.arange(size)}
        variables = {k: (("chain", "draw"), v[None]) for k, v in params.items() if v.ndim == 1}
        variables["beta"] = (("chain", "draw", "coef"), params["beta"][None])
        idata.add_groups(
            prior=xr.Dataset(variables, coords={**coords, "coef": list(self.coords["coef"])}),
            prior_predictive=xr.Dataset(
                {"y": (("chain", "draw", "obs"), y[None])},
                coords={**coords, "obs": idata.observed_data["y"].coords["obs"].values}))

    def _with_log_likelihood(self, what: str):
        """The InferenceData for loo()/waic() and the labels of its rows: rows of case weight 0
        are left out (they add nothing to the weighted log-likelihood, and a row whose terms are
        all 0 has no defined Pareto k)."""
        idata = self.to_inference_data(log_likelihood=True)
        if "log_likelihood" not in idata.groups():
            raise ValueError(f"{what} needs the group effects' draws, which were not kept "
                             "(keep_group_effects=False)")
        labels = self.coords.get("obs")
        weights = self.spec.weights if self.spec is not None else None
        if weights is not None and np.any(weights == 0):
            keep = np.flatnonzero(weights > 0)
            idata.log_likelihood = idata.log_likelihood.isel(obs=keep)
            if "observed_data" in idata.groups():
                idata.observed_data = idata.observed_data.isel(obs=keep)
            labels = None if labels is None else np.asarray(labels)[keep]
        return idata, labels

    def waic(self, **kwargs: Any):
        """WAIC by ArviZ from the pointwise log-likelihood; a :class:`~bglmm.BglmmWarning` names
        the rows whose log predictive density has posterior variance > 0.4 (WAIC unreliable)."""
        az = import_arviz()
        idata, labels = self._with_log_likelihood("waic()")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="For one or more samples",
                                    category=UserWarning)
            out = az.waic(idata, **kwargs)
        var = idata.log_likelihood["y"].values.reshape(-1, idata.log_likelihood["y"].shape[-1])
        bad = np.flatnonzero(np.var(var, axis=0, ddof=1) > 0.4)
        if bad.size:
            _warn_rows(bad, labels, "a posterior variance of the log "
                       "predictive density > 0.4", "WAIC is unreliable with them: use loo()")
        return out

    def loo(self, **kwargs: Any):
        """PSIS-LOO by ArviZ from the pointwise log-likelihood (pointwise: ``pareto_k`` per row;
        rows of case weight 0 are left out);
        a :class:`~bglmm.BglmmWarning` names the rows whose Pareto k exceeds ArviZ's threshold
        (``good_k``, 0.7 for 2,200 draws or more): their LOO estimate is unreliable."""
        az = import_arviz()
        idata, labels = self._with_log_likelihood("loo()")
        kwargs["pointwise"] = True
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto",
                                    category=UserWarning)
            out = az.loo(idata, **kwargs)
        k = np.asarray(out.pareto_k).reshape(-1)
        good = float(getattr(out, "good_k", 0.7))
        bad = np.flatnonzero(k > good)
        if bad.size:
            _warn_rows(bad, labels, f"Pareto k > {good:.2f} (max {k.max():.2f})",
                       "PSIS-LOO is unreliable for them (influential or badly fitted "
                       "observations): consider a more robust model, or exact leave-one-out "
                       "for these rows")
        return out

    # ---- diagnostics (the array-level fit knows its sampler) --------------------------------
    def _stuck_moves(self) -> list[str]:
        return self.inner._stuck_moves() if self.inner is not None else []

    def _sampler_warnings(self) -> None:
        if self.inner is not None:
            self.inner._sampler_warnings()

    # ---- tables ---------------------------------------------------------------------------
    def summary(self, var_names: list[str] | None = None, prob: float = 0.95) -> pd.DataFrame:
        """mean, sd, quantiles, mcse_mean, ess_bulk, ess_tail, r_hat of the fixed effects, the
        random-effect SDs and correlations, and sigma; ``table.attrs`` records the sampler."""
        table = super().summary(var_names, prob)
        table.attrs.update({"formula": self.formula, "family": str(self.family),
                            "sampler": self.sampler})
        return table

    def __str__(self) -> str:
        groups = ""
        if self.spec is not None and self.spec.random:
            parts = [f"{b.label}" for b in self.spec.random]
            levels = [f"{len(self.coords[f])} {f}" for f in self._factors() if f in self.coords]
            groups = f"; random effects {' + '.join(parts)}" + (
                f" ({', '.join(levels)} levels)" if levels else "")
        weights = ""
        if self.spec is not None and self.spec.weights is not None:
            w = self.spec.weights
            name = self.spec._weights_column
            weights = (f"case weights{f' {name!r}' if name else ''}: sum {w.sum():.6g} over "
                       f"{w.size} rows ({int((w == 0).sum())} of weight 0)\n")
        head = (f"bglmm fit: {self.formula}\n"
                f"family {self.family}{groups}\n{weights}"
                f"sampler: {self.sampler}; {self.n_chains} chains x {self.n_draws} draws; "
                f"seed {self.seed}\n")
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            return head + str(self.summary().round(3))

    def _flat(self, name: str) -> np.ndarray:
        x = self.posterior[name]
        return x.reshape((-1,) + x.shape[2:])

    def _core_dispersion(self, sel: Any = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """The family's parameters as the C++ core and the densities hold them (phi, phi2; zi
        as its odds), columns (draws, 1) of the selected flat draws."""
        n = self.n_chains * self.n_draws
        flat = {k: self._flat(k) for k in self.family.parameters + ("zi_beta",)
                if k in self.posterior}
        phi, phi2 = core_family_params(self.family, flat, self.attrs, (n,))
        return phi[sel][:, None], phi2[sel][:, None]

    def _row_params(self, sel: Any, zi_X: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_core_dispersion` with a zi formula's odds per row (its design ``zi_X``):
        arrays broadcasting to (draws, rows)."""
        from . import zero_inflation

        zi_beta = self._flat("zi_beta")[sel] if "zi_beta" in self.posterior else None
        return zero_inflation.row_params(self.family, *self._core_dispersion(sel), zi_beta, zi_X)

    def _factors(self) -> list[str]:
        """The grouping factors, in the formula's order (from the ``Sigma_<factor>`` variables)."""
        return [k[len("Sigma_"):] for k in self.posterior if k.startswith("Sigma_")]

    def _one_factor(self, factor: str | None, what: str) -> list[str]:
        factors = self._factors()
        if not factors:
            raise ValueError("this model has no random effects; see summary()")
        if factor is None:
            return factors
        if factor not in factors:
            raise ValueError(f"{what}: unknown grouping factor {factor!r}; the model has {factors}")
        return [factor]

    def ranef(self, prob: float = 0.95, factor: str | None = None):
        """Posterior of each level's random effects b_j (deviations from the fixed effects),
        index (level, term): a DataFrame for one grouping factor (``factor``, or the model's
        only one), else a dict {factor: DataFrame} (as lme4's ``ranef``)."""
        out = {}
        for f in self._one_factor(factor, "ranef"):
            if f"b_{f}" not in self.posterior:
                raise ValueError("the group effects were not kept (keep_group_effects=False)")
            b = self._flat(f"b_{f}")  # (S, G, q)
            idx = pd.MultiIndex.from_product([list(self.coords[f]), list(self.coords[f"{f}__term"])],
                                             names=[f, "term"])
            out[f] = _quantile_table(b.reshape(b.shape[0], -1), idx, prob)
        return next(iter(out.values())) if len(out) == 1 else out

    def coef(self, prob: float = 0.95, factor: str | None = None):
        """Posterior of the level-wise coefficients (fixed effect + the level's deviation, as
        lme4's ``coef``), index (level, coefficient); one DataFrame per grouping factor (a dict
        when there are several and ``factor`` is not given)."""
        beta = self._flat("beta")
        names = list(self.coords["coef"])
        out = {}
        for f in self._one_factor(factor, "coef"):
            if f"b_{f}" not in self.posterior:
                raise ValueError("the group effects were not kept (keep_group_effects=False)")
            b = self._flat(f"b_{f}")
            terms = list(self.coords[f"{f}__term"])
            levels = list(self.coords[f])
            cols = names + [t for t in terms if t not in names]
            vals = np.zeros((beta.shape[0], len(levels), len(cols)))
            for k, c in enumerate(cols):
                if c in names:
                    vals[:, :, k] += beta[:, [names.index(c)]]
                if c in terms:
                    vals[:, :, k] += b[:, :, terms.index(c)]
            idx = pd.MultiIndex.from_product([levels, cols], names=[f, "coef"])
            out[f] = _quantile_table(vals.reshape(vals.shape[0], -1), idx, prob)
        return next(iter(out.values())) if len(out) == 1 else out

    def fixef(self, prob: float = 0.95) -> pd.DataFrame:
        """The fixed effects (brms's ``fixef``): posterior mean (``Estimate``), sd
        (``Est.Error``) and the central ``prob`` interval, one row per coefficient."""
        return _brms_table(self._flat("beta"), pd.Index(list(self.coords["coef"]), name="coef"),
                           prob)

    def VarCorr(self, prob: float = 0.95) -> pd.DataFrame:  # noqa: N802 (lme4's and brms's name)
        """The random effects' SDs and correlations per grouping factor (lme4's and brms's
        ``VarCorr``), with posterior sd and central ``prob`` interval; index (factor,
        parameter) with parameters ``sd(<term>)`` and ``cor(<a>,<b>)`` (the posterior's
        ``sd_<f>__<term>`` and ``cor_<f>__<a>__<b>``), and ``("Residual", "sigma")`` for a
        gaussian model."""
        rows, labels = [], []
        for f in self._one_factor(None, "VarCorr"):
            terms = list(self.coords[f"{f}__term"])
            for t in terms:
                rows.append(self._flat(f"sd_{f}__{t}"))
                labels.append((f, f"sd({t})"))
            for a, ta in enumerate(terms):
                for tb in terms[a + 1:]:
                    if f"cor_{f}__{ta}__{tb}" in self.posterior:
                        rows.append(self._flat(f"cor_{f}__{ta}__{tb}"))
                        labels.append((f, f"cor({ta},{tb})"))
        if "sigma" in self.posterior:
            rows.append(self._flat("sigma"))
            labels.append(("Residual", "sigma"))
        index = pd.MultiIndex.from_tuples(labels, names=["factor", "parameter"])
        return _brms_table(np.column_stack(rows), index, prob)

    def sigma(self, prob: float = 0.95) -> pd.DataFrame:
        """The residual SD (gaussian; the Student-t's scale): posterior mean, sd and central
        interval."""
        if "sigma" not in self.posterior:
            why = ("the standard errors are known (se=)" if self.family.name == "gaussian"
                   else f"the {self.family.name} family has no residual SD")
            raise ValueError(f"sigma(): this model has no sigma: {why}")
        return _brms_table(self._flat("sigma")[:, None], pd.Index(["sigma"]), prob)

    def hypothesis(self, hypothesis: str | list[str], prob: float = 0.95) -> pd.DataFrame:
        """Posterior of hypotheses about the fixed effects (brms's ``hypothesis``), e.g.
        ``"x1 - x2 > 0"``, ``"C(period)[2] = C(period)[3]"``, ``"2 * x1 < x2 + 1"``: each
        side is numbers, fixed-effect names (as in ``fixef()``; ``beta[name]`` also works),
        ``+ - * /`` and parentheses (parsed, never evaluated as Python). One row per
        hypothesis: the estimate of left - right, its sd and central ``prob`` interval and, for
        ``>`` and ``<``, ``Post.Prob`` — the posterior probability that the hypothesis holds."""
        from ._hypothesis import parse

        items = [hypothesis] if isinstance(hypothesis, str) else list(hypothesis)
        beta = self._flat("beta")
        names = [str(n) for n in self.coords["coef"]]
        cols, probs = [], []
        for h in items:
            diff, op = parse(h, names, beta)
            cols.append(diff)
            probs.append(np.nan if op == "=" else float(np.mean(diff > 0 if op == ">" else diff < 0)))
        out = _brms_table(np.column_stack(cols), pd.Index(items, name="hypothesis"), prob)
        out["Post.Prob"] = probs
        return out

    # ---- prediction -----------------------------------------------------------------------
    def predict(self, newdata: pd.DataFrame | None = None, *, groups: str = "existing",
                kind: str = "mean", draws: int | None = None, trials: Any = None,
                offset: Any = None, se: Any = None, seed: int | None = None,
                allow_new_levels: bool = False) -> np.ndarray:
        """Posterior (predictive) draws for the rows of ``newdata`` (default: the data).

        Returns an array (samples, rows): all chains' draws, or ``draws`` of them evenly spaced.

        groups : ``"existing"`` — use each row's fitted effects, per grouping factor (unknown
            levels are an error unless ``allow_new_levels``); ``"new"`` — draw fresh effects
            b ~ N(0, Sigma_f) for each distinct level of every factor in newdata (new groups of
            the population); ``"none"`` — fixed effects only.
        allow_new_levels : with ``groups="existing"``, levels not in the fitted data get fresh
            effects from their factor's population (brms's ``allow_new_levels``), per factor;
            known levels keep their posterior.
        kind : ``"link"`` (the linear predictor), ``"mean"`` (inverse link: mean, rate or
            probability; the zero-inflated families' expected response (1 - zi) mu, brms's
            ``posterior_epred``) or ``"response"`` (a draw of y; binomial needs ``trials``, a column
            name or array, unless the fitted trials column is in newdata). The cumulative
            family: ``"mean"`` gives the category probabilities, (samples, rows, K), and
            ``"response"`` draws of the categories' numbers 1 .. K (``fit.attrs["categories"]``
            names them).
        """
        if self.spec is None:
            raise ValueError("the model design is not available (the formula could not be rebuilt)")
        if groups not in ("existing", "new", "none"):
            raise ValueError(f"groups must be 'existing', 'new' or 'none', got {groups!r}")
        if kind not in ("link", "mean", "response"):
            raise ValueError(f"kind must be 'link', 'mean' or 'response', got {kind!r}")
        spec = self.spec
        rng = np.random.default_rng(seed)
        if newdata is None:
            X = spec.X
            blocks = [(blk.Z, blk.groups) for blk in spec.random]
            off = spec.offset if spec.offset is not None else np.zeros(spec.n)
            if offset is not None:
                raise ValueError("offset= applies to newdata only")
            zi_X = spec.zi_X
        else:
            d = spec.new_design(newdata, offset=offset)
            X, blocks, off, zi_X = d["X"], d["blocks"], d["offset"], d["zi_X"]
        beta = self._flat("beta")
        total = beta.shape[0]
        if draws is None:
            sel = np.arange(total)
        else:
            if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
                raise ValueError(f"draws must be a positive integer, got {draws!r}")
            sel = np.unique(np.linspace(0, total - 1, min(int(draws), total)).round().astype(int))
        eta = beta[sel] @ X.T + off
        if blocks and groups != "none":
            by_factor: dict[str, list[int]] = {}
            for i, blk in enumerate(spec.random):
                by_factor.setdefault(blk.factor, []).append(i)
            for f, idx in by_factor.items():
                Z = np.column_stack([blocks[i][0] for i in idx]) if len(idx) > 1 else blocks[idx[0]][0]
                labels = blocks[idx[0]][1]
                eta = eta + self._factor_part(f, Z, labels, sel, groups, allow_new_levels, rng)
        if kind == "link":
            return eta
        if self.family.is_ordinal:
            return ordinal.predict_from_eta(kind, eta, self._flat("cutpoint")[sel],
                                            self.family.link, rng)
        mu = inverse_link(self.family.link, eta)
        if kind == "mean":  # the zero-inflated families: (1 - zi) mu, brms's posterior_epred
            if not self.family.is_zero_inflated:
                return mu
            return response_mean(self.family.name, mu, *self._row_params(sel, zi_X))
        fam = self.family.name
        if fam == "gaussian":
            if spec.se is not None:
                s = spec.se if newdata is None else self._row_values(se, spec._se_column, newdata, "se")
                return rng.normal(mu, s)
            sigma = self._flat("sigma")[sel]
            return rng.normal(mu, sigma[:, None])
        n = None
        if fam == "bernoulli":
            n = np.ones(mu.shape[1])
        elif not self.family.has_trials:
            pass
        elif newdata is None:
            n = spec.trials
        else:
            n = self._row_values(trials, spec._trials_column, newdata, "trials") \
                if trials is not None or spec._trials_column is not None \
                else self._response_trials(newdata)
        phi, phi2 = (self._row_params(sel, zi_X) if self.family.dispersion is not None
                     else (1.0, 1.0))
        return draw_response(rng, fam, mu, trials=n, phi=phi, phi2=phi2)

    def posterior_predictive(self, draws: int | None = None, seed: int | None = None) -> np.ndarray:
        """Replicated data (brms's ``posterior_predict``): one draw of the response for every
        row of the data per posterior draw, an array (samples, rows) — all chains' draws in
        order, or ``draws`` of them evenly spaced; ``predict(kind="response")`` on the data."""
        return self.predict(kind="response", draws=draws, seed=seed)

    def prior_draws(self, draws: int = 1000, seed: int | None = None) -> dict[str, np.ndarray]:
        """Draws from the prior (brms's ``sample_prior``), under the posterior's names:
        ``beta`` (draws, coefficients), ``sigma``, a family's dispersion (``phi``, ``shape``,
        ``zi``), ``sd_<f>__<term>`` and ``cor_<f>__<a>__<b>``; with :meth:`prior_predictive` (same ``draws`` and ``seed``), the
        data they imply."""
        return self._prior_sample(draws, seed)[0]

    def prior_predictive(self, draws: int = 1000, seed: int | None = None) -> np.ndarray:
        """Prior predictive draws of y for the data's rows, (draws, rows): parameters from
        the prior (:meth:`prior_draws`), the random effects of the data's levels from their
        covariance, then y — for prior predictive checks."""
        return self._prior_sample(draws, seed)[1]

    def _prior_sample(self, draws: int, seed: int | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        from . import _prior

        spec = self.spec
        if spec is None or any(isinstance(v, str) for v in self.priors.values()):
            raise ValueError("prior draws need the fit's priors and design, which a fit read by "
                             "bglmm.load does not have (its priors are stored as text)")
        if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
            raise ValueError(f"draws must be a positive integer, got {draws!r}")
        rng = np.random.default_rng(seed)
        out: dict[str, np.ndarray] = {}
        sigma = None
        if self.family.name == "gaussian" and spec.se is None:
            sigma = _prior.sd_draws(self.priors["sigma"], draws, rng)
            out["sigma"] = sigma
        conditional = self.priors.get("beta (conjugate, per unit sigma)")
        m0, V0 = (conditional or self.priors["beta"]).to_arrays(spec.X.shape[1], "priors['beta']")
        z = rng.standard_normal((draws, len(m0))) @ np.linalg.cholesky(V0).T
        out["beta"] = m0 + (z * sigma[:, None] if conditional is not None else z)
        eta = out["beta"] @ spec.X.T + (spec.offset if spec.offset is not None else 0.0)
        keys = _block_keys(spec)
        for f, idx in _factor_blocks(spec).items():
            for i in idx:
                block = spec.random[i]
                prior = (_covariance_prior(self.priors, block) if len(spec.random) == 1
                         else self.priors[keys[i]])
                cov = _prior.covariance_draws(prior, block.q, draws, rng)
                for part in sd_cor_draws(cov, list(block.terms), f"sd_{f}__", f"cor_{f}__"):
                    out.update(part)
                L = np.linalg.cholesky(cov + 1e-300 * np.eye(block.q))
                b = np.einsum("sqr,slr->slq", L, rng.standard_normal((draws, len(block.levels),
                                                                     block.q)))
                eta = eta + np.einsum("snq,nq->sn", b[:, block.codes, :], block.Z)
        sd = spec.se if spec.se is not None else (sigma[:, None] if sigma is not None else None)
        trials = spec.trials if self.family.needs_trials else None
        params = {}
        for name in self.family.parameters:
            params[name] = _prior.dispersion_draws(self.priors[name], name, draws, rng)
        out.update(params)
        if spec.zi_X is not None:  # zi at the means and the slopes -> zi per row
            from . import zero_inflation

            z = _zi_design(spec, self.priors["zi_beta"])
            slopes = rng.standard_normal((draws, len(z.slopes))) * z.prior_sd
            zi = out.pop("zi")
            out["zi_beta"] = z.coefficients(zi / (1.0 - zi), slopes)
            odds = zero_inflation.row_odds(out["zi_beta"], spec.zi_X)
            params["zi"] = odds / (1.0 + odds)
        if self.family.is_ordinal:  # the order statistics of K - 1 draws from N(0, s^2)
            s = ordinal.cutpoint_sd(self.priors["cutpoints"])
            cut = np.sort(s * rng.standard_normal((draws, len(self.attrs["categories"]) - 1)), axis=1)
            out["cutpoint"] = cut
            return out, ordinal.draw_categories(rng, eta, cut, self.family.link)
        return out, _prior.response_draws(self.family, eta, rng, sd=sd, trials=trials,
                                          params=params)

    def _factor_part(self, f: str, Z: np.ndarray, labels: Any, sel: np.ndarray, groups: str,
                     allow_new_levels: bool, rng: np.random.Generator) -> np.ndarray:
        """Draws (S, rows) of z_i' b_{f, level(i)} for one grouping factor."""
        levels = pd.Index(self.coords[f])
        if groups == "existing":
            codes = _match_levels(levels, labels)
            unknown = codes < 0
            if unknown.any() and not allow_new_levels:
                bad = pd.unique(pd.Series(labels)[unknown])
                raise ValueError(
                    f"newdata has level(s) {list(bad[:5])} of {f!r} that are not in the fitted "
                    "data; use groups='new' to draw effects for new groups, or "
                    "allow_new_levels=True to draw them for the unseen levels only")
            if f"b_{f}" not in self.posterior:
                raise ValueError("the group effects were not kept (keep_group_effects=False)")
            b = self._flat(f"b_{f}")[sel]  # (S, G, q)
            part = np.einsum("snq,nq->sn", b[:, np.where(unknown, 0, codes), :], Z)
            if not unknown.any():
                return part
            new_codes, new_levels = pd.factorize(pd.Series(labels)[unknown])
            fresh = self._new_effects(f, sel, len(new_levels), rng)
            part[:, unknown] = np.einsum("snq,nq->sn", fresh[:, new_codes, :], Z[unknown])
            return part
        new_codes, new_levels = pd.factorize(pd.Series(labels))
        fresh = self._new_effects(f, sel, len(new_levels), rng)
        return np.einsum("snq,nq->sn", fresh[:, new_codes, :], Z)

    def _new_effects(self, f: str, sel: np.ndarray, n_levels: int,
                     rng: np.random.Generator) -> np.ndarray:
        """Effects (S, n_levels, q) of new levels of factor f, b ~ N(0, Sigma_f) per draw."""
        cov = self._flat(f"Sigma_{f}")[sel]
        L = np.linalg.cholesky(cov + 1e-300 * np.eye(cov.shape[-1]))
        u = rng.standard_normal((len(sel), n_levels, cov.shape[-1]))
        return np.einsum("sqr,slr->slq", L, u)

    def _response_trials(self, newdata: pd.DataFrame) -> np.ndarray:
        """Trials for new rows from the response's own columns (cbind(s, f), s / n)."""
        from .formula import response_trials

        n = response_trials(self.formula, self.family, newdata)
        if n is None:
            raise ValueError("trials= (a column name or array) is needed to predict responses "
                             "for newdata")
        return n

    @staticmethod
    def _row_values(value: Any, column: str | None, newdata: pd.DataFrame, what: str) -> np.ndarray:
        from .formula import _column_or_array

        if value is None and column is not None and column in newdata.columns:
            value = column
        if value is None:
            raise ValueError(f"{what}= (a column name or array) is needed to predict responses for newdata")
        return _column_or_array(value, newdata.reset_index(drop=True), what)

    # ---- plots and files ------------------------------------------------------------------
    def plot_trace(self, var_names: list[str] | None = None, **kwargs: Any):
        """Histogram and trace of each summary parameter, one row each on its own scale."""
        from .plots import plot_trace

        return plot_trace(self, var_names, **kwargs)

    def plot_forest(self, var_names: list[str] | None = None, **kwargs: Any):
        """Posterior means and 95% central intervals (the summary's; ``prob=``), one panel per
        group of parameters; ``["b_<factor>"]`` for the group effects."""
        from .plots import plot_forest

        return plot_forest(self, var_names, **kwargs)

    def plot_ppc(self, num_pp_samples: int = 100, seed: int | None = 0, **kwargs: Any):
        """Posterior predictive check: replicated data sets against y (bars for a discrete
        response, densities for a continuous one)."""
        from .plots import plot_ppc

        return plot_ppc(self, num_pp_samples=num_pp_samples, seed=seed, **kwargs)

    def conditional_effects(self, term: str, **kwargs: Any):
        """Plot of the expected response over one predictor column with its 95% interval, the
        other predictors at their mean or reference level, no group effects (brms's
        ``conditional_effects``); ``prob=``, ``points=``."""
        from .plots import conditional_effects

        return conditional_effects(self, term, **kwargs)

    def save(self, path: str, log_likelihood: bool = False) -> None:
        """Write the fit to a NetCDF file (ArviZ InferenceData with the data columns the model
        uses); :func:`bglmm.load` reads it back, ready to summarise, plot, predict and compute
        ``loo()``/``waic()`` (the pointwise log-likelihood, draws x rows numbers, is stored only
        with ``log_likelihood=True``: it is recomputed from the draws and the data)."""
        idata = self.to_inference_data(log_likelihood=log_likelihood)
        attrs = idata.posterior.attrs
        attrs["bglmm_kind"] = self.kind
        attrs["bglmm_summary_vars"] = json.dumps(self.summary_vars)
        attrs["bglmm_priors"] = json.dumps({k: repr(v) for k, v in self.priors.items()})
        attrs["bglmm_dims"] = json.dumps(self.dims)
        args = {}
        for k, v in self._arguments.items():
            if v is None:
                continue
            if isinstance(v, str):
                args[k] = v
            else:
                idata.constant_data[f"_bglmm_{k}"] = ("row", np.asarray(v, dtype=float).reshape(-1))
                args[k] = f"_bglmm_{k}"
        attrs["bglmm_arguments"] = json.dumps(args)
        # NetCDF has no boolean type: store booleans as int8 (attributes as ints)
        for group in idata.groups():
            ds = idata[group]
            for name in list(ds.data_vars):
                if ds[name].dtype == bool:
                    ds[name] = ds[name].astype(np.int8)
            for k, v in list(ds.attrs.items()):
                if isinstance(v, (bool, np.bool_)):
                    ds.attrs[k] = int(v)
        top = dict(idata.attrs or {})
        if any(isinstance(v, (bool, np.bool_)) for v in top.values()):
            idata.attrs = {k: int(v) if isinstance(v, (bool, np.bool_)) else v for k, v in top.items()}
        idata.to_netcdf(str(path), engine="h5netcdf")


def _cutpoint_prior(family: Family, used: dict[str, Any]) -> dict[str, Any]:
    """The cumulative family's keyword for its cutpoints' prior (none for the others)."""
    return {"cutpoint_prior": used["cutpoints"]} if family.is_ordinal else {}


def _family_priors(family: Family, used: dict[str, Any]) -> dict[str, Any] | None:
    """The priors of the family's parameters (phi, shape, zi) by name, None if it has none."""
    return {k: used[k] for k in family.parameters} or None


def _log_density(family: Family, y: np.ndarray, eta: np.ndarray, *, sd: Any = None,
                 trials: Any = None, phi: Any = None, phi2: Any = None) -> np.ndarray:
    """log p(y | eta) elementwise for draws eta (S, n) of the linear predictor, with the
    normalising constants (as the samplers' pointwise log-likelihood); ``phi`` the dispersion
    of the negbinomial, gamma and beta_binomial families."""
    from math import lgamma

    lgam = np.frompyfunc(lgamma, 1, 1)
    if family.name == "gaussian":
        z = (y - eta) / sd
        return -0.5 * z**2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
    if family.dispersion is not None:
        return _dispersion_log_density(family, y, eta, trials, phi, phi2)
    mu = inverse_link(family.link, eta)
    if family.name == "poisson":
        with np.errstate(divide="ignore"):
            log_mu = np.log(mu)
        return np.where(y > 0, y * log_mu, 0.0) - mu - lgam(y + 1.0).astype(float)
    n = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
    const = (lgam(n + 1.0) - lgam(y + 1.0) - lgam(n - y + 1.0)).astype(float)
    with np.errstate(divide="ignore"):
        log_p, log_q = np.log(mu), np.log1p(-mu)
    return const + np.where(y > 0, y * log_p, 0.0) + np.where(n - y > 0, (n - y) * log_q, 0.0)


def _dispersion_log_density(family: Family, y: np.ndarray, eta: np.ndarray, trials: Any,
                            phi: Any, phi2: Any = None) -> np.ndarray:
    """log p(y | eta, phi[, phi2]) of the families with a dispersion (negbinomial NB2, gamma
    with shape phi, beta_binomial with p ~ Beta(phi mu, phi (1 - mu)), zero_inflated_poisson with
    the odds phi of a structural zero, zero_inflated_negbinomial: NB2 with phi and the odds phi2
    of a structural zero)."""
    from scipy import special, stats

    phi = np.asarray(phi, dtype=float)
    if family.name in ("negbinomial", "zero_inflated_negbinomial"):
        # log mu / (mu + phi) = -log1p(phi / mu), stably in eta
        l_ratio = -np.logaddexp(0.0, np.log(phi) - eta)          # log(mu / (mu + phi))
        l_rest = -np.logaddexp(0.0, eta - np.log(phi))           # log(phi / (mu + phi))
        nb = (special.gammaln(y + phi) - special.gammaln(phi) - special.gammaln(y + 1.0)
              + np.where(y > 0, y * l_ratio, 0.0) + phi * l_rest)
        if family.name == "negbinomial":
            return nb
        odds = np.asarray(phi2, dtype=float)  # of a structural zero
        return np.where(y > 0, nb, np.logaddexp(np.log(odds), phi * l_rest)) - np.log1p(odds)
    if family.name == "gamma":
        return (phi * np.log(phi) - special.gammaln(phi) + (phi - 1.0) * np.log(y)
                - phi * eta - phi * y * np.exp(-eta))
    if family.name == "student":  # scale phi, degrees of freedom phi2
        return stats.t.logpdf(y, np.asarray(phi2, dtype=float), loc=eta, scale=phi)
    if family.name == "zero_inflated_poisson":  # phi: the odds of a structural zero
        mu = np.exp(eta)
        log_zero = np.logaddexp(np.log(phi), -mu)                # log(phi + e^-mu)
        log_count = y * eta - mu - special.gammaln(y + 1.0)
        return np.where(y > 0, log_count, log_zero) - np.log1p(phi)
    n = np.asarray(trials, dtype=float)
    mu = np.clip(inverse_link(family.link, eta), 1e-300, 1.0 - 1e-16)
    a, b = phi * mu, phi * (1.0 - mu)
    return (special.gammaln(n + 1.0) - special.gammaln(y + 1.0) - special.gammaln(n - y + 1.0)
            + special.betaln(y + a, n - y + b) - special.betaln(a, b))


def _warn_rows(rows: np.ndarray, labels: Any, what: str, advice: str) -> None:
    """One BglmmWarning: 'N observations have <what>: rows a, b, ... <advice>.' (the data's
    row labels)."""
    from .results import user_stacklevel
    from .warnings import BglmmWarning

    names = [str(labels[i]) if labels is not None else str(i) for i in rows[:10]]
    more = f" and {rows.size - 10} more" if rows.size > 10 else ""
    noun = "observation has" if rows.size == 1 else "observations have"
    warnings.warn(f"{rows.size} {noun} {what}: rows {', '.join(names)}{more}. {advice}.",
                  BglmmWarning, stacklevel=user_stacklevel())


def _match_levels(levels: pd.Index, labels: Any) -> np.ndarray:
    labels = pd.Series(labels).reset_index(drop=True)
    codes = levels.get_indexer(labels)
    if np.any(codes < 0):  # 1 vs "1" after a round trip through files: compare as strings
        alt = pd.Index([str(v) for v in levels]).get_indexer(labels.astype(str))
        codes = np.where(codes < 0, alt, codes)
    return codes


def _lhs_columns(spec: ModelSpec, data: pd.DataFrame) -> set[str]:
    from .formula import _lhs_variables, _parse

    return {c for c in _lhs_variables(_parse(spec.formula).left) if c in data.columns}


def load(path: str) -> FormulaFit:
    """Read a fit written by :meth:`FormulaFit.save`.

    The draws, names, sample statistics, log-likelihood and the data columns come back as
    saved; the design is rebuilt from the formula and those columns, so ``predict`` works as on
    the original fit. ``priors`` holds the priors' text representations.
    """
    az = import_arviz()
    from formulae.environment import Environment

    from .families import resolve_family

    idata = az.from_netcdf(str(path), engine="h5netcdf")
    attrs = {**dict(idata.attrs or {}), **dict(idata.posterior.attrs)}
    if "formula" not in attrs or "bglmm_kind" not in attrs:
        raise ValueError(f"{path} was not written by bglmm's FormulaFit.save")
    formula = str(attrs["formula"])
    family = resolve_family(str(attrs["family"]), str(attrs["link"]))
    dims = {k: list(v) for k, v in json.loads(attrs["bglmm_dims"]).items()}
    posterior = {k: idata.posterior[k].values for k in idata.posterior.data_vars}
    coords = {}
    for k in idata.posterior.coords:
        if k not in ("chain", "draw"):
            coords[k] = list(idata.posterior.coords[k].values)
    sample_stats = ({k: idata.sample_stats[k].values for k in idata.sample_stats.data_vars}
                    if "sample_stats" in idata.groups() else {})
    ll = ({k: idata.log_likelihood[k].values for k in idata.log_likelihood.data_vars}
          if "log_likelihood" in idata.groups() else None)
    obs = ({k: idata.observed_data[k].values for k in idata.observed_data.data_vars}
           if "observed_data" in idata.groups() else None)
    if obs is not None and "obs" in idata.observed_data.coords:
        coords["obs"] = list(idata.observed_data.coords["obs"].values)
    data = None
    args: dict[str, Any] = {}
    spec = None
    if "constant_data" in idata.groups():
        cd = idata.constant_data
        data = pd.DataFrame({k: cd[k].values for k in cd.data_vars if not str(k).startswith("_bglmm_")})
        for k in data.columns:
            a = cd[k].attrs
            if "categories" in a:
                data[k] = pd.Categorical(data[k].astype(str), categories=json.loads(a["categories"]),
                                         ordered=bool(a["ordered"]))
        for k, v in json.loads(attrs.get("bglmm_arguments", "{}")).items():
            args[k] = cd[v].values if v.startswith("_bglmm_") else v
        try:
            spec = build_spec(formula, data, family, trials=args.get("trials"),
                              offset=args.get("offset"), se=args.get("se"),
                              weights=args.get("weights"), zi=args.get("zi"),
                              env=Environment([{}]))
        except Exception as err:  # e.g. a user function the formula called is not defined here
            warnings.warn(f"bglmm.load: the model design could not be rebuilt ({err}); "
                          "predict() is unavailable", stacklevel=2)
    out = FormulaFit(
        posterior, spec=spec, formula=formula, family=family,
        priors=json.loads(attrs.get("bglmm_priors", "{}")), kind=str(attrs["bglmm_kind"]),
        data=data, log_likelihood=ll, observed=obs, arguments=args, dims=dims, coords=coords,
        sample_stats=sample_stats, summary_vars=json.loads(attrs["bglmm_summary_vars"]),
        attrs={k: v for k, v in attrs.items() if not str(k).startswith("bglmm_")},
        seed=int(attrs["seed"]) if "seed" in attrs else None,
        interrupted=bool(int(attrs.get("interrupted", 0))), sampler=str(attrs.get("sampler", "")),
    )
    return out
