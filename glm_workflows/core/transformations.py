"""BIDS Stats Models variable transformations (``pybids-transforms-v1``) on one run.

A run's variables are pandas objects in a dict, by name (:func:`run_variables`):

- a *sparse* (event) variable is a :class:`pandas.DataFrame` with columns ``onset``,
  ``duration`` (seconds) and ``amplitude``, one row per event; each column of an
  events.tsv other than ``onset`` and ``duration`` is one (``trial_type`` is a
  categorical one, which ``Factor`` splits into ``trial_type.<level>`` indicators);
- a *dense* variable is a :class:`pandas.Series`, one value per scan (a confound).

The transformations follow pybids's (``bids.modeling.transformations``): same names,
same arguments (JSON keys in CamelCase, e.g. ``Input``, ``Output``, ``ReplaceNa``, as
pybids converts them), same results; ``Input`` names may be globs (``motion_*``).
``Convolve`` is nilearn's convolution, exactly as
:func:`nilearn.glm.first_level.make_first_level_design_matrix` convolves a condition
(oversampling 50, ``min_onset`` -24 s, same HRF models and column names), so a
convolved ``trial_type.<level>`` equals nilearn's regressor of condition ``<level>``.

Where pybids would sample events on a finer grid (an operation mixing events with
other events of different timing, or with scans), events are sampled at the frame
times here: an event's amplitude at every frame time in ``[onset, onset + duration)``.
The same rule makes the dense design columns of events that are not convolved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .convolution import convolve
from .errors import InputError
from .hrf import frame_times
from .lazy import pandas as pd
from .transform_checks import (
    _CATEGORICAL_OK,
    _OUTPUT_KEYS,
    _convolve_model,
    _listify,
    check_instructions,
)
from .transform_munge import (
    assign,
    filter_events,
    group,
    logical_and,
    logical_not,
    logical_or,
    split,
    to_dense,
)
from .variables import (
    _aligned,
    _is_numeric,
    _is_sparse,
    _output_names,
    _replace_variable,
    _Run,
    _sampled,
    _values,
    _with_values,
    implied_columns,
    implied_levels,
    warn_replaced,
    warn_unconvolved,
)


def _per_variable(function):
    """A transformation applied to each input in turn, written to its output name."""
    def apply(run: _Run, inputs: list[str], arguments: dict) -> None:
        outputs = _output_names(arguments, inputs, run)
        for name, output in zip(inputs, outputs, strict=True):
            run.variables[output] = function(run, run.variables[name], name, **_kwargs(
                arguments))
    return apply


def _kwargs(arguments: dict) -> dict:
    skip = {"name", "input", *_OUTPUT_KEYS}
    return {k: v for k, v in arguments.items() if k not in skip}


@_per_variable
def _scale(run, variable, name, demean=True, rescale=True, replace_na=None):
    data = _values(variable).astype(float).copy()
    if data.nunique() == 1 and replace_na in (None, "before"):
        run.fail(f"cannot scale {name!r}: all its values are {data.dropna().iloc[0]:g} "
                 "(set ReplaceNa to 'after' for a column of zeros)")
    if data.nunique() == 0 and replace_na in (None, "before"):
        run.fail(f"cannot scale {name!r}: it has no values")
    if replace_na == "before":
        data = data.fillna(0.0)
    if demean:
        data = data - data.mean()
    if rescale:
        data = data / data.std()
    if replace_na == "after":
        data = data.fillna(0.0)
    return _with_values(variable, data)


@_per_variable
def _demean(run, variable, name):
    data = _values(variable).astype(float)
    return _with_values(variable, data - data.mean())


@_per_variable
def _threshold(run, variable, name, threshold=0.0, binarize=False, above=True, signed=True):
    data = _values(variable).astype(float).copy()
    if not signed:
        threshold = abs(threshold)
        data = data.abs()
    keep = data >= threshold if above else data <= threshold
    data[~keep] = 0.0
    if binarize:
        data[keep] = 1.0
    return _with_values(variable, data)


@_per_variable
def _replace(run, variable, name, replace=None, attribute="value"):
    if attribute != "value" and not _is_sparse(variable):
        run.fail(f"Attribute {attribute!r} applies to events, and {name!r} is sampled at "
                 "scans")
    column = {"value": "amplitude"}.get(attribute, attribute)
    data = variable[column] if _is_sparse(variable) else variable
    mapping = {}
    numeric = pd.api.types.is_numeric_dtype(data)
    for old, new in replace.items():
        key = old
        if old == "n/a":  # BIDS's missing value
            key = np.nan
        elif numeric:  # JSON keys are text: "1" replaces the number 1
            try:
                key = float(old)
            except ValueError:
                key = old
        mapping[key] = new
    replaced = data.replace(mapping)
    if attribute != "value":
        replaced = pd.to_numeric(replaced, errors="coerce")
        if not np.isfinite(replaced.to_numpy(dtype=float)).all():
            run.fail(f"Replace must leave {attribute}s of {name!r} finite numbers")
    if _is_sparse(variable):
        result = variable.copy()
        result[column] = replaced.to_numpy()
        return result
    return pd.Series(replaced.to_numpy(), name=variable.name)


@_per_variable
def _drop_na(run, variable, name):
    if not _is_sparse(variable):
        run.fail(f"{name!r} is sampled at scans: DropNA would drop scans; use Replace or "
                 "Scale's ReplaceNa")
    return variable[variable["amplitude"].notna()].reset_index(drop=True)


@_per_variable
def _lag(run, variable, name, shift=1, order=3, mode="nearest", constant=0.0,
         difference=False):
    from scipy import ndimage

    data = _values(variable).to_numpy(dtype=float)
    shifted = ndimage.shift(data, shift=shift, order=order, mode=mode, cval=constant)
    if difference:
        shifted = data - shifted if shift >= 0 else shifted - data
    return _with_values(variable, shifted)


@_per_variable
def _copy(run, variable, name):
    return variable.copy()


def _orthogonalize(run: _Run, inputs: list[str], arguments: dict) -> None:
    others = run.expand(arguments["other"])
    run.numeric(others)
    outputs = _output_names(arguments, inputs, run)
    for name, output in zip(inputs, outputs, strict=True):
        target = run.variables[name]
        group = [target, *(run.variables[o] for o in others)]
        if _aligned(group):
            y = target["amplitude"].to_numpy(dtype=float)
            x = np.column_stack([v["amplitude"].to_numpy(dtype=float) for v in group[1:]])
        else:
            y = _sampled(target, run.times)
            x = np.column_stack([_sampled(v, run.times) for v in group[1:]])
            target = run.dense(target)
        design = np.column_stack([np.ones(len(y)), x])
        coefs = np.linalg.lstsq(design, y, rcond=None)[0]
        run.variables[output] = _with_values(target, y - x @ coefs[1:])


def _combine(run: _Run, inputs: list[str], arguments: dict, weights) -> None:
    group = [run.variables[n] for n in inputs]
    output = (f"{arguments.get('output_prefix', '')}{arguments['output'][0]}"
              f"{arguments.get('output_suffix', '')}")
    if _aligned(group):
        table = np.column_stack([v["amplitude"].to_numpy(dtype=float) for v in group])
        template = group[0]
    else:
        table = np.column_stack([_sampled(v, run.times) for v in group])
        template = run.dense(group[0])
    run.variables[output] = _with_values(template, weights(table))


def _product(run: _Run, inputs: list[str], arguments: dict) -> None:
    _combine(run, inputs, arguments, lambda table: table.prod(axis=1))


def _sum(run: _Run, inputs: list[str], arguments: dict) -> None:
    weights = arguments.get("weights")
    if weights is not None and len(weights) != len(inputs):
        run.fail(f"{len(weights)} Weights for {len(inputs)} variables ({', '.join(inputs)})")
    weights = np.ones(len(inputs)) if weights is None else np.asarray(weights, dtype=float)
    _combine(run, inputs, arguments, lambda table: table @ weights)


def _rename(run: _Run, inputs: list[str], arguments: dict) -> None:
    outputs = _output_names(arguments, inputs, run)
    for name, output in zip(inputs, outputs, strict=True):
        _replace_variable(run.variables, name, {output: run.variables[name]})


def _select(run: _Run, inputs: list[str], arguments: dict) -> None:
    kept = {name: run.variables[name] for name in inputs}
    run.variables.clear()
    run.variables.update(kept)


def _delete(run: _Run, inputs: list[str], arguments: dict) -> None:
    for name in inputs:
        del run.variables[name]


def _factor(run: _Run, inputs: list[str], arguments: dict) -> None:
    constraint = arguments.get("constraint", "none")
    ref_level = arguments.get("ref_level")
    sep = arguments.get("sep", ".")
    for name in inputs:
        variable = run.variables[name]
        data = _values(variable)
        present = data.dropna()
        try:
            levels = np.sort(present.unique())
        except TypeError:  # text and numbers mixed
            levels = np.asarray(sorted(present.unique(), key=str), dtype=object)
        if ref_level is not None:
            match = [lev for lev in levels if lev == ref_level or str(lev) == str(ref_level)]
            if not match:
                run.fail(f"RefLevel {ref_level!r} is not a level of {name!r} (levels: "
                         f"{', '.join(map(str, levels))})")
            reference = match[0]
        else:
            reference = levels[0] if len(levels) else None
        new = {}
        for level in levels:
            if ref_level is not None and level == reference:
                continue
            if constraint in ("drop_one", "mean_zero") and len(levels) > 1 \
                    and level == reference:
                continue
            column = (data == level).to_numpy(dtype=float)
            if constraint == "mean_zero" and len(levels) > 1:
                column[(data == reference).to_numpy()] = -1.0 / (len(levels) - 1)
            new[f"{name}{sep}{level}"] = _with_values(variable, column)
        _replace_variable(run.variables, name, new)


def _convolve(run: _Run, inputs: list[str], arguments: dict) -> None:
    model, fir_delays = _convolve_model(arguments, run.where)
    outputs = _output_names(arguments, inputs, run)
    for name, output in zip(inputs, outputs, strict=True):
        if name in run.convolved:
            run.fail(f"variable {name!r} is already convolved (by {run.convolved[name]})")
        columns = convolve(run.variables[name], output, model, run.times, t_r=run.t_r,
                           fir_delays=fir_delays, where=run.where)
        _replace_variable(run.variables, name, columns)
        run.convolved.update(dict.fromkeys(columns, run.where))


_TRANSFORMS = {
    "Factor": _factor, "Convolve": _convolve, "Scale": _scale, "Demean": _demean,
    "Replace": _replace, "DropNA": _drop_na, "Threshold": _threshold, "Rename": _rename,
    "Copy": _copy, "Select": _select, "Delete": _delete, "Product": _product, "Sum": _sum,
    "Orthogonalize": _orthogonalize, "Lag": _lag, "And": logical_and, "Or": logical_or,
    "Not": logical_not, "Assign": assign, "Filter": filter_events, "Split": split,
    "ToDense": to_dense, "Group": group,
}


#: The arguments that name variables (which may imply a categorical column's levels).
_REFERENCING = ("input", "other", "by", "target")


def levels_after_instructions(current: dict, implied: Mapping, names) -> dict:
    """The variables after the instructions, the levels ``names`` (``Model.HRF`` and
    ``Model.X``) imply taken from the columns as the instructions left them.

    ``implied``: per indicator implied before the instructions (:func:`implied_levels`),
    the indicator, its column's name and the column as they were. An indicator no
    instruction wrote whose column an instruction rewrote (``Replace``, ``Filter``...) is
    made again from the column's events now, as a ``Factor`` after the instruction would
    make it; a level no event has any more is no variable. One an instruction wrote (a ``Factor``, a
    ``Convolve`` in place), or whose column is unchanged or gone (``Select``, ``Delete``,
    ``Rename``), is kept as it is.
    """
    stale = {name for name, (variable, column, before) in implied.items()
             if current.get(name) is variable and current.get(column, before) is not before}
    return implied_levels({name: variable for name, variable in current.items()
                           if name not in stale}, names)


def apply_transformations(instructions: Sequence[Mapping], variables: Mapping, *,
                          t_r: float, n_scans: int, slice_time_ref: float,
                          path_prefix: str = "", hrf=None, x=()) -> pd.DataFrame:
    """Apply a node's transformations to a run's variables; return its dense columns.

    Parameters
    ----------
    instructions : list of dict
        ``Transformations.Instructions`` (``pybids-transforms-v1``), in order.
    variables : dict
        The run's variables (:func:`run_variables`); not modified.
    t_r : float
        Repetition time (s).
    n_scans : int
        Number of scans; dense variables must have one value per scan.
    slice_time_ref : float
        Time of the reference slice as a fraction of the TR: frame times are
        ``(arange(n_scans) + slice_time_ref) * t_r``, as nilearn's FirstLevelModel.
    path_prefix : str
        The node, for messages (e.g. ``"model.json: Nodes[0]"``).
    x : sequence
        ``Model.X``: with the instructions' inputs and the HRF variables, the names that
        may imply indicators of a categorical column's levels (:func:`implied_levels`).
    hrf : HRFSpec or None
        ``Model.HRF`` (:class:`glm_workflows.core.stats_model.HRFSpec`): its variables
        are convolved after the instructions, as by a final Convolve.

    Returns
    -------
    pandas.DataFrame
        One row per scan, indexed by frame time (s) as nilearn's design matrices: every
        numeric variable, dense ones as they are and events (not convolved) sampled at
        the frame times (see the module's notes). Categorical variables are left out.

    Raises
    ------
    InputError
        One line naming the instruction, e.g.
        ``Nodes[0].Transformations.Instructions[2] (Scale): no variable 'foo'
        (available: ...)``.
    """
    checked = check_instructions(list(instructions), path_prefix)
    referenced = [*(name for arguments in checked for key in _REFERENCING
                    for name in _listify(arguments.get(key, []))),
                  *(hrf.variables if hrf is not None else ()), *x]
    given = set(variables)
    variables = implied_levels(variables, referenced)
    times = frame_times(int(n_scans), float(t_r), float(slice_time_ref))
    current = {}
    for name, variable in variables.items():
        if not _is_sparse(variable) and len(variable) != n_scans:
            raise InputError(f"{path_prefix or 'run'}: variable {name!r} has {len(variable)} "
                             f"values for {n_scans} scans")
        current[name] = variable.copy()
        if not _is_sparse(variable):
            current[name] = pd.Series(variable.to_numpy(), name=name)
    implied = {name: (current[name], column, current[column]) for name, column
               in implied_columns([n for n in variables if n not in given], given)}
    base = f"{path_prefix}.Transformations" if path_prefix else "Transformations"
    convolved: dict = {}
    groups: dict = {}
    for index, arguments in enumerate(checked):
        name = arguments["name"]
        run = _Run(current, times, float(t_r), f"{base}.Instructions[{index}] ({name})",
                   convolved, groups)
        inputs = run.expand(arguments["input"])
        if name not in _CATEGORICAL_OK:
            run.numeric(inputs)
        warn_replaced(set(current), arguments, inputs, run.where)
        _TRANSFORMS[name](run, inputs, arguments)
    current = levels_after_instructions(current, implied,
                                        [*(hrf.variables if hrf is not None else ()), *x])
    if hrf is not None and hrf.variables:
        where = f"{path_prefix}.Model.HRF" if path_prefix else "Model.HRF"
        run = _Run(current, times, float(t_r), where, convolved)
        inputs = run.expand(list(hrf.variables))
        run.numeric(inputs)
        _convolve(run, inputs, {"model": hrf.model, "fir_delays": hrf.fir_delays}
                  if hrf.model == "fir" else {"model": hrf.model})
    warn_unconvolved(current, x, f"{path_prefix}.Model.X" if path_prefix else "Model.X")
    columns = {name: _sampled(v, times) for name, v in current.items() if _is_numeric(v)}
    return pd.DataFrame(columns, index=times)
