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
  ``successes | trials(n)``, ``y | se(s)`` and ``y | weights(w)`` (brms; several joined by
  ``+``), plus the ``trials=``, ``se=``, ``weights=`` and ``offset=`` arguments (a column name
  or an array);
* the random-effect blocks: a parenthesised term ``(1 + x | g)`` is one block with one
  correlated covariance matrix (formulae splits it into one term per column);
  ``(1 + x | a/b)`` gives one block per factor (``a`` and the interaction ``a:b``), and
  ``(1 + x || g)`` one uncorrelated block per term, as lme4. The grouping factors are encoded
  here as integer codes (formulae's group-specific terms would build a dense rows x levels
  indicator matrix, so they are never evaluated): the cost is linear in the rows;
* R's habits: ``^`` (a power inside ``I()``, crossing outside it: ``(a + b)^2``), ``factor(x)``,
  ``TRUE``/``FALSE``, patsy's list literals (``C(x, levels=[...])``); an unordered pandas
  Categorical keeps its category order (the first category is the reference level, as in R;
  formulae would sort the levels); ``x^2`` and ``contr.sum`` are errors saying what to write;
* validation with messages that name the culprit: unknown columns (with a suggestion), a missing
  response, a random term on a column that does not exist, a response that does not fit the
  family, missing values in a column the model uses.
"""

from __future__ import annotations

import difflib
import re
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .data import check_full_rank, check_response, check_weights
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
    "weights": lambda v: np.asarray(v, dtype=float),
    "factor": lambda v: _factor(v),
    "bglmm_levels": lambda v, levels: _with_levels(v, levels),
    "TRUE": True,  # R's spelling, as in poly(x, 2, raw=TRUE)
    "FALSE": False,
}


def _factor(values: Any) -> Any:
    """R's ``factor(x)``: the values as a categorical (a Categorical keeps its categories)."""
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        return values
    return pd.Categorical(np.asarray(values))


# ---------------------------------------------------------------------------------------------
# the pieces of a fitted specification


@dataclass
class RandomBlock:
    """One random-effect block ``(expr | factor)``: b_j ~ N_q(0, Sigma) for each level j.

    A parenthesised term gives one block per grouping factor (``(1 + x | a/b)`` gives a block on
    ``a`` and one on ``a:b``), or with ``||`` one block per term. Blocks on the same factor share
    the same ``codes`` array, ``levels`` list and ``groups`` Series (the same objects).
    """

    factor: str  # name of the grouping factor ("g", or "g1:g2" for an interaction)
    terms: list[str]  # names of the q columns of Z (e.g. ["Intercept", "day"])
    Z: np.ndarray  # (n, q) float64, C-contiguous, in data row order
    groups: pd.Series  # level label of each row (n,): the column itself, or "a:b" strings
    codes: np.ndarray  # (n,) int64 level index of each row: levels[codes[i]] == groups[i]
    levels: list[Any]  # label of each code, sorted when sortable (as pd.factorize(sort=True))
    correlated: bool = True  # False for a block that came from (... || factor)
    _matrix: Any = field(repr=False, default=None)  # formulae CommonEffectsMatrix (new data)
    _factor_vars: list[str] = field(repr=False, default_factory=list)
    _expr_names: list[str] = field(repr=False, default_factory=list)  # formula terms ("1", "x")

    @property
    def q(self) -> int:
        return self.Z.shape[1]

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def label(self) -> str:
        """The block as a formula term: ``(1 + x | g)``, ``(0 + x | g)``."""
        names = self._expr_names or ["1" if t == "Intercept" else t for t in self.terms]
        return _block_label(names, self.factor)


def _block_label(expr_names: list[str], factor: str) -> str:
    inner = " + ".join(expr_names)
    if "1" not in expr_names:
        inner = "0 + " + inner
    return f"({inner} | {factor})"


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
    weights: np.ndarray | None = None  # case weights (each row's log-likelihood times w_i)
    _common: Any = field(repr=False, default=None)
    _offset_terms: list[Any] = field(repr=False, default_factory=list)
    _offset_column: str | None = field(repr=False, default=None)
    _trials_column: str | None = field(repr=False, default=None)
    _se_column: str | None = field(repr=False, default=None)
    _weights_column: str | None = field(repr=False, default=None)
    _columns: list[str] = field(repr=False, default_factory=list)
    _offset_array: bool = field(repr=False, default=False)  # offset= was an array, not a column
    # the cumulative family: the response's categories (y holds their numbers 1 .. K), and the
    # position of the formula's intercept, which its cutpoints replace (dropped from X)
    categories: list[Any] | None = None
    _dropped_intercept: int | None = field(repr=False, default=None)
    _coded_levels: list[tuple[str, list[Any]]] = field(repr=False, default_factory=list)
    # a zero-inflated family's zi formula (brms's zi ~ x): its design with the intercept
    zi_formula: str | None = None
    zi_X: np.ndarray | None = None
    zi_names: list[str] | None = None
    _zi_common: Any = field(repr=False, default=None)

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
        padded = newdata
        for column, levels in self._coded_levels:  # every level of C(x, Sum, levels=[...])
            if column not in newdata.columns:
                continue
            missing = [v for v in levels if v not in set(newdata[column])]
            if missing:
                base = padded.astype({column: object})
                pad = pd.concat([base.iloc[[0]]] * len(missing), ignore_index=True)
                pad[column] = missing
                padded = pd.concat([base, pad], ignore_index=True)
        try:
            X = np.asarray(self._common.evaluate_new_data(padded).design_matrix, dtype=float)
        except Exception as err:  # formulae raises on unseen categories and the like
            raise ValueError(f"cannot build the fixed-effects design for newdata: {err}"
                             f"{_levels_hint(err)}") from err
        X = np.ascontiguousarray(X.reshape(len(padded), -1)[:len(newdata)])
        if self._dropped_intercept is not None:
            X = np.ascontiguousarray(np.delete(X, self._dropped_intercept, axis=1))
        blocks = []
        labels: dict[str, pd.Series] = {}  # one encoding per factor, shared by its blocks
        for block in self.random:
            try:
                Z = np.asarray(block._matrix.evaluate_new_data(newdata).design_matrix, dtype=float)
            except Exception as err:
                raise ValueError(f"cannot build the design of {block.label} for newdata: {err}") from err
            if block.factor not in labels:
                labels[block.factor] = _factor_labels(newdata, block._factor_vars, block.factor)
            blocks.append((np.ascontiguousarray(Z.reshape(len(newdata), -1)), labels[block.factor]))
        off = np.zeros(len(newdata))
        for term in self._offset_terms:
            off += np.asarray(term.eval_new_data(newdata), dtype=float).reshape(-1)
        if offset is not None:
            off += _column_or_array(offset, newdata, "offset")
        elif self._offset_column is not None:
            off += _column_or_array(self._offset_column, newdata, "offset")
        elif self._offset_array:
            raise ValueError("the model was fitted with an offset array; pass offset= for newdata")
        zi_X = None
        if self._zi_common is not None:
            try:
                zi_X = np.asarray(self._zi_common.evaluate_new_data(newdata).design_matrix,
                                  dtype=float).reshape(len(newdata), -1)
            except Exception as err:
                raise ValueError(f"cannot build the zi design ({self.zi_formula}) for newdata: "
                                 f"{err}{_levels_hint(err)}") from err
        return {"X": X, "blocks": blocks, "offset": off, "zi_X": zi_X}


# ---------------------------------------------------------------------------------------------
# helpers


def _levels_hint(err: Exception) -> str:
    if "levels beign assigned" not in str(err):  # formulae's message (sic)
        return ""
    return ("; C(x, levels=[...]) needs every one of those levels in the rows (a limit of "
            "formulae): to predict for some of them, fit with x made a pandas Categorical "
            "instead, data['x'] = pd.Categorical(data['x'], categories=[...]), and write x")


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


def _factor_labels(data: pd.DataFrame, variables: list[str], name: str) -> pd.Series:
    """The level label of each row: the column itself, or "a_label:b_label" for an interaction."""
    if len(variables) == 1:
        return data[variables[0]].reset_index(drop=True)
    return _encode_factor(data, variables, name)[2]


def _encode_factor(
    data: pd.DataFrame, variables: list[str], name: str
) -> tuple[np.ndarray, list[Any], pd.Series]:
    """(codes, levels, labels) of a grouping factor, in time and memory linear in the rows.

    ``codes`` (int64, one per row) index ``levels``; ``labels`` is the label of each row. For one
    variable the levels are its values (sorted when sortable, as ``pd.factorize(sort=True)``);
    for an interaction ``a:b`` they are the strings "a_label:b_label" of the combinations that
    occur, sorted. The rows are never visited by Python code: each variable is factorized, the
    integer codes are combined (and re-compressed after each variable, so they stay below
    rows x levels), and label strings are built for the unique combinations only.
    """
    if len(variables) == 1:
        column = data[variables[0]].reset_index(drop=True)
        codes, uniques = pd.factorize(column, sort=True)
        return codes.astype(np.int64, copy=False), uniques.tolist(), column
    combined: np.ndarray | None = None
    parts: list[np.ndarray] = []  # for each unique combination: the code of each variable
    values: list[list[Any]] = []  # the levels of each variable
    for v in variables:
        c, u = pd.factorize(data[v], sort=True)
        c = c.astype(np.int64, copy=False)
        values.append(u.tolist())
        k = len(u)
        if combined is None:
            combined, parts = c, [np.arange(k, dtype=np.int64)]
            continue
        combined, uniq = pd.factorize(combined * k + c, sort=True)
        uniq = np.asarray(uniq, dtype=np.int64)
        parts = [p[uniq // k] for p in parts] + [uniq % k]
    assert combined is not None
    text = np.asarray([str(x) for x in values[0]], dtype=object)[parts[0]]
    for vals, part in zip(values[1:], parts[1:]):
        text = text + ":" + np.asarray([str(x) for x in vals], dtype=object)[part]
    # distinct combinations may print alike (1 and "1"): they are one level, as their labels say
    relabel, levels = pd.factorize(text, sort=True)
    codes = relabel.astype(np.int64, copy=False)[combined]
    labels = pd.Series(np.asarray(levels, dtype=object)[codes], name=name)
    return codes, levels.tolist(), labels


_R_CODINGS = {"contr.sum": "Sum", "contr.treatment": "Treatment"}  # R's name: formulae's

_LIST = "bglmm_list_"  # the names that stand for list literals ([...]) in a formula
_LEVELS = "bglmm_levels"  # the call that C(x, levels=[...]) becomes


def _translate(formula: str) -> tuple[str, dict[str, list[Any]]]:
    """The formula in formulae's spelling, and the lists it names.

    R writes a power as ``^``: ``I(x^2)`` is a square and ``(a + b)^2`` the main effects and
    two-way interactions; formulae reads both as ``**``. formulae cannot read a list literal
    (``C(x, levels=["lo", "hi"])``): each one becomes a name bound to the list. Text in quotes is
    left alone.
    """
    out: list[str] = []
    lists: dict[str, list[Any]] = {}
    i, quote = 0, ""
    while i < len(formula):
        ch = formula[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "^":
            ch = "**"
        elif ch == "[":
            end = _closing_bracket(formula, i)
            name = f"{_LIST}{len(lists) + 1}"
            lists[name] = _list_literal(formula[i:end + 1])
            out.append(name)
            i = end + 1
            continue
        out.append(ch)
        i += 1
    # C(x, levels=[...]) as an ordered Categorical of x: formulae's own levels= cannot encode new
    # data that lacks some of the levels
    text = re.sub(rf"\bC\(\s*([A-Za-z_][\w.]*)\s*,\s*levels\s*=\s*({_LIST}\d+)\s*\)",
                  rf"{_LEVELS}(\1, \2)", "".join(out))
    # with a coding too, C(x, Sum, levels=[...]) or C(x, levels=[...], Sum): the coding of that
    # Categorical
    text = re.sub(rf"\bC\(\s*([A-Za-z_][\w.]*)\s*,\s*([A-Za-z_]\w*)\s*,\s*levels\s*=\s*"
                  rf"({_LIST}\d+)\s*\)", rf"C({_LEVELS}(\1, \3), \2)", text)
    text = re.sub(rf"\bC\(\s*([A-Za-z_][\w.]*)\s*,\s*levels\s*=\s*({_LIST}\d+)\s*,\s*"
                  rf"([A-Za-z_]\w*)\s*\)", rf"C({_LEVELS}(\1, \2), \3)", text)
    return text, lists


def _coded_levels(text: str, lists: dict[str, list[Any]]) -> list[tuple[str, list[Any]]]:
    """(column, levels) of each C(x, <coding>, levels=[...]) of a translated formula: formulae's
    C() box checks new data against the levels it saw, so new data lacking some of them is
    padded with them (:meth:`ModelSpec.new_design`)."""
    found = re.findall(rf"\bC\({_LEVELS}\(([A-Za-z_][\w.]*), ({_LIST}\d+)\), \w+\)", text)
    return [(column, lists[name]) for column, name in found]


def _closing_bracket(text: str, start: int) -> int:
    depth, quote = 0, ""
    for j in range(start, len(text)):
        ch = text[j]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return j
    raise FormulaError(f"formula has a '[' without its ']': {text!r}")


def _list_literal(text: str) -> list[Any]:
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise FormulaError(f"the list {text} in the formula must hold literal values (strings or "
                           "numbers), as in C(x, levels=['lo', 'mid', 'hi'])") from None
    return list(value)


def _with_levels(values: Any, levels: list[Any]) -> pd.Series:
    """The values as a Categorical with the categories `levels`, in that order (a Series: what
    formulae's C() takes when a coding is given too)."""
    values = np.asarray(values)
    missing = pd.unique(values[~pd.Series(values).isin(levels).to_numpy()])
    if len(missing):
        raise ValueError(f"C(x, levels={levels!r}): x has values {list(missing[:5])} that are not "
                         "in the levels; list every value")
    return pd.Series(pd.Categorical(values, categories=levels, ordered=True))


def _untranslate(name: str, lists: dict[str, list[Any]]) -> str:
    """A term or column name with the lists written out again (``levels=['lo', 'hi']``)."""
    name = re.sub(rf"\bC\({_LEVELS}\(([^,()]+), ({_LIST}\d+)\), (\w+)\)", r"C(\1, \3, levels=\2)",
                  name)
    name = re.sub(rf"\b{_LEVELS}\(([^,()]+), ({_LIST}\d+)\)", r"C(\1, levels=\2)", name)
    for key in sorted(lists, key=len, reverse=True):  # bglmm_list_10 before bglmm_list_1
        name = name.replace(key, repr(lists[key]))
    return name


def _keep_category_order(data: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns made ordered, so that formulae keeps their category order (it sorts
    the levels of an unordered one): the first category is the reference level, as in R. Unused
    categories are dropped (R's model frame drops unused levels too)."""
    cats = [c for c in data.columns if isinstance(data[c].dtype, pd.CategoricalDtype)]
    if not cats:
        return data
    data = data.copy(deep=False)
    for c in cats:
        data[c] = data[c].cat.remove_unused_categories().cat.as_ordered()
    return data


def _check_powers(node, formula: str) -> None:
    """``x^2`` on a single variable crosses x with itself, which is x (as in R): say so rather
    than fit a model without the square the user meant."""
    from formulae import expr as E

    if isinstance(node, E.Binary):
        if node.operator.kind == "STAR_STAR" and isinstance(node.left, (E.Variable, E.Call)):
            name, power = _expr_text(node.left), _expr_text(node.right)
            raise FormulaError(
                f"{name}^{power} in formula {formula!r} crosses {name} with itself, which is just "
                f"{name} (as in R); for the power write I({name}^{power}) or "
                f"poly({name}, {power}, raw=TRUE)")
        _check_powers(node.left, formula)
        _check_powers(node.right, formula)
    elif isinstance(node, E.Grouping):
        _check_powers(node.expression, formula)
    elif isinstance(node, E.Unary):
        _check_powers(node.right, formula)


def _expr_text(node) -> str:
    from formulae import expr as E

    if isinstance(node, E.Variable):
        return str(node.name.lexeme)
    if isinstance(node, E.Literal):
        return str(node.value)
    return str(node)


def _scanner_class():
    from formulae.scanner import Scanner

    class BlockScanner(Scanner):
        """formulae's scanner, which also reads lme4's ``||`` as one PIPE token (lexeme "||")."""

        def scan_token(self):
            if self.peek() == "|" and self.peek_next() == "|":
                self.advance()
                self.advance()
                self.add_token("PIPE")
                return
            super().scan_token()

    return BlockScanner


def _parse(formula: str, text: str | None = None):
    """The AST of `text`, the formula in formulae's spelling (by default :func:`_translate`'s)."""
    from formulae.parser import ParseError, Parser
    from formulae.scanner import ScanError

    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string such as 'y ~ x + (1 | g)', got {type(formula).__name__}")
    if "~" not in formula:
        raise FormulaError(f"formula {formula!r} has no response: write it as 'response ~ predictors'")
    try:
        parser = Parser(_scanner_class()(_translate(formula)[0] if text is None else text).scan())
        ast = parser.parse()
    except (ParseError, ScanError) as err:
        raise FormulaError(f"cannot parse formula {formula!r}: {err}") from None
    if not parser.at_end():  # formulae stops at the first token it cannot use and drops the rest
        rest = parser.peek()
        hint = (": write random terms in parentheses, as in y ~ x + (1 | g)"
                if rest.kind == "PIPE" else "")
        raise FormulaError(f"cannot parse formula {formula!r}: unexpected {rest.lexeme!r}{hint}")
    return ast


def _is_double_pipe(node) -> bool:
    from formulae import expr as E

    return isinstance(node, E.Binary) and node.operator.kind == "PIPE" and node.operator.lexeme == "||"


def _resolver_class():
    from formulae import expr as E
    from formulae.resolver import Resolver, ResolverError
    from formulae.terms import Model

    class BlockResolver(Resolver):
        """formulae's resolver, which also records the parenthesised random-effect terms.

        ``blocks`` lists, in formula order, the group-specific terms of each ``( ... | ... )``
        and whether it was written with ``||``. Terms subtracted with ``-`` are not recorded.
        """

        def __init__(self, expression):
            super().__init__(expression)
            self.blocks: list[tuple[list[Any], bool]] = []
            self._subtracted = 0

        def visitGroupingExpr(self, expr):  # noqa: N802 (formulae's visitor protocol)
            inner = expr.expression
            if isinstance(inner, E.Binary) and inner.operator.kind == "PIPE":
                res = inner.left.accept(self) | inner.right.accept(self)
                if not self._subtracted:
                    terms = res.group_terms if isinstance(res, Model) else [res]
                    self.blocks.append((list(terms), _is_double_pipe(inner)))
                return res
            return inner.accept(self)

        def visitBinaryExpr(self, expr):  # noqa: N802
            if _is_double_pipe(expr):
                raise ResolverError("'||' must be inside parentheses, as in (1 + x || g)")
            if expr.operator.kind == "MINUS":
                left = expr.left.accept(self)
                self._subtracted += 1
                try:
                    right = expr.right.accept(self)
                finally:
                    self._subtracted -= 1
                return left - right
            return super().visitBinaryExpr(expr)

    return BlockResolver


def _resolve(node, with_blocks: bool = False) -> Any:
    from formulae.resolver import ResolverError

    try:
        resolver = _resolver_class()(node)
        out = resolver.resolve()
    except (ResolverError, ValueError, TypeError) as err:
        raise FormulaError(f"cannot interpret the formula: {err}") from None
    return (out, resolver.blocks) if with_blocks else out


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


@dataclass
class _Unit:
    """The group-specific terms of one block, before evaluation."""

    factor: str
    factor_vars: list[str]
    terms: list[Any]  # formulae GroupSpecificTerm, the intercept first
    correlated: bool

    @property
    def expr_names(self) -> list[str]:
        return [_expr_name(t.expr) for t in self.terms]

    @property
    def label(self) -> str:
        return _block_label(self.expr_names, self.factor)


def _expr_name(expr) -> str:
    from formulae.terms import Intercept

    return "1" if isinstance(expr, Intercept) else str(expr.name)


def _random_units(model, records: list[tuple[list[Any], bool]]) -> list[_Unit]:
    """Split the parenthesised random terms into blocks, in formula order.

    ``(1 + x | g)`` is one correlated block; ``(1 + x | a/b)`` (formulae resolves it to terms on
    the factors ``a`` and ``a:b``) one block per factor; ``(1 + x || g)`` one block per term (a
    categorical term, with all its columns, is one block: lme4's rule). A block repeated as a
    whole is dropped (as formulae drops a repeated term); a term in two different blocks is an
    error, since its effects would be counted twice.
    """
    from formulae.terms import Intercept

    # formulae's terms compare with == but some cannot be hashed (calls with literal arguments):
    # lists, not sets (a formula has a handful of random terms)
    kept = model.group_terms
    units: list[_Unit] = []

    def add(terms: list[Any], correlated: bool) -> None:
        terms = sorted(terms, key=lambda t: not isinstance(t.expr, Intercept))  # intercept first
        unit = _Unit(factor=str(terms[0].factor.name),
                     factor_vars=[str(c.name) for c in terms[0].factor.components],
                     terms=terms, correlated=correlated)
        for other in units:
            if len(other.terms) == len(terms) and all(t in other.terms for t in terms):
                return  # the same block again
            for t in terms:
                if t in other.terms:
                    raise FormulaError(
                        f"the random term {_block_label([_expr_name(t.expr)], unit.factor)} is in "
                        f"two blocks, {other.label} and {unit.label}; write it in one of them"
                    )
        units.append(unit)

    covered: list[Any] = []
    for terms, double_pipe in records:
        by_factor: dict[str, list[Any]] = {}
        for t in terms:
            if t in kept and t not in by_factor.get(t.factor.name, []):
                by_factor.setdefault(t.factor.name, []).append(t)
        for ts in by_factor.values():
            if double_pipe:
                for t in ts:
                    add([t], False)
            else:
                add(ts, True)
            covered.extend(ts)
    for t in kept:  # not in parentheses (formulae's grammar leaves no such case; kept as a guard)
        if t not in covered:
            add([t], True)
    return units


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
    weights: Any = None,
    zi: str | None = None,
    env: Any = None,
) -> ModelSpec:
    """Parse `formula` on `data` and return the arrays of the model (rows in data order).

    ``trials``, ``offset``, ``se`` and ``weights`` may each be a column name or an array. ``zi``:
    a zero-inflated family's formula of the probability of a structural zero, ``"~ x"``.
    ``env`` is a formulae ``Environment`` in which names that are not columns are looked up
    (the caller's frame, by default the frame that called :func:`build_spec`).
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
    given = data.reset_index(drop=True)  # (the cumulative family's response as it was given)
    data = _keep_category_order(given)
    columns = [str(c) for c in data.columns]
    if env is None:
        env = Environment.capture(1)
    text, lists = _translate(formula) if isinstance(formula, str) else (formula, {})
    env = env.with_outer_namespace({**_NAMESPACE, **lists})

    if isinstance(formula, str) and "~" in formula and not formula.split("~", 1)[0].strip():
        raise FormulaError(f"formula {formula!r} has no response before '~': write 'response ~ predictors'")
    ast = _parse(formula, text)
    if not (isinstance(ast, E.Binary) and ast.operator.kind == "TILDE"):
        raise FormulaError(f"formula {formula!r} has no response: write it as 'response ~ predictors'")
    lhs, rhs = ast.left, ast.right
    _check_powers(lhs, formula)
    _check_powers(rhs, formula)
    response_text = formula.split("~", 1)[0].strip()

    # ---- names used: every one must be a column (or a name in the caller's scope) ----------
    model, records = _resolve(rhs, with_blocks=True)
    if not isinstance(model, Model):
        model = Model(model)
    units = _random_units(model, records)
    lhs_vars = _lhs_variables(lhs)
    used = sorted(({v for v in model.var_names if v} | lhs_vars))
    from formulae.categorical import ENCODINGS

    # C(x, Sum): formulae's codings are known names too
    namespace = env.with_outer_namespace(ENCODINGS).namespace
    for name in sorted(lhs_vars):
        if name not in columns and name not in namespace:
            raise ValueError(
                f"the response {response_text!r} uses {name!r}, which is not a column of data"
                f"{_suggest(name, columns)}; columns are {columns}"
            )
    for unit in units:
        for v in unit.factor_vars:
            wrapped = re.fullmatch(r"(?:factor|C)\((\w+)\)", v.replace(" ", ""))
            if wrapped and wrapped.group(1) in columns:
                raise FormulaError(
                    f"random term {unit.label}: a grouping factor is categorical as it is; write "
                    f"{_block_label(unit.expr_names, wrapped.group(1))}")
            if v not in columns:
                raise ValueError(
                    f"random term {unit.label}: grouping factor {v!r} is not a column of data"
                    f"{_suggest(v, columns)}; columns are {columns}"
                )
        for v in sorted(v for t in unit.terms for v in t.expr.var_names if v):
            if v not in columns and v not in namespace:
                raise ValueError(
                    f"random term {unit.label} uses {v!r}, which is not a column of data"
                    f"{_suggest(v, columns)}; columns are {columns}"
                )
    for name in used:
        if name in _R_CODINGS:
            raise FormulaError(f"formula {formula!r}: for R's {name} write {_R_CODINGS[name]}, "
                               f"as in C(x, {_R_CODINGS[name]})")
        if name not in columns and name not in namespace:
            raise ValueError(
                f"formula {formula!r} uses {name!r}, which is not a column of data"
                f"{_suggest(name, columns)}; columns are {columns}"
            )
    for name in used:
        if name in columns:
            _check_missing(data, name)

    # ---- response ------------------------------------------------------------------------
    categories = None
    if fam.is_ordinal:  # an ordered Categorical column or integers: the categories' numbers
        from .ordinal import ordinal_response

        lhs, extra = _response_additions(lhs, data, env, response_text)
        if set(extra) - {"weights"}:
            raise FormulaError(f"the response {response_text!r}: the cumulative family takes "
                               "no trials() or se()")
        raw = (given[lhs.name.lexeme] if isinstance(lhs, E.Variable) and lhs.level is None
               and lhs.name.lexeme in columns
               else _eval_single(lhs, data, env, "response"))
        y, categories = ordinal_response(raw, f"the response {response_text!r}")
        y_trials = y_se = None
        y_weights = extra.get("weights")
    else:
        y, y_trials, y_se, y_weights = _response(lhs, data, env, fam, response_text)
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

    weights_column = weights if isinstance(weights, str) else None
    if weights is not None:
        if y_weights is not None:
            raise ValueError(f"the response {response_text!r} already gives weights(); drop "
                             "weights=")
        y_weights = _column_or_array(weights, data, "weights")
    if y_weights is not None:
        y_weights = check_weights(y_weights, n)

    if y_trials is not None and not fam.has_trials:
        raise ValueError(
            f"the response {response_text!r} (with trials) is a binomial count but family is "
            f"{fam.name!r}; use family='binomial'"
        )
    if fam.needs_trials and y_trials is None:
        hint = (" (all values are 0/1: use family='bernoulli')"
                if fam.name == "binomial" and np.all((y == 0) | (y == 1)) else "")
        raise ValueError(
            f"family {fam.name!r} needs the number of trials: write cbind(successes, failures) ~ ..., "
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

    # ---- fixed effects: only the common terms (formulae's group-specific terms would build a
    # dense rows x levels indicator matrix; the factors are encoded below instead) -------------
    fixed_model = Model(*model.common_terms)
    try:
        fixed_model.eval(data, env)
    except Exception as err:
        raise FormulaError(f"cannot evaluate formula {formula!r}: {err}") from None
    offset_terms = [t for t in fixed_model.common_terms if getattr(t, "kind", None) == "offset"]
    fixed_terms = [t for t in fixed_model.common_terms if getattr(t, "kind", None) != "offset"]
    if not fixed_terms:
        raise FormulaError(
            f"formula {formula!r} has no fixed effects; bglmm needs at least an intercept (~ 1 + ...)"
        )
    common = CommonEffectsMatrix(fixed_terms)
    common.evaluate(data, env)
    X = np.ascontiguousarray(np.asarray(common.design_matrix, dtype=float).reshape(n, -1))
    fixed_names = [_untranslate(str(lab), lists) for t in fixed_terms for lab in t.labels]
    if not np.all(np.isfinite(X)):
        j = int(np.where(~np.isfinite(X).all(axis=0))[0][0])
        raise ValueError(f"fixed-effect column {fixed_names[j]!r} has missing or infinite values")
    check_full_rank(X, fixed_names, "the fixed-effects design")
    dropped = None
    if fam.is_ordinal:
        if "Intercept" not in fixed_names:
            raise FormulaError(
                f"formula {formula!r}: the cumulative family's cutpoints take the place of the "
                "intercept, so the formula must keep it (drop '0 +' / '- 1'): a factor's first "
                "level is then the reference")
        dropped = fixed_names.index("Intercept")
        X = np.ascontiguousarray(np.delete(X, dropped, axis=1))
        fixed_names = [f for f in fixed_names if f != "Intercept"]

    off = np.zeros(n)
    for t in offset_terms:
        off += np.asarray(t.data, dtype=float).reshape(-1)
    if offset is not None:
        off += _column_or_array(offset, data, "offset")
    has_offset = bool(offset_terms) or offset is not None

    # ---- random effects: the small (n, q) term matrix of each block, and its factor's codes --
    random: list[RandomBlock] = []
    encodings: dict[str, tuple[np.ndarray, list[Any], pd.Series]] = {}  # one per factor
    for unit in units:
        # a copy of the expression terms: a term shared by several blocks (a/b, ||) is evaluated
        # in each block's own context (its encoding depends on the block's other terms)
        zmodel = Model(*[deepcopy(t.expr) for t in unit.terms])
        try:
            zmodel.eval(data, env)
            zmat = CommonEffectsMatrix(zmodel.common_terms)
            zmat.evaluate(data, env)
        except Exception as err:
            raise FormulaError(f"cannot evaluate the random term {unit.label}: {err}") from None
        Z = np.ascontiguousarray(np.asarray(zmat.design_matrix, dtype=float).reshape(n, -1))
        names = [_untranslate(str(lab), lists) for t in zmodel.common_terms for lab in t.labels]
        if not np.all(np.isfinite(Z)):
            j = int(np.where(~np.isfinite(Z).all(axis=0))[0][0])
            raise ValueError(f"column {names[j]!r} of the random term {unit.label} has missing or "
                             "infinite values")
        check_full_rank(Z, names, f"the random-effects design of {unit.label}")
        if unit.factor not in encodings:
            encodings[unit.factor] = _encode_factor(data, unit.factor_vars, unit.factor)
        codes, levels, labels = encodings[unit.factor]
        random.append(RandomBlock(
            factor=unit.factor, terms=names, Z=Z, groups=labels, codes=codes, levels=levels,
            correlated=unit.correlated, _matrix=zmat, _factor_vars=list(unit.factor_vars),
            _expr_names=[_untranslate(e, lists) for e in unit.expr_names],
        ))

    zi_part = None
    if zi is not None:
        if not fam.is_zero_inflated:
            raise ValueError(f"zi= (a formula of the probability of a structural zero) applies "
                             f"to the zero-inflated families, not {fam.name!r}")
        zi_part = _zi_design(zi, data, env, columns)

    spec = ModelSpec(
        formula=formula, family=fam, response=response_text, y=np.ascontiguousarray(y),
        trials=None if y_trials is None else np.ascontiguousarray(y_trials),
        X=X, fixed_names=fixed_names, random=random,
        offset=off if has_offset else None, se=y_se, n=n, weights=y_weights, _common=common,
        _offset_terms=offset_terms,
        _offset_column=offset if isinstance(offset, str) else None,
        _offset_array=offset is not None and not isinstance(offset, str),
        _trials_column=trials_column, _se_column=se_column, _weights_column=weights_column,
        _columns=sorted({v for v in model.var_names if v in columns}
                        | set(zi_part[3] if zi_part else [])),
        categories=categories, _dropped_intercept=dropped,
        _coded_levels=_coded_levels(text, lists),
    )
    if zi_part is not None:
        spec.zi_formula = zi
        spec.zi_X, spec.zi_names, spec._zi_common = zi_part[:3]
    return spec


def _zi_design(zi: Any, data: pd.DataFrame, env: Any, columns: list[str]
               ) -> tuple[np.ndarray, list[str], Any, list[str]]:
    """A zi formula's design (with its intercept), names, formulae matrix (for new data) and
    the columns it uses. Fixed terms only, and the intercept is required."""
    from formulae.matrices import CommonEffectsMatrix
    from formulae.terms import Model

    if not isinstance(zi, str):
        raise TypeError(f"zi must be a formula string such as '~ x', got {type(zi).__name__}")
    rhs = zi.strip()
    rhs = rhs[1:].strip() if rhs.startswith("~") else rhs
    if not rhs or "~" in rhs:
        raise FormulaError(f"zi={zi!r}: write the zero-inflation's predictors as '~ x1 + x2'")
    if "|" in rhs:
        raise FormulaError(f"zi={zi!r}: the zi formula takes fixed effects only, no random terms")
    text, lists = _translate(f"zi ~ {rhs}")
    env = env.with_outer_namespace({**_NAMESPACE, **lists})
    model = _resolve(_parse(f"zi ~ {rhs}", text).right)
    if not isinstance(model, Model):
        model = Model(model)
    from formulae.categorical import ENCODINGS

    namespace = env.with_outer_namespace(ENCODINGS).namespace
    for name in sorted(v for v in model.var_names if v):
        if name not in columns and name not in namespace:
            raise ValueError(f"zi={zi!r} uses {name!r}, which is not a column of data"
                             f"{_suggest(name, columns)}; columns are {columns}")
        if name in columns:
            _check_missing(data, name)
    if any(getattr(t, "kind", None) == "offset" for t in model.common_terms):
        raise FormulaError(f"zi={zi!r}: the zi formula takes no offset")
    try:
        model.eval(data, env)
        terms = list(model.common_terms)
        common = CommonEffectsMatrix(terms)
        common.evaluate(data, env)
    except Exception as err:
        raise FormulaError(f"cannot evaluate zi={zi!r}: {err}") from None
    n = len(data)
    X = np.ascontiguousarray(np.asarray(common.design_matrix, dtype=float).reshape(n, -1))
    names = [_untranslate(str(lab), lists) for t in terms for lab in t.labels]
    if "Intercept" not in names:
        raise FormulaError(f"zi={zi!r}: the zi formula needs its intercept (drop '0 +' / '- 1')")
    if not np.all(np.isfinite(X)):
        j = int(np.where(~np.isfinite(X).all(axis=0))[0][0])
        raise ValueError(f"zi formula column {names[j]!r} has missing or infinite values")
    check_full_rank(X, names, f"the zi design ({zi})")
    return X, names, common, sorted(v for v in model.var_names if v in columns)


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


def response_trials(formula: str, family: Family, newdata: pd.DataFrame) -> np.ndarray | None:
    """The trials that the response of ``formula`` implies for the rows of ``newdata``
    (``cbind(s, f)``: s + f; ``s / n`` and ``y | trials(n)``: n), or None when the response
    does not give them. The columns it names must be in ``newdata``."""
    from formulae.environment import Environment

    text, lists = _translate(formula)
    env = Environment({}).with_outer_namespace({**_NAMESPACE, **lists})
    lhs = _parse(formula, text).left
    data = _keep_category_order(newdata.reset_index(drop=True))
    try:
        _, trials, _, _ = _response(lhs, data, env, family, formula.split("~", 1)[0].strip(),
                                    keep=("trials",))
    except (FormulaError, ValueError, TypeError) as err:
        raise ValueError(f"the trials of the response cannot be taken from newdata: {err}; "
                         "pass trials= (a column name or array)") from None
    return trials


_ADDITION_TERMS = ("trials", "se", "weights")


def _response_additions(lhs, data: pd.DataFrame, env, text: str,
                        keep: tuple[str, ...] = _ADDITION_TERMS):
    """brms's addition terms: ``y | trials(n)``, ``y | se(s)``, ``y | weights(w)`` and several
    joined by ``+`` (``y | trials(n) + weights(w)``). Returns the response's node and a dict
    of the values of the terms in `keep` (the others are not evaluated)."""
    from formulae import expr as E

    if not (isinstance(lhs, E.Binary) and lhs.operator.kind == "PIPE"):
        return lhs, {}
    unsupported = FormulaError(
        f"unsupported response {text!r}: after '|' bglmm understands trials(n), se(s) and "
        "weights(w), joined by '+'")
    if _is_double_pipe(lhs):
        raise unsupported
    calls, stack = [], [lhs.right]
    while stack:
        node = stack.pop()
        if isinstance(node, E.Binary) and node.operator.kind == "PLUS":
            stack += [node.right, node.left]
        else:
            calls.append(node)
    out: dict[str, np.ndarray] = {}
    for call in calls:
        kind = _call_name(call)
        if kind not in _ADDITION_TERMS or len(call.args) != 1:
            raise unsupported
        if kind in out:
            raise FormulaError(f"the response {text!r} gives {kind}() twice")
        if kind not in keep:
            continue
        # evaluate the whole call (each is the identity), so that its argument is a Python
        # expression: trials(n + 1), not the formula n + 1
        out[kind] = _eval_single(call, data, env, f"{kind}() of the response")
    return lhs.left, out


def _response(lhs, data: pd.DataFrame, env, fam: Family, text: str,
              keep: tuple[str, ...] = _ADDITION_TERMS):
    """(y, trials or None, se or None, weights or None) from the left-hand side (the addition
    terms in `keep`)."""
    from formulae import expr as E

    lhs, extra = _response_additions(lhs, data, env, text, keep)
    trials, se, weights = extra.get("trials"), extra.get("se"), extra.get("weights")
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
        return s, s + f, se, weights
    if isinstance(lhs, E.Binary) and lhs.operator.kind == "SLASH":
        s = _eval_single(_as_python(lhs.left), data, env, "numerator of the response")
        n = _eval_single(_as_python(lhs.right), data, env, "denominator (trials) of the response")
        if not fam.has_trials:
            raise ValueError(
                f"the response {text!r} is a proportion successes / trials but family is "
                f"{fam.name!r}; use family='binomial'"
            )
        return s, n, se, weights
    y = _eval_single(lhs, data, env, "response")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise FormulaError(f"the response {text!r} must be one column")
    return y, trials, se, weights
