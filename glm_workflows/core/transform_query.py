"""``Filter``'s ``Query``: the boolean expressions pybids passes to
:meth:`pandas.DataFrame.query`, parsed with :mod:`ast` and evaluated on a whitelist of
nodes, so no text of a model file is ever executed.

Accepted, as pandas's query language writes them: comparisons ``== != < <= > >=``
(chained too: ``0.2 < RT <= 1``), ``in`` and ``not in`` a list or tuple of constants,
``and``, ``or``, ``not`` and their element-wise forms ``&``, ``|``, ``~`` (operands in
parentheses where Python's precedence needs them), parentheses, string, number and
boolean constants (``-1.5`` too) and the names of the variables the query may use (the
input and ``By`` variables; names with other characters than letters, digits and ``_``
are written as pybids rewrites them, every other character run replaced by ``_``).
Anything else (calls, attributes, subscripts, arithmetic, ``@`` locals, backticks) is
refused, with the reason, when the instruction is checked, before any data is read.

Missing values (``n/a``) compare as pandas compares NaN: false for every comparison but
``!=``.
"""

from __future__ import annotations

import ast
import operator
import re

import numpy as np

from .lazy import pandas as pd

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}


class QueryError(ValueError):
    """A query outside the accepted language (the message says what and why)."""


def sanitized(name: str) -> str:
    """pybids's identifier for a variable name in a query (``trial_type.a`` ->
    ``trial_type_a``)."""
    return re.sub("[^a-zA-Z0-9_]+", "_", name)


def with_identifiers(query: str, names) -> str:
    """The query with the variables' ``names`` written as pybids rewrites them (text
    replaced, in order, as pybids does)."""
    for name in names:
        query = query.replace(name, sanitized(name))
    return query


def parse_query(query: str) -> ast.Expression:
    """Parse a query and check every node against the whitelist.

    Returns
    -------
    ast.Expression
        The checked tree; :func:`query_names` and :func:`evaluate_query` use it.

    Raises
    ------
    QueryError
        If the text is not one expression of the accepted language.
    """
    if not isinstance(query, str) or not query.strip():
        raise QueryError("expected a non-empty expression such as \"trial_type == 'word'\"")
    try:
        tree = ast.parse(query.strip(), mode="eval")
    except SyntaxError as exc:
        raise QueryError(f"not a valid expression ({exc.msg})") from None
    _check(tree.body)
    return tree


def query_names(tree: ast.Expression) -> list[str]:
    """The variable names (identifiers) a checked query uses, in order."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names:
            names.append(node.id)
    return names


def _check(node) -> None:
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value)
    elif isinstance(node, ast.UnaryOp):
        if isinstance(node.op, (ast.Not, ast.Invert)):
            _check(node.operand)
        elif isinstance(node.op, ast.USub) and _is_number(node.operand):
            return
        else:
            raise QueryError(f"operator {_shown(node)!r} is not supported")
    elif isinstance(node, ast.BinOp):
        if not isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            raise QueryError(f"arithmetic ({_shown(node)!r}) is not supported; compare "
                             "variables with constants")
        for side in (node.left, node.right):
            if not isinstance(side, (ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp,
                                     ast.Name)):
                raise QueryError(f"{_shown(node)!r}: put the comparisons joined by & or | "
                                 "in parentheses, or use 'and' / 'or'")
            _check(side)
    elif isinstance(node, ast.Compare):
        if isinstance(node.left, ast.Compare) or any(isinstance(c, ast.Compare)
                                                    for c in node.comparators):
            raise QueryError(f"{_shown(node)!r}: unexpected comparison")
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not (isinstance(right, (ast.List, ast.Tuple, ast.Set))
                        and all(_is_constant(e) for e in right.elts)):
                    raise QueryError(f"{_shown(node)!r}: 'in' takes a list of constants")
            elif type(op) not in _COMPARE:
                raise QueryError(f"operator in {_shown(node)!r} is not supported")
            else:
                _check_operand(right)
        _check_operand(node.left)
    elif isinstance(node, ast.Name):
        return
    elif _is_constant(node):
        raise QueryError(f"{_shown(node)!r} alone is not a condition")
    else:
        raise QueryError(f"{_shown(node)!r} is not supported (only comparisons of "
                         "variables with constants, joined by and/or/not)")


def _check_operand(node) -> None:
    if _is_operand(node):
        return
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        raise QueryError(f"{_shown(node)!r}: put the comparisons joined by & or | in "
                         "parentheses, or use 'and' / 'or'")
    if isinstance(node, ast.BinOp):
        raise QueryError(f"arithmetic ({_shown(node)!r}) is not supported; compare "
                         "variables with constants")
    raise QueryError(f"{_shown(node)!r} is not supported (only comparisons of variables "
                     "with constants, joined by and/or/not)")


def _is_number(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
        and not isinstance(node.value, bool)


def _is_constant(node) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _is_number(node.operand)
    return isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool))


def _is_operand(node) -> bool:
    return isinstance(node, ast.Name) or _is_constant(node)


def _shown(node) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else f"{text[:37]}..."


def evaluate_query(tree: ast.Expression, columns: dict) -> np.ndarray:
    """The rows where a checked query is true.

    Parameters
    ----------
    tree : ast.Expression
        :func:`parse_query`'s result.
    columns : dict
        Identifier to :class:`pandas.Series` (one value per row, same length).

    Returns
    -------
    numpy.ndarray of bool

    Raises
    ------
    QueryError
        If a name is not one of ``columns`` or values cannot be compared (text with a
        number, by order).
    """
    length = len(next(iter(columns.values()))) if columns else 0
    result = np.asarray(_evaluate(tree.body, columns), dtype=bool)
    return np.broadcast_to(result, (length,)).copy()


def _evaluate(node, columns):
    if isinstance(node, ast.BoolOp):
        values = [_truth(_evaluate(v, columns)) for v in node.values]
        result = values[0]
        for value in values[1:]:
            result = result & value if isinstance(node.op, ast.And) else result | value
        return result
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return ~_truth(_evaluate(node.operand, columns))
        return -node.operand.value
    if isinstance(node, ast.BinOp):
        left = _truth(_evaluate(node.left, columns))
        right = _truth(_evaluate(node.right, columns))
        return left & right if isinstance(node.op, ast.BitAnd) else left | right
    if isinstance(node, ast.Compare):
        result = None
        left = _operand(node.left, columns)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                values = [_constant(e) for e in right_node.elts]
                hit = _series(left, columns).isin(values).to_numpy()
                step = hit if isinstance(op, ast.In) else ~hit
                right = None
            else:
                right = _operand(right_node, columns)
                try:
                    step = np.asarray(_COMPARE[type(op)](left, right), dtype=bool)
                except TypeError:
                    raise QueryError(f"cannot compare {_shown(node)!r}: text and numbers "
                                     "are compared by == and != only") from None
            result = step if result is None else result & step
            left = right
        return result
    if isinstance(node, ast.Name):
        return _truth(_operand(node, columns))
    raise QueryError(f"{_shown(node)!r} is not supported")  # pragma: no cover (checked)


def _constant(node):
    if isinstance(node, ast.UnaryOp):
        return -node.operand.value
    return node.value


def _operand(node, columns):
    if isinstance(node, ast.Name):
        if node.id not in columns:
            raise QueryError(f"unknown name {node.id!r} (the query may use "
                             f"{', '.join(columns)})")
        return columns[node.id]
    return _constant(node)


def _series(value, columns) -> pd.Series:
    if isinstance(value, pd.Series):
        return value
    length = len(next(iter(columns.values()))) if columns else 1
    return pd.Series([value] * length)


def _truth(value) -> np.ndarray:
    if isinstance(value, pd.Series):
        if pd.api.types.is_bool_dtype(value):
            return value.to_numpy(dtype=bool)
        return (value.fillna(0) != 0).to_numpy(dtype=bool)
    return np.asarray(value, dtype=bool)
