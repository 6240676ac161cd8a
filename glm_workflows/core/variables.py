"""A run's variables as transformations see them (:func:`run_variables`): sparse
events and dense per-scan series, by name; the categorical levels a model names without
``Factor`` (:func:`implied_levels`); the run and its variables while transformed
(:class:`_Run`)."""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Mapping

import numpy as np

from .errors import InputError
from .lazy import pandas as pd
from .transform_checks import _GLOB, _listify


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
    ``<column>==<level>`` (the model zoo's SPM FaceRep files) names the same indicator,
    for a numeric column too (``repetition_type==1``). Names that are variables already,
    globs, levels no event has and anything else are left alone.

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
        if "==" in name:
            column, level = (part.strip() for part in name.split("==", 1))
            indicator = _equals(variables.get(column), level.strip("'\""))
            if indicator is not None:
                implied.setdefault(column, {})[name] = indicator
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


def implied_columns(names, columns) -> list[tuple[str, str]]:
    """``(name, column)`` of each implied level name (:func:`implied_levels`): the column
    before ``==``, or the first of ``columns`` the name starts with, before a dot."""
    return [(name, name.split("==", 1)[0].strip() if "==" in name else
             next(name[:cut] for cut in range(len(name)) if name[cut] == "."
                  and name[:cut] in columns)) for name in names]


def _equals(variable, level: str):
    """The indicator of events whose value is ``level`` (numbers compared as numbers),
    or None if ``variable`` is not events or no event has that value."""
    if variable is None or not _is_sparse(variable):
        return None
    data = _values(variable)
    if _is_numeric(variable):
        try:
            hits = data.to_numpy(dtype=float) == float(level)
        except ValueError:
            return None
    else:
        hits = ((data.astype(str) == level) & data.notna()).to_numpy()
    return _with_values(variable, hits.astype(float)) if hits.any() else None


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
                 convolved: dict, groups: dict | None = None):
        self.variables = variables
        self.convolved = convolved  # name -> the instruction that convolved it
        self.groups = {} if groups is None else groups  # Group's names -> variables
        self.times = times
        self.t_r = t_r
        self.where = where

    def fail(self, message: str):
        raise InputError(f"{self.where}: {message}")

    def available(self) -> str:
        """The variables, for a message; a categorical events column with its levels as a
        model names them (``trial_type`` (levels ``trial_type.active``, ...))."""
        names = [self._with_levels(name) for name in self.variables]
        shown = ", ".join(names[:20])
        more = f", ... ({len(names) - 20} more)" if len(names) > 20 else ""
        return f"available: {shown}{more}" if names else "no variables"

    def _with_levels(self, name: str) -> str:
        variable = self.variables[name]
        if not _is_sparse(variable) or _is_numeric(variable):
            return name
        levels = sorted(set(_values(variable).dropna().astype(str)))
        shown = ", ".join(f"{name}.{level}" for level in levels[:10])
        return f"{name} (levels {shown}{', ...' if len(levels) > 10 else ''})"

    def expand(self, names) -> list[str]:
        """Variable names, globs expanded in the variables' order; refuse missing ones."""
        found = []
        for name in _listify(names):
            if name in self.groups and name not in self.variables:
                found.extend(n for n in self.expand(self.groups[name]) if n not in found)
            elif _GLOB.search(name):
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


def warn_replaced(before, arguments: dict, inputs, where: str) -> None:
    """Warn, in one line, when an instruction's ``Output`` names a variable the run had
    (``before``; not one of its ``inputs``, which it transforms in place): pybids replaces
    it silently, but a model naming an existing column as the output of another's
    transformation most likely meant a new name."""
    prefix, suffix = arguments.get("output_prefix", ""), arguments.get("output_suffix", "")
    replaced = [f"{prefix}{name}{suffix}" for name in arguments.get("output") or ()]
    replaced = [name for name in replaced if name in before and name not in inputs]
    if replaced:
        warnings.warn(f"{where}: Output {', '.join(map(repr, replaced))} replaced the "
                      "variable of that name (as pybids does; give another Output name to "
                      "keep both)", stacklevel=2)


def warn_unconvolved(variables: dict, x, where: str) -> None:
    """Warn, in one line, when ``Model.X`` (``x``, globs allowed) takes events that no
    Convolve instruction or ``Model.HRF`` convolved (``variables``: the run's after the
    transformations): they enter as boxcars sampled at the frame times, as pybids builds
    them, which is rarely meant (a model file without ``HRF``, or a name left out of its
    ``Variables``)."""
    names = [name for name, variable in variables.items() if _is_sparse(variable)
             and any(fnmatch.fnmatchcase(name, str(entry)) for entry in x)]
    if names:
        warnings.warn(f"{where}: {', '.join(map(repr, names))}: events not convolved (no "
                      "Model.HRF or Convolve names them): they enter as boxcars sampled at "
                      "the frame times", stacklevel=2)
