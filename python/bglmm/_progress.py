"""A tqdm progress bar fed by the C++ driver's coarse progress callbacks, and a notice while the
data is prepared.

``tqdm.auto`` draws a widget in Jupyter and text on a terminal; elsewhere (a log file, a test)
nothing is shown. :func:`fit_phases` tells the bar how many of each chain's iterations are
warm-up, so that it reports the warm-up and the sampling separately; :func:`preparing` shows
"preparing the data" when that takes more than a second, until the bar appears.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

_WARMUP: contextvars.ContextVar[int | None] = contextvars.ContextVar("bglmm_warmup", default=None)
_NOTICES: list[Any] = []  # the preparation notice running now (at most one)
NOTICE_AFTER = 1.0  # seconds of preparation before it is reported


def visible() -> bool:
    """Whether a bar would be seen: stderr is a terminal, or a Jupyter kernel runs."""
    if getattr(sys.stderr, "isatty", lambda: False)():
        return True
    get = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get() if get is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


@contextlib.contextmanager
def fit_phases(warmup: int) -> Iterator[None]:
    """Within the block, bars count the first `warmup` iterations of each chain as warm-up."""
    token = _WARMUP.set(int(warmup))
    try:
        yield
    finally:
        _WARMUP.reset(token)


class _Notice:
    """'preparing the data: 00:03' on stderr from `after` seconds on, refreshed, until stopped;
    then 'bglmm: data prepared in 3.2 s'."""

    def __init__(self, after: float) -> None:
        self._stop = threading.Event()
        self._bar: Any = None
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, args=(after,), daemon=True)
        self._thread.start()

    def _run(self, after: float) -> None:
        if self._stop.wait(after):
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=None, desc="bglmm: preparing the data",
                         bar_format="{desc}: {elapsed}", leave=False)
        while not self._stop.wait(0.25):
            self._bar.refresh()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._bar is not None:
            self._bar.close()
            elapsed = time.perf_counter() - self._started
            self._bar.write(f"bglmm: data prepared in {elapsed:.1f} s", file=sys.stderr)


@contextlib.contextmanager
def preparing(enabled: bool, after: float | None = None) -> Iterator[None]:
    """Report the preparation (formula, design, starting values) when it takes longer than
    `after` seconds (default :data:`NOTICE_AFTER`); the first progress bar ends the notice."""
    if not (enabled and visible()):
        yield
        return
    _NOTICES.append(_Notice(NOTICE_AFTER if after is None else after))
    try:
        yield
    finally:
        _end_notice()


def _end_notice() -> None:
    while _NOTICES:
        _NOTICES.pop().stop()


class Progress:
    """Progress over all chains; silent unless enabled and visible (:func:`visible`)."""

    def __init__(self, enabled: bool, total: int, desc: str = "sampling") -> None:
        self._bar: Any = None
        self._done: dict[int, int] = {}
        self._warmup = _WARMUP.get()
        self._lock = threading.Lock()
        if enabled and visible():
            _end_notice()
            from tqdm.auto import tqdm

            first = "warm-up" if self._warmup else desc
            self._bar = tqdm(total=total, desc=first, unit="it", leave=False, mininterval=0.2)

    def chain_callback(self, chain: int, per_chain: int):
        """A callable (done, total) for chain `chain`, or None when silent. Chains may run
        concurrently: the bar shows the sum of their progress and, when the warm-up length is
        known (:func:`fit_phases`), the warm-up and sampling iterations separately."""
        if self._bar is None:
            return None

        def update(done: int, total: int) -> None:
            with self._lock:
                self._done[chain] = done
                self._show(per_chain)

        return update

    def _show(self, per_chain: int) -> None:
        bar, w = self._bar, self._warmup
        bar.n = sum(self._done.values())
        if w and per_chain > 0:
            chains = max(1, round(bar.total / per_chain))
            warm = sum(min(d, w) for d in self._done.values())
            draws = sum(max(d - w, 0) for d in self._done.values())
            # the phase of the chains running now (reported, not finished)
            in_warmup = any(d < w for d in self._done.values() if d < per_chain)
            bar.set_description("warm-up" if in_warmup else "sampling", refresh=False)
            bar.set_postfix_str(f"warm-up {warm}/{chains * w}, sampling {draws}/"
                                f"{chains * (per_chain - w)}", refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
