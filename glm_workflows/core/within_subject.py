"""Designs of a Session or Subject node: the maps of one subject (or session), weighed.

A ``meta`` node with a design (``Model.X`` other than ``[1]``, or contrasts other than
the intercept's) combines the maps it receives, one row each, by a linear combination
its contrast chooses. The rows' variables are, as pybids builds them above the run:

- the maps' entities: ``subject``, ``session``, ``task``, ``run`` (a number, as pybids
  reads it), ``acquisition``, ``ceagent``, ``reconstruction``, ``direction``, ``echo``;
- at a Session node, the columns of the ``scans.tsv`` row of each map's run;
- at a Subject node, the columns of the ``sessions.tsv`` row of each map's session.

Transformations apply to that table as at a Dataset node
(:func:`~glm_workflows.core.group_variables.transform_table`). For contrast ``c`` over
the design ``X`` (one row per map ``y_i``, with variance ``v_i``), the combination is
the least-squares estimate ``c'b = a'y`` with ``a = pinv(X)' c``; its variance
``sum(a_i**2 v_i)`` treats the maps as independent, and its statistic is
``t = a'y / sqrt(sum(a_i**2 v_i))`` on the maps' summed degrees of freedom. With
``X = [1]`` and ``c = 1`` this is nilearn's ``compute_fixed_effects`` (the mean effect,
mean variance / n), the node's behaviour without a design.

A contrast that a subject's rows cannot estimate (a column zero in every map, such as
``run3`` for a subject without a third run) is skipped for that subject, with a note,
as pybids' ``invalid_contrasts='drop'`` does.
"""

from __future__ import annotations

import numpy as np

from .contrasts import contrast_matrix
from .errors import InputError
from .estimability import estimability_problem
from .group_variables import table_design, transform_table, typed_table, used_columns
from .lazy import pandas as pd

#: A map's entities as pybids names its variables (RunInputs' short entity keys).
ENTITY_VARIABLES = {"acq": "acquisition", "ce": "ceagent", "rec": "reconstruction",
                    "dir": "direction", "echo": "echo"}


def map_variables(subject: str, task: str, session: str | None = None,
                  run: str | None = None, entities: dict | None = None,
                  columns: dict | None = None) -> dict:
    """One row of a node's variables: a map's entities and its table's ``columns``
    (text, as read; ``n/a`` as None)."""
    row = {"subject": subject, "task": task}
    if session is not None:
        row["session"] = session
    if run is not None:
        row["run"] = str(int(run)) if str(run).isdigit() else str(run)
    row.update({ENTITY_VARIABLES[key]: str(value) for key, value in (entities or {}).items()
                if key in ENTITY_VARIABLES})
    for name, value in (columns or {}).items():
        if name not in row:  # an entity's own value wins over a table column of its name
            row[name] = value
    return row


def combination_weights(rows, x, contrasts, transformations=(), where: str = "",
                        source: str = "") -> dict:
    """Per contrast, the weights of the maps that estimate it, or why they cannot.

    Parameters
    ----------
    rows : list of dict
        Per map, in order, its variables (:func:`map_variables`).
    x : sequence
        ``Model.X``: variable names after the transformations (globs allowed), ``1``
        for the intercept.
    contrasts : sequence of (label, stat_type, rows)
        The node's t contrasts, each row an expression over the design's columns
        (``intercept`` for ``1``).
    transformations : sequence of dict
        The node's ``Transformations.Instructions`` (table transformations only).
    where, source : str
        The node and the tables the variables come from, for messages.

    Returns
    -------
    dict
        Per contrast label: a tuple of weights (one per map) or a one-phrase reason.

    Raises
    ------
    InputError
        A variable the design needs is missing (naming the maps), not a number, or no
        variable has an ``X`` name; a transformation's problem; a contrast naming a
        column the design has not.
    """
    table = typed_table(pd.DataFrame([{k: (np.nan if v is None else v) for k, v in r.items()}
                                      for r in rows]))
    table.index = pd.Index([str(i) for i in range(1, len(rows) + 1)], name="map")
    transformations = list(transformations)
    for column in used_columns(transformations, x, list(table.columns)):
        missing = [i for i, value in enumerate(table[column]) if pd.isna(value)]
        if missing:
            raise InputError(f"{source or where}: variable '{column}' is n/a for map(s) "
                             f"{', '.join(str(i + 1) for i in missing)} of "
                             f"{rows[0].get('subject')}, which {where} uses")
    if transformations:
        table = transform_table(transformations, table, where)
    intercept = any(not isinstance(entry, str) for entry in x)
    columns = [entry for entry in x if isinstance(entry, str)]
    design = table_design(table, columns, intercept=intercept, node=f"{where}: ",
                          source=source, rows="map")
    names = [str(c) for c in design.columns]
    solve = np.linalg.pinv(design.to_numpy(dtype=np.float64)).T  # a = pinv(X)' c
    result = {}
    for label, stat_type, expressions in contrasts:
        try:
            weights = contrast_matrix(list(expressions), names, stat_type)[0]
        except InputError as exc:
            raise InputError(f"{where}: contrast {label}: {exc}") from None
        problem = estimability_problem(weights, design)
        if problem is not None:
            result[label] = problem.replace("every scan", "every map")
        else:
            result[label] = tuple(float(w) for w in solve @ weights)
    return result
