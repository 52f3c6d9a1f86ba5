"""Posterior means by the midpoint rule on a 3-D grid: the independent reference of the GLM
families' tests (test_glm_dispersion.py, test_zero_inflated.py, test_student.py)."""

from __future__ import annotations

import numpy as np


def grid(lower, upper, points: int) -> list[np.ndarray]:
    """The midpoints of a box [lower, upper] (one axis per parameter), as meshgrid arrays."""
    axes = [lo + (hi - lo) * (np.arange(points) + 0.5) / points for lo, hi in zip(lower, upper)]
    return np.meshgrid(*axes, indexing="ij")


def posterior_means(lp: np.ndarray, coords: list[np.ndarray]) -> np.ndarray:
    """The means of ``coords`` under the unnormalised log density ``lp`` on the grid. The mass on
    the box's faces must stay below 1e-4: what lies beyond then moves a mean by about 1e-4 of
    the box's width, a tenth of the Monte-Carlo standard errors the tests compare against."""
    w = np.exp(lp - lp.max())
    w /= w.sum()
    edge = max(w[[0, -1]].sum(), w[:, [0, -1]].sum(), w[:, :, [0, -1]].sum())
    assert edge < 1e-4, "the grid does not cover the posterior"
    return np.array([(w * c).sum() for c in coords])
