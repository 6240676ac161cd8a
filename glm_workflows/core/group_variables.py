"""Variables of the levels above the run: transformations on a table and the design of a
Dataset node as a model file writes it.

At a Dataset node the variables are the columns of ``participants.tsv``, one row per
subject the node models (the subjects with a map of the incoming contrast). They are not
time series, so the ``pybids-transforms-v1`` transformations are applied to them as to a
run's dense variables, by the same functions
(:mod:`glm_workflows.core.transformations`), one row per subject instead of one per
scan: ``Factor`` splits a column into ``<column>.<level>`` indicators, ``Demean`` and
``Scale`` use the mean (and standard deviation) over the rows modelled, ``Product`` and
``Sum`` combine columns row by row, as pybids does. Transformations of time
(``Convolve``, ``Lag``) and ``DropNA`` (which would drop subjects) are refused.

Values are typed as pandas reads a table: a column whose every value is a number is
numeric (integers stay integers, so ``Factor`` of a column of 1..4 makes
``fake_patient_grp.1`` ... ``fake_patient_grp.4``, pybids's names); other columns are
text (categorical).

Missing values (``n/a``): a column the node uses (an input of a transformation or a
``Model.X`` entry) may not miss a value for a subject it models; pybids would fill the
design's missing values with 0 and warn, which changes the model silently. Columns the
node does not use may miss values freely.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

import numpy as np

from .errors import InputError
from .lazy import pandas as pd
from .transform_checks import _CATEGORICAL_OK, check_instructions
from .transformations import _TRANSFORMS
from .variables import _Run

#: Transformations of a table (no time): the others need a run's time series or would
#: drop rows.
TABLE_TRANSFORMATIONS = ("Factor", "Scale", "Demean", "Replace", "Threshold", "Rename",
                         "Copy", "Select", "Delete", "Product", "Sum", "Orthogonalize",
                         "And", "Or", "Not", "Group")
#: The design column of ``Model.X``'s ``1`` (pybids's name).
INTERCEPT_COLUMN = "intercept"
_GLOB = re.compile(r"[*?\[\]]")
#: A formula's categorical term (``Model.Formula`` ``0 + C(group)``): the indicators of
#: the column's levels, named as ``Factor`` names them (``group.<level>``).
CATEGORICAL = re.compile(r"^C\(\s*([A-Za-z_]\w*)\s*\)$")


def check_table_instructions(instructions, path_prefix: str = "") -> list[dict]:
    """:func:`~glm_workflows.core.transform_checks.check_instructions`, refusing what needs
    time series or drops rows.

    Raises
    ------
    InputError
        E.g. ``model.json: Nodes[2].Transformations.Instructions[0].Name: Convolve
        transforms a run's time series; at a Dataset node expected one of Factor, ...``.
    """
    checked = check_instructions(instructions, path_prefix)
    base = f"{path_prefix}.Transformations" if path_prefix else "Transformations"
    for index, arguments in enumerate(checked):
        if arguments["name"] not in TABLE_TRANSFORMATIONS:
            raise InputError(f"{base}.Instructions[{index}].Name: {arguments['name']} "
                             "transforms a run's time series (or drops rows); on a table of "
                             f"subjects expected one of {', '.join(TABLE_TRANSFORMATIONS)}")
    return checked


def typed_table(table: pd.DataFrame) -> pd.DataFrame:
    """Text columns made numeric where every value present is a number (as pandas's
    ``read_csv`` infers: integers stay integers unless a value is missing)."""
    typed = {}
    for column in table.columns:
        values = table[column]
        try:
            typed[column] = pd.to_numeric(values)
        except (ValueError, TypeError):
            typed[column] = values
    return pd.DataFrame(typed, index=table.index)


def subject_rows(participants: pd.DataFrame, subjects: Sequence[str],
                 source: str = "participants.tsv") -> pd.DataFrame:
    """The rows of ``subjects`` (labels, with or without ``sub-``), in that order, typed
    by :func:`typed_table` over those rows.

    Raises
    ------
    InputError
        If a subject is not listed.
    """
    labels = [_label(s) for s in subjects]
    missing = [label for label in labels if label not in participants.index]
    if missing:
        raise InputError(f"{source}: subject(s) {_subjects(missing)} not listed")
    rows = participants.loc[labels]
    rows.index = pd.Index(labels, name="subject")
    return typed_table(rows)


def transform_table(instructions, table: pd.DataFrame, path_prefix: str = "") -> pd.DataFrame:
    """Apply transformations to a table of variables, one row per unit (subject).

    Parameters
    ----------
    instructions : list of dict
        ``Transformations.Instructions`` (``pybids-transforms-v1``), in order.
    table : pandas.DataFrame
        The variables (columns), e.g. :func:`subject_rows`; not modified.
    path_prefix : str
        The node, for messages (e.g. ``"model.json: Nodes[2]"``).

    Returns
    -------
    pandas.DataFrame
        Every variable after the transformations, in their order, same index.
    """
    checked = check_table_instructions(list(instructions), path_prefix)
    variables = {str(c): pd.Series(table[c].to_numpy(), name=str(c)) for c in table.columns}
    units = np.arange(len(table), dtype=float)
    base = f"{path_prefix}.Transformations" if path_prefix else "Transformations"
    groups: dict = {}
    for index, arguments in enumerate(checked):
        name = arguments["name"]
        run = _Run(variables, units, 1.0, f"{base}.Instructions[{index}] ({name})", {},
                   groups)
        inputs = run.expand(arguments["input"])
        if name not in _CATEGORICAL_OK:
            run.numeric(inputs)
        _TRANSFORMS[name](run, inputs, arguments)
    return pd.DataFrame({name: v.to_numpy() for name, v in variables.items()},
                        index=table.index)


def used_columns(instructions, x, columns) -> list[str]:
    """The ``columns`` (of the table before transformations) a node uses: inputs of its
    instructions and ``Model.X`` names (globs expanded), in ``columns``' order."""
    names = [CATEGORICAL.sub(r"\1", str(e)) for e in x if isinstance(e, str)]
    for instruction in instructions:
        value = instruction.get("Input", [])
        names += value if isinstance(value, list) else [value]
        other = instruction.get("Other")  # Orthogonalize
        if other is not None:
            names += other if isinstance(other, list) else [other]
    used = [c for c in columns if any(c == n or (_GLOB.search(n) and
                                                 fnmatch.fnmatchcase(c, n)) for n in names)]
    return used


def dataset_design(subjects, participants: pd.DataFrame, columns=(), *, intercept=True,
                   transformations=(), where: str = "",
                   source: str = "participants.tsv") -> pd.DataFrame:
    """The design of a Dataset node: ``Model.X`` over ``participants.tsv``'s transformed
    columns.

    Parameters
    ----------
    subjects : sequence of str
        The subjects modelled (the rows), in the order of their maps.
    participants : pandas.DataFrame
        :func:`glm_workflows.core.group.read_participants`'s table (text columns).
    columns : sequence of str
        ``Model.X`` entries other than the intercept: column names after the
        transformations (globs allowed), or interactions ``a:b`` of such columns (their
        product, as a ``Formula`` writes them).
    intercept : bool
        Whether ``Model.X`` has ``1``: a first column ``intercept`` of ones.
    transformations : sequence of dict
        The node's ``Transformations.Instructions``.
    where : str
        The node, for messages (e.g. ``"model.json: Nodes[2]"``).
    source : str
        How messages name the participants file.

    Returns
    -------
    pandas.DataFrame
        Float columns (``intercept`` first, then ``columns`` in order), indexed by the
        subject labels (without ``sub-``).

    Raises
    ------
    InputError
        One line: a subject not listed; a used column missing a value (naming it and the
        subjects); a transformation's problem; an X name no column has; a categorical
        column in X; a design of fewer than two subjects or rank deficient.
    """
    transformations = list(transformations)
    node = f"{where}: " if where else ""
    labels = [_label(s) for s in subjects]
    if len(labels) < 2:
        raise InputError(f"{node}group design: {len(labels)} subject(s); at least two "
                         "needed")
    table = subject_rows(participants, labels, source)
    for column in used_columns(transformations, columns, list(table.columns)):
        missing = table.index[table[column].isna()]
        if len(missing):
            raise InputError(f"{source}: column '{column}' is n/a for "
                             f"{_subjects(missing)}, which the design uses (fill in the "
                             "values or leave those subjects out)")
    if transformations:
        table = transform_table(transformations, table, where)
    design = table_design(table, columns, intercept=intercept, node=node, source=source)
    check_full_rank(design, prefix=node, over=f" over the {len(labels)} subjects")
    return design


def table_design(table: pd.DataFrame, columns=(), *, intercept: bool = True, node: str = "",
                 source: str = "participants.tsv", rows: str = "subject") -> pd.DataFrame:
    """A design over a table's (transformed) variables, one row per unit.

    Parameters
    ----------
    table : pandas.DataFrame
        The variables, indexed by the units' labels.
    columns : sequence of str
        ``Model.X`` entries other than the intercept: column names (globs allowed), or
        interactions ``a:b`` of such columns (their product).
    intercept : bool
        Whether to add a first column ``intercept`` of ones.
    node, source : str
        The node (``"<where>: "`` or ``""``) and the table's file, for messages.
    rows : str
        What a row is, in messages (``subject``, ``map``).

    Returns
    -------
    pandas.DataFrame
        Float columns, same index as ``table`` (not checked for rank).
    """
    labels = list(table.index)
    design = pd.DataFrame(index=pd.Index(labels, name=rows))
    if intercept:
        design[INTERCEPT_COLUMN] = np.ones(len(labels))
    table, columns = _categorical_columns(table, columns, node, source)
    for name in _expand(columns, table.columns, node, source):
        if name in design.columns:
            raise InputError(f"{node}Model.X: column '{name}' is given twice")
        values = table[name] if name in table.columns else _interaction(table, name)
        if not pd.api.types.is_numeric_dtype(values):
            raise InputError(f"{node}Model.X: '{name}' is categorical (not numbers); "
                             "split it into indicators with a Factor transformation")
        values = values.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            bad = [lab for lab, ok in zip(labels, np.isfinite(values), strict=True) if not ok]
            shown = _subjects(bad) if rows == "subject" else f"{rows}s {', '.join(map(str, bad))}"
            raise InputError(f"{node}Model.X: '{name}' is not a finite number for {shown}")
        design[name] = values
    if not design.shape[1]:
        raise InputError(f"{node}Model.X: no design column")
    return design


def check_full_rank(design: pd.DataFrame, prefix: str = "", over: str = "",
                    rank: int | None = None) -> None:
    """Refuse a group design whose columns are linearly dependent, naming them.

    ``prefix`` and ``over`` place the message (a node's path; over which subjects);
    ``rank``: the design's rank when already computed.
    """
    matrix = design.to_numpy(dtype=np.float64)
    if (np.linalg.matrix_rank(matrix) if rank is None else rank) < matrix.shape[1]:
        dependent = dependent_columns(matrix, list(design.columns))
        raise InputError(f"{prefix}group design is rank deficient{over}: columns "
                         f"{', '.join(dependent)} are linearly dependent")


def dependent_columns(matrix, columns) -> list[str]:
    """Columns with a weight in a null vector of ``matrix``: those linearly dependent."""
    _, singular, vt = np.linalg.svd(matrix, full_matrices=True)
    tol = singular.max(initial=0.0) * max(matrix.shape) * np.finfo(float).eps
    rank = int(np.sum(singular > tol))
    null = vt[rank:]
    involved = np.any(np.abs(null) > 1e-8, axis=0)
    return [c for c, hit in zip(columns, involved, strict=True) if hit]


def _expand(names, available, node, source) -> list[str]:
    found = []
    for name in names:
        name = str(name)
        if _GLOB.search(name):
            matches = [c for c in available if fnmatch.fnmatchcase(c, name)]
        else:
            matches = [name] if name in available or _is_interaction(name, available) else []
        if not matches:
            shown = ", ".join(map(str, available)) or "none"
            raise InputError(f"{node}Model.X: no column '{name}' in {source} after the "
                             f"transformations (columns: {shown})")
        found += [m for m in matches if m not in found]
    return found


def level_indicators(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """``Factor``'s indicator columns of ``frame[column]``'s levels (``<column>.<level>``,
    levels sorted, as formula libraries order them), without the column itself."""
    levels = transform_table([{"Name": "Factor", "Input": [column]}], frame[[column]])
    return levels[[c for c in levels.columns if c != column]]


def _categorical_columns(table: pd.DataFrame, columns, node, source) -> tuple:
    """``table`` with the indicator columns of each categorical term ``C(g)`` in
    ``columns`` (``Factor``'s: ``g.<level>``, levels sorted, as formula libraries order
    them), and ``columns`` with each such term replaced by its levels' names."""
    expanded, added = [], {}
    for name in columns:
        match = CATEGORICAL.match(str(name))
        if match is None:
            expanded.append(name)
            continue
        column = match.group(1)
        if column not in table.columns:
            shown = ", ".join(map(str, table.columns)) or "none"
            raise InputError(f"{node}Model.Formula: no column '{column}' in {source} for "
                             f"{name} (columns: {shown})")
        levels = level_indicators(table, column)
        added.update({c: levels[c] for c in levels.columns})
        expanded += list(levels.columns)
    if not added:
        return table, columns
    return table.assign(**added), expanded


def _is_interaction(name: str, available) -> bool:
    """``a:b`` where ``a`` and ``b`` are columns: their product (a formula's
    interaction, formulaic's name)."""
    parts = name.split(":")
    return len(parts) > 1 and all(part in available for part in parts)


def _interaction(table: pd.DataFrame, name: str) -> pd.Series:
    parts = [table[part] for part in name.split(":")]
    for part, values in zip(name.split(":"), parts, strict=True):
        if not pd.api.types.is_numeric_dtype(values):
            raise InputError(f"Model.X: '{part}' of the interaction '{name}' is categorical "
                             "(not numbers); split it into indicators with a Factor "
                             "transformation")
    product = parts[0].astype(float)
    for values in parts[1:]:
        product = product * values.astype(float)
    return product


def _label(subject) -> str:
    text = str(subject).strip()
    return text[4:] if text.startswith("sub-") else text


def _subjects(labels) -> str:
    labels = [f"sub-{label}" for label in labels]
    shown = ", ".join(labels[:5])
    return shown + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
