"""The fit object: posterior draws shaped (chain, draw, ...), summaries and ArviZ output.

The summary and the convergence check need NumPy only (:mod:`bglmm.diagnostics`); ArviZ is
imported when first needed (``to_inference_data``, ``waic``, ``loo``, ``save`` / ``load``), by
:func:`import_arviz`, which only this module and :mod:`bglmm.api` call.
"""

from __future__ import annotations

import itertools
import os
import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .diagnostics import summary_diagnostics
from .warnings import ConvergenceWarning, InterruptedWarning

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the calling function point at the
    first frame outside bglmm: the user's line that called ``bglmm.fit``, ``bglmm.glm``, ...
    however many bglmm functions lie in between."""
    frame = sys._getframe(1)  # the function that will call warnings.warn: stacklevel 1
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            _PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def _with_values(names: list[str], values: list[float], fmt: str) -> str:
    """'a (1.02), b (undefined)': parameter names with their R-hat or ESS."""
    return ", ".join(f"{n} ({fmt.format(v) if np.isfinite(v) else 'undefined'})"
                     for n, v in zip(names, values))


def element_labels(name: str, shape: tuple[int, ...], dims: list[str] | None,
                   coords: dict[str, Any]) -> list[str]:
    """The summary's row names of a variable's elements, as ArviZ labels them: ``name`` for a
    scalar, else ``name[a, b]`` from the coordinate values of its dimensions (C order); a
    dimension without a name is ``<name>_dim_<i>``, one without coordinates counts from 0."""
    if not shape:
        return [name]
    dims = list(dims or [])
    values = []
    for i, size in enumerate(shape):
        dim = dims[i] if i < len(dims) and dims[i] is not None else f"{name}_dim_{i}"
        values.append(np.asarray(coords[dim]) if dim in coords else np.arange(size))
    return [f"{name}[{', '.join(f'{v}' for v in combo)}]" for combo in itertools.product(*values)]


def import_arviz():
    """Import ArviZ without its refactoring FutureWarning (noise for bglmm's users)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def stack_chains(results: list[dict[str, Any]], key: str) -> np.ndarray:
    """Stack one entry of each chain's result dict into an array (chain, draw, ...)."""
    return np.stack([np.asarray(r[key]) for r in results], axis=0)


def sd_cor_draws(cov: np.ndarray, terms: list[str], sd_prefix: str,
                 cor_prefix: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The SDs and correlations in covariance draws ``cov`` (..., q, q) of the random terms
    ``terms``: ``{sd_prefix + term: sd}`` and ``{cor_prefix + a + "__" + b: cor}`` for a before b."""
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    sds = {f"{sd_prefix}{t}": sd[..., a] for a, t in enumerate(terms)}
    cors = {f"{cor_prefix}{terms[a]}__{terms[b]}": cov[..., a, b] / (sd[..., a] * sd[..., b])
            for a in range(len(terms)) for b in range(a + 1, len(terms))}
    return sds, cors


def family_parameter_draws(family: Any, specs: list[tuple[int, float, float]],
                           kept: list[dict[str, Any]], keys: tuple[str, str]
                           ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """A family's parameters from the chains' results: the posterior variables (reported
    scale, e.g. zi) of those sampled, and the attributes ``fixed_dispersion`` /
    ``fixed_dispersion2`` (the core's values) of those fixed by their prior. ``keys``: the
    results' keys of the core's phi and phi2."""
    from .families import from_core

    posterior: dict[str, np.ndarray] = {}
    attrs: dict[str, float] = {}
    for k, name in enumerate(family.parameters):
        kind, a, _ = specs[k]
        if kind == 1:
            attrs["fixed_dispersion" + ("2" if k else "")] = a
        else:
            posterior[name] = from_core(name, stack_chains(kept, keys[k]))
    return posterior, attrs


def core_family_params(family: Any, posterior: dict[str, np.ndarray], attrs: dict[str, Any],
                       shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The core's phi and phi2 per draw (arrays of ``shape``) from a fit's family parameters
    (drawn, or fixed: ``fixed_dispersion`` / ``fixed_dispersion2``); 1 where the family has
    none."""
    from .families import to_core

    out = [np.ones(shape), np.ones(shape)]
    for k, name in enumerate(family.parameters):
        if name == "zi" and "zi_beta" in posterior:
            continue  # per row: bglmm.zero_inflation.row_params
        if name in posterior:
            out[k] = np.asarray(to_core(name, posterior[name]), dtype=float).reshape(shape)
        else:
            out[k] = np.full(shape, float(attrs["fixed_dispersion" + ("2" if k else "")]))
    return out[0], out[1]


def weighted_log_lik(ll: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Pointwise log-likelihood (..., obs) times the case weights (brms's convention: the
    terms of the weighted likelihood the posterior is based on)."""
    return ll if weights is None else ll * weights


class Interruption:
    """A Ctrl-C during sampling (true as a condition): what was asked for, per chain."""

    def __init__(self, chains: int, draws: int) -> None:
        self.chains, self.draws = chains, draws

    def __bool__(self) -> bool:
        return True


def keep_drawn(results: list[dict[str, Any]], per_draw: tuple[str, ...],
               draws: int) -> tuple[list[dict], Interruption | bool]:
    """Chains to keep after a possible interruption, and the :class:`Interruption` (or False).

    `results` has one entry per chain asked for (a chain that never started: ``draws_done`` 0).
    Every chain that made draws is kept, cut to the number of draws the shortest of them made:
    the chains then share one length (which R-hat and the (chain, draw) arrays need), and each
    keeps its first draws, those of an uninterrupted run. `per_draw` names the result entries
    with one row per draw (an entry may be a list of such arrays); the others are kept whole.
    """
    drawn = [r for r in results if int(r["draws_done"]) > 0]
    if not drawn:
        raise KeyboardInterrupt("sampling was interrupted before any draw was kept")
    n = min(int(r["draws_done"]) for r in drawn)
    stopped = any(r["interrupted"] for r in results) or n < draws
    return ([_first_draws(r, n, per_draw) for r in drawn],
            Interruption(len(results), draws) if stopped else False)


def keep_completed(results: list[dict[str, Any]], draws: int) -> tuple[list[dict], Any]:
    """:func:`keep_drawn` for the GLM sampler's results."""
    return keep_drawn(results, ("beta", "sigma", "dispersion", "dispersion2", "cutpoints",
                                "zi_coef", "log_posterior",
                                "accepted"), draws)


def _first_draws(result: dict[str, Any], n: int, per_draw: tuple[str, ...]) -> dict[str, Any]:
    if int(result["draws_done"]) == n:
        return result
    out = dict(result, draws_done=n)
    for key in per_draw:
        value = result[key]
        out[key] = [np.asarray(v)[:n] for v in value] if isinstance(value, list) \
            else np.asarray(value)[:n]
    return out



def stuck_chains(what: str, rates: Any) -> list[str]:
    """The convergence check's message for a move whose acceptance rate per chain is 0 in some
    chains ("<what> in chain(s) 0, 2"), or none; NaN (the move did not run) is not stuck."""
    zero = np.flatnonzero(np.asarray(rates, dtype=float) == 0.0)
    return [f"{what} in chain(s) {', '.join(str(c) for c in zero)}"] if zero.size else []

class Fit:
    """Posterior draws of a bglmm model.

    Attributes
    ----------
    posterior : dict of name -> ndarray shaped (chain, draw, ...)
    sample_stats : dict of name -> ndarray shaped (chain, draw, ...)
    dims, coords : ArviZ dimension names and coordinate values
    seed : the seed used (recorded even when None was passed)
    interrupted : True if sampling stopped early (Ctrl-C)
    """

    #: variables shown by summary() unless var_names is given
    summary_vars: list[str]

    def __init__(
        self,
        posterior: dict[str, np.ndarray],
        *,
        dims: dict[str, list[str]] | None = None,
        coords: dict[str, Any] | None = None,
        sample_stats: dict[str, np.ndarray] | None = None,
        summary_vars: list[str] | None = None,
        attrs: dict[str, Any] | None = None,
        seed: int | None = None,
        interrupted: bool | Interruption = False,
        sampler: str = "",
    ) -> None:
        self.posterior = posterior
        self.dims = dims or {}
        self.coords = coords or {}
        self.sample_stats = sample_stats or {}
        self.summary_vars = summary_vars or list(posterior)
        self.attrs = dict(attrs or {})
        self.seed = seed
        self.interrupted = bool(interrupted)
        self.sampler = sampler
        if interrupted:
            warnings.warn(self._interruption_message(interrupted), InterruptedWarning,
                          stacklevel=user_stacklevel())

    def _interruption_message(self, interruption: Any) -> str:
        """'sampling was interrupted after 312 of 1000 draws per chain; the summary uses ...'"""
        chains = getattr(interruption, "chains", self.n_chains)
        draws = getattr(interruption, "draws", None)
        of = f" of {draws}" if draws is not None else ""
        text = f"sampling was interrupted after {self.n_draws}{of} draws per chain"
        if self.n_chains < chains:
            text += f" ({self.n_chains} of {chains} chains had made draws)"
        if self.n_chains < 2:
            return text + "; the summary uses those (R-hat needs at least two chains)"
        return text + f"; the summary uses those {self.n_chains} chains x {self.n_draws} draws"

    @property
    def n_chains(self) -> int:
        return next(iter(self.posterior.values())).shape[0]

    @property
    def n_draws(self) -> int:
        return next(iter(self.posterior.values())).shape[1]

    # ---- ArviZ -----------------------------------------------------------------------
    def _log_likelihood(self) -> dict[str, np.ndarray] | None:
        """Pointwise log-likelihood (chain, draw, obs); subclasses that can, override."""
        return None

    def _observed(self) -> dict[str, np.ndarray] | None:
        return None

    def to_inference_data(self, log_likelihood: bool = True):
        """An ``arviz.InferenceData`` with posterior, sample_stats, observed data and, if asked
        and available, the pointwise log-likelihood (for ``az.waic`` / ``az.loo``)."""
        az = import_arviz()

        from . import __version__

        ll = self._log_likelihood() if log_likelihood else None
        attrs = {"inference_library": "bglmm", "inference_library_version": __version__,
                 "sampler": self.sampler, "interrupted": int(self.interrupted)}
        if self.seed is not None:
            attrs["seed"] = str(self.seed)
        attrs.update({k: v for k, v in self.attrs.items() if isinstance(v, (str, int, float))})
        dims = dict(self.dims)
        if ll is not None:
            for k in ll:
                dims.setdefault(k, ["obs"])
        observed = self._observed()
        if observed is not None:
            for k in observed:
                dims.setdefault(k, ["obs"])
        return az.from_dict(
            posterior=self.posterior,
            sample_stats=self.sample_stats or None,
            log_likelihood=ll,
            observed_data=observed,
            coords=self.coords,
            dims=dims,
            attrs=attrs,
        )

    # ---- summaries ---------------------------------------------------------------------
    def summary(self, var_names: list[str] | None = None, prob: float = 0.95) -> pd.DataFrame:
        """Posterior summary, one row per scalar parameter.

        Columns: mean, sd, the (1-prob)/2, 50% and (1+prob)/2 quantiles, mcse_mean, ess_bulk,
        ess_tail, r_hat (rank-normalised split-R-hat and ESS, :mod:`bglmm.diagnostics`; the ESS
        rounded down to whole draws, pandas ``Int64`` with <NA> where undefined). Rows are named
        as ArviZ names them: ``sigma``, ``beta[x]``, ``Sigma[a, b]``.
        """
        names = list(var_names) if var_names is not None else list(self.summary_vars)
        unknown = [v for v in names if v not in self.posterior]
        if unknown:
            raise ValueError(f"unknown variable(s) {unknown}; available: {list(self.posterior)}")
        lo, hi = (1 - prob) / 2, (1 + prob) / 2
        columns = ["mean", "sd", f"{100 * lo:g}%", "50%", f"{100 * hi:g}%",
                   "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]
        labels: list[str] = []
        rows: list[np.ndarray] = []
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # (one chain, fewer than 4 draws or NaN draws: R-hat / ESS are NaN, as the table says)
            warnings.simplefilter("ignore", RuntimeWarning)
            for name in names:
                x = np.asarray(self.posterior[name], dtype=float)
                chains = x.reshape(x.shape[0], x.shape[1], -1)  # (chain, draw, element)
                pooled = chains.reshape(-1, chains.shape[2])
                stats = np.stack([pooled.mean(axis=0), pooled.std(axis=0, ddof=1),
                                  np.quantile(pooled, lo, axis=0), np.median(pooled, axis=0),
                                  np.quantile(pooled, hi, axis=0)], axis=1)
                diag = np.array([summary_diagnostics(chains[:, :, j])
                                 for j in range(chains.shape[2])]).reshape(-1, 4)
                rows.append(np.hstack([stats, diag]))
                labels += element_labels(name, x.shape[2:], self.dims.get(name), self.coords)
        values = np.vstack(rows) if rows else np.empty((0, len(columns)))
        out = pd.DataFrame(values, index=labels, columns=columns)
        for col in ("ess_bulk", "ess_tail"):  # whole numbers of draws; <NA> where undefined
            out[col] = np.floor(out[col]).astype("Int64")
        return out

    # ---- diagnostics ---------------------------------------------------------------------
    def _stuck_moves(self) -> list[str]:
        """Metropolis moves that accepted nothing over the sampling phase, each described with
        its chain(s); samplers that report acceptance override this."""
        return []

    def _sampler_warnings(self) -> None:
        """Warnings about the sampler itself (acceptance far from its target, a move switched
        off), emitted before the convergence check; samplers that have some override this."""

    def convergence_problems(self, summary: pd.DataFrame | None = None) -> dict[str, list[str]]:
        """What the convergence check flags, by kind: ``"r_hat"`` (R-hat > 1.01, more than one
        chain), ``"ess"`` (bulk ESS < 100 per chain, or undefined because the draws do not
        move) — rows of :meth:`summary`, the reported parameters (fixed effects, SDs,
        correlations, sigma / tau / mu; not the per-group effects) — and ``"stuck"``:
        Metropolis moves that accepted nothing."""
        table = self.summary() if summary is None else summary
        rhat = table["r_hat"].to_numpy(dtype=float)
        ess = table["ess_bulk"].to_numpy(dtype=float, na_value=np.nan)
        bad_rhat = (rhat > 1.01) if self.n_chains > 1 else np.zeros(len(table), dtype=bool)
        bad_ess = ~(ess >= 100 * self.n_chains)  # NaN (constant draws) counts as too small
        return {"r_hat": table.index[bad_rhat].tolist(), "ess": table.index[bad_ess].tolist(),
                "stuck": self._stuck_moves()}

    def check_convergence(self, summary: pd.DataFrame | None = None, *,
                          stacklevel: int | None = None) -> list[str]:
        """Warn (one :class:`~bglmm.ConvergenceWarning` naming the parameters) when, for a
        reported parameter, R-hat > 1.01 (more than one chain) or bulk ESS < 100 per chain, or
        when a Metropolis move accepted nothing; returns the offending summary rows.

        ``stacklevel`` None points the warning at the first caller outside bglmm.
        """
        table = self.summary() if summary is None else summary
        problems = self.convergence_problems(table)
        messages = []
        if problems["r_hat"]:
            names = problems["r_hat"]
            messages.append("R-hat > 1.01 for "
                            + _with_values(names, table.loc[names, "r_hat"].tolist(), "{:.3f}"))
        if problems["ess"]:
            names = problems["ess"]
            messages.append(f"bulk ESS < {100 * self.n_chains} (100 per chain) for "
                            + _with_values(names, table.loc[names, "ess_bulk"].to_numpy(dtype=float, na_value=np.nan).tolist(),
                                         "{:.0f}"))
        if problems["stuck"]:
            messages.append("accepted nothing: " + "; ".join(problems["stuck"]))
        if messages:
            level = user_stacklevel() if stacklevel is None else stacklevel + 1
            warnings.warn("; ".join(messages) + ". The draws may not represent the posterior: "
                          "run longer chains (more draws and warm-up); check=False silences "
                          "this check", ConvergenceWarning, stacklevel=level)
        return problems["r_hat"] + [n for n in problems["ess"] if n not in problems["r_hat"]]

    def _run_checks(self) -> None:
        """The checks at the end of a fit (``check=True``): the sampler's own warnings, then at
        most one ConvergenceWarning. None for an interrupted fit (InterruptedWarning says so)."""
        if self.interrupted:
            return
        self._sampler_warnings()
        self.check_convergence()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__}: {self.sampler}, {self.n_chains} chains x "
                f"{self.n_draws} draws, seed {self.seed}>")
