"""Contrast definitions: safe parsing of expressions and weight vectors.

Expressions such as ``"active - rest"`` or ``"0.5*audio + 0.5*visual - rest"`` are
parsed with :mod:`ast` and walked node by node; nothing the user typed is ever
executed. Only numbers, design-column names, ``+ - * /`` and parentheses are
allowed, and the result must be linear in the columns.
"""

from __future__ import annotations

import ast
import re

import numpy as np

from .errors import InputError

CONTRAST_NAME = re.compile(r"^[A-Za-z0-9]+$")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_VECTOR = re.compile(rf"^\[?\s*{_NUMBER}(?:\s*[,\s]\s*{_NUMBER})*\s*\]?$")


def check_contrast_name(name: str) -> str:
    """Refuse names that cannot be a BIDS ``contrast-<label>`` entity."""
    if not isinstance(name, str) or not CONTRAST_NAME.match(name):
        raise InputError(f"contrast name {name!r}: use letters and digits only "
                         "(it becomes the BIDS 'contrast-<label>' entity)")
    return name


def _available(columns) -> str:
    return f"available columns: {', '.join(columns)}"


def expression_to_vector(expression, columns) -> np.ndarray:
    """Weights over ``columns`` for one contrast row.

    Parameters
    ----------
    expression : str or sequence of float
        A linear expression over column names (``"active - rest"``), a column
        name on its own (also one that is not a Python identifier), a weight
        vector written as text (``"[1, -1, 0]"`` or ``"1 -1 0"``), or the weights
        themselves.
    columns : list of str
        Design-matrix column names.

    Returns
    -------
    weights : ndarray, shape (len(columns),)

    Examples
    --------
    >>> expression_to_vector("active - rest", ["active", "rest", "constant"])
    array([ 1., -1.,  0.])
    >>> expression_to_vector("[0, 1, 0]", ["active", "rest", "constant"])
    array([0., 1., 0.])
    """
    columns = [str(c) for c in columns]
    if not isinstance(expression, str):
        weights = np.asarray(expression, dtype=np.float64).ravel()
        return _check_length(weights, columns, str(list(expression)))
    text = expression.strip()
    if text in columns:
        weights = np.zeros(len(columns))
        weights[columns.index(text)] = 1.0
        return weights
    if _VECTOR.match(text):
        numbers = re.findall(_NUMBER, text)
        return _check_length(np.array([float(n) for n in numbers]), columns, text)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise InputError(f"contrast {expression!r}: not a valid expression; use column names, "
                         f"numbers and + - * / ( ); {_available(columns)}") from None
    weights, constant = _linear(tree.body, columns, expression)
    if weights is None or constant:
        raise InputError(f"contrast {expression!r}: must be a linear combination of design "
                         f"columns without a constant term; {_available(columns)}")
    return weights + 0.0  # no negative zeros


def _check_length(weights, columns, text) -> np.ndarray:
    if weights.size != len(columns):
        raise InputError(f"contrast {text}: {weights.size} weights for {len(columns)} design "
                         f"columns; {_available(columns)}")
    return weights


def _linear(node, columns, expression):
    """Evaluate ``node`` as (weights or None, constant); None weights: a pure number."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return None, float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in columns:
            raise InputError(f"contrast {expression!r}: unknown column '{node.id}'; "
                             f"{_available(columns)}")
        weights = np.zeros(len(columns))
        weights[columns.index(node.id)] = 1.0
        return weights, 0.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        weights, constant = _linear(node.operand, columns, expression)
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        return (None if weights is None else sign * weights), sign * constant
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        left_w, left_c = _linear(node.left, columns, expression)
        right_w, right_c = _linear(node.right, columns, expression)
        sign = 1.0 if isinstance(node.op, ast.Add) else -1.0
        zeros = np.zeros(len(columns))
        if left_w is None and right_w is None:
            return None, left_c + sign * right_c
        weights = (zeros if left_w is None else left_w) + sign * (zeros if right_w is None
                                                                   else right_w)
        return weights, left_c + sign * right_c
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
        left_w, left_c = _linear(node.left, columns, expression)
        right_w, right_c = _linear(node.right, columns, expression)
        if isinstance(node.op, ast.Mult):
            if left_w is None:
                return (None if right_w is None else left_c * right_w), left_c * right_c
            if right_w is None:
                return left_w * right_c, left_c * right_c
        elif right_w is None and right_c != 0:
            return (None if left_w is None else left_w / right_c), left_c / right_c
        raise InputError(f"contrast {expression!r}: not linear in the design columns "
                         "(columns may be scaled by numbers only)")
    raise InputError(f"contrast {expression!r}: only column names, numbers and + - * / ( ) "
                     f"are allowed; {_available(columns)}")


def contrast_matrix(rows, columns, stat_type: str = "t") -> np.ndarray:
    """Contrast weights, one row per expression.

    Parameters
    ----------
    rows : sequence
        Expressions or weight vectors (see :func:`expression_to_vector`).
    columns : list of str
        Design-matrix column names.
    stat_type : {'t', 'F'}
        A t contrast has exactly one row.

    Returns
    -------
    matrix : ndarray, shape (n_rows, len(columns))
    """
    if stat_type not in ("t", "F"):
        raise InputError(f"stat_type: expected 't' or 'F', got {stat_type!r}")
    rows = list(rows)
    if not rows:
        raise InputError("contrast: no expression given")
    if stat_type == "t" and len(rows) != 1:
        raise InputError(f"t contrast: expected one expression, got {len(rows)}")
    matrix = np.vstack([expression_to_vector(row, columns) for row in rows])
    if not np.any(matrix):
        raise InputError(f"contrast {rows}: all weights are zero")
    return matrix


def parse_contrast_option(text: str, stat_type: str):
    """Parse a command-line ``NAME=EXPR`` (t) or ``NAME=EXPR1,EXPR2`` (F) definition.

    Returns
    -------
    name, stat_type, rows : str, str, tuple of str
    """
    name, sep, definition = text.partition("=")
    if not sep or not definition.strip():
        raise InputError(f"contrast {text!r}: expected NAME=EXPRESSION")
    name = check_contrast_name(name.strip())
    if stat_type == "t":
        rows = (definition.strip(),)
    else:
        rows = tuple(r.strip() for r in _split_rows(definition) if r.strip())
    return name, stat_type, rows


def _split_rows(definition: str):
    """Split on commas that are not inside brackets (bracketed vectors keep theirs)."""
    rows, depth, current = [], 0, ""
    for char in definition:
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            rows.append(current)
            current = ""
        else:
            current += char
    rows.append(current)
    return rows
