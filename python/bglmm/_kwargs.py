"""Clear errors for keyword arguments that :func:`bglmm.fit` does not take.

Users arrive with the names of other packages (brms's ``iter``/``cores``, scikit-learn's
``n_jobs``/``random_state``, PyMC's ``tune``): the error names ``fit()`` and the argument meant,
instead of a sampler's internal signature.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable

# names from other packages -> (the arguments meant, a note)
_HINTS = {
    ("draws", "warmup"): ("bglmm counts them separately: draws kept per chain after warmup "
                          "iterations; brms's iter = warmup + draws",
                          ("iter", "iters", "iterations", "n_iter", "niter", "num_iter",
                           "iter_sampling")),
    ("draws",): ("kept per chain", ("samples", "n_samples", "num_samples", "nsamples", "ndraws",
                                    "n_draws", "num_draws", "draw")),
    ("warmup",): ("", ("tune", "burn", "burnin", "burn_in", "n_warmup", "num_warmup",
                       "iter_warmup", "warm_up", "adapt")),
    ("threads",): ("threads of the C++ core; chains run concurrently within them",
                   ("cores", "n_jobs", "njobs", "jobs", "ncores", "n_cores", "num_cores", "cpus",
                    "n_threads", "num_threads", "nthreads", "workers", "parallel")),
    ("chains",): ("", ("chain", "n_chains", "nchains", "num_chains")),
    ("seed",): ("", ("random_state", "random_seed", "rng", "rng_seed", "randomstate")),
    ("thin",): ("", ("thinning", "n_thin", "thin_by")),
    ("priors",): ("", ("prior", "prior_list")),
    ("progress",): ("", ("progressbar", "progress_bar", "verbose", "refresh", "silent")),
    ("family",): ("", ("families", "distribution", "dist")),
}
_ALIASES = {alias: (meant, note) for meant, (note, names) in _HINTS.items() for alias in names}


def alias_hint(name: str, prefix: str = "") -> str | None:
    """'use draws or warmup (...)' for a name from another package, else None."""
    if name not in _ALIASES:
        return None
    meant, note = _ALIASES[name]
    return f"use {' or '.join(prefix + m for m in meant)}" + (f" ({note})" if note else "")


_NOT_YET = {
    "subset": "subsetting is not supported: pass data[rows] instead",
    "na_action": "missing values are not handled: drop the rows first (data.dropna(subset=...))",
}


def sampler_options(func: Callable, taken: Iterable[str]) -> set[str]:
    """The keyword arguments of an array-level sampler that ``fit(**options)`` may pass on:
    its keyword-only parameters other than those ``fit`` sets itself (`taken`)."""
    params = inspect.signature(func).parameters.values()
    return {p.name for p in params if p.kind is p.KEYWORD_ONLY} - set(taken)


def check_options(options: dict, accepted: set[str], known: set[str], where: str,
                  sampler: str | None = None) -> None:
    """Raise TypeError for the first key of `options` not in `accepted`: name ``fit()``, and
    suggest the argument meant (a known alias, else the closest of `known`), or say that a valid
    option of another sampler does not apply to `sampler`."""
    for key in options:
        if key in accepted:
            continue
        head = f"{where}() got an unexpected keyword argument {key!r}"
        if key in _NOT_YET:
            raise TypeError(f"{head}: {_NOT_YET[key]}")
        if key in _ALIASES:
            raise TypeError(f"{head}; {alias_hint(key)}")
        if key in known and sampler is not None:
            raise TypeError(f"{head}: {key!r} is an option of another sampler, not of "
                            f"{sampler}() which fits this model; its options: "
                            f"{', '.join(sorted(accepted)) or 'none'}")
        close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise TypeError(head + hint)
