"""Plots of a fit through ArviZ (matplotlib, the optional ``plots`` extra: pip install bglmm[plots]).

Each function returns ArviZ's matplotlib axes; pass ``show=False`` (the default here) and save
the figure with ``axes.ravel()[0].figure.savefig(path)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .results import import_arviz


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plots need matplotlib: pip install 'bglmm[plots]' (or pip install matplotlib)"
        ) from None


def _names(fit: Any, var_names: list[str] | None) -> list[str]:
    names = list(var_names) if var_names is not None else list(fit.summary_vars)
    unknown = [v for v in names if v not in fit.posterior]
    if unknown:
        raise ValueError(f"unknown variable(s) {unknown}; available: {list(fit.posterior)}")
    return names


def plot_trace(fit: Any, var_names: list[str] | None = None, **kwargs: Any):
    """Trace and marginal density of each parameter, one line per chain."""
    _require_matplotlib()
    az = import_arviz()
    kwargs.setdefault("compact", True)
    kwargs.setdefault("show", False)
    return az.plot_trace(fit.to_inference_data(log_likelihood=False),
                         var_names=_names(fit, var_names), **kwargs)


def plot_forest(fit: Any, var_names: list[str] | None = None, **kwargs: Any):
    """Posterior intervals (94% HDI by ArviZ's default; ``hdi_prob=`` to change) per parameter."""
    _require_matplotlib()
    az = import_arviz()
    kwargs.setdefault("combined", True)
    kwargs.setdefault("show", False)
    axes = az.plot_forest(fit.to_inference_data(log_likelihood=False),
                          var_names=_names(fit, var_names), **kwargs)
    fig = np.ravel(axes)[0].figure
    if fig.get_layout_engine() is None:
        fig.set_layout_engine("tight")  # keep the parameter labels inside the figure
    return axes


def plot_ppc(fit: Any, num_pp_samples: int = 100, seed: int | None = 0, **kwargs: Any):
    """Posterior predictive check: the density (or histogram for counts) of ``num_pp_samples``
    replicated data sets ``fit.predict(kind="response")`` against the observed response."""
    _require_matplotlib()
    az = import_arviz()
    import xarray as xr

    idata = fit.to_inference_data(log_likelihood=False)
    reps = fit.predict(kind="response", draws=num_pp_samples, seed=seed)  # (S, n)
    pp = xr.Dataset({"y": (("chain", "draw", "obs"), reps[None, :, :])},
                    coords={"chain": [0], "draw": np.arange(reps.shape[0]),
                            "obs": idata.observed_data["y"].coords["obs"].values})
    idata.add_groups(posterior_predictive=pp)
    kwargs.setdefault("show", False)
    kwargs.setdefault("num_pp_samples", reps.shape[0])
    kwargs.setdefault("random_seed", seed)
    return az.plot_ppc(idata, var_names=["y"], **kwargs)


__all__ = ["plot_trace", "plot_forest", "plot_ppc"]
