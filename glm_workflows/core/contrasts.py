"""Contrast definitions: safe parsing of expressions and weight vectors.

Expressions such as ``"active - rest"`` or ``"0.5*audio + 0.5*visual - rest"`` are
split into their terms at the top-level ``+`` and ``-`` (so sums of any length are
fine), each term is parsed with :mod:`ast` and walked node by node; nothing the user
typed is ever executed. Only numbers, design-column names (dotted
BIDS variable names such as ``trial_type.active`` too), ``+ - * /`` and parentheses
are allowed, and the result must be linear in the columns. Whether a contrast can be
estimated from a design: :mod:`.estimability`.
"""

from __future__ import annotations

import ast
import io
import keyword
import re
import tokenize

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


def _shown(expression, limit: int = 80) -> str:
    """``repr`` of an expression for a message, shortened if longer than ``limit``."""
    text = repr(expression)
    return text if len(text) <= limit else f"{text[:limit - 20]}...({len(text)} characters)"


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
        return _check_finite(_check_length(weights, columns, str(list(expression))),
                             str(list(expression)))
    text = expression.strip()
    if text in columns:
        weights = np.zeros(len(columns))
        weights[columns.index(text)] = 1.0
        return weights
    if _VECTOR.match(text):
        numbers = re.findall(_NUMBER, text)
        return _check_finite(_check_length(np.array([float(n) for n in numbers]), columns,
                                           text), text)
    text, names = _placeholders(text, columns)
    try:
        terms = [(sign, ast.parse(term, mode="eval").body) for sign, term in _split_sum(text)]
        with np.errstate(all="ignore"):  # 1e400 is inf: named below, not warned about
            weights, constant = _sum(terms, names, expression)
    except (SyntaxError, tokenize.TokenError):
        raise InputError(f"contrast {_shown(expression)}: not a valid expression; use column "
                         f"names, numbers and + - * / ( ); {_available(columns)}") from None
    except (RecursionError, MemoryError):
        raise InputError(f"contrast {_shown(expression)}: too deeply nested to parse; write "
                         "it with fewer parentheses or signs in a row") from None
    if weights is not None:
        _check_finite(weights, expression)
    if weights is None or constant:
        raise InputError(f"contrast {_shown(expression)}: must be a linear combination of "
                         f"design columns without a constant term; {_available(columns)}")
    return weights + 0.0  # no negative zeros


_PLAIN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _placeholders(text: str, columns: list) -> tuple[str, list]:
    """``text`` with each column name that is not a (dotted) Python name, such as
    ``fake_patient_grp.1`` or ``a.1:b.2`` (pybids's ``Factor`` levels, formula
    interactions), replaced by a name of its own, and the columns with those names. A
    name with spaces at its ends beside the name without them (``a `` and ``a``) is not
    replaced: ``a`` in the text is the column ``a``."""
    names = list(columns)
    for index, column in sorted(enumerate(columns), key=lambda item: -len(item[1])):
        if _PLAIN.match(column) and not any(keyword.iskeyword(p) for p in column.split(".")):
            continue
        if column != column.strip() and column.strip() in columns:
            continue  # 'a ' beside 'a': only a weight vector can name 'a '
        pattern = rf"(?<![\w.:]){re.escape(column)}(?![\w.:])"
        if re.search(pattern, text):
            names[index] = f"__column{index}__"
            text = re.sub(pattern, names[index], text)
    return text, names


def _check_finite(weights, text) -> np.ndarray:
    """Refuse a weight that is not a finite number (``1e400`` is inf, ``nan``)."""
    if not np.all(np.isfinite(weights)):
        raise InputError(f"contrast {_shown(text)}: a weight is not a finite number "
                         "(numbers beyond 1.8e308, such as 1e400, are infinite)")
    return weights


def _check_length(weights, columns, text) -> np.ndarray:
    if weights.size != len(columns):
        raise InputError(f"contrast {_shown(text)}: {weights.size} weights for {len(columns)} "
                         f"design columns; {_available(columns)}")
    return weights


_SKIPPED_TOKENS = (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER)


def _split_sum(text: str) -> list[tuple[float, str]]:
    """Split ``text`` at its top-level binary ``+`` and ``-``, without recursion.

    A sign is binary when it follows a name, a number or a closing bracket; inside
    brackets nothing is split. Each term is returned as text, to be parsed alone.

    Returns
    -------
    terms : list of (sign, text)
        ``sign`` is 1.0 or -1.0; ``text`` may be empty (then it does not parse).
    """
    terms, sign, current, depth, previous = [], 1.0, [], 0, None
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in _SKIPPED_TOKENS:
            continue
        if token.type == tokenize.OP:
            depth += (token.string in ("(", "[", "{")) - (token.string in (")", "]", "}"))
        binary = previous is not None and (previous.type in (tokenize.NAME, tokenize.NUMBER)
                                           or previous.string in (")", "]", "}"))
        if depth == 0 and token.type == tokenize.OP and token.string in ("+", "-") and binary:
            terms.append((sign, " ".join(current)))
            sign, current = (1.0 if token.string == "+" else -1.0), []
        else:
            current.append(token.string)
        previous = token
    terms.append((sign, " ".join(current)))
    return terms


def _sum_operands(node) -> list[tuple[float, ast.AST]]:
    """The operands of a chain of ``+``/``-`` with their signs, walked without recursion."""
    operands = []
    while isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        operands.append((1.0 if isinstance(node.op, ast.Add) else -1.0, node.right))
        node = node.left
    operands.append((1.0, node))
    return operands[::-1]


def _sum(signed_nodes, columns, expression):
    """(weights or None, constant) of a signed sum of nodes, term after term."""
    weights, constant = None, 0.0
    for sign, node in signed_nodes:
        term_weights, term_constant = _linear(node, columns, expression)
        constant += sign * term_constant
        if term_weights is not None:
            weights = (sign * term_weights if weights is None
                       else weights + sign * term_weights)
    return weights, constant


def _linear(node, columns, expression):
    """Evaluate ``node`` as (weights or None, constant); None weights: a pure number."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return None, float(node.value)
    name = _column_name(node)
    if name is not None:
        if name not in columns:
            raise InputError(f"contrast {_shown(expression)}: unknown column '{name}'; "
                             f"{_available(columns)}")
        weights = np.zeros(len(columns))
        weights[columns.index(name)] = 1.0
        return weights, 0.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        weights, constant = _linear(node.operand, columns, expression)
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        return (None if weights is None else sign * weights), sign * constant
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        return _sum(_sum_operands(node), columns, expression)
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
        elif right_w is None:
            raise InputError(f"contrast {_shown(expression)}: divides by zero")
        raise InputError(f"contrast {_shown(expression)}: not linear in the design columns "
                         "(columns may be scaled by numbers only)")
    raise InputError(f"contrast {_shown(expression)}: only column names, numbers and "
                     f"+ - * / ( ) are allowed; {_available(columns)}")


def _column_name(node) -> str | None:
    """The column a name stands for: ``active``, or a dotted BIDS variable name such as
    ``trial_type.active`` (BIDS Stats Models); None if ``node`` is not a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def referenced_names(row) -> set:
    """The column names a contrast row (an expression) refers to; none for weights or an
    expression that does not parse (its own check reports it)."""
    if not isinstance(row, str):
        return set()
    try:
        tree = ast.parse(row.strip(), mode="eval")
    except (SyntaxError, RecursionError, ValueError):
        return set()
    names, inner = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            inner.add(id(node.value))
        if isinstance(node, (ast.Name, ast.Attribute)) and id(node) not in inner:
            names.add(_column_name(node))
    return names - {None}


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
        raise InputError(f"contrast {_shown(rows)}: all weights are zero")
    rank = np.linalg.matrix_rank(matrix)
    if rank < len(rows):
        raise InputError(f"contrast {_shown(rows)}: its {len(rows)} rows are linearly "
                         f"dependent (rank {rank}); an F contrast needs independent rows")
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
