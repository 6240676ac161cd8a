"""The pybids-transforms-v1 transformations that select, split, combine logically or
re-time a run's variables: ``And``, ``Or``, ``Not``, ``Assign``, ``Filter``, ``Split``,
``ToDense`` and ``Group`` (pybids's ``bids.modeling.transformations``: same arguments,
output names and results; differences are in ``docs/models.md``).

Each function takes the run being transformed (:class:`~.variables._Run`), the input
names (globs and groups expanded) and the checked arguments (snake_case keys), and
writes its results into ``run.variables``.
"""

from __future__ import annotations

import itertools

import numpy as np

from .lazy import pandas as pd
from .transform_query import evaluate_query, parse_query, sanitized, with_identifiers
from .variables import (
    _aligned,
    _is_sparse,
    _output_names,
    _Run,
    _sampled,
    _values,
    _with_values,
)


def _where_missing(run: _Run, name: str) -> str | None:
    """Where a variable is n/a: event onsets or scan numbers (None if nowhere)."""
    variable = run.variables[name]
    missing = _values(variable).isna().to_numpy()
    if not missing.any():
        return None
    if _is_sparse(variable):
        places = [f"{v:g}" for v in variable["onset"].to_numpy()[missing]]
        kind = "event(s) at onset(s) {} s"
    else:
        places = [str(i) for i in np.flatnonzero(missing)]
        kind = "scan(s) {}"
    shown = ", ".join(places[:5]) + (f" and {len(places) - 5} more" if len(places) > 5 else "")
    return kind.format(shown)


def _no_missing(run: _Run, names, operation: str) -> None:
    for name in names:
        where = _where_missing(run, name)
        if where:
            run.fail(f"variable {name!r} is n/a at {where}: {operation} has no rule for "
                     "missing values (pybids counts them true, the specification's examples "
                     "false); replace them first, e.g. Replace {\"n/a\": 0}")


def _table(run: _Run, names):
    """The variables' values side by side, and the variable the result is shaped like:
    the events' amplitudes if all are the same events, else values at the frame times."""
    group = [run.variables[n] for n in names]
    if _aligned(group):
        return np.column_stack([_values(v).to_numpy() for v in group]), group[0]
    table = np.column_stack([_sampled(v, run.times) for v in group])
    return table, run.dense(group[0])


def _one_output(arguments: dict) -> str:
    return (f"{arguments.get('output_prefix', '')}{arguments['output'][0]}"
            f"{arguments.get('output_suffix', '')}")


def _outputs(run: _Run, inputs: list[str], arguments: dict) -> list[str]:
    return _output_names(arguments, inputs, run)


def logical_and(run: _Run, inputs: list[str], arguments: dict) -> None:
    """``And``: 1 where every input is non-zero, else 0 (pybids: ``all(axis=1)``)."""
    _no_missing(run, inputs, "And")
    table, template = _table(run, inputs)
    run.variables[_one_output(arguments)] = _with_values(
        template, (table.astype(float) != 0).all(axis=1).astype(int))


def logical_or(run: _Run, inputs: list[str], arguments: dict) -> None:
    """``Or``: 1 where any input is non-zero, else 0 (pybids: ``any(axis=1)``)."""
    _no_missing(run, inputs, "Or")
    table, template = _table(run, inputs)
    run.variables[_one_output(arguments)] = _with_values(
        template, (table.astype(float) != 0).any(axis=1).astype(int))


def logical_not(run: _Run, inputs: list[str], arguments: dict) -> None:
    """``Not``: True where the input is zero, False elsewhere (pybids's booleans)."""
    _no_missing(run, inputs, "Not")
    for name, output in zip(inputs, _outputs(run, inputs, arguments), strict=True):
        variable = run.variables[name]
        run.variables[output] = _with_values(
            variable, ~(_values(variable).to_numpy(dtype=float) != 0))


_ATTRIBUTE_COLUMN = {"amplitude": "amplitude", "onset": "onset", "duration": "duration"}


def assign(run: _Run, inputs: list[str], arguments: dict) -> None:
    """``Assign``: a copy of ``Target`` whose ``TargetAttr`` (amplitude, onset or
    duration) takes the input's ``InputAttr``, event by event; named ``Target`` (which it
    replaces) unless ``Output`` is given."""
    (target_name,) = run.expand([arguments["target"]])
    target = run.variables[target_name]
    input_attr = arguments.get("input_attr", "amplitude")
    target_attr = arguments.get("target_attr", "amplitude")
    outputs = arguments.get("output") or [target_name] * len(inputs)
    if len(outputs) != len(inputs):
        run.fail(f"{len(outputs)} Output name(s) for {len(inputs)} input variable(s)")
    prefix, suffix = arguments.get("output_prefix", ""), arguments.get("output_suffix", "")
    for name, output in zip(inputs, outputs, strict=True):
        variable = run.variables[name]
        for role, which, value in (("input", name, variable), ("Target", target_name, target)):
            if not _is_sparse(value):
                run.fail(f"the {role} {which!r} is sampled at scans; Assign applies to "
                         "events (onsets and durations)")
        if len(variable) != len(target):
            run.fail(f"{name!r} has {len(variable)} events and the Target {target_name!r} "
                     f"{len(target)}; Assign needs as many")
        values = variable[_ATTRIBUTE_COLUMN[input_attr]].to_numpy()
        result = target.copy()
        if target_attr == "amplitude":
            result["amplitude"] = values
        else:
            numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(numbers).all() or (target_attr == "duration"
                                                  and (numbers < 0).any()):
                run.fail(f"the {input_attr}s of {name!r} are not all finite numbers"
                         f"{' >= 0' if target_attr == 'duration' else ''}; they cannot be "
                         f"the {target_attr}s of {target_name!r}")
            result[target_attr] = numbers
        run.variables[f"{prefix}{output}{suffix}"] = result.reset_index(drop=True)


def filter_events(run: _Run, inputs: list[str], arguments: dict) -> None:
    """``Filter``: keep the input's events where ``Query`` is true; the query may name the
    input and the ``By`` variables (the same events)."""
    by = run.expand(arguments.get("by", [])) if arguments.get("by") else []
    outputs = _outputs(run, inputs, arguments)
    for name, output in zip(inputs, outputs, strict=True):
        variable = run.variables[name]
        if not _is_sparse(variable):
            run.fail(f"{name!r} is sampled at scans: Filter would drop scans")
        names = [name, *(b for b in by if b != name)]
        if not _aligned([run.variables[n] for n in names]):
            run.fail(f"the By variables ({', '.join(by)}) are not the same events as "
                     f"{name!r}; Filter compares values event by event")
        columns = {sanitized(n): _values(run.variables[n]).reset_index(drop=True)
                   for n in names}
        try:
            keep = evaluate_query(parse_query(with_identifiers(arguments["query"], names)), columns)
        except ValueError as exc:
            run.fail(f"Query: {exc}")
        run.variables[output] = variable[keep].reset_index(drop=True)


def split(run: _Run, inputs: list[str], arguments: dict) -> None:
    """``Split``: one variable per combination of the ``By`` variables' levels, named
    ``<input>.<by>[<level>]`` (``.<by2>[<level2>]`` ...), as pybids names them (levels
    sorted as text, the first ``By`` variable's changing fastest)."""
    by = run.expand(arguments["by"])
    for name in inputs:
        variable = run.variables[name]
        if not _is_sparse(variable):
            run.fail(f"{name!r} is sampled at scans; Split applies to events here")
        if not _aligned([variable, *(run.variables[b] for b in by)]):
            run.fail(f"the By variables ({', '.join(by)}) are not the same events as "
                     f"{name!r}")
        labels = [_values(run.variables[b]).astype(str).to_numpy() for b in by]
        levels = [sorted(set(values)) for values in labels]
        for combination in itertools.product(*reversed(levels)):
            combination = combination[::-1]
            rows = np.ones(len(variable), dtype=bool)
            for values, level in zip(labels, combination, strict=True):
                rows &= values == level
            suffix = ".".join(f"{b}[{level}]" for b, level in zip(by, combination, strict=True))
            run.variables[f"{name}.{suffix}"] = variable[rows].reset_index(drop=True)


def to_dense(run: _Run, inputs: list[str], arguments: dict) -> None:
    """``ToDense``: the events' values at the frame times (box-cars), as every dense
    conversion here (pybids samples at 10 Hz)."""
    for name, output in zip(inputs, _outputs(run, inputs, arguments), strict=True):
        variable = run.variables[name]
        dense = run.dense(variable) if _is_sparse(variable) else variable.copy()
        run.variables[output] = pd.Series(dense.to_numpy(), name=output)


def group(run: _Run, inputs: list[str], arguments: dict) -> None:
    """``Group``: a name for the inputs, which later instructions may use as ``Input``
    (pybids's ``Group``; the name is ``Output``, since ``Name`` names the transformation)."""
    name = arguments["output"][0]
    if name in run.variables:
        run.fail(f"group name {name!r} is a variable already")
    run.groups[name] = list(inputs)
