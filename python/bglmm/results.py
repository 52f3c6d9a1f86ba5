"""The fit object: posterior draws shaped (chain, draw, ...), summaries and ArviZ output.

This is the only module that imports ArviZ.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .warnings import ConvergenceWarning, InterruptedWarning


def import_arviz():
    """Import ArviZ without its refactoring FutureWarning (noise for bglmm's users)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def stack_chains(results: list[dict[str, Any]], key: str) -> np.ndarray:
    """Stack one entry of each chain's result dict into an array (chain, draw, ...)."""
    return np.stack([np.asarray(r[key]) for r in results], axis=0)


def keep_completed(results: list[dict[str, Any]], expected: int) -> tuple[list[dict], bool]:
    """Chains to keep after a possible interruption, and whether one happened.

    Complete chains are kept; a partial chain is kept only when no chain completed.
    """
    interrupted = any(r["interrupted"] for r in results) or len(results) == 0
    complete = [r for r in results if int(r["draws_done"]) == expected]
    if complete:
        return complete, interrupted
    partial = [r for r in results if int(r["draws_done"]) > 0][:1]
    if not partial:
        raise KeyboardInterrupt("sampling was interrupted before any draw was kept")
    return partial, interrupted


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
        interrupted: bool = False,
        sampler: str = "",
    ) -> None:
        self.posterior = posterior
        self.dims = dims or {}
        self.coords = coords or {}
        self.sample_stats = sample_stats or {}
        self.summary_vars = summary_vars or list(posterior)
        self.attrs = dict(attrs or {})
        self.seed = seed
        self.interrupted = interrupted
        self.sampler = sampler
        if interrupted:
            warnings.warn(
                f"sampling was interrupted; the fit holds {self.n_chains} chain(s) x "
                f"{self.n_draws} draws made before the interruption",
                InterruptedWarning,
                stacklevel=3,
            )

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
        ess_tail, r_hat (ArviZ's rank-normalised split-R-hat and ESS).
        """
        az = import_arviz()

        names = list(var_names) if var_names is not None else list(self.summary_vars)
        unknown = [v for v in names if v not in self.posterior]
        if unknown:
            raise ValueError(f"unknown variable(s) {unknown}; available: {list(self.posterior)}")
        lo, hi = (1 - prob) / 2, (1 + prob) / 2
        idata = az.from_dict(
            posterior={k: self.posterior[k] for k in names},
            coords=self.coords,
            dims={k: v for k, v in self.dims.items() if k in names},
        )
        stat_funcs = {
            "mean": np.mean,
            "sd": lambda x: np.std(x, ddof=1),
            f"{100 * lo:g}%": lambda x: np.quantile(x, lo),
            "50%": np.median,
            f"{100 * hi:g}%": lambda x: np.quantile(x, hi),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            stats = az.summary(idata, kind="stats", stat_funcs=stat_funcs, extend=False,
                               round_to="none")
            diag = az.summary(idata, kind="diagnostics", round_to="none")
        out = stats.join(diag[["mcse_mean", "ess_bulk", "ess_tail", "r_hat"]])
        return out

    def check_convergence(self, summary: pd.DataFrame | None = None, *, stacklevel: int = 2) -> list[str]:
        """Warn (ConvergenceWarning) when R-hat > 1.01 or bulk ESS < 100 per chain for a
        reported parameter; returns the offending rows."""
        table = self.summary() if summary is None else summary
        bad_rhat = table.index[table["r_hat"] > 1.01].tolist() if self.n_chains > 1 else []
        bad_ess = table.index[table["ess_bulk"] < 100 * self.n_chains].tolist()
        messages = []
        if bad_rhat:
            messages.append(f"R-hat > 1.01 for {', '.join(bad_rhat[:5])}")
        if bad_ess:
            messages.append(f"bulk ESS < 100 per chain for {', '.join(bad_ess[:5])}")
        if messages:
            warnings.warn("; ".join(messages) + ": run longer chains (more draws/warmup)",
                          ConvergenceWarning, stacklevel=stacklevel + 1)
        return bad_rhat + bad_ess

    def __repr__(self) -> str:
        return (f"<{type(self).__name__}: {self.sampler}, {self.n_chains} chains x "
                f"{self.n_draws} draws, seed {self.seed}>")
