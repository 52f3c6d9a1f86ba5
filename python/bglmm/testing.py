"""Simulators with known parameters, and the calibration machinery shared by the test suite
and the scripts under ``validation/``.

* ``simulate_glm``, ``simulate_hierarchical_normal``, ``simulate_lmm``, ``simulate_glmm`` draw
  data sets from the models bglmm fits, returning the data and the true parameters.
* Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari and Gelman 2018,
  "Validating Bayesian inference algorithms with simulation-based calibration"):
  ``SbcCase`` describes one model x sampler (how to draw parameters from the prior and data from
  the model, and how to fit), ``sbc_ranks`` records the rank of every true parameter among L
  thinned posterior draws, and ``rank_uniformity`` tests the ranks for uniformity on
  {0, ..., L} with a chi-square test and directed z-scores of the rank mean and variance.
  ``glm_sbc_case``, ``hierarchical_normal_sbc_case``, ``lmm_sbc_case`` and ``glmm_sbc_case``
  build the cases of each sampler (``cumulative_sbc_case`` those of the cumulative ordinal
  family, GLM and GLMM); ``sbc_cases()`` lists them all.
* An exact reference for the variance components of a gaussian LMM with several
  intercept-only random factors, crossed or nested (``lmm_variance_posterior``): beta and the
  random effects integrate out in closed form through the Woodbury identity
  (``lmm_log_marginal_likelihood``; the restricted likelihood ``lmm_reml_log_likelihood`` and
  its maximiser ``lmm_reml_estimates`` share the code), the SDs and sigma by quadrature on an
  adaptive tensor grid over their logs; ``scale_prior_logpdf``, ``lmm_default_priors`` and
  ``lmm_reference_priors`` turn bglmm's prior objects into the densities it takes.
* Joint-distribution tests (Geweke 2004, "Getting it right"): ``geweke_test`` compares the
  marginal-conditional simulator (parameters from the prior, data from the model) with the
  successive-conditional simulator (alternate a posterior update and a fresh data draw) on the
  first two moments of chosen functionals, with autocorrelation-based standard errors for the
  (autocorrelated) successive-conditional chain; ``glm_geweke`` and
  ``hierarchical_normal_geweke`` set it up for those samplers.

Only NumPy is needed to simulate; the tests themselves use SciPy (``rank_uniformity``, and the
LMM reference for its optimisation, special functions and splines).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import families
from .families import inverse_link, resolve_family, to_core

__all__ = [
    "Simulated",
    "inverse_link",
    "draw_response",
    "simulate_glm",
    "simulate_hierarchical_normal",
    "simulate_lmm",
    "simulate_glmm",
    "SbcCase",
    "sbc_ranks",
    "rank_uniformity",
    "glm_sbc_case",
    "glm_sbc_cases",
    "hierarchical_sbc_cases",
    "sbc_cases",
    "glmm_sbc_cases",
    "glmm_dispersion_sbc_cases",
    "hierarchical_normal_sbc_case",
    "lmm_sbc_case",
    "glmm_sbc_case",
    "default_prior_sbc_cases",
    "wrong_default_prior_sbc_cases",
    "cumulative_sbc_case",
    "cumulative_sbc_cases",
    "wrong_cumulative_sbc_cases",
    "lmm_default_sbc_case",
    "glmm_default_sbc_case",
    "GewekeResult",
    "geweke_test",
    "glm_geweke",
    "hierarchical_normal_geweke",
    "batch_means_se",
    "mcse_mean",
    "REFERENCE_PROBS",
    "VariancePosterior",
    "lmm_log_marginal_likelihood",
    "lmm_reml_log_likelihood",
    "lmm_reml_estimates",
    "lmm_variance_posterior",
    "scale_prior_logpdf",
    "lmm_default_priors",
    "lmm_reference_priors",
]


# ---------------------------------------------------------------------------------------------
# Simulators
# ---------------------------------------------------------------------------------------------
@dataclass
class Simulated:
    """A simulated data set: ``data`` holds the arrays a sampler takes, ``params`` the truth."""

    data: dict[str, Any]
    params: dict[str, Any]


def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def draw_response(rng: np.random.Generator, family: str, link: str, eta: np.ndarray,
                  *, trials: np.ndarray | None = None, sigma: float | np.ndarray = 1.0,
                  phi: float | np.ndarray = 1.0, phi2: float | np.ndarray = 1.0) -> np.ndarray:
    """One draw of y given the linear predictor, as float64 (``phi``, ``phi2``: the family's
    parameters as the C++ core holds them)."""
    return families.draw_response(rng, family, inverse_link(link, eta), trials=trials,
                                  sigma=sigma, phi=phi, phi2=phi2)


def _design(rng: np.random.Generator, n: int, p: int) -> np.ndarray:
    """Intercept plus p - 1 standard-normal covariates."""
    return np.column_stack([np.ones(n), rng.standard_normal((n, p - 1))]) if p > 1 else np.ones((n, 1))


def simulate_glm(n: int, beta: Sequence[float], family: str = "gaussian", link: str | None = None,
                 *, X: np.ndarray | None = None, sigma: float = 1.0, trials: Any = None,
                 offset: np.ndarray | None = None, seed: Any = None) -> Simulated:
    """Data from y_i ~ F(h(offset_i + x_i' beta)).

    X defaults to an intercept plus standard-normal covariates; ``trials`` (binomial) is an
    integer or an array, default 10; ``sigma`` is the gaussian residual sd.
    """
    rng = _rng(seed)
    fam = resolve_family(family, link)
    beta = np.asarray(beta, dtype=float)
    X = _design(rng, n, beta.size) if X is None else np.asarray(X, dtype=float)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
    if fam.name == "binomial":
        t = np.full(n, 10.0) if trials is None else np.broadcast_to(np.asarray(trials, float), (n,)).copy()
    elif fam.name == "bernoulli":
        t = np.ones(n)
    else:
        t = None
    y = draw_response(rng, fam.name, fam.link, off + X @ beta, trials=t, sigma=sigma)
    data: dict[str, Any] = {"X": X, "y": y, "family": fam.name, "link": fam.link}
    if fam.name == "binomial":
        data["trials"] = t
    if offset is not None:
        data["offset"] = off
    params: dict[str, Any] = {"beta": beta}
    if fam.name == "gaussian":
        params["sigma"] = float(sigma)
    return Simulated(data, params)


def _group_index(rng: np.random.Generator, n_groups: int, rows: Any) -> np.ndarray:
    sizes = np.broadcast_to(np.asarray(rows, dtype=np.int64), (n_groups,))
    if np.any(sizes < 1):
        raise ValueError("every group needs at least one row")
    return np.repeat(np.arange(n_groups), sizes)


def simulate_hierarchical_normal(n_groups: int, mu: float, tau: float, *, sigma: Any = 1.0,
                                 rows: Any = 1, seed: Any = None) -> Simulated:
    """y_ij ~ N(theta_j, sigma_j^2), theta_j ~ N(mu, tau^2).

    ``rows`` observations per group (an integer or one per group); ``sigma`` a scalar or one
    per group (with ``rows=1`` and known sigma_j this is the Efron-Morris / eight-schools set-up).
    """
    rng = _rng(seed)
    theta = rng.normal(mu, tau, size=n_groups)
    group = _group_index(rng, n_groups, rows)
    s = np.broadcast_to(np.asarray(sigma, dtype=float), (n_groups,))
    y = rng.normal(theta[group], s[group])
    return Simulated({"y": y, "group": group, "sigma": s[group]},
                     {"mu": float(mu), "tau": float(tau), "theta": theta, "sigma": s.copy()})


def _grouped_predictor(n_groups: int, rows: Any, beta: Any, cov: Any, n_random: int | None,
                       seed: Any):
    """The shared part of the grouped simulators: groups, design X (its first ``n_random``
    columns also vary by group: Z), b_g ~ N(0, cov) and eta = X beta + Z b_g. Returns the
    generator too, so the caller's further draws continue the same stream."""
    rng = _rng(seed)
    beta = np.asarray(beta, dtype=float)
    q = beta.size if n_random is None else int(n_random)
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    if cov.shape == (1, 1) and q > 1:
        cov = np.eye(q) * cov[0, 0]
    group = _group_index(rng, n_groups, rows)
    n = group.size
    X = _design(rng, n, beta.size)
    Z = X[:, :q]
    b = rng.multivariate_normal(np.zeros(q), cov, size=n_groups, method="cholesky")
    eta = X @ beta + np.einsum("nq,nq->n", Z, b[group])
    return rng, beta, cov, group, X, Z, b, eta


def simulate_lmm(n_groups: int, rows: Any, beta: Sequence[float], cov: Any, *, sigma: float = 1.0,
                 n_random: int | None = None, seed: Any = None) -> Simulated:
    """y = X beta + Z b_g + e: the first ``n_random`` columns of X (default: all) vary by group,
    b_g ~ N(0, cov), e ~ N(0, sigma^2); ``rows`` per group (an integer or one per group)."""
    rng, beta, cov, group, X, Z, b, eta = _grouped_predictor(n_groups, rows, beta, cov, n_random, seed)
    y = eta + rng.normal(0.0, sigma, size=group.size)
    return Simulated({"X": X, "Z": Z, "y": y, "group": group},
                     {"beta": beta, "cov": cov, "sigma": float(sigma), "b": b})


def simulate_glmm(n_groups: int, rows: Any, beta: Sequence[float], cov: Any, family: str = "poisson",
                  link: str | None = None, *, n_random: int | None = None, trials: Any = None,
                  seed: Any = None) -> Simulated:
    """y_i ~ F(h(x_i' beta + z_i' b_g(i))), b_g ~ N(0, cov): a GLMM with one grouping factor."""
    fam = resolve_family(family, link)
    rng, beta, cov, group, X, Z, b, eta = _grouped_predictor(n_groups, rows, beta, cov, n_random, seed)
    n = group.size
    t = None
    if fam.name == "binomial":
        t = np.full(n, 10.0) if trials is None else np.broadcast_to(np.asarray(trials, float), (n,)).copy()
    y = draw_response(rng, fam.name, fam.link, eta, trials=t)
    data: dict[str, Any] = {"X": X, "Z": Z, "y": y, "group": group, "family": fam.name,
                            "link": fam.link}
    if t is not None:
        data["trials"] = t
    return Simulated(data, {"beta": beta, "cov": cov, "b": b})


# ---------------------------------------------------------------------------------------------
# Simulation-based calibration
# ---------------------------------------------------------------------------------------------
@dataclass
class SbcCase:
    """One model x sampler for simulation-based calibration.

    ``simulate(rng)`` returns ``(truth, data)``: a dict of true parameters drawn from the prior
    and the data drawn from the model given them. ``fit(data, L, seed)`` returns a dict with,
    for every key of ``truth``, L (approximately independent, i.e. thinned) posterior draws
    shaped ``(L, *truth[key].shape)``.
    """

    name: str
    simulate: Callable[[np.random.Generator], tuple[dict[str, Any], dict[str, Any]]]
    fit: Callable[[dict[str, Any], int, int], dict[str, np.ndarray]]
    info: dict[str, Any] = field(default_factory=dict)


def sbc_ranks(case: SbcCase, replications: int, draws: int = 39, seed: int = 0
              ) -> dict[str, np.ndarray]:
    """Ranks of the true parameters among ``draws`` posterior draws, ``replications`` times.

    Returns name -> integer array (replications, *shape) with values in {0, ..., draws}: the
    number of posterior draws below the true value. Replication r of case c uses seeds derived
    from (seed, crc32(c.name), r), so a case's ranks do not depend on which other cases run.
    """
    key = zlib.crc32(case.name.encode())
    out: dict[str, list[np.ndarray]] = {}
    for r in range(replications):
        ss = np.random.SeedSequence([seed, key, r])
        sim_seed, fit_seed = ss.spawn(2)
        truth, data = case.simulate(np.random.default_rng(sim_seed))
        post = case.fit(data, draws, int(fit_seed.generate_state(1, np.uint64)[0] >> np.uint64(1)))
        for name, value in truth.items():
            d = np.asarray(post[name])
            v = np.asarray(value, dtype=float)
            if d.shape != (draws, *v.shape):
                raise ValueError(f"{case.name}: {name} draws have shape {d.shape}, expected "
                                 f"{(draws, *v.shape)}")
            out.setdefault(name, []).append((d < v).sum(axis=0))
    return {k: np.asarray(v) for k, v in out.items()}


def rank_uniformity(ranks: dict[str, np.ndarray], draws: int, bins: int | None = None
                    ) -> list[dict[str, Any]]:
    """Chi-square test of uniform ranks for every scalar parameter.

    The L + 1 possible ranks are pooled into ``bins`` equal-width bins (default: the largest
    divisor of L + 1 that keeps at least 5 expected counts per bin, at most 20 bins). Returns one
    dict per scalar parameter: name, statistic, dof, p_value, the bin counts, and two directed
    z-scores: ``z_mean`` (ranks shifted: bias) and ``z_var`` (ranks U-shaped when > 0: posterior
    too narrow; humped when < 0: too wide).
    """
    from scipy import stats

    rows = []
    for name, r in ranks.items():
        r = np.asarray(r)
        n_rep = r.shape[0]
        flat = r.reshape(n_rep, -1)
        nb = bins
        if nb is None:
            candidates = [b for b in range(2, 21) if (draws + 1) % b == 0 and n_rep / b >= 5]
            nb = max(candidates) if candidates else 2
        if (draws + 1) % nb:
            raise ValueError(f"bins = {nb} must divide L + 1 = {draws + 1}")
        width = (draws + 1) // nb
        for j in range(flat.shape[1]):
            counts = np.bincount(flat[:, j] // width, minlength=nb)
            expected = n_rep / nb
            stat = float(((counts - expected) ** 2 / expected).sum())
            label = name if flat.shape[1] == 1 and r.ndim == 1 else f"{name}[{j}]"
            # Directed statistics on u = (rank + 1/2) / (L + 1), uniform on a grid with mean
            # 1/2 and variance (1 - 1/(L+1)^2) / 12 under H0: a biased posterior (e.g. a sign
            # error) shifts the mean, a too narrow / too wide posterior inflates / shrinks the
            # variance (U-shaped / humped ranks). Their null sds over R independent
            # replications: sqrt(var / R), and sqrt((mu4 - var^2) / R) with mu4 = 1/80.
            u = (flat[:, j] + 0.5) / (draws + 1)
            var0 = (1.0 - 1.0 / (draws + 1) ** 2) / 12.0
            mu4 = 1.0 / 80.0
            z_mean = float((u.mean() - 0.5) / np.sqrt(var0 / n_rep))
            z_var = float((np.mean((u - 0.5) ** 2) - var0) / np.sqrt((mu4 - var0**2) / n_rep))
            rows.append({"name": label, "statistic": stat, "dof": nb - 1,
                         "p_value": float(stats.chi2.sf(stat, nb - 1)), "counts": counts,
                         "z_mean": z_mean, "z_var": z_var})
    return rows


# ---- cases for bglmm.glm ---------------------------------------------------------------------
# Prior of the SBC models: non-zero means and unequal sds so that a sign error or a swapped
# coefficient shows.
_GLM_PRIOR_MEAN = np.array([0.3, -0.2])
_GLM_PRIOR_SD = np.array([1.0, 0.7])
_SIGMA2_PRIOR = (3.0, 2.0)  # Inverse-Gamma(shape, scale) on sigma^2 (unknown-variance gaussian)
_KNOWN_SIGMA = 0.8
# Gamma(shape, rate) prior on the dispersion (negbinomial / beta_binomial phi, gamma shape) of
# the SBC models: proper and informative enough to simulate from (mean 4, 90% in 0.7 to 9.5;
# the default Gamma(0.01, 0.01) would draw phi below 1e-10 three times in four).
_DISPERSION_PRIOR = (2.0, 0.5)
# Beta(a, b) prior on the zero-inflated families' zi: mean 1/3, 90% in 0.08 to 0.66. The
# Student-t's: sigma ~ half-t(3, 1), nu ~ Gamma(20, 4) (mean 5: heavy tails, finite variance).
_ZI_PRIOR = (2.0, 4.0)
_SBC_FAMILY_PRIORS = {"zi": _ZI_PRIOR, "sigma": (3.0, 1.0), "nu": (20.0, 4.0)}


def _dispersion_prior(disp: str, a: float, b: float) -> Any:
    """The prior object of a family parameter in the SBC models: Beta(a, b) on zi, a
    half-t(a, scale b) on the Student-t's sigma, else Gamma(a, b)."""
    from .priors import Beta, Gamma, HalfStudentT

    return {"zi": Beta, "sigma": HalfStudentT}.get(disp, Gamma)(a, b)


def _dispersion_draw(rng: np.random.Generator, disp: str, a: float, b: float) -> float:
    """A draw of a family parameter from :func:`_dispersion_prior` (its reported scale)."""
    if disp == "zi":
        return float(rng.beta(a, b))
    if disp == "sigma":
        return float(b * abs(rng.standard_t(a)))
    return float(rng.gamma(a, 1.0 / b))


def glm_sbc_case(family: str, link: str | None = None, sampler: str = "random_walk", *,
                 known_sigma: bool = True, n: int | None = None, thin: int | None = None,
                 warmup: int | None = None, proposal: str = "fisher",
                 fit_prior_sd_factor: float = 1.0, fit_sigma_factor: float = 1.0,
                 dispersion_prior: tuple[float, float] = _DISPERSION_PRIOR,
                 fit_dispersion_rate_factor: float = 1.0, coefficients: int = 2,
                 threads: int = 1) -> SbcCase:
    """An SBC case for :func:`bglmm.glm`: intercept + one N(0, 1) covariate (``coefficients=1``:
    the intercept alone), n rows.

    Prior beta ~ N((0.3, -0.2), diag(1, 0.7)^2); gaussian: known sigma = 0.8, or
    beta | sigma^2 ~ N(m0, sigma^2 V0), sigma^2 ~ IG(3, 2); poisson and negbinomial:
    offset ~ U(0, 1); binomial: trials ~ U{1..8}; beta_binomial: trials ~ U{2..10}. The
    families with parameters besides beta draw each and rank it too: ``phi`` / ``shape`` from
    ``dispersion_prior`` = Gamma(shape, rate), default Gamma(2, 0.5); ``zi`` from Beta(2, 4);
    the Student-t's sigma from half-t(3, 1) and nu from Gamma(20, 4) (the zero-inflated
    families get poisson's offset). ``n`` defaults to 15 rows, 20 with a
    dispersion. ``thin`` defaults to 1 for the conjugate sampler (independent draws), 4 for the
    independence sampler (3 with a dispersion) and 15 for random-walk MH (8 with one
    coefficient): enough for an effectively independent thinned sample, their integrated
    autocorrelation times here being about 1.5 (at most 2) and 6-10 (about 5 with one
    coefficient); that of log phi under its slice step is about 1.2-2.
    ``warmup`` defaults to 300; with a dispersion, whose fits cost more, 100 for random-walk MH
    (its scale adapts) and 50 for the independence sampler (both start within two proposal
    sds of the joint mode).

    ``fit_prior_sd_factor`` != 1, ``fit_sigma_factor`` != 1 or ``fit_dispersion_rate_factor``
    != 1 make a deliberately *wrong* case (the fit's prior sd, its known residual sd, or the
    rate of its dispersion prior differs from the generator's: the sampler then targets a wrong
    posterior), used to show that the calibration test has power.
    """
    from . import glm
    from .priors import InverseGamma, Normal

    fam = resolve_family(family, link)
    params = fam.parameters  # (), or names among phi, shape, zi, sigma, nu
    disp = fam.dispersion
    # each parameter's SBC prior (a, b): _SBC_FAMILY_PRIORS, dispersion_prior on the others
    sbc_priors = {k: _SBC_FAMILY_PRIORS.get(k, tuple(dispersion_prior)) for k in params}
    if sampler == "conjugate" and fam.name != "gaussian":
        raise ValueError("the conjugate sampler needs the gaussian family")
    if coefficients not in (1, 2):
        raise ValueError("coefficients must be 1 (an intercept) or 2 (intercept and slope)")
    if n is None:
        n = 15 if disp is None else 20
    if warmup is None:
        warmup = 300 if disp is None else (50 if sampler == "independence" else 100)
    if thin is None:
        thin = {"conjugate": 1, "independence": 4 if disp is None else 3}.get(
            sampler, 15 if coefficients == 2 else 8)
    unknown = fam.name == "gaussian" and not known_sigma
    if unknown and sampler != "conjugate":
        raise ValueError("unknown sigma needs the conjugate sampler")
    a0, b0 = _SIGMA2_PRIOR
    name = f"glm-{fam.name}-{fam.link}-{sampler}"
    if fam.name == "gaussian":
        name += "-unknown-sigma" if unknown else "-known-sigma"
    if proposal != "fisher":
        name += f"-{proposal}"
    if coefficients != 2:
        name += "-intercept-only"
    if fit_prior_sd_factor != 1.0:
        name += f"-WRONG-prior-sd-x{fit_prior_sd_factor:g}"
    if fit_sigma_factor != 1.0:
        if fam.name != "gaussian" or unknown:
            raise ValueError("fit_sigma_factor applies to the known-sigma gaussian cases")
        name += f"-WRONG-sigma-x{fit_sigma_factor:g}"
    if disp is not None and tuple(dispersion_prior) != _DISPERSION_PRIOR:
        name += f"-{disp}-prior-gamma({dispersion_prior[0]:g},{dispersion_prior[1]:g})"
    if fit_dispersion_rate_factor != 1.0:
        if disp is None:
            raise ValueError("fit_dispersion_rate_factor applies to the families with a dispersion")
        name += f"-WRONG-{disp}-rate-x{fit_dispersion_rate_factor:g}"
    m0, sd0 = _GLM_PRIOR_MEAN[:coefficients], _GLM_PRIOR_SD[:coefficients]

    def simulate(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
        X = _design(rng, n, coefficients)
        truth: dict[str, Any] = {}
        if unknown:
            sigma2 = b0 / rng.gamma(a0)
            beta = m0 + np.sqrt(sigma2) * sd0 * rng.standard_normal(coefficients)
            truth["sigma"] = np.sqrt(sigma2)
        else:
            beta = m0 + sd0 * rng.standard_normal(coefficients)
            sigma2 = _KNOWN_SIGMA**2
        truth["beta"] = beta
        core = [1.0, 1.0]
        for k, (key, (a, b)) in enumerate(sbc_priors.items()):
            truth[key] = _dispersion_draw(rng, key, a, b)
            core[k] = to_core(key, truth[key])
        data: dict[str, Any] = {"X": X}
        eta = X @ beta
        trials = None
        if fam.name in ("poisson", "negbinomial", "zero_inflated_poisson",
                        "zero_inflated_negbinomial"):
            data["offset"] = rng.uniform(0.0, 1.0, n)
            eta = eta + data["offset"]
        elif fam.name == "binomial":
            trials = rng.integers(1, 9, n).astype(float)
            data["trials"] = trials
        elif fam.name == "beta_binomial":
            trials = rng.integers(2, 11, n).astype(float)
            data["trials"] = trials
        data["y"] = draw_response(rng, fam.name, fam.link, eta, trials=trials,
                                  sigma=np.sqrt(sigma2), phi=core[0], phi2=core[1])
        return truth, data

    prior = Normal(m0, sd0 * fit_prior_sd_factor)

    def fit(data: dict[str, Any], L: int, seed: int) -> dict[str, np.ndarray]:
        kwargs: dict[str, Any] = {}
        if fam.name == "gaussian":
            if unknown:
                kwargs["sigma_prior"] = InverseGamma(a0, b0)
            else:
                kwargs["sigma"] = _KNOWN_SIGMA * fit_sigma_factor
        if params:
            kwargs["dispersion_prior"] = {
                k: _dispersion_prior(k, a, b * fit_dispersion_rate_factor)
                for k, (a, b) in sbc_priors.items()}
        f = glm(data["X"], data["y"], fam.name, fam.link, trials=data.get("trials"),
                offset=data.get("offset"), prior=prior, sampler=sampler, proposal=proposal,
                chains=1, draws=L, thin=thin, warmup=warmup, seed=seed, threads=threads,
                check=False, **kwargs)
        out = {"beta": f.draws[0]}
        if unknown:
            out["sigma"] = f.posterior["sigma"][0]
        for key in params:
            out[key] = f.posterior[key][0]
        return out

    return SbcCase(name, simulate, fit, {"family": fam.name, "link": fam.link, "sampler": sampler,
                                         "thin": thin, "warmup": warmup, "n": n})


def glm_sbc_cases() -> list[SbcCase]:
    """Every family x link x sampler of :func:`bglmm.glm` (35 cases; the last 16 are the
    families with parameters besides beta: a Metropolis-Hastings step of beta, then a slice
    step of each parameter) but the cumulative family's (:func:`cumulative_sbc_cases`)."""
    cases = [
        glm_sbc_case("gaussian", sampler="conjugate", known_sigma=True),
        glm_sbc_case("gaussian", sampler="conjugate", known_sigma=False),
        glm_sbc_case("gaussian", sampler="random_walk"),
        glm_sbc_case("gaussian", sampler="independence"),
        glm_sbc_case("poisson", sampler="random_walk"),
        glm_sbc_case("poisson", sampler="random_walk", proposal="crossproduct"),
        glm_sbc_case("poisson", sampler="independence"),
    ]
    for fam in ("binomial", "bernoulli"):
        for link in ("logit", "probit", "cloglog"):
            for sampler in ("random_walk", "independence"):
                cases.append(glm_sbc_case(fam, link, sampler))
    for fam in ("negbinomial", "gamma", "zero_inflated_poisson", "zero_inflated_negbinomial",
                "student"):
        for sampler in ("random_walk", "independence"):
            cases.append(glm_sbc_case(fam, sampler=sampler))
    # The beta-binomial likelihood costs ~3x the others per evaluation: intercept-only models.
    for link in ("logit", "probit", "cloglog"):
        for sampler in ("random_walk", "independence"):
            cases.append(glm_sbc_case("beta_binomial", link, sampler, coefficients=1))
    return cases


def sbc_cases() -> list[SbcCase]:
    """Every SBC case bglmm has: the GLM cases, then those of the other samplers."""
    return (glm_sbc_cases() + hierarchical_sbc_cases() + glmm_sbc_cases()
            + glmm_dispersion_sbc_cases() + default_prior_sbc_cases() + cumulative_sbc_cases())


def hierarchical_sbc_cases() -> list[SbcCase]:
    """SBC cases of the hierarchical normal and linear mixed model samplers."""
    return [
        hierarchical_normal_sbc_case("exact", tau_prior="half_cauchy"),
        hierarchical_normal_sbc_case("gibbs", tau_prior="half_normal"),
        hierarchical_normal_sbc_case("gibbs", tau_prior="half_cauchy", known="se"),
        hierarchical_normal_sbc_case("gibbs", tau_prior="inverse_gamma", known=None),
        lmm_sbc_case(q=2),
        lmm_sbc_case(q=1),
    ]


def glmm_sbc_cases() -> list[SbcCase]:
    """SBC cases of the GLMM Metropolis-within-Gibbs sampler (both group kernels)."""
    return [
        glmm_sbc_case("poisson", None, "laplace"),
        glmm_sbc_case("poisson", None, "random_walk"),
        glmm_sbc_case("binomial", "logit", "laplace"),
        glmm_sbc_case("binomial", "probit", "random_walk"),
        glmm_sbc_case("binomial", "cloglog", "laplace"),
        glmm_sbc_case("bernoulli", "logit", "random_walk"),
    ]


def glmm_dispersion_sbc_cases() -> list[SbcCase]:
    """SBC cases of the GLMM with a family's parameters (their slice steps in the sweep): every
    family x link with a dispersion, both group kernels between them."""
    return [
        glmm_sbc_case("negbinomial", None, "laplace"),
        glmm_sbc_case("negbinomial", None, "random_walk"),
        glmm_sbc_case("gamma", None, "laplace"),
        glmm_sbc_case("beta_binomial", "logit", "laplace"),
        glmm_sbc_case("beta_binomial", "probit", "random_walk"),
        glmm_sbc_case("beta_binomial", "cloglog", "laplace"),
        glmm_sbc_case("zero_inflated_poisson", None, "laplace"),
        glmm_sbc_case("zero_inflated_poisson", None, "random_walk"),
        glmm_sbc_case("zero_inflated_negbinomial", None, "laplace"),
        glmm_sbc_case("student", None, "laplace"),
    ]


def glmm_sbc_case(family: str, link: str | None = None, sampler: str = "laplace", *,
                  groups: int = 8, rows: int = 4, thin: int = 10, warmup: int = 300,
                  threads: int = 1, dispersion_prior: tuple[float, float] = _DISPERSION_PRIOR,
                  fit_dispersion_rate_factor: float = 1.0, zi_slope_sd: float | None = None,
                  fit_zi_slope_sd_factor: float = 1.0) -> SbcCase:
    """SBC case of :func:`bglmm.glmm`: intercept + slope, beta ~ N((0.3, -0.2), diag(1, 0.7)^2),
    a random intercept b_j ~ N(0, s^2) with s^2 ~ IG(3, 1); the count families: offset ~
    U(0, 1); binomial and beta_binomial: trials ~ U{1..6}. Ranks of beta, the random-intercept SD
    and every b_j; each of the family's parameters is drawn and ranked too: ``phi`` / ``shape``
    from ``dispersion_prior`` = Gamma(shape, rate) (default Gamma(2, 0.5)), ``zi`` from
    Beta(2, 4), the Student-t's sigma from half-t(3, 1) and nu from Gamma(20, 4).
    ``fit_dispersion_rate_factor`` != 1 fits under wrong rates (Beta: a wrong b; a negative
    control). ``zi_slope_sd`` (the zero-inflated families): a zi formula ``zi ~ w``, w ~ N(0, 1)
    per row, its slope ~ N(0, zi_slope_sd^2) and zi at mean(w) ~ Beta(2, 4); the ranks of
    both coefficients (``zi_beta``, the intercept at w = 0) replace zi's;
    ``fit_zi_slope_sd_factor`` != 1 fits with a wrong slope prior (a negative control)."""
    from . import glmm
    from .priors import InverseGamma, Normal

    fam = resolve_family(family, link)
    n = groups * rows
    group = np.repeat(np.arange(groups), rows)
    var_prior = InverseGamma(3.0, 1.0)
    prior = Normal(_GLM_PRIOR_MEAN, _GLM_PRIOR_SD)
    name = f"glmm-{fam.name}-{fam.link}-{sampler}"
    if zi_slope_sd is not None:
        if not fam.is_zero_inflated:
            raise ValueError("zi_slope_sd applies to the zero-inflated families")
        name += "-zi-formula"
    if fit_zi_slope_sd_factor != 1.0:
        name += f"-zi-slope-sd-x{fit_zi_slope_sd_factor:g}"
    params = fam.parameters
    if params and fit_dispersion_rate_factor != 1.0:
        name += f"-dispersion-rate-x{fit_dispersion_rate_factor:g}"
    # each parameter's SBC prior (a, b): _SBC_FAMILY_PRIORS, dispersion_prior on the others
    sbc_priors = {k: _SBC_FAMILY_PRIORS.get(k, tuple(dispersion_prior)) for k in params}
    fit_dispersion = {k: _dispersion_prior(k, a, b * fit_dispersion_rate_factor)
                      for k, (a, b) in sbc_priors.items()} or None

    def simulate(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
        X = _design(rng, n, 2)
        beta = _GLM_PRIOR_MEAN + _GLM_PRIOR_SD * rng.standard_normal(2)
        sd = _draw_scale(rng, var_prior)
        b = rng.normal(0.0, sd, size=(groups, 1))
        eta = X @ beta + b[group, 0]
        data: dict[str, Any] = {"X": X}
        truth: dict[str, Any] = {"beta": beta, "sd": sd, "b": b}
        trials = None
        core = [1.0, 1.0]
        for k, (key, (a, b)) in enumerate(sbc_priors.items()):
            truth[key] = _dispersion_draw(rng, key, a, b)
            core[k] = to_core(key, truth[key])
        if zi_slope_sd is not None:  # zi_i = inv_logit(logit zi + slope (w_i - mean w))
            w = rng.standard_normal(n)
            slope = zi_slope_sd * rng.standard_normal()
            v0 = np.log(to_core("zi", truth.pop("zi")))
            truth["zi_beta"] = np.array([v0 - slope * w.mean(), slope])
            data["zi_X"] = np.column_stack([np.ones(n), w])
            k = fam.parameters.index("zi")
            core[k] = np.exp(data["zi_X"] @ truth["zi_beta"])
        if fam.name in ("poisson", "negbinomial", "zero_inflated_poisson",
                        "zero_inflated_negbinomial"):
            data["offset"] = rng.uniform(0.0, 1.0, n)
            eta = eta + data["offset"]
        elif fam.needs_trials:
            trials = rng.integers(1, 7, n).astype(float)
            data["trials"] = trials
        data["y"] = draw_response(rng, fam.name, fam.link, eta, trials=trials, phi=core[0],
                                  phi2=core[1])
        return truth, data

    def fit(data: dict[str, Any], L: int, seed: int) -> dict[str, np.ndarray]:
        zi_kw = {}
        if zi_slope_sd is not None:
            zi_kw = {"zi_X": data["zi_X"],
                     "zi_prior": Normal(0.0, zi_slope_sd * fit_zi_slope_sd_factor)}
        f = glmm(data["y"], data["X"], None, group, fam.name, fam.link, trials=data.get("trials"),
                 offset=data.get("offset"), prior=prior, random_prior=var_prior,
                 dispersion_prior=fit_dispersion, sampler=sampler, chains=1, draws=L, thin=thin,
                 warmup=warmup, seed=seed, threads=threads, check=False, **zi_kw)
        out = {"beta": f.posterior["beta"][0], "sd": np.sqrt(f.posterior["Sigma"][0][:, 0, 0]),
               "b": f.posterior["b"][0]}
        for key in params:
            if key in f.posterior:
                out[key] = f.posterior[key][0]
        if zi_slope_sd is not None:
            out["zi_beta"] = f.posterior["zi_beta"][0]
        return out

    return SbcCase(name, simulate, fit, {"sampler": sampler, "thin": thin, "warmup": warmup})


# ---- cases for the cumulative ordinal family -------------------------------------------------
# K = 4 categories; two N(0, 1) covariates (no intercept: the cutpoints take its place) with
# beta ~ N((0.3, -0.2), diag(0.7, 0.5)^2); the cutpoints' prior Normal(0, s) (the order
# statistics of K - 1 draws from N(0, s^2)) with s = 1.5 on the logit scale and 0.8 on the
# probit scale (the latent error's sd is pi / sqrt(3) = 1.8 and 1): wide enough that the
# cutpoints spread over the linear predictor's range, narrow enough that the outer categories
# are rarely empty. The share of data sets with an empty category, which are redrawn (see
# ``simulate`` below), is then 9.0% (logit, n = 80), 10.0% (probit, n = 80) and 9.2% (GLMM,
# 10 x 8 rows; 20000 draws each, +-0.2%): 89-95% of them a middle category between two
# cutpoints a median 0.03-0.06 apart (the ordered prior has positive density at equal
# cutpoints, so no choice of s avoids it; n = 100 gives 7% and 8%, s = 1 or 2 on the logit
# scale more), the rest an empty outer category.
_CUMULATIVE_CATEGORIES = 4
_CUMULATIVE_PRIOR_MEAN = np.array([0.3, -0.2])
_CUMULATIVE_PRIOR_SD = np.array([0.7, 0.5])
_CUMULATIVE_CUTPOINT_SD = {"logit": 1.5, "probit": 0.8}


def _draw_cumulative(rng: np.random.Generator, eta: np.ndarray, cutpoints: np.ndarray,
                     link: str) -> np.ndarray:
    """Categories 1 .. K from the latent form of the cumulative model: y = 1 + #{k: eta + e >
    c_k} with e logistic (logit) or N(0, 1) (probit), so that P(y <= k) = F(c_k - eta). Written
    from the model's definition rather than with bglmm.ordinal's draws, so that a sign or
    ordering convention shared by the package's simulator and its likelihood cannot cancel."""
    e = rng.logistic(size=eta.shape) if link == "logit" else rng.standard_normal(eta.shape)
    return 1 + ((eta + e)[:, None] > cutpoints[None, :]).sum(axis=1)


def cumulative_sbc_case(link: str = "logit", sampler: str | None = None, *,
                        groups: int | None = None, rows: int = 8, n: int | None = None,
                        thin: int | None = None, warmup: int = 300, n_effects: int = 2,
                        cutpoint_sd: float | None = None, fit_cutpoint_sd_factor: float = 1.0,
                        max_tries: int = 1000, threads: int = 1) -> SbcCase:
    """SBC case of the cumulative ordinal family with K = 4 categories: :func:`bglmm.glm`
    (``groups=None``; ``sampler`` default "random_walk", n default 80 rows) or
    :func:`bglmm.glmm` with a random intercept over ``groups`` x ``rows`` rows (``sampler``
    default "laplace"), b_j ~ N(0, s^2), s^2 ~ IG(3, 1) as in :func:`glmm_sbc_case`.

    Two N(0, 1) covariates, beta ~ N((0.3, -0.2), diag(0.7, 0.5)^2); cutpoints: the sorted
    values of 3 draws from N(0, cutpoint_sd^2) (default 1.5 for logit, 0.8 for probit), which is
    the fit's ``cutpoint_prior=Normal(0, cutpoint_sd)``. Ranks of beta, the 3 cutpoints and, in
    the GLMM, the random-intercept SD and the effects of the first ``n_effects`` groups. Data
    sets with an empty category are redrawn, parameters and all (see ``simulate``).

    ``thin`` defaults to 5: the integrated autocorrelation times measured on 8 data sets of each
    case (8000 draws) are 1.3-3.3 for the GLM's random-walk sampler (its joint independence step
    of beta and the cutpoints; without it, beta's were 10-15) and 0.9-2.9 for the GLMM's Laplace
    kernel. One replication costs about 30 ms (GLM, n = 80) and 150 ms (GLMM, 10 x 8 rows) on
    one thread.
    ``fit_cutpoint_sd_factor`` != 1 fits under a wrong cutpoint prior (Normal(0, factor x
    cutpoint_sd)): a negative control.
    """
    from . import glm, glmm
    from .priors import InverseGamma, Normal

    fam = resolve_family("cumulative", link)
    K = _CUMULATIVE_CATEGORIES
    s_c = _CUMULATIVE_CUTPOINT_SD[fam.link] if cutpoint_sd is None else float(cutpoint_sd)
    mixed = groups is not None
    if sampler is None:
        sampler = "laplace" if mixed else "random_walk"
    if thin is None:
        thin = 5
    if mixed:
        n = groups * rows
        group = np.repeat(np.arange(groups), rows)
    elif n is None:
        n = 80
    var_prior = InverseGamma(3.0, 1.0)
    m0, sd0 = _CUMULATIVE_PRIOR_MEAN, _CUMULATIVE_PRIOR_SD
    prior = Normal(m0, sd0)
    cutpoint_prior = Normal(0.0, s_c * fit_cutpoint_sd_factor)
    name = f"{'glmm' if mixed else 'glm'}-{fam.name}-{fam.link}-{sampler}"
    if cutpoint_sd is not None:
        name += f"-cutpoint-sd-{s_c:g}"
    if fit_cutpoint_sd_factor != 1.0:
        name += f"-WRONG-cutpoint-sd-x{fit_cutpoint_sd_factor:g}"

    def simulate(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
        # The fit needs every one of the K categories observed (an unobserved one's cutpoints
        # are not identified, and bglmm refuses it). Data sets with an empty category are
        # redrawn, parameters, covariates and all: the kept pairs are draws from p(theta, y | A)
        # = p(y | A) p(theta | y) for the event A = "every category observed", which is a
        # function of the data alone, so the truth is still a draw from the posterior of the
        # data it comes with, p(theta | y, A) = p(theta | y), and the ranks of a correct sampler
        # stay uniform. (Redrawing y alone given the same theta would not do: it would sample
        # p(theta) p(y | theta, A), whose conditional of theta given y is not the posterior.)
        for _ in range(max_tries):
            X = rng.standard_normal((n, 2))
            beta = m0 + sd0 * rng.standard_normal(2)
            cut = np.sort(s_c * rng.standard_normal(K - 1))
            eta = X @ beta
            truth: dict[str, Any] = {"beta": beta, "cutpoint": cut}
            if mixed:
                sd = _draw_scale(rng, var_prior)
                b = rng.normal(0.0, sd, size=(groups, 1))
                eta = eta + b[group, 0]
                truth.update(sd=sd, b=b[:n_effects])
            y = _draw_cumulative(rng, eta, cut, fam.link)
            if np.all(np.bincount(y, minlength=K + 1)[1:] > 0):
                return truth, {"X": X, "y": y}
        raise RuntimeError(f"{name}: no data set with all {K} categories in {max_tries} tries")

    def fit(data: dict[str, Any], L: int, seed: int) -> dict[str, np.ndarray]:
        import pandas as pd

        # an ordered Categorical of exactly the K categories: a fit with fewer is an error
        y = pd.Categorical(data["y"], categories=list(range(1, K + 1)), ordered=True)
        if mixed:
            f = glmm(y, data["X"], None, group, fam.name, fam.link, prior=prior,
                     random_prior=var_prior, cutpoint_prior=cutpoint_prior, sampler=sampler,
                     chains=1, draws=L, thin=thin, warmup=warmup, seed=seed, threads=threads,
                     check=False)
            return {"beta": f.posterior["beta"][0], "cutpoint": f.posterior["cutpoint"][0],
                    "sd": np.sqrt(f.posterior["Sigma"][0][:, 0, 0]),
                    "b": f.posterior["b"][0][:, :n_effects]}
        f = glm(data["X"], y, fam.name, fam.link, prior=prior, cutpoint_prior=cutpoint_prior,
                sampler=sampler, chains=1, draws=L, thin=thin, warmup=warmup, seed=seed,
                threads=threads, check=False)
        return {"beta": f.posterior["beta"][0], "cutpoint": f.posterior["cutpoint"][0]}

    return SbcCase(name, simulate, fit, {"family": fam.name, "link": fam.link,
                                         "sampler": sampler, "thin": thin, "warmup": warmup,
                                         "n": n, "groups": groups, "cutpoint_sd": s_c})


def cumulative_sbc_cases() -> list[SbcCase]:
    """SBC cases of the cumulative ordinal family: :func:`bglmm.glm` (random-walk sampler) with
    the logit and probit links, and :func:`bglmm.glmm` (both links, Laplace kernel, a random
    intercept over 10 groups of 8 rows). Run the GLMM cases with >= 600 replications."""
    return [
        cumulative_sbc_case("logit"),
        cumulative_sbc_case("probit"),
        cumulative_sbc_case("logit", "laplace", groups=10),
        cumulative_sbc_case("probit", "laplace", groups=10),
    ]


def wrong_cumulative_sbc_cases() -> list[SbcCase]:
    """A deliberately wrong version of the cumulative GLM case: the data come from cutpoints
    ~ N(0, 1.5^2) (ordered), the fit uses N(0, 0.75^2) (the prior sd halved). SBC must flag it."""
    return [cumulative_sbc_case("logit", fit_cutpoint_sd_factor=0.5)]


def default_prior_sbc_cases() -> list[SbcCase]:
    """SBC cases with covariance priors of the default family (LKJ(2) + Half-Student-t(3, s_k)
    SDs, a single SD: Half-Student-t(3, s)) for :func:`bglmm.lmm` (q = 1, 2, 3) and
    :func:`bglmm.glmm` with the Laplace kernel (poisson and binomial-logit, q = 1, 2; poisson,
    q = 3).

    Run them with >= 600 replications: with every posterior draw shifted by 0.2 posterior SDs
    (a small bias), 600 replications flagged 94% of 63 scalar parameters at |z| > 4 / chi-square
    p < 5e-5 (median |z_mean| 5.2; 5% at a 0.1-SD shift, none unshifted); |z_mean| grows as
    sqrt(R)."""
    return [
        lmm_default_sbc_case(1),
        lmm_default_sbc_case(2),
        lmm_default_sbc_case(3),
        glmm_default_sbc_case("poisson", None, 1),
        glmm_default_sbc_case("poisson", None, 2),
        glmm_default_sbc_case("poisson", None, 3, rows=5),
        glmm_default_sbc_case("binomial", "logit", 1),
        glmm_default_sbc_case("binomial", "logit", 2),
    ]


def wrong_default_prior_sbc_cases() -> list[SbcCase]:
    """Deliberately wrong versions of two :func:`default_prior_sbc_cases`: the data come from the
    default-family prior, the fit uses the same family with every SD prior scale halved (the
    LMM with q = 2 and the poisson GLMM with q = 2). SBC must flag both."""
    return [
        lmm_default_sbc_case(2, fit_sd_scale_factor=0.5),
        glmm_default_sbc_case("poisson", None, 2, fit_sd_scale_factor=0.5),
    ]


def _draw_scale(rng: np.random.Generator, prior: Any) -> float:
    """A standard deviation drawn from a bglmm SD prior (or the root of an IG variance)."""
    from .priors import HalfNormal, HalfStudentT, InverseGamma

    if isinstance(prior, HalfNormal):
        return float(abs(rng.normal(0.0, prior.scale)))
    if isinstance(prior, HalfStudentT):
        return float(prior.scale * abs(rng.standard_t(prior.df)))
    if isinstance(prior, InverseGamma):
        return float(np.sqrt(prior.scale / rng.gamma(prior.shape)))
    raise TypeError(f"cannot draw from {prior!r}")


def _draw_inverse_wishart(rng: np.random.Generator, df: int, scale: np.ndarray) -> np.ndarray:
    """Sigma ~ IW(df, scale) (integer df): the inverse of a sum of df outer products of
    N(0, scale^-1) vectors."""
    q = scale.shape[0]
    z = rng.multivariate_normal(np.zeros(q), np.linalg.inv(scale), size=df)
    return np.linalg.inv(z.T @ z)


def hierarchical_normal_sbc_case(sampler: str = "gibbs", *, tau_prior: str = "half_normal",
                                 known: str | None = "sigma", groups: int = 6,
                                 thin: int | None = None, warmup: int = 200) -> SbcCase:
    """SBC case of :func:`bglmm.hierarchical_normal`: mu ~ N(0.5, 1), tau from ``tau_prior``
    ("half_normal": HalfNormal(1); "half_cauchy": HalfCauchy(1); "inverse_gamma": tau^2 ~
    IG(3, 2)), theta_j ~ N(mu, tau^2); ``known="sigma"``: one row per group with sigma = 1;
    ``"se"``: one row per group with known se_j in (0.5, 2); None: 3 rows per group and unknown
    sigma^2 ~ IG(4, 3). Ranks of mu, tau, theta (and sigma)."""
    from . import hierarchical_normal
    from .priors import HalfCauchy, HalfNormal, InverseGamma, Normal

    tau_p = {"half_normal": HalfNormal(1.0), "half_cauchy": HalfCauchy(1.0),
             "inverse_gamma": InverseGamma(3.0, 2.0)}[tau_prior]
    sigma_p = InverseGamma(4.0, 3.0)
    mu_p = Normal(0.5, 1.0)
    rows = 1 if known else 3
    thin = thin or (1 if sampler == "exact" else 10)
    name = f"hierarchical-normal-{sampler}-{tau_prior}-{'known-' + known if known else 'unknown-sigma'}"
    se_grid = np.linspace(0.5, 2.0, groups)

    def simulate(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
        mu = rng.normal(0.5, 1.0)
        tau = _draw_scale(rng, tau_p)
        theta = rng.normal(mu, tau, groups)
        group = np.repeat(np.arange(groups), rows)
        truth: dict[str, Any] = {"mu": mu, "tau": tau, "theta": theta}
        if known == "sigma":
            s = np.ones(groups * rows)
        elif known == "se":
            s = se_grid[group]
        else:
            s = np.full(groups * rows, _draw_scale(rng, sigma_p))
            truth["sigma"] = s[0]
        y = rng.normal(theta[group], s)
        return truth, {"y": y, "group": group, "se": s}

    def fit(data: dict[str, Any], L: int, seed: int) -> dict[str, np.ndarray]:
        kw: dict[str, Any] = {}
        if known == "sigma":
            kw["sigma"] = 1.0
        elif known == "se":
            kw["se"] = data["se"]
        else:
            kw["sigma_prior"] = sigma_p
        f = hierarchical_normal(data["y"], data["group"], mu_prior=mu_p, tau_prior=tau_p,
                                sampler=sampler, chains=1, draws=L, thin=thin, warmup=warmup,
                                seed=seed, check=False, **kw)
        out = {k: f.posterior[k][0] for k in ("mu", "tau", "theta")}
        if not known:
            out["sigma"] = f.posterior["sigma"][0]
        return out

    return SbcCase(name, simulate, fit, {"sampler": sampler, "thin": thin, "warmup": warmup})


def lmm_sbc_case(q: int = 2, *, groups: int = 6, rows: Any = (1, 2, 3, 4, 4, 5),
                 thin: int = 20, warmup: int = 200, threads: int = 1) -> SbcCase:
    """SBC case of :func:`bglmm.lmm`: intercept + slope fixed effects beta ~ N((0.3, -0.2),
    diag(1, 0.7)^2); q = 2: both vary by group, Sigma ~ IW(4, 0.5 I); q = 1: a random intercept
    with sd ~ HalfNormal(1); sigma^2 ~ IG(4, 3); groups of 1-5 rows. Ranks of beta, sigma, the
    entries of Sigma (q = 2) or the SD (q = 1), and every b_j. ``thin=20``: with thin=5 the
    random-intercept SD (which mixes slowly when it is small) kept enough autocorrelation to
    give slightly U-shaped ranks (z_var ~ 2.4 at 500 replications; 0.6-0.8 with thin=25)."""
    from . import lmm
    from .priors import HalfNormal, InverseGamma, InverseWishart, Normal

    sizes = np.broadcast_to(np.asarray(rows), (groups,))
    group = np.repeat(np.arange(groups), sizes)
    n = group.size
    iw_scale = 0.5 * np.eye(2)
    sd_prior = HalfNormal(1.0)
    sigma_p = InverseGamma(4.0, 3.0)
    prior = Normal(_GLM_PRIOR_MEAN, _GLM_PRIOR_SD)
    name = f"lmm-gibbs-q{q}-" + ("inverse-wishart" if q == 2 else "half-normal-sd")

    def simulate(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
        X = _design(rng, n, 2)
        beta = _GLM_PRIOR_MEAN + _GLM_PRIOR_SD * rng.standard_normal(2)
        sigma = _draw_scale(rng, sigma_p)
        if q == 2:
            Sigma = _draw_inverse_wishart(rng, 4, iw_scale)
            b = rng.multivariate_normal(np.zeros(2), Sigma, size=groups, method="cholesky")
            truth = {"Sigma": np.array([Sigma[0, 0], Sigma[1, 1], Sigma[0, 1]])}
        else:
            sd = _draw_scale(rng, sd_prior)
            b = rng.normal(0.0, sd, size=(groups, 1))
            truth = {"sd": sd}
        Z = X[:, :q]
        y = X @ beta + np.einsum("nq,nq->n", Z, b[group]) + rng.normal(0.0, sigma, n)
        truth.update({"beta": beta, "sigma": sigma, "b": b})
        return truth, {"X": X, "Z": Z, "y": y}

    def fit(data: dict[str, Any], L: int, seed: int) -> dict[str, np.ndarray]:
        f = lmm(data["y"], data["X"], data["Z"], group, prior=prior,
                cov_prior=InverseWishart(4.0, iw_scale) if q == 2 else sd_prior,
                sigma_prior=sigma_p, chains=1, draws=L, thin=thin, warmup=warmup, seed=seed,
                threads=threads, check=False)
        S = f.posterior["Sigma"][0]
        out = {"beta": f.posterior["beta"][0], "sigma": f.posterior["sigma"][0],
               "b": f.posterior["b"][0]}
        if q == 2:
            out["Sigma"] = np.stack([S[:, 0, 0], S[:, 1, 1], S[:, 0, 1]], axis=1)
        else:
            out["sd"] = np.sqrt(S[:, 0, 0])
        return out

    return SbcCase(name, simulate, fit, {"sampler": "gibbs", "thin": thin, "warmup": warmup})


# ---- cases with the default prior family -------------------------------------------------------
# The default prior on a random-effect covariance is the separation strategy: each SD
# ~ Half-Student-t(3, scale), the correlation matrix ~ LKJ(2) (a single SD: Half-Student-t(3,
# scale) alone). Its scales are data-dependent by default; the SBC cases below fix them (SBC
# needs a prior that does not look at the data) but keep the family, so that the samplers run
# exactly the moves they run at the defaults: the LMM's collapsed Metropolis-Hastings move of
# (Sigma, sigma^2) with the slice step of Sigma | b under LKJ, and the GLMM's slice step,
# interweaving and marginal move with the Laplace kernel.
#
# Thinning. Autocorrelated posterior draws make the ranks over-dispersed (U-shaped): with a
# thinned-chain integrated autocorrelation time tau, the rank variance grows by about
# (tau - 1) / (6 L), i.e. z_var by (tau - 1) / (6 L) / (0.0745 / sqrt(R)): +0.3 at R = 600,
# L = 39 for a mean tau - 1 of 0.22 over the replications. thin and warmup were chosen from the
# per-iteration autocorrelation functions of every recorded quantity over 60-100 prior
# replications of each case (chains of 4,000), as the smallest with a predicted z_var inflation
# of at most ~0.4 for every quantity:
#   LMM, warmup 200, thin 10: q = 1, 2, 3: 0.01, 0.04, 0.11 (thin 5: 0.02, 0.11, 0.35; warmup 100
#     makes q = 3 worse, 0.29 at thin 10, as the collapsed move's independence proposal is
#     fitted to the warm-up draws). Per-iteration autocorrelation times of the SDs: median
#     1.5 / 2.2 / 3.5, 90% quantile 2.0 / 3.4 / 6.5, largest 4.4 / 8.2 / 25.
#   GLMM, warmup 200: q = 1, thin 10: 0.29 poisson, 0.09 binomial; q = 2, thin 12: 0.20 poisson,
#     0.30 binomial; poisson q = 3, thin 12: 0.43 (thin 5: 0.7, 1.1, 1.5). Per-iteration times
#     of the SDs for q = 3: median 5-6, 90% quantile 12-15, largest ~30; for q = 1 the slope
#     without a random term reached 90 in one data set of 40 (counts up to 1,536: the slope and
#     the random intercepts are then both pinned down and trade off slowly).
_DEFAULT_LMM_SD_SCALES = (1.0, 0.5, 0.7)   # Half-t(3, s_k) on the SD of term k
_DEFAULT_GLMM_SD_SCALES = (0.8, 0.5, 0.5)  # on the log / logit scale
_DEFAULT_LKJ_ETA = 2.0
_BETA3_MEAN = np.array([0.3, -0.2, 0.1])   # beta ~ N(mean[:p], diag(sd[:p])^2), p = max(2, q)
_BETA3_SD = np.array([1.0, 0.7, 0.8])


def _draw_lkj(rng: np.random.Generator, q: int, eta: float) -> np.ndarray:
    """A q x q correlation matrix ~ LKJ(eta) by the vine method of Lewandowski, Kurowicka and Joe
    (2009, section 2.4): the partial correlations p[k, i] (i > k, given variables 0..k-1) are
    independent 2 Beta(b_k, b_k) - 1 with b_k = eta + (q - 2 - k) / 2, and the correlations
    follow from the recursion r = p sqrt((1 - p[l, i]^2)(1 - p[l, k]^2)) + p[l, i] p[l, k]
    over l = k-1, ..., 0. For q = 2: r = 2 Beta(eta, eta) - 1; every marginal correlation is
    2 Beta(eta - 1 + q/2, eta - 1 + q/2) - 1."""
    P = np.zeros((q, q))
    R = np.eye(q)
    for k in range(q - 1):
        b_k = eta + (q - 2 - k) / 2.0
        for i in range(k + 1, q):
            P[k, i] = 2.0 * rng.beta(b_k, b_k) - 1.0
            r = P[k, i]
            for l in range(k - 1, -1, -1):
                r = r * np.sqrt((1.0 - P[l, i] ** 2) * (1.0 - P[l, k] ** 2)) + P[l, i] * P[l, k]
            R[k, i] = R[i, k] = r
    return R


def _draw_default_family_cov(rng: np.random.Generator, scales: np.ndarray, eta: float
                             ) -> np.ndarray:
    """Sigma = D Omega D with D = diag(s_k |t_3|) and Omega ~ LKJ(eta) (q > 1)."""
    q = scales.size
    sd = scales * np.abs(rng.standard_t(3.0, size=q))
    omega = _draw_lkj(rng, q, eta) if q > 1 else np.eye(1)
    return omega * np.outer(sd, sd)


def _default_family_prior(scales: np.ndarray, eta: float) -> Any:
    from .priors import LKJ, HalfStudentT

    sds = [HalfStudentT(3.0, float(s)) for s in scales]
    return sds[0] if scales.size == 1 else LKJ(eta, sd=sds)


def _sd_cor(Sigma: np.ndarray) -> dict[str, np.ndarray]:
    """{"sd": the SDs, "cor": the upper-triangle correlations (row by row)} of one Sigma
    (q, q) or of draws (L, q, q); no "cor" for q = 1."""
    S = np.asarray(Sigma, dtype=float)
    q = S.shape[-1]
    sd = np.sqrt(np.diagonal(S, axis1=-2, axis2=-1))
    out = {"sd": sd}
    if q > 1:
        iu = np.triu_indices(q, 1)
        out["cor"] = S[..., iu[0], iu[1]] / (sd[..., iu[0]] * sd[..., iu[1]])
    return out


def _wrong_prior_suffix(fit_eta: float | None, fit_sd_scale_factor: float) -> str:
    s = ""
    if fit_eta is not None:
        s += f"-WRONG-lkj-eta{fit_eta:g}"
    if fit_sd_scale_factor != 1.0:
        s += f"-WRONG-sd-scale-x{fit_sd_scale_factor:g}"
    return s


def lmm_default_sbc_case(q: int = 2, *, groups: int = 6, rows: Any = (1, 2, 3, 4, 4, 5),
                         thin: int = 10, warmup: int = 200, n_effects: int = 2,
                         fit_eta: float | None = None, fit_sd_scale_factor: float = 1.0,
                         threads: int = 1) -> SbcCase:
    """SBC case of :func:`bglmm.lmm` with a covariance prior of the default family:
    Half-Student-t(3, s_k) on each SD, s = (1, 0.5, 0.7)[:q], and LKJ(2) on the correlations
    (q = 2, 3); the intercept and the first q - 1 of max(1, q - 1) N(0, 1) covariates vary by
    group; beta ~ N((0.3, -0.2, 0.1), diag(1, 0.7, 0.8)^2) (first max(2, q)); sigma^2 ~ IG(4, 3);
    ``groups`` groups of ``rows`` rows (default 6 groups of 1-5 rows: the SDs are weakly and
    the correlations barely identified, so the sampler must explore the half-t tails and the
    LKJ prior). Ranks of beta, each SD, each correlation, sigma, and the effects of the first
    ``n_effects`` groups.

    ``thin=10``, ``warmup=200``: measured to leave the thinned draws effectively independent
    (see the comment above ``_DEFAULT_LMM_SD_SCALES``). One fit costs ~10 / 20 / 50 ms
    (q = 1 / 2 / 3, one thread).

    ``fit_eta`` (the LKJ shape of the fit) or ``fit_sd_scale_factor`` (multiplies the fit's SD
    prior scales) make a deliberately *wrong* case: the fit's prior differs from the one that
    simulated the data, so the ranks must be flagged (the power check of the test suite).
    """
    from . import lmm
    from .priors import InverseGamma, Normal

    if q not in (1, 2, 3):
        raise ValueError("q must be 1, 2 or 3")
    p = max(2, q)
    sizes = np.broadcast_to(np.asarray(rows), (groups,))
    group = np.repeat(np.arange(groups), sizes)
    n = group.size
    scales = np.asarray(_DEFAULT_LMM_SD_SCALES[:q])
    sigma_p = InverseGamma(4.0, 3.0)
    mean, sd0 = _BETA3_MEAN[:p], _BETA3_SD[:p]
    prior = Normal(mean, sd0)
    eta_fit = _DEFAULT_LKJ_ETA if fit_eta is None else float(fit_eta)
    cov_prior = _default_family_prior(scales * fit_sd_scale_factor, eta_fit)
    name = f"lmm-default-prior-q{q}" + _wrong_prior_suffix(fit_eta, fit_sd_scale_factor)

    def simulate(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
        X = _design(rng, n, p)
        beta = mean + sd0 * rng.standard_normal(p)
        sigma = _draw_scale(rng, sigma_p)
        Sigma = _draw_default_family_cov(rng, scales, _DEFAULT_LKJ_ETA)
        b = rng.multivariate_normal(np.zeros(q), Sigma, size=groups, method="cholesky")
        Z = X[:, :q]
        y = X @ beta + np.einsum("nq,nq->n", Z, b[group]) + rng.normal(0.0, sigma, n)
        truth: dict[str, Any] = {"beta": beta, **_sd_cor(Sigma), "sigma": sigma,
                                 "b": b[:n_effects]}
        return truth, {"X": X, "Z": Z, "y": y}

    def fit(data: dict[str, Any], L: int, seed: int) -> dict[str, np.ndarray]:
        f = lmm(data["y"], data["X"], data["Z"], group, prior=prior, cov_prior=cov_prior,
                sigma_prior=sigma_p, chains=1, draws=L, thin=thin, warmup=warmup, seed=seed,
                threads=threads, check=False)
        return {"beta": f.posterior["beta"][0], **_sd_cor(f.posterior["Sigma"][0]),
                "sigma": f.posterior["sigma"][0], "b": f.posterior["b"][0][:, :n_effects]}

    return SbcCase(name, simulate, fit, {"sampler": "collapsed-mh+gibbs", "q": q, "thin": thin,
                                         "warmup": warmup, "n": n})


def glmm_default_sbc_case(family: str = "poisson", link: str | None = None, q: int = 1, *,
                          groups: int = 8, rows: int = 4, thin: int | None = None,
                          warmup: int = 200,
                          n_effects: int = 2, max_count: float = 1e5, fit_eta: float | None = None,
                          fit_sd_scale_factor: float = 1.0, threads: int = 1) -> SbcCase:
    """SBC case of :func:`bglmm.glmm` (default Laplace kernel, with interweaving and the marginal
    move) with a covariance prior of the default family: Half-Student-t(3, s_k) on each SD,
    s = (0.8, 0.5, 0.5)[:q] on the link scale, LKJ(2) on the correlations (q = 2, 3); intercept +
    max(1, q - 1) N(0, 1) covariates, the first q of the columns varying by group; beta ~
    N((0.3, -0.2, 0.1), diag(1, 0.7, 0.8)^2) (first max(2, q)); poisson: offset ~ U(0, 1);
    binomial: trials ~ U{1..6}. ``groups`` x ``rows``. Ranks of beta, each SD, each
    correlation and the effects of the first ``n_effects`` groups. Poisson data sets with a count
    above ``max_count`` are redrawn (0.5% of them for q = 1, 1.2% for q = 2, 2.6% for q = 3 at
    the default 1e5; see ``simulate``).

    ``thin`` defaults to 10 for q = 1 and 12 for q = 2, 3, with ``warmup=200``: measured to leave
    the thinned draws effectively independent (see the comment above ``_DEFAULT_LMM_SD_SCALES``).
    One fit costs ~25 / 45 / 90 ms (q = 1 / 2 / 3, one thread).

    ``fit_eta`` / ``fit_sd_scale_factor``: a deliberately wrong fit prior (see
    :func:`lmm_default_sbc_case`).
    """
    from . import glmm
    from .priors import Normal

    if q not in (1, 2, 3):
        raise ValueError("q must be 1, 2 or 3")
    if not 0 < max_count <= 1e6:
        raise ValueError("max_count must be in (0, 1e6] (rates are capped at exp(16) = 8.9e6)")
    fam = resolve_family(family, link)
    thin = (10 if q == 1 else 12) if thin is None else thin
    p = max(2, q)
    n = groups * rows
    group = np.repeat(np.arange(groups), rows)
    scales = np.asarray(_DEFAULT_GLMM_SD_SCALES[:q])
    mean, sd0 = _BETA3_MEAN[:p], _BETA3_SD[:p]
    prior = Normal(mean, sd0)
    eta_fit = _DEFAULT_LKJ_ETA if fit_eta is None else float(fit_eta)
    cov_prior = _default_family_prior(scales * fit_sd_scale_factor, eta_fit)
    name = (f"glmm-{fam.name}-{fam.link}-laplace-default-prior-q{q}"
            + _wrong_prior_suffix(fit_eta, fit_sd_scale_factor))

    def simulate(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
        # Poisson: the half-t(3) tails give the odd data set with astronomic counts; such data
        # sets (some count > max_count) are redrawn, parameters and all. The rejection looks at
        # the data alone, so the kept pairs are draws from p(y | y acceptable) p(theta | y): the
        # truth is still a draw from the posterior of the data it comes with, and the ranks stay
        # uniform for a correct sampler. Rates > exp(16) are capped before the draw only to keep
        # NumPy's Poisson generator in range: such a count exceeds max_count regardless.
        while True:
            X = _design(rng, n, p)
            beta = mean + sd0 * rng.standard_normal(p)
            Sigma = _draw_default_family_cov(rng, scales, _DEFAULT_LKJ_ETA)
            b = rng.multivariate_normal(np.zeros(q), Sigma, size=groups, method="cholesky")
            Z = X[:, :q]
            eta = X @ beta + np.einsum("nq,nq->n", Z, b[group])
            data: dict[str, Any] = {"X": X, "Z": Z}
            trials = None
            if fam.name == "poisson":
                data["offset"] = rng.uniform(0.0, 1.0, n)
                eta = np.minimum(eta + data["offset"], 16.0)
            elif fam.name == "binomial":
                trials = rng.integers(1, 7, n).astype(float)
                data["trials"] = trials
            data["y"] = draw_response(rng, fam.name, fam.link, eta, trials=trials)
            if fam.name != "poisson" or data["y"].max() <= max_count:
                return {"beta": beta, **_sd_cor(Sigma), "b": b[:n_effects]}, data

    def fit(data: dict[str, Any], L: int, seed: int) -> dict[str, np.ndarray]:
        f = glmm(data["y"], data["X"], data["Z"], group, fam.name, fam.link,
                 trials=data.get("trials"), offset=data.get("offset"), prior=prior,
                 random_prior=cov_prior, chains=1, draws=L, thin=thin, warmup=warmup, seed=seed,
                 threads=threads, check=False)
        return {"beta": f.posterior["beta"][0], **_sd_cor(f.posterior["Sigma"][0]),
                "b": f.posterior["b"][0][:, :n_effects]}

    return SbcCase(name, simulate, fit, {"sampler": "laplace", "q": q, "thin": thin,
                                         "warmup": warmup, "n": n})


# ---------------------------------------------------------------------------------------------
# Geweke (2004) joint-distribution test
# ---------------------------------------------------------------------------------------------
def mcse_mean(x: np.ndarray) -> np.ndarray:
    """Monte-Carlo standard error of the mean of each column of a stationary series, from
    Geyer's (1992) initial positive sequence estimate of the integrated autocorrelation time
    (autocovariances by FFT; pairs of lags summed while positive)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        return mcse_mean(x[:, None])[0]
    n = x.shape[0]
    xc = x - x.mean(axis=0)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(xc, size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), size, axis=0)[:n] / n
    out = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        if acov[0, j] <= 0:
            out[j] = 0.0
            continue
        rho = acov[:, j] / acov[0, j]
        tau = -1.0
        for k in range(0, n - 1, 2):
            pair = rho[k] + rho[k + 1]
            if pair <= 0:
                break
            tau += 2.0 * pair
        tau = max(tau, 1.0 / np.log10(max(n, 10)))
        out[j] = np.sqrt(acov[0, j] * tau / n)
    return out


def batch_means_se(x: np.ndarray, batches: int = 25) -> np.ndarray:
    """Standard error of the mean of a stationary series (columns) by non-overlapping batch
    means (consistent for autocorrelated chains when batches are long relative to the
    autocorrelation time)."""
    x = np.asarray(x, dtype=float)
    m = x.shape[0] // batches
    if m < 1:
        raise ValueError("series too short for batch means")
    means = x[: m * batches].reshape(batches, m, *x.shape[1:]).mean(axis=1)
    return means.std(axis=0, ddof=1) / np.sqrt(batches)


@dataclass
class GewekeResult:
    names: list[str]
    z: np.ndarray  # z-scores of the difference in means, one per (functional, moment)
    mc_mean: np.ndarray
    sc_mean: np.ndarray

    @property
    def max_abs_z(self) -> float:
        return float(np.max(np.abs(self.z)))

    def table(self) -> str:
        lines = [f"{'functional':<28}{'marginal-cond.':>16}{'successive-cond.':>18}{'z':>8}"]
        for n, a, b, z in zip(self.names, self.mc_mean, self.sc_mean, self.z):
            lines.append(f"{n:<28}{a:>16.4f}{b:>18.4f}{z:>8.2f}")
        return "\n".join(lines)


def geweke_test(prior_draw: Callable[[np.random.Generator], Any],
                data_draw: Callable[[np.random.Generator, Any], Any],
                posterior_step: Callable[[Any, Any, int], Any],
                functionals: Callable[[Any, Any], dict[str, float]],
                *, marginal: int, successive: int, seed: int = 0, burn: int = 10
                ) -> GewekeResult:
    """Geweke's test: means of g and g^2 for each functional g(theta, y) under the
    marginal-conditional simulator (``marginal`` independent draws theta ~ prior, y ~ p(y|theta))
    and the successive-conditional simulator (``successive`` steps of theta ~ posterior_step(
    theta, y, seed), y ~ p(y|theta)). The z-scores use the iid standard error for the former and
    batch means for the latter.
    """
    rng = np.random.default_rng([seed, 1])
    mc: list[list[float]] = []
    names: list[str] | None = None
    for _ in range(marginal):
        theta = prior_draw(rng)
        y = data_draw(rng, theta)
        g = functionals(theta, y)
        names = names or list(g)
        mc.append([g[k] for k in names])
    rng2 = np.random.default_rng([seed, 2])
    theta = prior_draw(rng2)
    y = data_draw(rng2, theta)
    sc: list[list[float]] = []
    for t in range(burn + successive):
        theta = posterior_step(theta, y, int(rng2.integers(2**62)))
        y = data_draw(rng2, theta)
        if t >= burn:
            g = functionals(theta, y)
            sc.append([g[k] for k in names])  # type: ignore[union-attr]
    a = np.asarray(mc)
    b = np.asarray(sc)
    a = np.concatenate([a, a**2], axis=1)
    b = np.concatenate([b, b**2], axis=1)
    assert names is not None
    all_names = names + [f"{k}^2" for k in names]
    se = np.sqrt(a.var(axis=0, ddof=1) / a.shape[0] + mcse_mean(b) ** 2)
    z = (a.mean(axis=0) - b.mean(axis=0)) / np.where(se > 0, se, np.inf)
    return GewekeResult(all_names, z, a.mean(axis=0), b.mean(axis=0))


# ---- Geweke test of bglmm.glm ------------------------------------------------------------------
GEWEKE_N = 10
_grng = np.random.default_rng(42)
GEWEKE_X = np.column_stack([np.ones(GEWEKE_N), np.linspace(-1.5, 1.5, GEWEKE_N)])
GEWEKE_TRIALS = _grng.integers(1, 6, GEWEKE_N).astype(float)
GEWEKE_OFFSET = _grng.uniform(0.0, 0.5, GEWEKE_N)
GEWEKE_M0 = np.array([0.2, -0.3])
GEWEKE_SD0 = np.array([0.8, 0.6])
GEWEKE_SD0_UNKNOWN = np.array([0.35, 0.3])  # beta | sigma^2 ~ N(M0, sigma^2 diag(sd^2))
GEWEKE_SIGMA2_PRIOR = (8.0, 6.0)  # sigma^2 ~ IG(8, 6): its 4th moment is finite
GEWEKE_SIGMA = 2.0  # known-sigma gaussian
GEWEKE_DISPERSION_PRIOR = (4.0, 1.0)  # Gamma(shape, rate) on phi / the gamma shape: mean 4, sd 2
GEWEKE_ZI_PRIOR = (3.0, 5.0)  # Beta(a, b) on the zero-inflated Poisson's zi: mean 0.375
del _grng


def glm_geweke(family: str, link: str | None, sampler: str, *, unknown_sigma: bool = False,
               marginal: int = 3000, successive: int = 2000, seed: int = 0, warmup: int = 60,
               thin: int | None = None, fit_dispersion_rate_factor: float = 1.0) -> GewekeResult:
    """Geweke test of :func:`bglmm.glm` on a 10-row design (intercept + slope).

    The GLM entry point takes no starting value, so one successive-conditional step is a short
    run (``warmup`` iterations from the sampler's own start, then ``thin`` more and one kept
    draw): exact for the conjugate sampler, a draw from p(beta | y) up to a negligible
    warm-up bias for the Metropolis samplers. The models keep y only moderately informative so
    the successive-conditional chain mixes (lag-1 autocorrelation ~ 1 - prior/posterior
    precision).

    The families with a dispersion (negbinomial, gamma, beta_binomial) draw it from
    Gamma(4, 1) (``GEWEKE_DISPERSION_PRIOR``; the zero-inflated Poisson's zi from Beta(3, 5),
    ``GEWEKE_ZI_PRIOR``), and a step is a short run of the whole sampler
    (Metropolis-Hastings step of beta given phi, then the slice step of log phi given beta);
    the functionals add phi, log phi (logit zi) and phi * beta0, and the data functionals are on log y
    (gamma) and log(1 + y) (negbinomial), whose moments stay moderate where those of y are
    dominated by rare huge draws. ``fit_dispersion_rate_factor`` != 1
    makes the fit's dispersion prior differ from the simulator's (Gamma(4, 1 x factor)): a
    deliberately wrong step, the negative control.
    """
    from . import glm
    from .priors import InverseGamma, Normal

    fam = resolve_family(family, link)
    disp = fam.dispersion
    if fit_dispersion_rate_factor != 1.0 and disp is None:
        raise ValueError("fit_dispersion_rate_factor applies to the families with a dispersion")
    thin = thin or {"conjugate": 1, "independence": 3}.get(sampler, 10)
    X = GEWEKE_X
    trials = GEWEKE_TRIALS if fam.has_trials and fam.name != "bernoulli" else None
    offset = GEWEKE_OFFSET if fam.name in ("poisson", "negbinomial", "zero_inflated_poisson") \
        else None
    a0, b0 = GEWEKE_SIGMA2_PRIOR
    d_shape, d_rate = GEWEKE_ZI_PRIOR if disp == "zi" else GEWEKE_DISPERSION_PRIOR
    sd0 = GEWEKE_SD0_UNKNOWN if unknown_sigma else GEWEKE_SD0
    prior = Normal(GEWEKE_M0, sd0)

    def prior_draw(rng: np.random.Generator) -> dict[str, Any]:
        if unknown_sigma:
            s2 = b0 / rng.gamma(a0)
            return {"beta": GEWEKE_M0 + np.sqrt(s2) * sd0 * rng.standard_normal(2), "sigma2": s2}
        theta = {"beta": GEWEKE_M0 + sd0 * rng.standard_normal(2)}
        if disp is not None:
            theta["phi"] = _dispersion_draw(rng, disp, d_shape, d_rate)
        return theta

    def data_draw(rng: np.random.Generator, theta: dict[str, Any]) -> np.ndarray:
        eta = X @ theta["beta"] + (0.0 if offset is None else offset)
        sigma = np.sqrt(theta["sigma2"]) if unknown_sigma else GEWEKE_SIGMA
        phi = to_core(disp, theta["phi"]) if disp is not None else 1.0
        return draw_response(rng, fam.name, fam.link, eta, trials=trials, sigma=sigma, phi=phi)

    def posterior_step(theta: dict[str, Any], y: np.ndarray, step_seed: int) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if fam.name == "gaussian":
            kw = {"sigma_prior": InverseGamma(a0, b0)} if unknown_sigma else {"sigma": GEWEKE_SIGMA}
        if disp is not None:
            kw["dispersion_prior"] = _dispersion_prior(disp, d_shape,
                                                       d_rate * fit_dispersion_rate_factor)
        fit = glm(X, y, fam.name, fam.link, trials=trials, offset=offset, prior=prior,
                  sampler=sampler, chains=1, draws=1, warmup=warmup, thin=thin, seed=step_seed,
                  threads=1, check=False, **kw)
        out = {"beta": fit.draws[0, -1]}
        if unknown_sigma:
            out["sigma2"] = float(fit.posterior["sigma"][0, -1]) ** 2
        if disp is not None:
            out["phi"] = float(fit.posterior[disp][0, -1])
        return out

    def functionals(theta: dict[str, Any], y: np.ndarray) -> dict[str, float]:
        b = theta["beta"]
        scale = trials if trials is not None else 1.0
        resp, what = y / scale, "y"
        if fam.name == "gamma":
            resp, what = np.log(y), "log y"
        elif fam.name in ("negbinomial", "zero_inflated_poisson"):
            resp, what = np.log1p(y), "log(1+y)"
        g = {"beta0": float(b[0]), "beta1": float(b[1]), "beta0*beta1": float(b[0] * b[1]),
             f"mean({what})": float(np.mean(resp)),
             f"mean(x*{what})": float(np.mean(X[:, 1] * resp))}
        if unknown_sigma:
            g["sigma2"] = float(theta["sigma2"])
        if disp is not None:
            phi = float(theta["phi"])
            log_phi = float(np.log(to_core(disp, phi)))  # logit zi for zi
            g.update({disp: phi, f"{'logit' if disp == 'zi' else 'log'} {disp}": log_phi,
                      f"{disp}*beta0": phi * float(b[0])})
        return g

    return geweke_test(prior_draw, data_draw, posterior_step, functionals, marginal=marginal,
                       successive=successive, seed=seed)



def hierarchical_normal_geweke(sampler: str = "gibbs", *, tau_prior: str = "half_normal",
                               unknown_sigma: bool = False, groups: int = 4,
                               marginal: int = 3000, successive: int = 2000, seed: int = 0,
                               warmup: int = 50, thin: int | None = None, step: str = "run",
                               collapsed: bool = True, scale_gibbs: bool = True,
                               independence: bool = False, drop_jacobian: bool = False,
                               sampler_tau_prior: str | None = None) -> GewekeResult:
    """Geweke test of :func:`bglmm.hierarchical_normal`: mu ~ N(0.5, 1), tau ~ HalfNormal(1)
    (or tau^2 ~ IG(3, 2) with ``tau_prior="inverse_gamma"``), theta_j ~ N(mu, tau^2),
    y_j ~ N(theta_j, 1) one row per group; with ``unknown_sigma`` two rows per group and
    sigma^2 ~ IG(6, 5).

    ``step="run"``: one successive-conditional step is a short run of the public entry point
    (``warmup`` iterations from the sampler's own start, the collapsed move's proposals adapted
    in them, then ``thin`` more and one kept draw), exact for the exact sampler.
    ``step="sweep"`` (Gibbs only): one step is one C++ sweep from the current state
    (``_core.hier_normal_sweep``; proposals at their starting values, not adapted): the
    collapsed move of (log tau[, log sigma]) unless ``collapsed=False`` — its random walk, and
    first an independence t proposal when ``independence`` — then the (mu, theta) block, then
    the Gibbs steps of tau^2 and sigma^2 unless ``scale_gibbs=False`` (which tests the
    collapsed move alone). Negative controls: ``drop_jacobian`` (the collapsed move forgets
    d tau / d log tau and d sigma^2 / d log sigma) and ``sampler_tau_prior`` (the sampler is
    told another tau prior than the one the prior draws use)."""
    from . import _core, hierarchical_normal
    from .priors import HalfNormal, InverseGamma, Normal, scale_prior_spec

    tau_priors = {"half_normal": HalfNormal(1.0), "inverse_gamma": InverseGamma(3.0, 2.0),
                  "half_normal_wide": HalfNormal(2.0)}
    tau_p = tau_priors[tau_prior]
    fit_tau_p = tau_priors[sampler_tau_prior or tau_prior]
    sigma_p = InverseGamma(6.0, 5.0)
    rows = 2 if unknown_sigma else 1
    group = np.repeat(np.arange(groups), rows)
    thin = thin or (1 if sampler == "exact" else 5)
    if step not in ("run", "sweep"):
        raise ValueError(f"step must be 'run' or 'sweep', got {step!r}")
    if step == "sweep" and sampler != "gibbs":
        raise ValueError("step='sweep' is for the Gibbs sampler")
    if step == "run" and (drop_jacobian or not scale_gibbs or independence):
        raise ValueError("drop_jacobian, scale_gibbs and independence apply to step='sweep'")
    gs = np.concatenate([[0], np.cumsum(np.full(groups, rows))]).astype(np.int64)
    var_known = np.empty(0) if unknown_sigma else np.ones(groups * rows)
    tau_kind, tau_a, tau_b = scale_prior_spec(fit_tau_p, "tau_prior")
    # A fixed independence proposal on (log tau[, log sigma]), roughly the prior's spread.
    ind_mean = np.array([-0.7, 0.0][: 2 if unknown_sigma else 1])
    ind_chol = np.diag([1.0, 0.2][: 2 if unknown_sigma else 1])

    def prior_draw(rng: np.random.Generator) -> dict[str, Any]:
        mu = rng.normal(0.5, 1.0)
        tau = _draw_scale(rng, tau_p)
        th = {"mu": mu, "tau": tau, "theta": rng.normal(mu, tau, groups)}
        if unknown_sigma:
            th["sigma"] = _draw_scale(rng, sigma_p)
        return th

    def data_draw(rng: np.random.Generator, th: dict[str, Any]) -> np.ndarray:
        return rng.normal(th["theta"][group], th.get("sigma", 1.0))

    def run_step(th: dict[str, Any], y: np.ndarray, step_seed: int) -> dict[str, Any]:
        kw: dict[str, Any] = {"sigma_prior": sigma_p} if unknown_sigma else {"sigma": 1.0}
        f = hierarchical_normal(y, group, mu_prior=Normal(0.5, 1.0), tau_prior=fit_tau_p,
                                sampler=sampler, chains=1, draws=1, warmup=warmup, thin=thin,
                                seed=step_seed, check=False, collapsed=collapsed, **kw)
        out = {"mu": float(f.posterior["mu"][0, -1]), "tau": float(f.posterior["tau"][0, -1]),
               "theta": np.asarray(f.posterior["theta"][0, -1])}
        if unknown_sigma:
            out["sigma"] = float(f.posterior["sigma"][0, -1])
        return out

    def sweep_step(th: dict[str, Any], y: np.ndarray, step_seed: int) -> dict[str, Any]:
        mu, tau, theta, sigma, _ = _core.hier_normal_sweep(
            np.ascontiguousarray(y, dtype=float), var_known, gs, 0.5, 1.0, tau_kind, tau_a, tau_b,
            sigma_p.shape, sigma_p.scale, th["mu"], th["tau"], np.asarray(th["theta"], float),
            th.get("sigma", 1.0), step_seed, 0, 1, collapsed=collapsed, scale_gibbs=scale_gibbs,
            drop_jacobian=drop_jacobian, ind_mean=ind_mean if independence else np.empty(0),
            ind_chol=ind_chol if independence else np.empty((0, 0)))
        out = {"mu": mu, "tau": tau, "theta": np.asarray(theta)}
        if unknown_sigma:
            out["sigma"] = sigma
        return out

    posterior_step = run_step if step == "run" else sweep_step

    def functionals(th: dict[str, Any], y: np.ndarray) -> dict[str, float]:
        g = {"mu": th["mu"], "tau": th["tau"], "log(tau)": float(np.log(th["tau"])),
             "theta[0]": float(th["theta"][0]), "theta[0]*mu": float(th["theta"][0] * th["mu"]),
             "mean(y)": float(np.mean(y)), "y[0]": float(y[0])}
        if unknown_sigma:
            g["sigma"] = th["sigma"]
            g["log(sigma)"] = float(np.log(th["sigma"]))
        return g

    return geweke_test(prior_draw, data_draw, posterior_step, functionals, marginal=marginal,
                       successive=successive, seed=seed)


# ---------------------------------------------------------------------------------------------
# Exact reference: the variance components of a gaussian LMM with intercept-only random factors
# ---------------------------------------------------------------------------------------------
#
# y = X beta + sum_k Z_k b_k + e, b_k ~ N(0, s_k^2 I_{m_k}) (Z_k the 0/1 indicator of factor k's
# levels), e ~ N(0, sigma^2 I), beta ~ N(m0, V0). Given theta = (s_1..s_K, sigma), beta and every
# b_k integrate out: y ~ N(X m0, Sigma), Sigma = sigma^2 I + W G W' with W = [Z_1 .. Z_K X] and
# G = blockdiag(s_1^2 I, .., s_K^2 I, V0). With P = G^-1 and C = W'W + sigma^2 P (d x d,
# d = sum m_k + p) the Woodbury identity and the matrix determinant lemma give, for r = y - X m0,
#
#   log|Sigma|      = (n - d) log sigma^2 + log|G| + log|C|
#   r' Sigma^-1 r   = (r'r - (W'r)' C^-1 (W'r)) / sigma^2,
#
# so nothing n x n is ever formed. With a flat prior on beta (P's beta block zero, V0 -> inf) the
# same C is Henderson's mixed-model matrix, log|C| - (d - n) log sigma^2 + log|D| =
# log|V| + log|X' V^-1 X| (V = sigma^2 I + Z D Z'), and the quadratic form is the GLS residual
# r' V^-1 r minimised over beta: together the restricted (REML) likelihood.
# Any one factor's block of W'W is diagonal (its level counts); the factor with the most levels
# is eliminated in closed form, leaving a dense Schur complement over the other factors' levels
# and beta (Penicillin: 6 + 1, Pastes: 10 + 1), Cholesky-factored for each grid point.


def _factor_layout(factor_codes: Any, n: int) -> tuple[list[str], list[np.ndarray], list[int]]:
    """Names, integer codes 0..m_k-1 and level counts of the random factors. ``factor_codes``:
    a dict {name: labels} or a sequence of label arrays (named factor0, factor1, ...)."""
    if isinstance(factor_codes, dict):
        names = [str(k) for k in factor_codes]
        columns = list(factor_codes.values())
    else:
        columns = list(factor_codes)
        names = [f"factor{k}" for k in range(len(columns))]
    if not columns:
        raise ValueError("give at least one random factor")
    codes, sizes = [], []
    for name, labels in zip(names, columns):
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"factor {name!r} has {labels.size} labels for {n} observations")
        _, code = np.unique(labels, return_inverse=True)
        codes.append(code.astype(np.int64).ravel())
        sizes.append(int(code.max()) + 1)
    return names, codes, sizes


class _VarianceComponents:
    """The Woodbury pieces of one data set, with the levels of the factor that has the most of
    them (its block of W'W is diagonal, the counts) eliminated in closed form: what is left is
    a dense system over the other factors' levels and beta, R = [other Z_k, X].

    Holds the counts, Z_0'R, R'R, Z_0'r, R'r and r'r, and the prior precision of beta (zero for
    the flat prior of the restricted likelihood)."""

    def __init__(self, y: Any, X: Any, factor_codes: Any, beta_mean: Any = None,
                 beta_cov: Any = None) -> None:
        y = np.asarray(y, dtype=float).ravel()
        n = y.size
        X = np.asarray(X, dtype=float).reshape(n, -1)
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X))):
            raise ValueError("y and X must be finite")
        self.names, codes, sizes = _factor_layout(factor_codes, n)
        self.n, self.p, self.K = n, X.shape[1], len(codes)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.d = int(self.sizes.sum()) + self.p
        self.flat = beta_cov is None
        if self.flat:
            # beta is flat: shifting y by any X b changes nothing, so work with the least-squares
            # residual (less cancellation in r'r - (W'r)' C^-1 W'r)
            coef, *_ = np.linalg.lstsq(X, y, rcond=None)
            r = y - X @ coef
            prec_beta = np.zeros((self.p, self.p))
            self.logdet_v0 = 0.0
        else:
            m0 = np.broadcast_to(np.asarray(beta_mean, dtype=float).ravel(), (self.p,))
            V0 = np.atleast_2d(np.asarray(beta_cov, dtype=float))
            if V0.shape == (1, 1) and self.p > 1:
                V0 = np.eye(self.p) * V0[0, 0]
            if V0.shape != (self.p, self.p):
                raise ValueError(f"beta_cov has shape {V0.shape}, expected ({self.p}, {self.p})")
            L0 = np.linalg.cholesky(V0)
            L0inv = np.linalg.inv(L0)
            prec_beta = L0inv.T @ L0inv
            self.logdet_v0 = 2.0 * float(np.sum(np.log(np.diag(L0))))
            r = y - X @ m0
        # the eliminated factor: the one with the most levels
        self.first = int(np.argmax(self.sizes))
        rest = [k for k in range(self.K) if k != self.first]
        c0, m0_levels = codes[self.first], sizes[self.first]
        self.counts = np.bincount(c0, minlength=m0_levels).astype(float)
        self.u0 = np.bincount(c0, weights=r, minlength=m0_levels)
        # R = [Z_k for k in rest, X]: columns laid out factor by factor, then X
        offsets = np.concatenate([[0], np.cumsum([sizes[k] for k in rest])]).astype(int)
        self.q = int(offsets[-1]) + self.p
        self.rest_factor = np.repeat(np.asarray(rest, dtype=np.int64),
                                     [sizes[k] for k in rest]).astype(np.int64)
        self.n_rest_levels = int(offsets[-1])
        Z0R = np.zeros((m0_levels, self.q))
        RR = np.zeros((self.q, self.q))
        uR = np.zeros(self.q)
        for i, k in enumerate(rest):
            ck, mk, ok = codes[k], sizes[k], offsets[i]
            Z0R[:, ok:ok + mk] = np.bincount(c0 * mk + ck, minlength=m0_levels * mk
                                             ).reshape(m0_levels, mk)
            for j in range(i, len(rest)):
                l = rest[j]
                cl, ml, ol = codes[l], sizes[l], offsets[j]
                block = np.bincount(ck * ml + cl, minlength=mk * ml).reshape(mk, ml).astype(float)
                RR[ok:ok + mk, ol:ol + ml] = block
                RR[ol:ol + ml, ok:ok + mk] = block.T
            ZtX = np.zeros((mk, self.p))
            np.add.at(ZtX, ck, X)
            RR[ok:ok + mk, self.n_rest_levels:] = ZtX
            RR[self.n_rest_levels:, ok:ok + mk] = ZtX.T
            uR[ok:ok + mk] = np.bincount(ck, weights=r, minlength=mk)
        Z0X = np.zeros((m0_levels, self.p))
        np.add.at(Z0X, c0, X)
        Z0R[:, self.n_rest_levels:] = Z0X
        RR[self.n_rest_levels:, self.n_rest_levels:] = X.T @ X
        uR[self.n_rest_levels:] = X.T @ r
        self.Z0R, self.RR, self.uR, self.rtr = Z0R, RR, uR, float(r @ r)
        self.prec_beta = prec_beta

    def _pieces(self, log_sd: np.ndarray, log_sigma: np.ndarray) -> np.ndarray:
        """log|Sigma| - log|V0| (or log|V| + log|X'V^-1 X| when beta is flat) plus the quadratic
        form, for a batch: log_sd (B, K), log_sigma (B,).

        With C = W'W + sigma^2 P = [[A, Z_0'R], [R'Z_0, R'R + sigma^2 P_R]], A = diag(counts +
        sigma^2 / s_0^2): log|C| = log|A| + log|S| and (W'r)' C^-1 W'r = u_0' A^-1 u_0 + w' S^-1 w
        with S = R'R + sigma^2 P_R - R'Z_0 A^-1 Z_0'R and w = R'r - R'Z_0 A^-1 u_0."""
        B = log_sigma.size
        s2 = np.exp(2.0 * log_sigma)
        a = self.counts[None, :] + s2[:, None] * np.exp(-2.0 * log_sd[:, self.first])[:, None]
        ainv = 1.0 / a
        scaled = self.Z0R[None, :, :] * ainv[:, :, None]  # A^-1 Z_0'R
        S = np.broadcast_to(self.RR, (B, self.q, self.q)) - np.einsum(
            "jr,bjs->brs", self.Z0R, scaled, optimize=True)
        lev = np.arange(self.n_rest_levels)
        S[:, lev, lev] += s2[:, None] * np.exp(-2.0 * log_sd[:, self.rest_factor])
        if not self.flat:
            k = self.n_rest_levels
            S[:, k:, k:] += s2[:, None, None] * self.prec_beta
        w = self.uR[None, :] - np.einsum("bjr,j->br", scaled, self.u0)
        L = np.linalg.cholesky(S)
        logdet_c = (np.sum(np.log(a), axis=1)
                    + 2.0 * np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)), axis=1))
        v = np.linalg.solve(L, w[:, :, None])[..., 0]
        fitted = np.sum(self.u0[None, :] ** 2 * ainv, axis=1) + np.sum(v * v, axis=1)
        quad = (self.rtr - fitted) / s2
        logdet = ((self.n - self.d) * np.log(s2) + 2.0 * log_sd @ self.sizes.astype(float)
                  + logdet_c)
        return logdet + quad

    def evaluate(self, log_sd: Any, log_sigma: Any) -> np.ndarray:
        """The log marginal likelihood (proper beta prior) or the restricted log likelihood
        (flat), at log SDs (..., K) and log sigma (...)."""
        log_sd = np.asarray(log_sd, dtype=float)
        log_sigma = np.asarray(log_sigma, dtype=float)
        shape = log_sigma.shape
        if log_sd.shape != shape + (self.K,):
            raise ValueError(f"log_sd has shape {log_sd.shape}, expected {shape + (self.K,)}")
        ls = log_sd.reshape(-1, self.K)
        lg = log_sigma.ravel()
        out = np.empty(lg.size)
        per_point = self.counts.size * self.q + self.q * self.q
        batch = max(1, int(2e6 // per_point))
        for start in range(0, lg.size, batch):
            sl = slice(start, start + batch)
            out[sl] = self._pieces(ls[sl], lg[sl])
        if self.flat:
            const = (self.n - self.p) * np.log(2.0 * np.pi)
        else:
            const = self.n * np.log(2.0 * np.pi) + self.logdet_v0
        return (-0.5 * (const + out)).reshape(shape)


def lmm_log_marginal_likelihood(y: Any, X: Any, factor_codes: Any, beta_mean: Any, beta_cov: Any,
                                sd: Any, sigma: Any) -> np.ndarray:
    """log p(y | s_1..s_K, sigma) of the gaussian LMM with intercept-only random factors, beta
    ~ N(beta_mean, beta_cov) and every b_k integrated out: the log density of
    N(X m0, X V0 X' + sum_k s_k^2 Z_k Z_k' + sigma^2 I) at y, computed through the
    (sum m_k + p)-dimensional Woodbury system. ``sd`` has shape (..., K), ``sigma`` (...)."""
    vc = _VarianceComponents(y, X, factor_codes, beta_mean, beta_cov)
    return vc.evaluate(np.log(np.asarray(sd, dtype=float)), np.log(np.asarray(sigma, dtype=float)))


def lmm_reml_log_likelihood(y: Any, X: Any, factor_codes: Any, sd: Any, sigma: Any) -> np.ndarray:
    """The restricted (REML) log likelihood of the same model, -1/2 [log|V| + log|X'V^-1 X| +
    r'V^-1 r + (n - p) log 2 pi] with V = sigma^2 I + sum_k s_k^2 Z_k Z_k' and r the GLS residual
    — lme4's REML criterion times -1/2; the limit V0 -> infinity of the marginal likelihood plus
    1/2 log|V0| + p/2 log 2 pi."""
    vc = _VarianceComponents(y, X, factor_codes)
    return vc.evaluate(np.log(np.asarray(sd, dtype=float)), np.log(np.asarray(sigma, dtype=float)))


def _maximise(f: Callable[[np.ndarray], float], start: np.ndarray) -> np.ndarray:
    """Maximiser of a smooth function of a few unconstrained variables: Nelder-Mead to get
    close, then BFGS to polish."""
    from scipy import optimize

    neg = lambda t: -float(f(t))  # noqa: E731
    res = optimize.minimize(neg, start, method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 20000,
                                     "maxfev": 40000})
    res2 = optimize.minimize(neg, res.x, method="BFGS", options={"gtol": 1e-8})
    best = res2.x if res2.fun <= res.fun else res.x
    if not np.all(np.isfinite(best)):
        raise RuntimeError("the optimisation of the variance components failed")
    return best


def lmm_reml_estimates(y: Any, X: Any, factor_codes: Any) -> dict[str, float]:
    """REML estimates of the SD of each random factor and of sigma (the maximiser of
    :func:`lmm_reml_log_likelihood`, over log SDs): what lme4's ``lmer(..., REML = TRUE)``
    reports as the standard deviations of the variance components."""
    vc = _VarianceComponents(y, X, factor_codes)
    start = np.full(vc.K + 1, 0.5 * np.log(vc.rtr / max(vc.n - vc.p, 1) / (vc.K + 1)))
    t = _maximise(lambda t: vc.evaluate(t[:-1], t[-1]), start)
    out = {name: float(np.exp(t[k])) for k, name in enumerate(vc.names)}
    out["sigma"] = float(np.exp(t[-1]))
    return out


def scale_prior_logpdf(prior: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The log density of a standard deviation s under a bglmm prior object, as a function of s:
    HalfStudentT(df, scale) (and HalfCauchy), HalfNormal(scale), UniformSD(upper) (the flat
    prior is 0 on (0, upper)), and InverseGamma(shape, scale) on the variance s^2, whose density
    for s carries the Jacobian d s^2 / d s = 2 s."""
    from scipy import special

    from .priors import HalfNormal, HalfStudentT, InverseGamma, UniformSD

    if isinstance(prior, HalfStudentT):
        nu, a = float(prior.df), float(prior.scale)
        c = (np.log(2.0) + special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2)
             - 0.5 * np.log(nu * np.pi) - np.log(a))

        def half_t(s: Any) -> np.ndarray:
            s = np.asarray(s, dtype=float)
            return c - (nu + 1) / 2 * np.log1p((s / a) ** 2 / nu)
        return half_t
    if isinstance(prior, HalfNormal):
        a = float(prior.scale)

        def half_normal(s: Any) -> np.ndarray:
            s = np.asarray(s, dtype=float)
            return 0.5 * np.log(2.0 / np.pi) - np.log(a) - 0.5 * (s / a) ** 2
        return half_normal
    if isinstance(prior, UniformSD):
        upper = float(prior.upper)
        c = 0.0 if np.isinf(upper) else -np.log(upper)

        def uniform(s: Any) -> np.ndarray:
            s = np.asarray(s, dtype=float)
            return np.where(s < upper, c, -np.inf)
        return uniform
    if isinstance(prior, InverseGamma):
        a, b = float(prior.shape), float(prior.scale)
        c = a * np.log(b) - special.gammaln(a) + np.log(2.0)

        def inverse_gamma_on_variance(s: Any) -> np.ndarray:
            s = np.asarray(s, dtype=float)
            v = s * s
            return c - (a + 1) * np.log(v) - b / v + np.log(s)
        return inverse_gamma_on_variance
    raise TypeError("the prior of a standard deviation must be HalfStudentT, HalfCauchy, "
                    f"HalfNormal, UniformSD or InverseGamma (on the variance), got "
                    f"{type(prior).__name__}")


def lmm_default_priors(y: Any, X: Any) -> dict[str, Any]:
    """bglmm's documented default priors (see :func:`bglmm.api.default_priors`) of a gaussian
    LMM whose random terms are all intercept-only, built from y and X alone: with s = sd(y),
    a slope on x_j gets N(0, (2.5 s / sd(x_j))^2) and the intercept N(mean(y), (10 s)^2 (1 +
    sum_j (mean(x_j) / sd(x_j))^2)); sigma^2 ~ Inverse-Gamma(1/2, s2 / 2) with s2 the residual
    variance of the least-squares fit of y on X; every random intercept's SD ~ Half-Student-t(3,
    2.5 s). Returns {"beta": Normal, "sigma": InverseGamma, "sd": HalfStudentT}, the keys of
    ``default_priors``."""
    from .priors import HalfStudentT, InverseGamma, Normal

    y = np.asarray(y, dtype=float).ravel()
    X = np.asarray(X, dtype=float).reshape(y.size, -1)
    n, p = X.shape
    s = float(np.std(y, ddof=1)) if n > 1 else 0.0
    s = s if s > 0 else 1.0
    mean, sd = X.mean(axis=0), X.std(axis=0)
    const = sd <= 1e-12 * np.maximum(1.0, np.abs(mean))
    sd = np.where(const, 1.0, sd)
    centre = np.where(const, 0.0, mean / sd)
    v_int = (10 * s) ** 2 * (1.0 + float(np.sum(centre**2)))
    prior_sd = np.where(const, np.sqrt(v_int), 2.5 * s / sd)
    m = np.where(const, float(np.mean(y)), 0.0)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    s2 = float(resid @ resid) / (n - p) if n > p else 0.0
    if not s2 > 0:
        s2 = float(np.var(y)) if n > 1 else 1.0
    s2 = s2 if s2 > 0 else 1.0
    return {"beta": Normal(mean=m, sd=prior_sd), "sigma": InverseGamma(0.5, 0.5 * s2),
            "sd": HalfStudentT(3.0, 2.5 * s)}


def lmm_reference_priors(priors: dict[str, Any], factors: Sequence[str], p: int
                         ) -> dict[str, Any]:
    """The prior arguments of :func:`lmm_variance_posterior` from bglmm prior objects — the
    dict of :func:`bglmm.api.default_priors`, ``fit.priors`` or :func:`lmm_default_priors`:
    ``"beta"`` a Normal, ``"sigma"`` an InverseGamma on sigma^2 (or any prior on an SD), and
    for each factor the prior of its SD under the factor's own name (a prior, or a dict
    {"Intercept": prior}) or else under ``"sd"`` (one prior for every factor, a list with one
    per factor, or a dict {factor: prior})."""
    factors = [str(f) for f in factors]
    sd = priors.get("sd")
    per = []
    for k, f in enumerate(factors):
        if f in priors:
            pr = priors[f]
        elif isinstance(sd, dict):
            pr = sd[f]
        elif isinstance(sd, (list, tuple)):
            if len(sd) != len(factors):
                raise ValueError(f"{len(sd)} SD priors for {len(factors)} factors")
            pr = sd[k]
        elif sd is not None:
            pr = sd
        else:
            raise ValueError(f"no SD prior for factor {f!r}")
        if isinstance(pr, dict):
            pr = pr["Intercept"]
        per.append(pr)
    mean, cov = priors["beta"].to_arrays(p, "beta prior")
    return {"beta_mean": mean, "beta_cov": cov,
            "sd_prior_logpdf": [scale_prior_logpdf(pr) for pr in per],
            "sigma_prior_logpdf": scale_prior_logpdf(priors["sigma"])}


REFERENCE_PROBS = (0.025, 0.25, 0.5, 0.75, 0.975)


@dataclass
class VariancePosterior:
    """Posterior marginals of the SDs of the random factors and of sigma, from quadrature on a
    tensor grid over (log s_1, .., log s_K, log sigma).

    ``quantiles[name]`` holds the quantiles at ``probs`` (on the SD scale), ``mean[name]`` the
    posterior mean of the SD; ``axes`` are the grid's log-SD nodes and ``log_density`` the
    unnormalised log posterior on them (with the Jacobians of the log scale). ``mode`` is the
    posterior mode in the log coordinates and ``curvature_sd`` the SDs of the normal
    approximation there. ``integration_error[name]`` is |this result - the result on the grid
    with twice the spacing| at each prob (``mean_error`` for the means): an estimate, generous
    since the error falls fast with the spacing, of the quadrature error of the coarser grid."""

    names: list[str]
    probs: tuple[float, ...]
    quantiles: dict[str, np.ndarray]
    mean: dict[str, float]
    mode: np.ndarray
    curvature_sd: np.ndarray
    axes: list[np.ndarray]
    log_density: np.ndarray
    integration_error: dict[str, np.ndarray] = field(default_factory=dict)
    mean_error: dict[str, float] = field(default_factory=dict)

    def quantile(self, name: str, prob: float) -> float:
        """The quantile of one SD (or sigma) at one of ``probs``."""
        j = int(np.argmin(np.abs(np.asarray(self.probs) - prob)))
        if abs(self.probs[j] - prob) > 1e-12:
            raise ValueError(f"prob {prob} is not one of {self.probs}")
        return float(self.quantiles[name][j])

    def sample(self, size: int | tuple[int, ...], seed: Any = None) -> dict[str, np.ndarray]:
        """Independent draws from the gridded posterior (grid cells with probability
        proportional to their mass, then uniform within the cell): {name: SDs of shape
        ``size``}, e.g. ``size=(chains, draws)`` to stand in for a sampler's output."""
        rng = _rng(seed)
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        count = int(np.prod(shape))
        w = np.exp(self.log_density - self.log_density.max()).ravel()
        cells = rng.choice(w.size, size=count, p=w / w.sum())
        idx = np.unravel_index(cells, self.log_density.shape)
        out = {}
        for j, name in enumerate(self.names):
            step = self.axes[j][1] - self.axes[j][0]
            t = self.axes[j][idx[j]] + step * (rng.random(count) - 0.5)
            out[name] = np.exp(t).reshape(shape)
        return out

    def table(self) -> Any:
        """A pandas DataFrame: one row per SD, the quantiles, the mean and the largest
        quantile change on halving the grid spacing."""
        import pandas as pd

        rows = {}
        for name in self.names:
            row = {f"q{100 * p:g}": v for p, v in zip(self.probs, self.quantiles[name])}
            row["mean"] = self.mean[name]
            if name in self.integration_error:
                row["grid_error"] = float(np.max(self.integration_error[name]))
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index")


def _marginal_summaries(axis: np.ndarray, log_marginal: np.ndarray, probs: Sequence[float],
                        refine: int = 32) -> tuple[np.ndarray, float]:
    """Quantiles (of exp(t)) and E[exp(t)] from a log marginal density of t known on a regular
    grid: a cubic spline through the log density, then a fine trapezoid rule."""
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(axis, log_marginal - log_marginal.max())
    fine = np.linspace(axis[0], axis[-1], (axis.size - 1) * refine + 1)
    dens = np.exp(spline(fine))
    h = fine[1] - fine[0]
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * h * (dens[1:] + dens[:-1]))])
    total = cdf[-1]
    q = np.interp(np.asarray(probs) * total, cdf, fine)
    ed = np.exp(fine) * dens
    mean = float(np.sum(0.5 * h * (ed[1:] + ed[:-1])) / total)
    return np.exp(q), mean


def lmm_variance_posterior(y: Any, X: Any, factor_codes: Any, beta_mean: Any, beta_cov: Any,
                           sd_prior_logpdf: Any, sigma_prior_logpdf: Callable[[Any], Any], *,
                           grid: Any = 32, width: float = 6.0, edge_mass: float = 1e-7,
                           refine: bool = True, probs: Sequence[float] = REFERENCE_PROBS
                           ) -> VariancePosterior:
    """Exact posterior marginals of the variance components of the gaussian LMM
    y = X beta + sum_k Z_k b_k + e with intercept-only random factors (crossed or nested),
    b_k ~ N(0, s_k^2 I), e ~ N(0, sigma^2 I), beta ~ N(beta_mean, beta_cov), priors
    ``sd_prior_logpdf`` on each SD s_k (one callable of the SD, or one per factor) and
    ``sigma_prior_logpdf`` on sigma (callables of the SD; :func:`scale_prior_logpdf` builds them
    from bglmm's prior objects, :func:`lmm_reference_priors` from a whole prior dict).

    beta and the b_k integrate out in closed form (:func:`lmm_log_marginal_likelihood`); the
    remaining K + 1 dimensions are integrated on a tensor grid over the log SDs, with the
    Jacobian s of each log. The grid is laid out adaptively: the posterior mode is found by
    optimisation and the curvature there gives a normal approximation; each axis spans
    mode +- ``width`` approximate posterior SDs with ``grid`` nodes, and is extended (same
    spacing) while the posterior mass of its first or last node is above ``edge_mass``
    (skewed, heavy-tailed marginals of log SDs are common with few levels). ``grid`` may
    instead be a list of K + 1 increasing, evenly spaced arrays of log-SD nodes. Marginal
    densities are the sums over the other axes; quantiles and means come from a cubic spline
    through each log marginal and a fine trapezoid rule. With ``refine`` the whole computation
    is repeated on the grid with half the spacing (same range), that finer result is returned,
    and the differences to the coarser one are in ``integration_error`` and ``mean_error``.
    """
    from scipy.special import logsumexp

    vc = _VarianceComponents(y, X, factor_codes, beta_mean, beta_cov)
    K = vc.K
    sd_lp = list(sd_prior_logpdf) if isinstance(sd_prior_logpdf, (list, tuple)) else \
        [sd_prior_logpdf] * K
    if len(sd_lp) != K:
        raise ValueError(f"{len(sd_lp)} SD priors for {K} random factors")

    def log_post(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        ls, lg = t[..., :K], t[..., K]
        out = vc.evaluate(ls, lg)
        for k in range(K):
            out = out + np.asarray(sd_lp[k](np.exp(ls[..., k])), dtype=float) + ls[..., k]
        out = out + np.asarray(sigma_prior_logpdf(np.exp(lg)), dtype=float) + lg
        return np.where(np.isnan(out), -np.inf, out)

    start = np.full(K + 1, 0.5 * np.log(vc.rtr / max(vc.n - vc.p, 1) / (K + 1)))
    mode = _maximise(lambda t: float(log_post(t)), start)
    # curvature at the mode by central differences -> SDs of the normal approximation
    h = 1e-3
    D = K + 1
    H = np.empty((D, D))
    E = np.eye(D) * h
    for i in range(D):
        for j in range(i, D):
            fpp = log_post(mode + E[i] + E[j])
            fpm = log_post(mode + E[i] - E[j])
            fmp = log_post(mode - E[i] + E[j])
            fmm = log_post(mode - E[i] - E[j])
            H[i, j] = H[j, i] = -(fpp - fpm - fmp + fmm) / (4 * h * h)
    try:
        np.linalg.cholesky(H)
        curv_sd = np.sqrt(np.diag(np.linalg.inv(H)))
    except np.linalg.LinAlgError:
        curv_sd = 1.0 / np.sqrt(np.maximum(np.diag(H), 1e-2))

    if isinstance(grid, (int, np.integer)):
        points = int(grid)
        if points < 5:
            raise ValueError("grid needs at least 5 points per axis")
        axes = [mode[j] + curv_sd[j] * np.linspace(-width, width, points) for j in range(D)]
        lp = log_post(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1))
        # grow an axis (same spacing, a slab of new nodes at a time) while the posterior mass
        # of its first or last node exceeds edge_mass: skewed, heavy-tailed marginals of log
        # SDs are common with few levels (e.g. density ~ s near s = 0)
        extra = max(2, points // 8)
        for _ in range(400):
            total = logsumexp(lp)
            grown = False
            for j in range(D):
                others = tuple(i for i in range(D) if i != j)
                node_mass = logsumexp(lp, axis=others) - total
                for side in (0, -1):
                    if node_mass[side] <= np.log(edge_mass):
                        continue
                    step = axes[j][1] - axes[j][0]
                    new_nodes = (axes[j][0] - step * np.arange(extra, 0, -1) if side == 0
                                 else axes[j][-1] + step * np.arange(1, extra + 1))
                    slab = list(axes)
                    slab[j] = new_nodes
                    lp_slab = log_post(np.stack(np.meshgrid(*slab, indexing="ij"), axis=-1))
                    parts = (lp_slab, lp) if side == 0 else (lp, lp_slab)
                    lp = np.concatenate(parts, axis=j)
                    axes[j] = np.concatenate((new_nodes, axes[j]) if side == 0
                                             else (axes[j], new_nodes))
                    grown = True
                    break
                if grown:
                    break
            if not grown:
                break
        else:
            raise RuntimeError("the posterior did not fit in the grid after 400 extensions")
    else:
        axes = [np.asarray(a, dtype=float) for a in grid]
        if len(axes) != D:
            raise ValueError(f"grid has {len(axes)} axes, expected {D}")
        lp = log_post(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1))

    names = vc.names + ["sigma"]

    def summarise(axes: list[np.ndarray], lp: np.ndarray
                  ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        qs, means = {}, {}
        for j, name in enumerate(names):
            others = tuple(i for i in range(D) if i != j)
            lm = logsumexp(lp, axis=others)
            qs[name], means[name] = _marginal_summaries(axes[j], lm, probs)
        return qs, means

    qs, means = summarise(axes, lp)
    errors: dict[str, np.ndarray] = {}
    mean_errors: dict[str, float] = {}
    if refine:
        fine_axes = [np.linspace(a[0], a[-1], 2 * a.size - 1) for a in axes]
        fine_lp = log_post(np.stack(np.meshgrid(*fine_axes, indexing="ij"), axis=-1))
        fq, fm = summarise(fine_axes, fine_lp)
        errors = {nm: np.abs(fq[nm] - qs[nm]) for nm in names}
        mean_errors = {nm: abs(fm[nm] - means[nm]) for nm in names}
        axes, lp, qs, means = fine_axes, fine_lp, fq, fm
    return VariancePosterior(names=names, probs=tuple(float(p) for p in probs), quantiles=qs,
                             mean=means, mode=mode, curvature_sd=curv_sd, axes=axes,
                             log_density=lp, integration_error=errors, mean_error=mean_errors)
