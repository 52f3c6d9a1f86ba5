"""Plots of a fit (matplotlib, the optional ``plots`` extra: pip install bglmm[plots]).

Each function returns a numpy array of matplotlib axes; save the figure with
``axes.ravel()[0].figure.savefig(path)``. Parameters are labelled as the summary's rows read in
words: ``Intercept``, ``sd(Intercept | rat)``, ``cor(Intercept, day | rat)``, ``sigma``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plots need matplotlib: pip install 'bglmm[plots]' (or pip install matplotlib)"
        ) from None
    return plt


def _names(fit: Any, var_names: list[str] | None) -> list[str]:
    names = list(var_names) if var_names is not None else list(fit.summary_vars)
    unknown = [v for v in names if v not in fit.posterior]
    if unknown:
        raise ValueError(f"unknown variable(s) {unknown}; available: {list(fit.posterior)}")
    return names


def label(var: str, coord: tuple[Any, ...] = ()) -> str:
    """A parameter's name for a plot: the coefficient for ``beta``, ``sd(term | factor)`` for
    ``sd_<factor>__<term>``, ``cor(a, b | factor)`` for ``cor_<factor>__<a>__<b>``."""
    if var == "beta" and len(coord) == 1:
        return str(coord[0])
    parts = var.split("__")
    if var.startswith("sd_") and len(parts) == 2:
        return f"sd({parts[1]} | {parts[0][3:]})"
    if var.startswith("cor_") and len(parts) == 3:
        return f"cor({parts[1]}, {parts[2]} | {parts[0][4:]})"
    return var + (f"[{', '.join(str(c) for c in coord)}]" if coord else "")


def scalars(fit: Any, names: list[str]) -> list[tuple[str, tuple[Any, ...], np.ndarray]]:
    """(variable, coordinates, draws (chain, draw)) of every scalar parameter of the
    variables."""
    out = []
    for var in names:
        x = np.asarray(fit.posterior[var])
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        dims = fit.dims.get(var, [])
        if len(dims) == x.ndim - 2:
            coords = itertools.product(*[list(fit.coords.get(d, range(n)))
                                         for d, n in zip(dims, x.shape[2:])])
        else:
            coords = itertools.product(*[range(n) for n in x.shape[2:]])
        for k, coord in enumerate(coords):
            out.append((var, coord, flat[:, :, k]))
    return out


def plot_trace(fit: Any, var_names: list[str] | None = None, *, bins: int = 30):
    """One row per parameter, each on its own scale: the marginal histogram (left) and the
    trace (right) of every chain. Returns the axes, shaped (parameters, 2)."""
    plt = _pyplot()
    params = scalars(fit, _names(fit, var_names))
    fig, axes = plt.subplots(len(params), 2, figsize=(10, 1.7 * len(params) + 0.4),
                             squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": [1, 2.2]})
    for (var, coord, draws), (left, right) in zip(params, axes):
        edges = np.histogram_bin_edges(draws[np.isfinite(draws)], bins=bins)
        for c, chain in enumerate(draws):
            colour = f"C{c % 10}"
            left.hist(chain, bins=edges, histtype="step", density=True, color=colour)
            right.plot(chain, lw=0.6, color=colour, label=f"chain {c}")
        left.set_title(label(var, coord), fontsize=10, loc="left")
        left.set_yticks([])
        right.set_xlim(0, draws.shape[1] - 1)
    axes[-1, 0].set_xlabel("value")
    axes[-1, 1].set_xlabel("draw")
    return axes


def _panel(var: str, coord: tuple[Any, ...]) -> str:
    """The forest panel of a parameter: intercepts apart from slopes (their scales differ),
    SDs, correlations, one panel per term of the group effects, each other variable alone."""
    if var == "beta":
        return "intercept" if coord == ("Intercept",) else "fixed effects"
    if var.startswith("sd_") and "__" in var:
        term = var.split("__")[1]
        return "group-level SD of the intercept" if term == "Intercept" else "group-level SDs"
    if var.startswith("cor_"):
        return "correlations"
    if len(coord) == 2:  # group effects b_<factor> (level, term)
        return f"{var[2:] if var.startswith('b_') else var} effects: {coord[1]}"
    return var


def _groups(params: list[tuple[str, tuple[Any, ...], np.ndarray]]) -> dict[str, list[Any]]:
    """The forest's panels, in order of first appearance: [(label, draws), ...] each."""
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for var, coord, draws in params:
        name = str(coord[0]) if len(coord) == 2 else label(var, coord)
        out.setdefault(_panel(var, coord), []).append((name, draws))
    return out


def plot_forest(fit: Any, var_names: list[str] | None = None, *, prob: float = 0.95):
    """Posterior mean and central ``prob`` interval (the summary's, 95% by default) of each
    parameter; one panel per group (intercept, other fixed effects, SDs, correlations, sigma,
    each term of the group effects), each on its own scale. Returns the axes (one per panel)."""
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob!r}")
    plt = _pyplot()
    groups = _groups(scalars(fit, _names(fit, var_names)))
    sizes = [len(v) for v in groups.values()]
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 0.35 * sum(sizes) + 0.9 * len(groups)),
                             squeeze=False, layout="constrained",
                             gridspec_kw={"height_ratios": [s + 1 for s in sizes]})
    lo, hi = (1 - prob) / 2, (1 + prob) / 2
    for ax, (title, rows) in zip(axes[:, 0], groups.items()):
        flat = [d.ravel() for _, d in rows]
        y = np.arange(len(rows))[::-1]
        ax.hlines(y, [np.quantile(d, lo) for d in flat], [np.quantile(d, hi) for d in flat],
                  color="C0", lw=2)
        ax.plot([d.mean() for d in flat], y, "o", color="C0", ms=5)
        ax.set_yticks(y, [name for name, _ in rows])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel(f"posterior mean and {100 * prob:g}% central interval")
    return axes[:, 0]


def _response_name(fit: Any) -> str:
    """The response as the formula names it; for a binomial count, its successes:
    ``incidence (successes)`` for ``cbind(incidence, size - incidence)``, ``s / n`` or
    ``s | trials(n)``."""
    spec = getattr(fit, "spec", None)
    if spec is None:
        return "y"
    text = spec.response
    if spec.trials is None or spec.family.name != "binomial":
        return text
    if text.startswith("cbind(") and "," in text:
        text = text[len("cbind("):].split(",")[0]
    else:
        text = text.split("|")[0].split("/")[0]
    return f"{text.strip()} (successes)"


def plot_ppc(fit: Any, num_pp_samples: int = 100, seed: int | None = 0, *,
             max_values: int = 40):
    """Posterior predictive check: ``num_pp_samples`` replicated data sets
    (``fit.predict(kind="response")``) against the observed response. A discrete response (0/1,
    counts) with at most ``max_values`` distinct values is shown as bars of the observed
    frequency of each value, with the replicates' median and 95% interval; a continuous one as
    densities. The x axis carries the response's name. Returns the axes (one)."""
    plt = _pyplot()
    y = np.asarray(fit._observed()["y"], dtype=float)
    reps = fit.predict(kind="response", draws=num_pp_samples, seed=seed)  # (S, n)
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    discrete = np.all(y == np.round(y)) and np.all(reps == np.round(reps))
    values = np.unique(np.concatenate([y, np.quantile(reps, [0.005, 0.995]).round()]))
    if discrete and values[-1] - values[0] < max_values:
        _ppc_bars(ax, y, reps)
    else:
        _ppc_densities(ax, y, reps)
    ax.set_xlabel(_response_name(fit))
    ax.legend(fontsize=9)
    return np.array([ax])


def _ppc_bars(ax: Any, y: np.ndarray, reps: np.ndarray) -> None:
    lo, hi = int(min(y.min(), np.quantile(reps, 0.005))), int(max(y.max(),
                                                                  np.quantile(reps, 0.995)))
    values = np.arange(lo, hi + 1)
    observed = (y[:, None] == values).sum(axis=0)
    replicated = (reps[:, :, None] == values).sum(axis=1)  # (S, values)
    q = np.quantile(replicated, [0.025, 0.5, 0.975], axis=0)
    ax.bar(values, observed, width=0.8, color="C0", alpha=0.6, label="observed")
    ax.errorbar(values, q[1], yerr=[q[1] - q[0], q[2] - q[1]], fmt="o", color="k", ms=4,
                capsize=3, label="replicated: median, 95% interval")
    ax.set_ylabel("count of rows")
    if len(values) <= 15:
        ax.set_xticks(values)


def _density(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of x on grid (Silverman's bandwidth); a long x is summarised by
    2,000 of its quantiles first."""
    if len(x) > 2000:
        x = np.quantile(x, np.linspace(0.0, 1.0, 2000))
    spread = min(np.std(x, ddof=1), np.subtract(*np.quantile(x, [0.75, 0.25])) / 1.349) \
        or np.std(x, ddof=1) or 1.0
    h = 0.9 * spread * len(x) ** -0.2
    z = (grid[:, None] - x[None, :]) / h
    return np.exp(-0.5 * z**2).sum(axis=1) / (len(x) * h * np.sqrt(2 * np.pi))


def _ppc_densities(ax: Any, y: np.ndarray, reps: np.ndarray) -> None:
    grid = np.linspace(min(y.min(), reps.min()), max(y.max(), reps.max()), 200)
    for k, rep in enumerate(reps):
        ax.plot(grid, _density(rep, grid), color="C1", alpha=0.15, lw=0.8,
                label="replicated" if k == 0 else None)
    ax.plot(grid, _density(y, grid), color="k", lw=2, label="observed")
    ax.set_ylabel("density")



def _is_categorical(data: Any, column: str, formula: str) -> bool:
    """A categorical predictor: not numeric, or made categorical by factor() or C()."""
    import re

    import pandas as pd

    col = data[column]
    return (isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col)
            or not pd.api.types.is_numeric_dtype(col)
            or re.search(rf"\b(factor|C)\(\s*{re.escape(column)}\b", formula) is not None)


def _levels(col: Any) -> list[Any]:
    import pandas as pd

    if isinstance(col.dtype, pd.CategoricalDtype):
        return list(col.cat.remove_unused_categories().cat.categories)
    return sorted(col.unique())


def _reference_row(data: Any, formula: str) -> dict[str, Any]:
    """brms's reference values: the mean of a numeric column, the first level of a
    categorical one."""
    return {c: _levels(data[c])[0] if _is_categorical(data, c, formula) else float(data[c].mean())
            for c in data.columns}


def conditional_effects(fit: Any, term: str, *, prob: float = 0.95, points: int = 100):
    """The expected response (population level: no group effects) over the values of one
    predictor column, the others at their mean or reference level (brms's
    ``conditional_effects``): the posterior mean and central ``prob`` interval, a line and band
    for a numeric predictor, points and bars for a categorical one. Returns the axes (one)."""
    import pandas as pd

    data = getattr(fit, "_data", None)
    if data is None or getattr(fit, "spec", None) is None:
        raise ValueError("conditional_effects needs a fit made by bglmm.fit (with its data)")
    factors = {v for block in fit.spec.random for v in block._factor_vars}
    if term in factors:
        raise ValueError(f"{term!r} is a grouping factor; conditional_effects shows a predictor's "
                         "population-level effect (see ranef() and coef() for the groups)")
    used = [c for c in fit.spec._columns if c in data.columns and c not in factors]
    if term not in used:
        raise ValueError(f"{term!r} is not a predictor column of the model; choose one of {used}")
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob!r}")
    col = data[term]
    categorical = _is_categorical(data, term, fit.formula)
    values = _levels(col) if categorical else np.linspace(col.min(), col.max(), points)
    grid = pd.DataFrame([_reference_row(data, fit.formula)] * len(values))
    grid[term] = pd.Series(values, dtype=col.dtype) if categorical else values
    mu = fit.predict(grid, groups="none", kind="mean")  # (S, values)
    if mu.ndim == 3:  # the cumulative family's category probabilities: the expected category
        mu = mu @ np.arange(1.0, mu.shape[-1] + 1.0)
    lo, mid, hi = np.quantile(mu, (1 - prob) / 2, axis=0), mu.mean(axis=0), \
        np.quantile(mu, (1 + prob) / 2, axis=0)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    if categorical:
        x = np.arange(len(values))
        ax.errorbar(x, mid, yerr=[mid - lo, hi - mid], fmt="o", color="C0", capsize=4)
        ax.set_xticks(x, [str(v) for v in values])
    else:
        ax.fill_between(values, lo, hi, color="C0", alpha=0.25,
                        label=f"{100 * prob:g}% interval")
        ax.plot(values, mid, color="C0", label="posterior mean")
        ax.legend(fontsize=9)
    ax.set_xlabel(term)
    ax.set_ylabel(_mean_name(fit))
    return np.array([ax])


def _mean_name(fit: Any) -> str:
    """What kind="mean" predicts, named after the response: ``Reaction (expected)``,
    ``incidence (probability per trial)``, ``P(hit = 1)``."""
    family = getattr(fit.family, "name", "")
    if family == "bernoulli":
        return f"P({_response_name(fit)} = 1)"
    if family == "binomial":
        return _response_name(fit).replace("(successes)", "(probability per trial)")
    if family == "cumulative":
        return f"{_response_name(fit)} (expected category, 1 = lowest)"
    return f"{_response_name(fit)} (expected)"


__all__ = ["plot_trace", "plot_forest", "plot_ppc", "conditional_effects"]
