"""A tqdm progress bar fed by the C++ driver's coarse progress callbacks."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Progress over all chains; silent unless enabled and attached to a terminal."""

    def __init__(self, enabled: bool, total: int, desc: str = "sampling") -> None:
        self._bar: Any = None
        self._done: dict[int, int] = {}
        if enabled and getattr(sys.stderr, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="it", leave=False, mininterval=0.2)

    def chain_callback(self, chain: int, per_chain: int):
        """A callable (done, total) for chain `chain`, or None when silent. Chains may run
        concurrently: the bar shows the sum of their progress."""
        if self._bar is None:
            return None
        bar = self._bar
        done_by_chain = self._done

        def update(done: int, total: int) -> None:
            done_by_chain[chain] = done
            bar.n = sum(done_by_chain.values())
            bar.refresh()

        return update

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
