"""A node's fields read and checked: ``Model.Formula``, ``Model.HRF``, ``Model.Options``,
``Transformations`` (by level), contrasts and their weights; the variables a node
convolves."""

from __future__ import annotations

import fnmatch
import re
from fractions import Fraction

import numpy as np

from .errors import InputError
from .group_variables import CATEGORICAL, check_table_instructions
from .hrf import CONVOLVED_SUFFIX, HRF_MODELS
from .stats_model import (
    INTERCEPT,
    UNSUPPORTED_HRF_MODELS,
    ContrastSpec,
    HRFSpec,
    NodeSpec,
    _check_type,
    _is_glob,
    _shown,
)
from .transform_checks import TRANSFORMER, check_instructions

#: A formula library's name of a level's column: ``C(group)[equalRange]`` (cell means)
#: or ``C(group)[T.equalRange]`` (treatment coding's spelling).
_LEVEL = re.compile(r"^C\(\s*([A-Za-z_]\w*)\s*\)\[(?:T\.)?(.+)\]$")
#: The columns convolving a variable adds (nilearn's names): its time and dispersion
#: derivatives, its FIR delays; a contrast may weigh them (``trial_type.a_delay_1``).
_CONVOLVED = re.compile(CONVOLVED_SUFFIX + "$")


def _in_x(condition, x) -> bool:
    """Whether a condition is one of ``Model.X`` (its entries may be globs; a categorical
    term ``C(g)`` holds the levels ``g.<level>``)."""
    if condition == INTERCEPT and not isinstance(condition, bool):
        return any(e == INTERCEPT and not isinstance(e, str) for e in x)
    return any(isinstance(e, str) and (e == condition or fnmatch.fnmatchcase(condition, e)
                                       or _level_of(condition, e)) for e in x)


def _level_of(condition, entry: str) -> bool:
    match = CATEGORICAL.match(entry)
    return bool(match) and isinstance(condition, str) and \
        condition.startswith(f"{match.group(1)}.")


def level_conditions(contrasts: list, x) -> list:
    """``Contrasts`` with each condition naming a level of a categorical term of ``X``
    (``C(group)[equalRange]``, or ``C(group)[T.equalRange]`` as the model zoo's NARPS
    model writes it) renamed to that level's design column, ``group.equalRange``
    (``Factor``'s name); other conditions as written."""
    terms = {CATEGORICAL.match(e).group(1) for e in x
             if isinstance(e, str) and CATEGORICAL.match(e)}
    if not terms:
        return contrasts

    def renamed(condition):
        match = _LEVEL.match(condition) if isinstance(condition, str) else None
        if match and match.group(1) in terms:
            return f"{match.group(1)}.{match.group(2)}"
        return condition

    return [{**c, "ConditionList": [renamed(v) for v in c["ConditionList"]]}
            if isinstance(c, dict) and isinstance(c.get("ConditionList"), list) else c
            for c in contrasts]


def _formula(formula, level, x, path, where) -> tuple:
    """A Dataset node's ``Formula`` as its design columns (``Model.X`` read as they are).

    Supported: Wilkinson terms of ``X`` names joined by ``+``, interactions written
    ``a:b`` (the product of ``a`` and ``b``, formulaic's name), ``0``/``-1`` (no
    intercept) or ``1``; without ``0`` the intercept is implied, as in R and formulaic.
    A categorical term ``C(g)`` of an ``X`` name is one indicator column per level of
    ``g`` (cell means), so only without the intercept (``0 + C(g)``).
    """
    if level != "Dataset":
        where.fail(path, "formulas are supported at Dataset nodes only; list the design "
                   "columns in X")
    text = formula.strip()
    text = text[1:] if text.startswith("~") else text
    terms = [t.strip() for t in re.split(r"(?<!-)\+", text.replace("- 1", "+ -1"))]
    intercept, columns = True, []
    for term in terms:
        categorical = CATEGORICAL.match(term)
        if term in ("0", "-1"):
            intercept = False
        elif term == "1":
            continue
        elif categorical and categorical.group(1) in x and not _is_glob(categorical.group(1)):
            name = f"C({categorical.group(1)})"
            if name not in columns:
                columns.append(name)
        elif term and all(part.strip() in x and not _is_glob(part.strip())
                          for part in term.split(":")):
            name = ":".join(part.strip() for part in term.split(":"))
            if name not in columns:
                columns.append(name)
        else:
            where.fail(path, f"term {term!r}: expected Model.X names joined by ':' (an "
                       "interaction), C(name) of an X name (its levels), '0' or '1' "
                       "(formulas of sums of such terms are supported)")
    if not columns and not intercept:
        where.fail(path, "no design column")
    categorical = [c for c in columns if CATEGORICAL.match(c)]
    if categorical and (intercept or len(categorical) > 1):
        where.fail(path, f"{categorical[0]} is supported as the only categorical term of "
                   f"a formula without the intercept ('0 + {categorical[0]}': a column per "
                   "level, the cell means)")
    return ((INTERCEPT,) if intercept else ()) + tuple(columns)


def _listed(x) -> str:
    return ", ".join(map(str, x))


def _hrf(hrf, level, model_type, x, path, where) -> HRFSpec | None:
    if hrf is None:
        return None
    if level != "Run" or model_type != "glm":
        where.fail(path, "only a Run-level glm node convolves (time series)")
    _check_type(hrf, "Description", str, where, path)
    written = hrf["Model"]
    model = " ".join(written.lower().split())
    if model in UNSUPPORTED_HRF_MODELS or model not in HRF_MODELS:
        where.fail(f"{path}.Model", f"expected one of {', '.join(HRF_MODELS)} (nilearn's "
                   f"models), got {written!r}")
    for i, variable in enumerate(hrf["Variables"]):
        if not _in_x(variable, x):
            where.fail(f"{path}.Variables[{i}]", f"{variable!r} is not in Model.X "
                       f"({_listed(x)})")
    parameters = hrf.get("Parameters") or {}
    for key in parameters:
        if key != "fir_delays" or model != "fir":
            allowed = "fir_delays, for Model 'fir'" if model == "fir" else \
                f"none for Model {model!r}"
            where.fail(f"{path}.Parameters.{key}", f"unknown parameter (allowed: {allowed})")
    fir_delays = None
    if model == "fir":
        if "fir_delays" not in parameters:
            where.fail(f"{path}.Parameters", "Model 'fir' needs Parameters.fir_delays (the "
                       "delays, in scans)")
        fir_delays = parameters["fir_delays"]
        if not (isinstance(fir_delays, list) and fir_delays and all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0
                for d in fir_delays) and len(set(fir_delays)) == len(fir_delays)):
            where.fail(f"{path}.Parameters.fir_delays", "expected a non-empty list of "
                       f"distinct integers >= 0 (delays in scans), got {_shown(fir_delays)}")
        fir_delays = tuple(fir_delays)
    return HRFSpec(tuple(hrf["Variables"]), model, fir_delays)


def _options(options, level, path, where) -> float | None:
    """``Model.Options``: the high-pass cut-off (Hz) or None; what is not supported refused."""
    if options is None:
        return None
    _check_type(options, "Description", str, where, path)
    if options.get("LowPassFilterCutoffHz") is not None:
        where.fail(f"{path}.LowPassFilterCutoffHz", "low-pass filtering is not supported "
                   "(remove it; the GLM models temporal autocorrelation instead)")
    if options.get("ReplaceVariables") is not None:
        where.fail(f"{path}.ReplaceVariables", "replacing design columns is not supported")
    if options.get("Mask") is not None:
        where.fail(f"{path}.Mask", "masks by entities are not supported (give the mask "
                   "with --mask FILE, or let each run's brain mask be used)")
    if options.get("Aggregate") not in (None, "none"):
        where.fail(f"{path}.Aggregate", "aggregating voxels is not supported (only 'none')")
    high_pass = options.get("HighPassFilterCutoffHz")
    if high_pass is not None:
        key = f"{path}.HighPassFilterCutoffHz"
        if isinstance(high_pass, bool) or not isinstance(high_pass, (int, float)):
            where.fail(key, f"expected a number (Hz), got {_shown(high_pass)}")
        if not high_pass > 0:
            where.fail(key, f"expected a frequency > 0 Hz, got {high_pass!r}")
        if level != "Run":
            where.fail(key, "a high-pass filter applies to Run-level time series only")
        high_pass = float(high_pass)
    return high_pass


def _transformations(transformations, level, index, where) -> tuple:
    if transformations is None:
        return ()
    path = f"Nodes[{index}].Transformations"
    _check_type(transformations, "Description", str, where, path)
    if transformations["Transformer"] != TRANSFORMER:  # the schema allows only this one
        where.fail(f"{path}.Transformer", f"expected {TRANSFORMER!r}")
    if level == "Run":
        check_instructions(transformations["Instructions"], where.node(index))
    else:
        check_table_instructions(transformations["Instructions"], where.node(index))
    return tuple(transformations["Instructions"])


def _weight(value, path, where) -> float:
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            where.fail(path, f"expected a number or a fraction such as '1/3', got {value!r}")
    if not np.isfinite(value):
        where.fail(path, f"expected a finite number, got {value!r}")
    return float(value)


def _contrasts(contrasts: list, x, path, where) -> tuple[ContrastSpec, ...]:
    result, names = [], {}
    for i, contrast in enumerate(contrasts):
        cpath = f"{path}.Contrasts[{i}]"
        _check_type(contrast, "Description", str, where, cpath)
        name = contrast["Name"]
        if not name:
            where.fail(f"{cpath}.Name", "expected a non-empty name")
        if name in names:
            where.fail(f"{cpath}.Name", f"contrast {name!r} already defined by "
                       f"{path}.Contrasts[{names[name]}]")
        names[name] = i
        conditions = contrast["ConditionList"]
        if not conditions:
            where.fail(f"{cpath}.ConditionList", "expected at least one condition")
        for j, condition in enumerate(conditions):
            if condition in conditions[:j]:
                where.fail(f"{cpath}.ConditionList[{j}]", f"{condition!r} is listed twice")
            if not _in_x(condition, x) and not (
                    isinstance(condition, str) and _in_x(_CONVOLVED.sub("", condition), x)):
                where.fail(f"{cpath}.ConditionList[{j}]", f"{condition!r} is not in Model.X "
                           f"({_listed(x)})")
        weights = contrast["Weights"]
        test = contrast["Test"]
        wpath = f"{cpath}.Weights"
        rows = weights if weights and isinstance(weights[0], list) else [weights]
        if weights and any(isinstance(w, list) for w in weights) and \
                not all(isinstance(w, list) for w in weights):
            where.fail(wpath, "mixes numbers and rows")
        if rows is weights and test != "F":
            where.fail(wpath, f"a {test} contrast has one row of weights (a 1-D list); "
                       "only F contrasts take a matrix")
        if not rows or not rows[0]:
            where.fail(wpath, "expected weights")
        numbers = []
        for r, row in enumerate(rows):
            rpath = f"{wpath}[{r}]" if rows is weights else wpath
            if len(row) != len(conditions):
                where.fail(rpath, f"{len(row)} weights for {len(conditions)} conditions")
            numbers.append(tuple(_weight(w, f"{rpath}[{k}]", where)
                                 for k, w in enumerate(row)))
        if all(v == 0 for row in numbers for v in row):
            where.fail(wpath, "all weights are zero")
        result.append(ContrastSpec(name, tuple(conditions), tuple(numbers), test))
    return tuple(result)


def convolved_variables(node: NodeSpec) -> tuple[str, ...]:
    """The variables a Run node convolves: Convolve inputs, then ``Model.HRF.Variables``.

    Names are as written (globs unexpanded).

    Raises
    ------
    InputError
        If a variable is convolved twice, e.g. ``Nodes[0]: variable 'trial_type.active'
        convolved twice (Transformations.Instructions[1] Convolve and Model.HRF)``.
    """
    seen: dict = {}
    sources = []
    for i, instruction in enumerate(node.transformations):
        if isinstance(instruction, dict) and instruction.get("Name") == "Convolve":
            names = instruction.get("Input", [])
            for name in names if isinstance(names, list) else [names]:
                sources.append((name, f"Transformations.Instructions[{i}] Convolve"))
    for name in node.hrf.variables if node.hrf else ():
        sources.append((name, "Model.HRF"))
    for name, source in sources:
        if name in seen:
            raise InputError(f"{node.path}: variable {name!r} convolved twice "
                             f"({seen[name]} and {source})")
        seen[name] = source
    return tuple(seen)
