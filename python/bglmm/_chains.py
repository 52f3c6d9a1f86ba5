"""Run MCMC chains, concurrently when there are cores for it.

The C++ samplers release the GIL, so chains run in parallel in Python threads. Draws never
depend on how chains are scheduled or how many threads each one gets (counter-based RNG), so
``threads`` only changes the speed. Ctrl-C reaches the main thread only: it asks every running
chain to stop (``_core.request_stop``), and each returns the draws made so far; a chain that
had not started is reported as :data:`NOT_STARTED`.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from . import _core
from ._progress import Progress

#: the result of a chain that an interruption kept from starting
NOT_STARTED = {"draws_done": 0, "interrupted": True}

RunOne = Callable[[int, int, Any], dict]  # (chain, inner_threads, progress_callback) -> result


def plan_threads(chains: int, threads: int) -> tuple[int, int]:
    """(concurrent chains, threads per chain) for a budget of `threads` (0 = all cores)."""
    total = threads if threads > 0 else max(1, _core.max_threads())
    workers = max(1, min(chains, total))
    return workers, max(1, total // workers)


def run_chains(run_one: RunOne, chains: int, threads: int, progress: bool,
               iterations_per_chain: int) -> list[dict]:
    """Run `chains` chains; returns their result dicts in chain order (:data:`NOT_STARTED` for
    the chains an interruption kept from starting)."""
    workers, inner = plan_threads(chains, threads)
    bar = Progress(progress, chains * iterations_per_chain)
    _core.clear_stop()
    try:
        if workers == 1:
            results = []
            for chain in range(chains):
                res = run_one(chain, inner, bar.chain_callback(chain, iterations_per_chain))
                results.append(res)
                if res.get("interrupted"):
                    break
            return results + [NOT_STARTED] * (chains - len(results))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_one, chain, inner,
                                   bar.chain_callback(chain, iterations_per_chain))
                       for chain in range(chains)]
            try:
                concurrent.futures.wait(futures)
            except KeyboardInterrupt:
                _core.request_stop()
                for f in futures:
                    f.cancel()
                concurrent.futures.wait([f for f in futures if not f.cancelled()])
            return [NOT_STARTED if f.cancelled() else f.result() for f in futures]
    finally:
        _core.clear_stop()
        bar.close()
