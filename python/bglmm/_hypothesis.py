"""``fit.hypothesis("x1 - x2 > 0")``: a hypothesis about the fixed effects, parsed with
:mod:`ast` (never evaluated as Python), evaluated on the posterior draws.

A hypothesis is ``left <op> right`` with ``<op>`` one of ``>``, ``<``, ``=`` (or ``==``), each
side an arithmetic expression (``+ - * /``, numbers, parentheses) in the fixed effects' names
(``x1``, ``C(period)[2]``, ``center(day)`` or ``beta[x1]``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

import numpy as np

_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}
_COMPARE = {ast.Gt: ">", ast.Lt: "<", ast.Eq: "=", ast.GtE: ">", ast.LtE: "<"}


def _placeholders(text: str, names: Sequence[str]) -> tuple[str, dict[str, int]]:
    """`text` with each coefficient name (longest first; also as ``beta[name]``) replaced by an
    identifier ``_b<i>``; the identifiers' column indices."""
    found: dict[str, int] = {}
    order = sorted(range(len(names)), key=lambda i: -len(names[i]))
    for i in order:
        for form in (f"beta[{names[i]}]", names[i]):
            pattern = r"(?<![\w.\[])" + re.escape(form) + r"(?![\w(\[])"
            text, count = re.subn(pattern, f" _b{i} ", text)
            if count:
                found[f"_b{i}"] = i
    return text, found


def _evaluate(node: ast.AST, columns: dict[str, np.ndarray], source: str) -> np.ndarray | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id in columns:
        return columns[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left, columns, source),
                                      _evaluate(node.right, columns, source))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, columns, source)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name):
        raise ValueError(f"hypothesis {source!r}: {node.id!r} is not a fixed effect")
    raise ValueError(f"hypothesis {source!r}: only numbers, fixed-effect names, + - * / and "
                     "parentheses are allowed on each side")


def parse(hypothesis: str, names: Sequence[str], beta: np.ndarray) -> tuple[np.ndarray, str]:
    """Draws of left - right for draws `beta` (samples, coefficients) named `names`, and the
    direction: '>' (left > right), '<' or '='."""
    if not isinstance(hypothesis, str) or not hypothesis.strip():
        raise TypeError(f"a hypothesis is a string such as 'x1 - x2 > 0', got {hypothesis!r}")
    text, found = _placeholders(hypothesis.replace("==", "=").replace("=", "=="), names)
    text = text.replace("<==", "<=").replace(">==", ">=")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"hypothesis {hypothesis!r} could not be parsed; write e.g. "
                         f"'{names[-1]} > 0' or 'a - b = 0' with the fixed effects "
                         f"{list(names)}") from None
    if not (isinstance(tree, ast.Compare) and len(tree.ops) == 1
            and type(tree.ops[0]) in _COMPARE):
        raise ValueError(f"hypothesis {hypothesis!r} needs one comparison: >, < or =")
    columns = {k: beta[:, i] for k, i in found.items()}
    diff = np.subtract(_evaluate(tree.left, columns, hypothesis),
                       _evaluate(tree.comparators[0], columns, hypothesis))
    if np.ndim(diff) == 0:
        raise ValueError(f"hypothesis {hypothesis!r} names no fixed effect; the fixed effects "
                         f"are {list(names)}")
    return np.broadcast_to(diff, beta.shape[:1]), _COMPARE[type(tree.ops[0])]
