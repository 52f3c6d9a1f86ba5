"""Warning classes raised by bglmm."""

from __future__ import annotations


class BglmmWarning(RuntimeWarning):
    """Base class of bglmm's warnings."""


class ConvergenceWarning(BglmmWarning):
    """R-hat too large or effective sample size too small."""


class AcceptanceWarning(BglmmWarning):
    """A Metropolis acceptance rate far from its target."""


class InterruptedWarning(BglmmWarning):
    """Sampling was interrupted (Ctrl-C); the fit holds the draws made so far."""
