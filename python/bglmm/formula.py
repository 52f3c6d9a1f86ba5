"""lme4-style model formulas on DataFrames -> a :class:`ModelSpec` of arrays for the samplers.

Parsing and the design matrices are delegated to the ``formulae`` library (the formula engine of
bambi): its scanner/parser reads the formula, its resolver expands ``*``, ``:``, ``/``, ``-1`` and
random-effect terms, and its term objects evaluate the columns (categorical predictors with
treatment coding, interactions, the stateful transforms ``center(x)``, ``scale(x)``,
``poly(x, d)`` — orthonormal polynomials as R's ``poly`` —, ``C(x)``, ``I(...)``,
``offset(...)``) and re-evaluate them on new data with the state of the fitting data (note: formulae's
``scale(x)`` divides by the population SD, ddof=0, where R's divides by the sample SD). bglmm adds
what formulae leaves to the caller:

* the response forms: ``y``, ``cbind(successes, failures)``, ``successes / trials``,
  ``successes | trials(n)`` and ``y | se(s)`` (brms), plus the ``trials=``, ``se=`` and
  ``offset=`` arguments (a column name or an array);
* which random-effect terms belong to the same parenthesised block ``(1 + x | g)``: a block is one
  correlated covariance matrix (formulae splits it into one term per column);
* validation with messages that name the culprit: unknown columns (with a suggestion), a missing
  response, a random term on a column that does not exist, a response that does not fit the
  family, missing values in a column the model uses.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .data import check_full_rank, check_response
from .families import Family, resolve_family

__all__ = ["ModelSpec", "RandomBlock", "build_spec", "FormulaError"]


class FormulaError(ValueError):
    """A formula that cannot be parsed or does not fit the data (a ``ValueError``)."""


def _cbind(a: Any, b: Any) -> np.ndarray:
    return np.column_stack([np.asarray(a, dtype=float), np.asarray(b, dtype=float)])


# Names every formula may use besides the data columns and the caller's variables.
_NAMESPACE = {
    "np": np,
    "log": np.log,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "cbind": _cbind,
    "trials": lambda v: np.asarray(v, dtype=float),
    "se": lambda v: np.asarray(v, dtype=float),
}


# ---------------------------------------------------------------------------------------------
# the pieces of a fitted specification


@dataclass
class RandomBlock:
    """One parenthesised random-effect term ``(expr | factor)``: b_j ~ N_q(0, Sigma)."""

    factor: str  # name of the grouping factor ("g", or "g1:g2" for an interaction)
    terms: list[str]  # names of the q columns of Z (e.g. ["Intercept", "day"])
    Z: np.ndarray  # (n, q) in data row order
    groups: pd.Series  # level label of each row (n,)
    _matrix: Any = field(repr=False, default=None)  # formulae CommonEffectsMatrix (new data)
    _factor_vars: list[str] = field(repr=False, default_factory=list)

    @property
    def q(self) -> int:
        return self.Z.shape[1]

    @property
    def label(self) -> str:
        inner = " + ".join("1" if t == "Intercept" else t for t in self.terms)
        if "Intercept" not in self.terms:
            inner = "0 + " + inner
        return f"({inner} | {self.factor})"


@dataclass
class ModelSpec:
    """Everything a sampler needs, built from a formula and a DataFrame (rows in data order)."""

    formula: str
    family: Family
    response: str  # the response as written
    y: np.ndarray
    trials: np.ndarray | None
    X: np.ndarray
    fixed_names: list[str]
    random: list[RandomBlock]
    offset: np.ndarray | None
    se: np.ndarray | None
    n: int
    _common: Any = field(repr=False, default=None)
    _offset_terms: list[Any] = field(repr=False, default_factory=list)
    _offset_column: str | None = field(repr=False, default=None)
    _trials_column: str | None = field(repr=False, default=None)
    _se_column: str | None = field(repr=False, default=None)
    _columns: list[str] = field(repr=False, default_factory=list)
    _offset_array: bool = field(repr=False, default=False)  # offset= was an array, not a column

    @property
    def has_random(self) -> bool:
        return bool(self.random)

    def new_design(self, newdata: pd.DataFrame, *, offset: Any = None) -> dict[str, Any]:
        """Design of new rows: X, the Z and group labels of each block, the offset.

        Stateful transforms (``center``, ``scale``, ``poly``) and categorical encodings keep the
        values learnt from the fitting data.
        """
        if not isinstance(newdata, pd.DataFrame):
            raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
        if len(newdata) == 0:
            raise ValueError("newdata has no rows")
        needed = set(self._columns)
        missing = sorted(c for c in needed if c not in newdata.columns)
        if missing:
            raise ValueError(f"newdata lacks column(s) {missing} used by the formula {self.formula!r}")
        for c in sorted(needed):
            _check_missing(newdata, c, "newdata")
        try:
            X = np.asarray(self._common.evaluate_new_data(newdata).design_matrix, dtype=float)
        except Exception as err:  # formulae raises on unseen categories and the like
            raise ValueError(f"cannot build the fixed-effects design for newdata: {err}") from err
        X = np.ascontiguousarray(X.reshape(len(newdata), -1))
        blocks = []
        for block in self.random:
            try:
                Z = np.asarray(block._matrix.evaluate_new_data(newdata).design_matrix, dtype=float)
            except Exception as err:
                raise ValueError(f"cannot build the design of {block.label} for newdata: {err}") from err
            blocks.append((np.ascontiguousarray(Z.reshape(len(newdata), -1)),
                           _factor_labels(newdata, block._factor_vars)))
        off = np.zeros(len(newdata))
        for term in self._offset_terms:
            off += np.asarray(term.eval_new_data(newdata), dtype=float).reshape(-1)
        if offset is not None:
            off += _column_or_array(offset, newdata, "offset")
        elif self._offset_column is not None:
            off += _column_or_array(self._offset_column, newdata, "offset")
        elif self._offset_array:
            raise ValueError("the model was fitted with an offset array; pass offset= for newdata")
        return {"X": X, "blocks": blocks, "offset": off}


# ---------------------------------------------------------------------------------------------
# helpers


def _suggest(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_missing(data: pd.DataFrame, column: str, what: str = "data") -> None:
    bad = data[column].isna()
    if bad.any():
        raise ValueError(
            f"column {column!r} of {what} has {int(bad.sum())} missing value(s); drop those rows "
            f"(e.g. data.dropna(subset=[{column!r}])) or impute them"
        )


def _column_or_array(value: Any, data: pd.DataFrame, what: str) -> np.ndarray:
    """A column name of data or an array of len(data) values, as float64."""
    if isinstance(value, str):
        if value not in data.columns:
            hint = _suggest(value, [str(c) for c in data.columns])
            raise ValueError(f"{what}={value!r} is not a column of data{hint}")
        _check_missing(data, value)
        series = data[value]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            raise TypeError(f"{what} column {value!r} must be numeric, got dtype {series.dtype}")
        return series.to_numpy(dtype=float)
    arr = np.asarray(value, dtype=float).reshape(-1) if np.ndim(value) else np.full(len(data), float(value))
    if arr.shape[0] != len(data):
        raise ValueError(f"{what} has {arr.shape[0]} values but data has {len(data)} rows")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} has missing or infinite values")
    return arr


def _factor_labels(data: pd.DataFrame, variables: list[str]) -> pd.Series:
    if len(variables) == 1:
        return data[variables[0]].reset_index(drop=True)
    parts = [data[v].astype(str).reset_index(drop=True) for v in variables]
    out = parts[0]
    for p in parts[1:]:
        out = out + ":" + p
    return out


def _parse(formula: str):
    from formulae.parser import ParseError, Parser
    from formulae.scanner import Scanner, ScanError

    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string such as 'y ~ x + (1 | g)', got {type(formula).__name__}")
    if "~" not in formula:
        raise FormulaError(f"formula {formula!r} has no response: write it as 'response ~ predictors'")
    if "||" in formula:
        raise FormulaError(
            "the '||' (uncorrelated random effects) syntax is not supported: bglmm estimates one "
            "full covariance matrix per grouping factor; write (1 + x | g)"
        )
    try:
        return Parser(Scanner(formula).scan()).parse()
    except (ParseError, ScanError) as err:
        raise FormulaError(f"cannot parse formula {formula!r}: {err}") from None


def _resolver_class():
    from formulae import expr as E
    from formulae.resolver import Resolver
    from formulae.terms import Model

    class BlockResolver(Resolver):
        """formulae's resolver, which also tags each random term with its parenthesised block."""

        def __init__(self, expression):
            super().__init__(expression)
            self.n_blocks = 0

        def visitGroupingExpr(self, expr):  # noqa: N802 (formulae's visitor protocol)
            inner = expr.expression
            if isinstance(inner, E.Binary) and inner.operator.kind == "PIPE":
                res = inner.accept(self)
                terms = res.group_terms if isinstance(res, Model) else [res]
                for t in terms:
                    t._bglmm_block = self.n_blocks
                self.n_blocks += 1
                return res
            return inner.accept(self)

    return BlockResolver


def _resolve(node) -> Any:
    from formulae.resolver import ResolverError

    try:
        return _resolver_class()(node).resolve()
    except (ResolverError, ValueError, TypeError) as err:
        raise FormulaError(f"cannot interpret the formula: {err}") from None


def _eval_single(node, data: pd.DataFrame, env, what: str) -> np.ndarray:
    """Evaluate one response-side expression (a column or a call) to a float array."""
    from formulae.terms import Response

    term = _resolve(node)
    try:
        resp = Response(term)
    except ValueError:
        raise FormulaError(f"the {what} must be a single column or expression") from None
    try:
        resp.set_type(data, env)
        resp.set_data()
    except Exception as err:
        raise FormulaError(f"cannot evaluate the {what} {term.name!r}: {err}") from None
    if resp.term.kind == "categoric":
        raise TypeError(
            f"the {what} {term.name!r} is categorical; encode it numerically "
            f"(e.g. 0/1 for family='bernoulli')"
        )
    out = np.asarray(resp.term.data, dtype=float)
    return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


def _node_name(node) -> str:
    from formulae import expr as E

    if isinstance(node, E.Variable):
        return str(node.name.lexeme)
    return ""


def _call_name(node) -> str | None:
    from formulae import expr as E

    if isinstance(node, E.Call) and isinstance(node.callee, E.Variable):
        return str(node.callee.name.lexeme)
    return None


# ---------------------------------------------------------------------------------------------
# the builder


def build_spec(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "gaussian",
    link: str | None = None,
    *,
    trials: Any = None,
    offset: Any = None,
    se: Any = None,
    env: Any = None,
) -> ModelSpec:
    """Parse `formula` on `data` and return the arrays of the model (rows in data order).

    ``trials``, ``offset`` and ``se`` may each be a column name or an array. ``env`` is a
    formulae ``Environment`` in which names that are not columns are looked up (the caller's
    frame, by default the frame that called :func:`build_spec`).
    """
    from formulae import expr as E
    from formulae.environment import Environment
    from formulae.matrices import CommonEffectsMatrix
    from formulae.terms import Model

    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("data has no rows")
    fam = resolve_family(family, link)
    data = data.reset_index(drop=True)
    columns = [str(c) for c in data.columns]
    if env is None:
        env = Environment.capture(1)
    env = env.with_outer_namespace(_NAMESPACE)

    if isinstance(formula, str) and "~" in formula and not formula.split("~", 1)[0].strip():
        raise FormulaError(f"formula {formula!r} has no response before '~': write 'response ~ predictors'")
    ast = _parse(formula)
    if not (isinstance(ast, E.Binary) and ast.operator.kind == "TILDE"):
        raise FormulaError(f"formula {formula!r} has no response: write it as 'response ~ predictors'")
    lhs, rhs = ast.left, ast.right
    response_text = formula.split("~", 1)[0].strip()

    # ---- names used: every one must be a column (or a name in the caller's scope) ----------
    model = _resolve(rhs)
    if not isinstance(model, Model):
        model = Model(model)
    lhs_vars = _lhs_variables(lhs)
    used = sorted(({v for v in model.var_names if v} | lhs_vars))
    namespace = env.namespace
    for name in sorted(lhs_vars):
        if name not in columns and name not in namespace:
            raise ValueError(
                f"the response {response_text!r} uses {name!r}, which is not a column of data"
                f"{_suggest(name, columns)}; columns are {columns}"
            )
    for t in model.group_terms:
        for v in (c.name for c in t.factor.components):
            if v not in columns:
                raise ValueError(
                    f"random term ({t.expr.name if t.expr.name != 'Intercept' else '1'} | "
                    f"{t.factor.name}): grouping factor {v!r} is not a column of data"
                    f"{_suggest(v, columns)}; columns are {columns}"
                )
    for name in used:
        if name not in columns and name not in namespace:
            raise ValueError(
                f"formula {formula!r} uses {name!r}, which is not a column of data"
                f"{_suggest(name, columns)}; columns are {columns}"
            )
    for name in used:
        if name in columns:
            _check_missing(data, name)

    # ---- response ------------------------------------------------------------------------
    y, y_trials, y_se = _response(lhs, data, env, fam, response_text)
    n = len(data)
    if y.ndim != 1 or y.shape[0] != n:
        raise FormulaError(f"the response {response_text!r} must give one value per row")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"the response {response_text!r} has missing or infinite values")

    trials_column = trials if isinstance(trials, str) else None
    if trials is not None:
        if y_trials is not None:
            raise ValueError(f"the response {response_text!r} already gives the trials; drop trials=")
        y_trials = _column_or_array(trials, data, "trials")
    se_column = se if isinstance(se, str) else None
    if se is not None:
        if y_se is not None:
            raise ValueError(f"the response {response_text!r} already gives se(); drop se=")
        y_se = _column_or_array(se, data, "se")

    if y_trials is not None and not fam.has_trials:
        raise ValueError(
            f"the response {response_text!r} (with trials) is a binomial count but family is "
            f"{fam.name!r}; use family='binomial'"
        )
    if fam.name == "binomial" and y_trials is None:
        hint = " (all values are 0/1: use family='bernoulli')" if np.all((y == 0) | (y == 1)) else ""
        raise ValueError(
            f"family 'binomial' needs the number of trials: write cbind(successes, failures) ~ ..., "
            f"successes / trials ~ ..., or pass trials='column'{hint}"
        )
    if fam.name == "bernoulli" and y_trials is None:
        y_trials = np.ones(n)
    if y_se is not None:
        if fam.name != "gaussian":
            raise ValueError(
                f"known standard errors (se) apply to the gaussian family only, not {fam.name!r}"
            )
        if np.any(y_se <= 0):
            raise ValueError(f"se has {int((y_se <= 0).sum())} values <= 0; standard errors must be positive")
    try:
        check_response(y, fam, y_trials if fam.has_trials else None)
    except ValueError as err:
        msg = str(err)
        if msg.startswith("y "):
            msg = msg[2:]
        raise ValueError(f"response {response_text!r} does not fit family {fam}: {msg}") from None

    # ---- fixed effects -------------------------------------------------------------------
    try:
        model.eval(data, env)
    except Exception as err:
        raise FormulaError(f"cannot evaluate formula {formula!r}: {err}") from None
    offset_terms = [t for t in model.common_terms if getattr(t, "kind", None) == "offset"]
    fixed_terms = [t for t in model.common_terms if getattr(t, "kind", None) != "offset"]
    if not fixed_terms:
        raise FormulaError(
            f"formula {formula!r} has no fixed effects; bglmm needs at least an intercept (~ 1 + ...)"
        )
    common = CommonEffectsMatrix(fixed_terms)
    common.evaluate(data, env)
    X = np.ascontiguousarray(np.asarray(common.design_matrix, dtype=float).reshape(n, -1))
    fixed_names = [str(lab) for t in fixed_terms for lab in t.labels]
    if not np.all(np.isfinite(X)):
        j = int(np.where(~np.isfinite(X).all(axis=0))[0][0])
        raise ValueError(f"fixed-effect column {fixed_names[j]!r} has missing or infinite values")
    check_full_rank(X, fixed_names, "the fixed-effects design")

    off = np.zeros(n)
    for t in offset_terms:
        off += np.asarray(t.data, dtype=float).reshape(-1)
    if offset is not None:
        off += _column_or_array(offset, data, "offset")
    has_offset = bool(offset_terms) or offset is not None

    # ---- random effects: one block per (parenthesised term, factor) ------------------------
    blocks: dict[tuple[int, str], list[Any]] = {}
    for t in model.group_terms:
        key = (getattr(t, "_bglmm_block", -1), t.factor.name)
        blocks.setdefault(key, []).append(t)
    random: list[RandomBlock] = []
    seen_factors: dict[str, str] = {}
    for (_, factor_name), terms in blocks.items():
        factor_vars = [c.name for c in terms[0].factor.components]
        for v in factor_vars:
            if v not in columns:
                raise ValueError(
                    f"random term (... | {factor_name}): grouping factor {v!r} is not a column of "
                    f"data{_suggest(v, columns)}"
                )
        zmodel = Model(*[t.expr for t in terms])
        try:
            zmodel.eval(data, env)
        except Exception as err:
            raise FormulaError(f"cannot evaluate the random term on {factor_name!r}: {err}") from None
        zmat = CommonEffectsMatrix(zmodel.common_terms)
        zmat.evaluate(data, env)
        Z = np.ascontiguousarray(np.asarray(zmat.design_matrix, dtype=float).reshape(n, -1))
        names = [str(lab) for t in zmodel.common_terms for lab in t.labels]
        block = RandomBlock(factor=factor_name, terms=names, Z=Z,
                            groups=_factor_labels(data, factor_vars), _matrix=zmat,
                            _factor_vars=factor_vars)
        if factor_name in seen_factors:
            raise ValueError(
                f"{seen_factors[factor_name]} and {block.label} are two random-effect blocks on the "
                f"same factor {factor_name!r}; bglmm estimates one correlated block per grouping "
                f"factor: write them as one term, e.g. (1 + x | {factor_name})"
            )
        seen_factors[factor_name] = block.label
        check_full_rank(Z, names, f"the random-effects design of {block.label}")
        random.append(block)

    spec = ModelSpec(
        formula=formula, family=fam, response=response_text, y=np.ascontiguousarray(y),
        trials=None if y_trials is None else np.ascontiguousarray(y_trials),
        X=X, fixed_names=fixed_names, random=random,
        offset=off if has_offset else None, se=y_se, n=n, _common=common,
        _offset_terms=offset_terms,
        _offset_column=offset if isinstance(offset, str) else None,
        _offset_array=offset is not None and not isinstance(offset, str),
        _trials_column=trials_column, _se_column=se_column,
        _columns=sorted(v for v in model.var_names if v in columns),
    )
    return spec


def _lhs_variables(node) -> set[str]:
    """Names of the variables the response side uses."""
    from formulae import expr as E

    out: set[str] = set()

    def walk(x) -> None:
        if isinstance(x, E.Variable):
            out.add(str(x.name.lexeme))
        elif isinstance(x, E.Binary):
            walk(x.left)
            walk(x.right)
        elif isinstance(x, E.Unary):
            walk(x.right)
        elif isinstance(x, E.Call):
            for a in x.args:
                walk(a)
        elif isinstance(x, E.Grouping):
            walk(x.expression)
        elif isinstance(x, E.QuotedName):
            out.add(str(x.expression.lexeme)[1:-1])

    walk(node)
    # a call's callee (np.log, cbind) is not a variable; attribute access scans as one name
    return {v for v in out if "." not in v}


def _as_python(node):
    """Wrap an operand in I(...) so that formulae evaluates it as a Python expression."""
    from formulae import expr as E
    from formulae.token import Token

    if isinstance(node, (E.Variable, E.Call, E.QuotedName)):
        return node
    return E.Call(E.Variable(Token("IDENTIFIER", "I")), [node])


def _response(lhs, data: pd.DataFrame, env, fam: Family, text: str):
    """(y, trials or None, se or None) from the left-hand side of the formula."""
    from formulae import expr as E

    trials = se = None
    # brms: y | trials(n), y | se(s)
    if isinstance(lhs, E.Binary) and lhs.operator.kind == "PIPE":
        kind = _call_name(lhs.right)
        if kind not in ("trials", "se") or len(lhs.right.args) != 1:
            raise FormulaError(
                f"unsupported response {text!r}: after '|' bglmm understands trials(n) and se(s)"
            )
        # evaluate the whole call (trials and se are the identity), so that its argument is a
        # Python expression: trials(n + 1), not the formula n + 1
        value = _eval_single(lhs.right, data, env, f"{kind}() of the response")
        if kind == "trials":
            trials = value
        else:
            se = value
        lhs = lhs.left
    if _call_name(lhs) == "cbind":
        if len(lhs.args) != 2:
            raise FormulaError(
                "cbind() in the response takes two columns (successes, failures), "
                f"got {len(lhs.args)}"
            )
        both = _eval_single(lhs, data, env, "response cbind()")  # args are Python expressions
        s, f = both[:, 0], both[:, 1]
        if not fam.has_trials:
            raise ValueError(
                f"the response {text!r} is a binomial count (successes, failures) but family is "
                f"{fam.name!r}; use family='binomial'"
            )
        if np.any(f < 0):
            raise ValueError(f"the failures in {text!r} have {int((f < 0).sum())} negative values")
        return s, s + f, se
    if isinstance(lhs, E.Binary) and lhs.operator.kind == "SLASH":
        s = _eval_single(_as_python(lhs.left), data, env, "numerator of the response")
        n = _eval_single(_as_python(lhs.right), data, env, "denominator (trials) of the response")
        if not fam.has_trials:
            raise ValueError(
                f"the response {text!r} is a proportion successes / trials but family is "
                f"{fam.name!r}; use family='binomial'"
            )
        return s, n, se
    y = _eval_single(lhs, data, env, "response")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise FormulaError(f"the response {text!r} must be one column")
    return y, trials, se
