"""Input validation and conversion to the contiguous float64 arrays the C++ core reads.

Every check raises ``ValueError`` or ``TypeError`` naming the argument (and column) at fault.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .families import Family

MAX_THREADS = 1024  # an OpenMP team far beyond the cores only wastes memory and time
MAX_COUNT = 1e15  # counts are doubles in the core; beyond ~2^53 integers are not exact


def _describe_bad(values: np.ndarray) -> str:
    n_nan = int(np.isnan(values).sum())
    n_inf = int(np.isinf(values).sum())
    parts = []
    if n_nan:
        parts.append(f"{n_nan} NaN")
    if n_inf:
        parts.append(f"{n_inf} infinite")
    return " and ".join(parts) + " value" + ("s" if n_nan + n_inf > 1 else "")


def _numeric_column(values: Any, name: str) -> np.ndarray:
    series = values if isinstance(values, pd.Series) else None
    if series is not None:
        if isinstance(series.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
        ):
            raise TypeError(
                f"{name} has non-numeric dtype {series.dtype}; encode it numerically "
                "(or use the formula interface, which expands categorical columns)"
            )
        if series.isna().any():
            raise ValueError(f"{name} has {int(series.isna().sum())} missing values; drop or impute them")
        values = series.to_numpy()
    arr = np.asarray(values)
    if arr.dtype == object or arr.dtype.kind in "USMm":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got complex values")
    return arr.astype(np.float64)


def as_design(X: Any, name: str = "X", allow_empty: bool = False) -> tuple[np.ndarray, list[str]]:
    """A C-contiguous float64 design matrix and its column names (no columns only with
    ``allow_empty``: the cumulative family, whose cutpoints take the intercept's place)."""
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        if X.shape[1] == 0 and not allow_empty:
            raise ValueError(f"{name} has no columns")
        cols = [_numeric_column(X[c], f"{name} column {c!r}") for c in X.columns]
        arr = np.column_stack(cols) if cols else np.empty((len(X), 0))
    else:
        if X is None:
            raise TypeError(f"{name} is required")
        arr = np.asarray(X)
        if arr.dtype == object or arr.dtype.kind in "USMm":
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        if arr.dtype.kind == "c":
            raise TypeError(f"{name} must be real, got complex values")
        if arr.ndim == 1:
            raise ValueError(f"{name} must be 2-D (rows x coefficients), got a 1-D array; "
                             "use X.reshape(-1, 1) for a single column")
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got {arr.ndim} dimensions")
        arr = arr.astype(np.float64)
        names = [f"x{j}" for j in range(arr.shape[1])]
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if arr.shape[1] == 0 and not allow_empty:
        raise ValueError(f"{name} has no columns")
    bad = ~np.isfinite(arr)
    if bad.any():
        j = int(np.where(bad.any(axis=0))[0][0])
        raise ValueError(f"{name} column {names[j]!r} has {_describe_bad(arr[:, j])}")
    return np.ascontiguousarray(arr), names


def check_full_rank(X: np.ndarray, names: Sequence[str], name: str = "X") -> None:
    """Raise if the columns of X are linearly dependent, naming a dependent column."""
    n, p = X.shape
    if p == 0:
        return
    scale = np.sqrt((X**2).sum(axis=0))
    zero = np.where(scale == 0)[0]
    if zero.size:
        raise ValueError(f"{name} column {names[zero[0]]!r} is all zeros (the design is rank deficient)")
    if p == 1:  # one non-zero column has rank 1: skip the QR (a pass over the rows per block)
        return
    r = np.linalg.qr(X / scale, mode="r")
    diag = np.abs(np.diag(r))
    tol = max(n, p) * np.finfo(float).eps * 1e3
    if p > n:
        raise ValueError(f"{name} has more columns ({p}) than rows ({n}): the design is rank deficient")
    dependent = np.where(diag < tol * diag.max())[0]
    if dependent.size:
        j = int(dependent[0])
        raise ValueError(
            f"{name} is rank deficient: column {names[j]!r} is (nearly) a linear combination of "
            "the columns before it; drop it or use an informative prior"
        )


def as_vector(values: Any, n: int, name: str) -> np.ndarray:
    """A float64 vector of length n with finite values."""
    if values is None:
        raise TypeError(f"{name} is required")
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise ValueError(f"{name} must be one column, got {values.shape[1]}")
        values = values.iloc[:, 0]
    arr = _numeric_column(values, name)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values but X has {n} rows")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has {_describe_bad(arr)}")
    return np.ascontiguousarray(arr)


MAX_MAGNITUDE = 1e100  # squares of larger values overflow; such data must be rescaled


def check_magnitude(values: np.ndarray, name: str) -> None:
    """Refuse values whose squares would overflow double precision."""
    biggest = float(np.max(np.abs(values))) if values.size else 0.0
    if biggest > MAX_MAGNITUDE:
        raise ValueError(f"{name} has values of magnitude up to {biggest:.3g}; rescale it "
                         f"(values beyond {MAX_MAGNITUDE:g} overflow when squared)")


def check_response(y: np.ndarray, family: Family, trials: np.ndarray | None) -> None:
    """Family-specific checks of the response (and trials)."""
    check_magnitude(y, "y")
    if family.name == "gamma" and np.any(y <= 0):
        raise ValueError(f"y has {int((y <= 0).sum())} values <= 0; family 'gamma' needs "
                         "positive responses")
    if family.is_count:
        if np.any(y < 0):
            raise ValueError(f"y has {int((y < 0).sum())} negative values; {family.name} counts must be >= 0")
        if np.any(y != np.round(y)):
            raise ValueError(f"y has non-integer values; {family.name} responses must be whole counts")
        if np.any(y > MAX_COUNT):
            raise ValueError(f"y has counts above {MAX_COUNT:g}, beyond exact double precision")
    if family.has_trials:
        assert trials is not None
        if np.any(trials <= 0):
            raise ValueError(f"trials has {int((trials <= 0).sum())} values <= 0; trials must be positive")
        if np.any(trials != np.round(trials)):
            raise ValueError("trials has non-integer values")
        if np.any(trials > MAX_COUNT):
            raise ValueError(f"trials has values above {MAX_COUNT:g}")
        over = y > trials
        if np.any(over):
            i = int(np.where(over)[0][0])
            raise ValueError(
                f"y exceeds trials in {int(over.sum())} rows (first: row {i}, y = {y[i]:g} > "
                f"trials = {trials[i]:g})"
            )
        if family.name == "bernoulli" and np.any(y > 1):
            raise ValueError("bernoulli responses must be 0 or 1; use family='binomial' with trials")


def response_arrays(y: Any, trials: Any, offset: Any, n: int,
                    family: Family) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated response, trials (ones where the family has none, zeros for the zero-inflated
    families) and offset vectors."""
    ya = as_vector(y, n, "y")
    if family.needs_trials:
        if trials is None:
            raise ValueError(f"family {family.name!r} needs trials= (the number of trials per row)")
        ta = as_vector(trials, n, "trials")
    else:
        if trials is not None and family.name != "bernoulli":
            raise ValueError(f"trials= only applies to binomial families, not {family.name!r}")
        ta = np.ones(n) if trials is None else as_vector(trials, n, "trials")
        if family.is_zero_inflated:  # the core reads the rows' zi shifts there (0: none)
            ta = np.zeros(n)
    check_response(ya, family, ta if family.has_trials else None)
    off = np.zeros(n) if offset is None else as_vector(offset, n, "offset")
    check_magnitude(off, "offset")
    return ya, ta, off


def check_weights(weights: Any, n: int) -> np.ndarray | None:
    """Case weights (lme4's prior weights, brms's ``weights``): None, or n finite values >= 0,
    not all 0, each multiplying its row's log-likelihood (a row with integer weight w counts as
    w copies of it), for every family."""
    if weights is None:
        return None
    w = as_vector(weights, n, "weights")
    if np.any(w < 0):
        i = int(np.where(w < 0)[0][0])
        raise ValueError(f"weights has {int((w < 0).sum())} negative values (first: row {i}, "
                         f"{w[i]:g}); case weights must be >= 0")
    if not np.any(w > 0):
        raise ValueError("weights are all 0: no row would count")
    check_magnitude(w, "weights")
    return w


def moments(values: np.ndarray, weights: np.ndarray | None = None,
            ddof: int = 0) -> tuple[Any, Any]:
    """Mean and SD along the rows (axis 0) of `values`, the case weights counting as frequencies
    (as if each row were repeated w_i times: the data the default priors are scaled by)."""
    v = np.asarray(values, dtype=float)
    if weights is None:
        return v.mean(axis=0), v.std(axis=0, ddof=ddof) if v.shape[0] > ddof else 0.0 * v[0]
    w = weights.reshape((-1,) + (1,) * (v.ndim - 1))
    total = float(weights.sum())
    mean = (w * v).sum(axis=0) / total
    denom = total - ddof
    var = (w * (v - mean) ** 2).sum(axis=0) / denom if denom > 0 else 0.0 * mean
    return mean, np.sqrt(var)


def residual_variance(X: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The residual variance of the (weighted) least-squares fit of y on X, on sum(w) - p
    degrees of freedom; 0 when there are none."""
    r = np.ones(len(y)) if weights is None else np.sqrt(weights)
    coef, *_ = np.linalg.lstsq(X * r[:, None], y * r, rcond=None)
    resid = (y - X @ coef) * r
    dof = (len(y) if weights is None else float(weights.sum())) - X.shape[1]
    return float(resid @ resid) / dof if dof > 0 else 0.0


def core_weights(weights: np.ndarray | None) -> np.ndarray:
    """The core's form of the case weights: an empty array for none."""
    return np.empty(0) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)


# The C++ core reads the arrays in place; Eigen's vectorised sums start with scalar steps up to
# the first SIMD-aligned element, so the rounding of a sum depended on where numpy happened to
# put the data (draws from the same seed differed in the 11th digit, and then more). Every
# floating-point array handed to a sampler starts on a 64-byte boundary: the same sums, the same
# draws (integer arrays index, and integer sums are exact: they stay where they are).
CORE_ALIGNMENT = 64


def aligned_empty(shape: Any, dtype: Any = np.float64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data start on a CORE_ALIGNMENT-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.empty(nbytes + CORE_ALIGNMENT, dtype=np.uint8)
    start = -buf.ctypes.data % CORE_ALIGNMENT
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def core_aligned(*arrays: Any) -> tuple[Any, ...]:
    """`arrays` with every floating-point numpy array C-contiguous and starting on a
    CORE_ALIGNMENT-byte boundary (copied only when it does not already); lists, tuples and
    dicts are walked."""
    def one(a: Any) -> Any:
        if isinstance(a, dict):
            return {k: one(v) for k, v in a.items()}
        if isinstance(a, (list, tuple)):
            return type(a)(one(v) for v in a)
        if not isinstance(a, np.ndarray) or a.size == 0 or a.dtype.kind != "f":
            return a
        if a.flags.c_contiguous and a.ctypes.data % CORE_ALIGNMENT == 0:
            return a
        out = aligned_empty(a.shape, a.dtype)
        out[...] = a
        return out

    return tuple(one(a) for a in arrays)


def check_count(name: str, value: Any, minimum: int) -> int:
    """An integer argument (draws, chains, ...) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def resolve_seed(seed: Any) -> int:
    """A non-negative 63-bit seed; None draws fresh entropy (recorded in the fit)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer or None, got {type(seed).__name__}")
    if seed < 0 or seed >= 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return int(seed)


def resolve_threads(threads: Any) -> int:
    """Threads for the core: None -> all cores (0 for the core), else a positive integer."""
    if threads is None:
        return 0
    threads = check_count("threads", threads, 1)
    if threads > MAX_THREADS:
        raise ValueError(f"threads must be at most {MAX_THREADS}, got {threads}")
    return threads
