"""Grouping factors: encode the levels of a grouping column and sort rows by group.

The C++ core reads observations sorted by group, group g owning rows
``[group_start[g], group_start[g+1])``. ``encode_groups`` returns the permutation that sorts the
data, the offsets array, and the level labels (in order of first appearance when unsorted
labels are not orderable, else sorted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .data import aligned_empty


@dataclass(frozen=True)
class Grouping:
    """A grouping factor laid out for the core."""

    name: str
    levels: list[Any]  # label of group g
    codes: np.ndarray  # group index of each original row (int64)
    order: np.ndarray  # permutation: sorted_rows = rows[order]
    group_start: np.ndarray  # int64, length n_groups + 1

    @property
    def n_groups(self) -> int:
        return len(self.levels)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.group_start)

    def sort(self, values: np.ndarray) -> np.ndarray:
        """Rows of `values` in group order, C-contiguous float64, allocated as the core wants
        them (data.core_aligned: no second copy before sampling)."""
        values = np.asarray(values, dtype=np.float64)
        out = aligned_empty(values.shape)
        np.take(values, self.order, axis=0, out=out)
        return out

    def unsort(self, values: np.ndarray, axis: int = -1) -> np.ndarray:
        """Inverse of :meth:`sort` along `axis` (back to the caller's row order)."""
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(self.order.size)
        return np.take(values, inverse, axis=axis)


def encode_groups(groups: Any, n: int, name: str = "group", *, min_groups: int = 1) -> Grouping:
    """Validate a grouping column of length n and lay it out by group."""
    if groups is None:
        raise TypeError(f"{name} is required")
    series = groups if isinstance(groups, pd.Series) else pd.Series(np.asarray(groups, dtype=object)
                                                                  if np.ndim(groups) else groups)
    if series.ndim != 1 or len(series) != n:
        raise ValueError(f"{name} has {len(series)} values but the data have {n} rows")
    missing = series.isna()
    if missing.any():
        raise ValueError(f"{name} has {int(missing.sum())} missing values; drop those rows or give them a level")
    codes, uniques = pd.factorize(series, sort=True)
    levels = list(uniques)
    if len(levels) < min_groups:
        raise ValueError(f"{name} has {len(levels)} level(s); this model needs at least {min_groups}")
    codes = codes.astype(np.int64)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(levels))
    group_start = np.zeros(len(levels) + 1, dtype=np.int64)
    np.cumsum(counts, out=group_start[1:])
    return Grouping(name=name, levels=levels, codes=codes, order=order, group_start=group_start)
