"""bglmm: Bayesian generalized linear mixed models with a fast, parallel C++ core."""

from __future__ import annotations

from . import datasets, priors
from ._core import NumericalError
from ._core import __version__ as _core_version
from .families import Family, resolve_family
from .api import FormulaFit, fit, load
from .glm import GlmFit, glm
from .glmm import GlmmFit, glmm
from .hierarchical import HierarchicalNormalFit, hierarchical_normal
from .lmm import LmmFit, lmm
from .results import Fit
from .warnings import AcceptanceWarning, BglmmWarning, ConvergenceWarning, InterruptedWarning

__version__ = _core_version

__all__ = [
    "AcceptanceWarning",
    "BglmmWarning",
    "ConvergenceWarning",
    "Family",
    "Fit",
    "FormulaFit",
    "fit",
    "load",
    "GlmFit",
    "GlmmFit",
    "glmm",
    "HierarchicalNormalFit",
    "LmmFit",
    "hierarchical_normal",
    "lmm",
    "InterruptedWarning",
    "NumericalError",
    "datasets",
    "glm",
    "priors",
    "resolve_family",
]
