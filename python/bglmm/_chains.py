"""Run MCMC chains, taking turns on the cores when there are more chains than cores.

The C++ samplers release the GIL, so chains run in parallel in Python threads. Every chain
starts at once; when there are more chains than the thread budget allows to run together,
they take turns: a running chain hands its place to the longest-waiting one each time it
reports progress (every 0.1 s), so all chains advance together. Draws never depend on how
chains are scheduled or how many threads each one gets (counter-based RNG), so ``threads``
only changes the speed.

Ctrl-C reaches the main thread only: it asks every chain to stop (``_core.request_stop``) and
each returns the draws made so far — since the chains took turns, every chain has made draws
unless the interrupt came within the first turn; a chain that had not started is reported as
:data:`NOT_STARTED`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from . import _core
from ._progress import Progress

#: the result of a chain that an interruption kept from starting
NOT_STARTED = {"draws_done": 0, "interrupted": True}

RunOne = Callable[[int, int, Any], dict]  # (chain, inner_threads, progress_callback) -> result


def plan_threads(chains: int, threads: int) -> tuple[int, int]:
    """(chains running at once, threads per chain) for a budget of `threads` (0 = all cores)."""
    total = threads if threads > 0 else max(1, _core.max_threads())
    workers = max(1, min(chains, total))
    return workers, max(1, total // workers)


class Turns:
    """At most `places` chains run at once; the others wait in a first-come queue. A running
    chain calls :meth:`pass_on` now and then: if a chain is waiting, it goes to the back of
    the queue and the first waiting one runs. :meth:`stop` lets every chain through (to stop)."""

    def __init__(self, places: int) -> None:
        self._cv = threading.Condition()
        self._free = places
        self._queue: collections.deque[int] = collections.deque()
        self._stopping = False

    def enter(self, chain: int) -> bool:
        """Wait for a place; False when the run is stopping instead."""
        with self._cv:
            self._queue.append(chain)
            self._cv.wait_for(lambda: self._stopping or (self._free > 0
                                                          and self._queue[0] == chain))
            self._queue.remove(chain)
            if self._stopping:
                self._cv.notify_all()
                return False
            self._free -= 1
            self._cv.notify_all()
            return True

    def leave(self) -> None:
        with self._cv:
            self._free += 1
            self._cv.notify_all()

    def pass_on(self, chain: int) -> None:
        with self._cv:
            if not self._queue or self._stopping:
                return
            self._free += 1
            self._cv.notify_all()
        if not self.enter(chain):
            with self._cv:  # stopping: keep the place count balanced for leave()
                self._free -= 1

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()


def run_chains(run_one: RunOne, chains: int, threads: int, progress: bool,
               iterations_per_chain: int) -> list[dict]:
    """Run `chains` chains; returns their result dicts in chain order (:data:`NOT_STARTED` for
    the chains an interruption kept from starting)."""
    workers, inner = plan_threads(chains, threads)
    bar = Progress(progress, chains * iterations_per_chain)
    turns = Turns(workers)
    _core.clear_stop()

    def chain_job(chain: int) -> dict:
        show = bar.chain_callback(chain, iterations_per_chain)

        def report(done: int, total: int) -> None:
            if show is not None:
                show(done, total)
            turns.pass_on(chain)

        if not turns.enter(chain):
            return NOT_STARTED
        try:
            return run_one(chain, inner, report if chains > workers else show)
        finally:
            turns.leave()

    try:
        if chains == 1:
            return [chain_job(0)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=chains) as pool:
            futures = [pool.submit(chain_job, chain) for chain in range(chains)]
            try:
                concurrent.futures.wait(futures)
            except KeyboardInterrupt:
                _core.request_stop()
                turns.stop()
                concurrent.futures.wait(futures)
            return [f.result() for f in futures]
    finally:
        _core.clear_stop()
        bar.close()
