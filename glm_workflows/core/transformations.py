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

import fnmatch
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .hrf import HRF_MODELS, frame_times

TRANSFORMER = "pybids-transforms-v1"
#: nilearn's convolution settings of ``make_first_level_design_matrix``.
OVERSAMPLING = 50
MIN_ONSET = -24.0
LAG_MODES = ("nearest", "reflect", "constant", "mirror", "wrap",
             "grid-mirror", "grid-constant", "grid-wrap")

_GLOB = re.compile(r"[*?\[\]]")


# --------------------------------------------------------------------- arguments


def _snake(key: str) -> str:
    """pybids's CamelCase to snake_case conversion of JSON keys (``FirDelays`` ->
    ``fir_delays``, ``ReplaceNa`` -> ``replace_na``)."""
    return re.sub(r"((?<=[a-z0-9])[A-Z]|(?!^)[A-Z](?=[a-z]))", r"_\1", key).lower()


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


def _check_bool(value):
    return None if isinstance(value, bool) else "expected true or false"


def _check_number(value):
    return None if _is_number(value) else "expected a number"


def _check_str(value):
    return None if isinstance(value, str) else "expected a string"


def _check_scalar(value):
    return None if isinstance(value, str) or _is_number(value) \
        else "expected a string or a number"


def _choice(*choices):
    def check(value):
        if value in choices and (value is None or isinstance(value, str)):
            return None
        shown = ", ".join("null" if c is None else repr(c) for c in choices)
        return f"expected one of {shown}"
    return check


def _check_numbers(value):
    if isinstance(value, list) and value and all(_is_number(v) for v in value):
        return None
    return "expected a non-empty list of numbers"


def _check_fir_delays(value):
    if isinstance(value, list) and value and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value) \
            and len(set(value)) == len(value):
        return None
    return "expected a non-empty list of distinct integers >= 0 (delays in scans)"


def _check_order(value):
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 5:
        return None
    return "expected an integer from 0 to 5 (spline order)"


def _check_replace(value):
    if isinstance(value, dict) and value:
        return None
    return "expected an object mapping old values to new ones"


def _check_names(value):
    if isinstance(value, str) and value:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return None
    return "expected a variable name or a non-empty list of names"


def _check_name(value):
    return None if isinstance(value, str) and value else "expected a non-empty string"


#: Arguments of each transformation (snake_case, as pybids names them) and their check.
_ARGUMENTS = {
    "Factor": {"constraint": _choice("none", "drop_one", "mean_zero"),
               "ref_level": _check_scalar, "sep": _check_str},
    "Convolve": {"model": _check_str, "derivative": _check_bool, "dispersion": _check_bool,
                 "fir_delays": _check_fir_delays},
    "Scale": {"demean": _check_bool, "rescale": _check_bool,
              "replace_na": _choice(None, "before", "after")},
    "Demean": {},
    "Replace": {"replace": _check_replace, "attribute": _choice("value", "onset", "duration")},
    "DropNA": {},
    "Threshold": {"threshold": _check_number, "binarize": _check_bool, "above": _check_bool,
                  "signed": _check_bool},
    "Rename": {},
    "Copy": {},
    "Select": {},
    "Delete": {},
    "Product": {},
    "Sum": {"weights": _check_numbers},
    "Orthogonalize": {"other": _check_names},
    "Lag": {"shift": _check_number, "order": _check_order, "mode": _choice(*LAG_MODES),
            "constant": _check_number,
            "difference": _check_bool},
}
#: Transformations whose results need names (pybids's ``_output_required``).
_OUTPUT_REQUIRED = {"Rename", "Copy", "Product", "Sum"}
#: Transformations that make one variable of all their inputs.
_ONE_OUTPUT = {"Product", "Sum"}
#: Transformations that write nothing new (no Output arguments).
_NO_OUTPUT = {"Factor", "Select", "Delete"}
#: Transformations that accept categorical (text) variables.
_CATEGORICAL_OK = {"Factor", "Replace", "DropNA", "Rename", "Copy", "Select", "Delete"}
_OUTPUT_KEYS = ("output", "output_prefix", "output_suffix")
SUPPORTED_TRANSFORMATIONS = tuple(_ARGUMENTS)


def _listify(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def check_instructions(instructions, path_prefix: str = "") -> list[dict]:
    """Check transformation instructions without data; return them with snake_case keys.

    Parameters
    ----------
    instructions : list of dict
        ``Transformations.Instructions`` of a node.
    path_prefix : str
        Where the node is, for messages (e.g. ``"model.json: Nodes[0]"``).

    Returns
    -------
    list of dict
        One per instruction: ``name`` and its arguments, snake_case keys, ``input``
        and ``output`` as lists.

    Raises
    ------
    InputError
        One line with the JSON path: an instruction that is not an object, an
        unsupported transformation, an unknown argument or one of the wrong type, a
        missing ``Input``, or ``Output`` missing or of the wrong length.
    """
    base = f"{path_prefix}.Transformations" if path_prefix else "Transformations"
    if not isinstance(instructions, list):
        raise InputError(f"{base}.Instructions: expected a list of instructions")
    checked = []
    for index, instruction in enumerate(instructions):
        where = f"{base}.Instructions[{index}]"
        if not isinstance(instruction, dict):
            raise InputError(f"{where}: expected an object with Name and Input")
        name = instruction.get("Name")
        if name not in _ARGUMENTS:
            raise InputError(f"{where}.Name: expected one of "
                             f"{', '.join(SUPPORTED_TRANSFORMATIONS)}, got {name!r}")
        where = f"{where} ({name})"
        allowed = {"input": _check_names, **_ARGUMENTS[name]}
        if name not in _NO_OUTPUT:
            allowed.update(output=_check_names, output_prefix=_check_name,
                           output_suffix=_check_name)
        arguments = {"name": name}
        for key, value in instruction.items():
            if key == "Name":
                continue
            snake = _snake(key)
            if snake not in allowed or snake in arguments:
                raise InputError(f"{where}.{key}: unknown argument (allowed: "
                                 f"{', '.join(_camel(k) for k in allowed)})")
            problem = allowed[snake](value)
            if problem:
                raise InputError(f"{where}.{key}: {problem}, got {_shown(value)}")
            arguments[snake] = value
        if "input" not in arguments:
            raise InputError(f"{where}.Input: required (the variables to transform)")
        arguments["input"] = _listify(arguments["input"])
        if "output" in arguments:
            arguments["output"] = _listify(arguments["output"])
        _check_outputs(name, arguments, where)
        if name == "Convolve":
            _convolve_model(arguments, where)
        checked.append(arguments)
    return checked


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _shown(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _check_outputs(name: str, arguments: dict, where: str) -> None:
    if name in _OUTPUT_REQUIRED and "output" not in arguments:
        raise InputError(f"{where}.Output: required (the name of the new variable)")
    if "output" not in arguments:
        return
    outputs, inputs = arguments["output"], arguments["input"]
    if name in _ONE_OUTPUT:
        if len(outputs) != 1:
            raise InputError(f"{where}.Output: expected one name (all inputs make one "
                             f"variable), got {len(outputs)}")
    elif not any(_GLOB.search(v) for v in inputs) and len(outputs) != len(inputs):
        raise InputError(f"{where}.Output: {len(outputs)} name(s) for {len(inputs)} "
                         "input variable(s)")
    if len(set(outputs)) != len(outputs):
        raise InputError(f"{where}.Output: a name is given twice")


#: A Convolve instruction's ``Model`` when it gives none: the BIDS Stats Models
#: specification's default (not a setting of this project: a model file means the same
#: whatever ``--hrf-model`` says).
CONVOLVE_MODEL = "spm"


def _convolve_model(arguments: dict, where: str) -> tuple[str, list[int] | None]:
    """nilearn's HRF model name and FIR delays of a Convolve instruction."""
    model = " ".join(str(arguments.get("model", CONVOLVE_MODEL)).lower().split())
    derivative = arguments.get("derivative", False)
    dispersion = arguments.get("dispersion", False)
    if model in ("spm", "glover"):
        if dispersion and not derivative:
            raise InputError(f"{where}.Dispersion: needs Derivative true (nilearn models "
                             "the dispersion derivative with the time derivative)")
        model += " + derivative" * derivative + " + dispersion" * dispersion
    elif model not in HRF_MODELS:
        raise InputError(f"{where}.Model: expected one of {', '.join(HRF_MODELS)}, "
                         f"got {arguments.get('model')!r}")
    elif derivative or dispersion:
        raise InputError(f"{where}: Derivative/Dispersion apply to Model 'spm' or "
                         f"'glover', not {model!r}")
    if "fir_delays" in arguments and model != "fir":
        raise InputError(f"{where}.FirDelays: only for Model 'fir', not {model!r}")
    return model, arguments.get("fir_delays", [0] if model == "fir" else None)


# --------------------------------------------------------------------- variables


def run_variables(events: pd.DataFrame | None = None,
                  confounds: pd.DataFrame | None = None, *, source: str = "run") -> dict:
    """The variables of one run: a sparse one per events column, a dense one per
    confound column.

    Parameters
    ----------
    events : pandas.DataFrame or None
        An events table (``onset``, ``duration`` in seconds, other columns any); each
        column but ``onset`` and ``duration`` becomes a sparse variable of that name
        (numbers stay numbers, text is categorical; missing values are NaN).
    confounds : pandas.DataFrame or None
        One row per scan; each column becomes a dense variable.
    source : str
        Names the run in messages.

    Returns
    -------
    dict
        Name to :class:`pandas.DataFrame` (sparse: ``onset``, ``duration``,
        ``amplitude``) or :class:`pandas.Series` (dense, indexed by frame number).

    Raises
    ------
    InputError
        If onsets or durations are missing or not finite numbers, or if an events
        column and a confound share a name.
    """
    variables: dict = {}
    if events is not None:
        for column in ("onset", "duration"):
            if column not in events:
                raise InputError(f"{source}: events without a '{column}' column")
            values = pd.to_numeric(events[column], errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(values).all():
                raise InputError(f"{source}: events column '{column}' must hold finite "
                                 "numbers")
        timing = pd.DataFrame({"onset": events["onset"].to_numpy(dtype=float),
                               "duration": events["duration"].to_numpy(dtype=float)})
        for column in events.columns:
            if column in ("onset", "duration"):
                continue
            variables[str(column)] = timing.assign(
                amplitude=events[column].to_numpy()).reset_index(drop=True)
    if confounds is not None:
        for column in confounds.columns:
            if str(column) in variables:
                raise InputError(f"{source}: '{column}' is both an events column and a "
                                 "confound; rename one")
            variables[str(column)] = pd.Series(confounds[column].to_numpy(),
                                               name=str(column))
    return variables


def implied_levels(variables: Mapping, names) -> dict:
    """``variables`` with an indicator for each ``<column>.<level>`` in ``names`` that
    names a level of a categorical events column no instruction has split.

    BIDS Stats Models written for bidspm (the model zoo's MoAE models among them) name a
    categorical column's levels directly (``trial_type.listening`` in ``X``,
    ``HRF.Variables``, ``Convolve`` or contrasts), where pybids needs an explicit
    ``Factor``. Both are accepted: the indicator is what ``Factor`` would make of that
    level (1 where the column equals the level, 0 elsewhere, ``n/a`` rows 0), placed
    after its column; a later ``Factor`` of the column replaces it with the same values.
    Names that are variables already, globs and anything else are left alone.

    Parameters
    ----------
    variables : mapping
        A run's variables (:func:`run_variables`).
    names : iterable of str
        The variable names a node refers to.

    Returns
    -------
    dict
        The variables, in order, with the implied indicators.
    """
    implied: dict = {}
    for name in names:
        if not isinstance(name, str) or name in variables or _GLOB.search(name):
            continue
        for cut in [i for i, ch in enumerate(name) if ch == "."]:
            column, level = name[:cut], name[cut + 1:]
            variable = variables.get(column)
            if variable is None or not _is_sparse(variable) or _is_numeric(variable):
                continue
            data = _values(variable)
            if level in set(data.dropna().astype(str)):
                indicator = (data.astype(str) == level) & data.notna()
                implied.setdefault(column, {})[name] = _with_values(
                    variable, indicator.to_numpy(dtype=float))
                break
    result: dict = {}
    for key, value in variables.items():
        result[key] = value
        result.update(implied.get(key, {}))
    return result


def _is_sparse(variable) -> bool:
    return isinstance(variable, pd.DataFrame)


def _values(variable) -> pd.Series:
    return variable["amplitude"] if _is_sparse(variable) else variable


def _with_values(variable, values):
    if _is_sparse(variable):
        result = variable.copy()
        result["amplitude"] = np.asarray(values)
        return result
    return pd.Series(np.asarray(values), name=variable.name)


def _is_numeric(variable) -> bool:
    return pd.api.types.is_numeric_dtype(_values(variable))


def _sampled(variable, times: np.ndarray) -> np.ndarray:
    """A variable's values at the frame times: dense as they are, events as box-cars."""
    if not _is_sparse(variable):
        return _values(variable).to_numpy(dtype=float)
    onset = variable["onset"].to_numpy()[:, None]
    end = onset + variable["duration"].to_numpy()[:, None]
    covers = (times[None, :] >= onset) & (times[None, :] < end)
    amplitude = variable["amplitude"].to_numpy(dtype=float)[:, None]
    return np.where(covers, amplitude, 0.0).sum(axis=0)


def _aligned(variables) -> bool:
    """True if all are events with the same onsets and durations."""
    if not all(_is_sparse(v) for v in variables):
        return False
    first = variables[0][["onset", "duration"]].to_numpy()
    return all(v[["onset", "duration"]].shape == first.shape
               and np.array_equal(v[["onset", "duration"]].to_numpy(), first)
               for v in variables[1:])


class _Run:
    """What a transformation needs to know about the run, and where it is."""

    def __init__(self, variables: dict, times: np.ndarray, t_r: float, where: str,
                 convolved: dict):
        self.variables = variables
        self.convolved = convolved  # name -> the instruction that convolved it
        self.times = times
        self.t_r = t_r
        self.where = where

    def fail(self, message: str):
        raise InputError(f"{self.where}: {message}")

    def available(self) -> str:
        names = list(self.variables)
        shown = ", ".join(names[:20])
        more = f", ... ({len(names) - 20} more)" if len(names) > 20 else ""
        return f"available: {shown}{more}" if names else "no variables"

    def expand(self, names) -> list[str]:
        """Variable names, globs expanded in the variables' order; refuse missing ones."""
        found = []
        for name in _listify(names):
            if _GLOB.search(name):
                matches = [v for v in self.variables if fnmatch.fnmatchcase(v, name)]
                if not matches:
                    self.fail(f"no variable matches {name!r} ({self.available()})")
                found.extend(m for m in matches if m not in found)
            elif name not in self.variables:
                self.fail(f"no variable {name!r} ({self.available()})")
            elif name not in found:
                found.append(name)
        return found

    def numeric(self, names) -> None:
        for name in names:
            if not _is_numeric(self.variables[name]):
                self.fail(f"variable {name!r} is categorical (not numbers); split it into "
                          "indicators with Factor first")

    def dense(self, variable) -> pd.Series:
        return pd.Series(_sampled(variable, self.times), name=getattr(variable, "name", None))


def _output_names(arguments: dict, inputs: list[str], run: _Run) -> list[str]:
    outputs = arguments.get("output")
    if outputs is None:
        outputs = list(inputs)
    elif len(outputs) != len(inputs):
        run.fail(f"{len(outputs)} Output name(s) for {len(inputs)} input variable(s) "
                 f"({', '.join(inputs)})")
    prefix = arguments.get("output_prefix", "")
    suffix = arguments.get("output_suffix", "")
    return [f"{prefix}{name}{suffix}" for name in outputs]


def _replace_variable(variables: dict, name: str, new: dict) -> None:
    """Put the variables ``new`` where ``name`` was (other variables of these names go)."""
    items = []
    for key, value in variables.items():
        if key == name:
            items.extend(new.items())
        elif key not in new:
            items.append((key, value))
    variables.clear()
    variables.update(items)


# --------------------------------------------------------------------- transformations


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


def convolve(variable, name: str, hrf_model: str, times: np.ndarray, *, t_r: float,
             fir_delays=None, where: str = "Convolve") -> dict:
    """nilearn's regressor(s) of a variable, as ``make_first_level_design_matrix`` makes
    a condition's.

    Parameters
    ----------
    variable : pandas.DataFrame or pandas.Series
        Events (``onset``, ``duration``, ``amplitude``) or values at the frame times
        (then each scan is an event of one TR from its frame time).
    name : str
        The condition name the columns are named after.
    hrf_model : str
        One of nilearn's HRF models (:data:`glm_workflows.core.hrf.HRF_MODELS`).
    times : numpy.ndarray
        Frame times (s).
    t_r : float
        Repetition time (s).
    fir_delays : sequence of int or None
        FIR delays in scans (``[0]`` if None).
    where : str
        Names the instruction in messages.

    Returns
    -------
    dict
        Column name (nilearn's: ``name``, ``name_derivative``, ``name_dispersion``,
        ``name_delay_<d>``) to a :class:`pandas.Series` over the frames.
    """
    from nilearn.glm.first_level.hemodynamic_models import compute_regressor

    if _is_sparse(variable):
        onsets = variable["onset"].to_numpy(dtype=float)
        durations = variable["duration"].to_numpy(dtype=float)
    else:
        onsets = np.asarray(times, dtype=float)
        durations = np.full(len(onsets), float(t_r))
    amplitudes = _values(variable).to_numpy(dtype=float)
    if not np.isfinite(amplitudes).all():
        raise InputError(f"{where}: variable {name!r} has missing (n/a) values; drop them "
                         "with DropNA or replace them first")
    if fir_delays is None and hrf_model == "fir":
        fir_delays = [0]
    regressors, names = compute_regressor(
        np.vstack([onsets, durations, amplitudes]), hrf_model, np.asarray(times, dtype=float),
        con_id=name, oversampling=OVERSAMPLING, fir_delays=fir_delays, min_onset=MIN_ONSET)
    return {column: pd.Series(regressors[:, i], name=column)
            for i, column in enumerate(names)}


_TRANSFORMS = {
    "Factor": _factor, "Convolve": _convolve, "Scale": _scale, "Demean": _demean,
    "Replace": _replace, "DropNA": _drop_na, "Threshold": _threshold, "Rename": _rename,
    "Copy": _copy, "Select": _select, "Delete": _delete, "Product": _product, "Sum": _sum,
    "Orthogonalize": _orthogonalize, "Lag": _lag,
}


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
    referenced = [*(name for arguments in checked for name in _listify(arguments["input"])),
                  *(hrf.variables if hrf is not None else ()), *x]
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
    base = f"{path_prefix}.Transformations" if path_prefix else "Transformations"
    convolved: dict = {}
    for index, arguments in enumerate(checked):
        name = arguments["name"]
        run = _Run(current, times, float(t_r), f"{base}.Instructions[{index}] ({name})",
                   convolved)
        inputs = run.expand(arguments["input"])
        if name not in _CATEGORICAL_OK:
            run.numeric(inputs)
        _TRANSFORMS[name](run, inputs, arguments)
    if hrf is not None and hrf.variables:
        where = f"{path_prefix}.Model.HRF" if path_prefix else "Model.HRF"
        run = _Run(current, times, float(t_r), where, convolved)
        inputs = run.expand(list(hrf.variables))
        run.numeric(inputs)
        _convolve(run, inputs, {"model": hrf.model, "fir_delays": hrf.fir_delays}
                  if hrf.model == "fir" else {"model": hrf.model})
    columns = {name: _sampled(v, times) for name, v in current.items() if _is_numeric(v)}
    return pd.DataFrame(columns, index=times)
