"""Whether a contrast can be estimated from a design, and why not in words.

A contrast row is estimable when it lies in the row space of the design matrix
(``c @ pinv(X) @ X == c``), at the tolerance ``numpy.linalg.matrix_rank`` uses.
"""

from __future__ import annotations

import numpy as np

from .contrasts import contrast_matrix
from .errors import InputError


def rank_tolerance(values) -> float:
    """The tolerance of :func:`numpy.linalg.matrix_rank`: ``S.max() * max(M, N) * eps``."""
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        return 0.0
    return float(np.linalg.svd(values, compute_uv=False).max() * max(values.shape)
                 * np.finfo(np.float64).eps)


def non_estimable_part(weights, values) -> np.ndarray:
    """The part of a contrast row outside the row space of a design matrix.

    ``weights - weights @ pinv(X) @ X``, computed as the projection of ``weights``
    on the null space of ``X`` (right singular vectors whose singular value is at
    most :func:`rank_tolerance`, as ``matrix_rank`` counts them).

    Parameters
    ----------
    weights : array-like, shape (n_columns,)
    values : array-like, shape (n_scans, n_columns)
        The design matrix ``X``.

    Returns
    -------
    part : ndarray, shape (n_columns,)
    """
    values = np.asarray(values, dtype=np.float64)
    n_scans, n_columns = values.shape
    # all n_columns right singular vectors, without the n_scans x n_scans left ones
    _, singular, right = np.linalg.svd(values, full_matrices=n_scans < n_columns)
    kept = np.zeros(n_columns, dtype=bool)
    kept[:singular.size] = singular > singular.max() * max(values.shape) * np.finfo(float).eps
    null = right[~kept]
    return (np.asarray(weights, dtype=np.float64) @ null.T) @ null


def _row_tolerance(weights, values) -> float:
    """``|weights| * max(M, N) * eps``: how far from the row space counts as in it."""
    return float(np.linalg.norm(weights) * max(np.shape(values)) * np.finfo(np.float64).eps)


def is_estimable(weights, values) -> bool:
    """Whether a contrast row lies in the row space of the design matrix ``values``.

    The row is estimable when :func:`non_estimable_part` is at most
    ``|weights| * max(M, N) * eps``; for a row scaled to the design's largest
    singular value, that is (up to the tolerance's ``M + 1`` rows) when
    ``matrix_rank`` of ``values`` stacked on the row equals that of ``values``.
    """
    part = non_estimable_part(weights, values)
    return bool(np.linalg.norm(part) <= _row_tolerance(weights, values))


def _zero_columns(names) -> str:
    if len(names) == 1:
        return f"column '{names[0]}' is zero in every scan"
    return f"columns {', '.join(names)} are zero in every scan"


def estimability_problem(weights, design) -> str | None:
    """Why a contrast row cannot be estimated with ``design``, or None if it can.

    Parameters
    ----------
    weights : array-like, shape (n_columns,)
    design : pandas.DataFrame
        The design matrix, with named columns.

    Returns
    -------
    problem : str or None
        ``"column 'x' is zero in every scan"`` when a weighted column is
        numerically zero (norm at most :func:`rank_tolerance`), else, if the row
        is not estimable, ``"columns a, b are linearly dependent"`` naming the
        columns of its non-estimable part (entries above rounding noise: at least
        ``sqrt(eps)`` times the largest).
    """
    values = design.to_numpy(dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    columns = np.asarray([str(c) for c in design.columns])
    zero = (np.linalg.norm(values, axis=0) <= rank_tolerance(values)) & (weights != 0)
    if zero.any():
        return _zero_columns(columns[zero])
    if is_estimable(weights, values):
        return None
    part = np.abs(non_estimable_part(weights, values))
    # rounding noise in the part grows with near-collinearity elsewhere in the design
    noise = max(_row_tolerance(weights, values), np.sqrt(np.finfo(np.float64).eps) * part.max())
    involved = columns[part >= min(noise, part.max())]
    if len(involved) == 1:  # a column just above the zero tolerance
        return _zero_columns(involved)
    return f"columns {', '.join(involved)} are linearly dependent"


def check_contrasts(contrasts, design, source) -> None:
    """Refuse a contrast that does not parse or cannot be estimated with ``design``.

    Parameters
    ----------
    contrasts : sequence of (name, stat_type, rows)
    design : pandas.DataFrame
        The run's design matrix.
    source : str
        What the design was made from (the events file), for the message.

    Raises
    ------
    InputError
        ``contrast <name>: ...`` on the first problem.
    """
    columns = [str(c) for c in design.columns]
    for name, stat_type, rows in contrasts:
        try:
            matrix = contrast_matrix(rows, columns, stat_type)
        except InputError as exc:
            raise InputError(f"contrast {name}: {exc}") from None
        for weights in matrix:
            problem = estimability_problem(weights, design)
            if problem:
                raise InputError(f"contrast {name}: not estimable: {problem} "
                                 f"(design of {source})")
