"""A model file's ``Transformations`` checked before any data is read: each
instruction's name, its arguments (pybids' JSON keys, CamelCase) and their types, and
its outputs; what :mod:`.transformations` supports."""

from __future__ import annotations

import re

import numpy as np

from .errors import InputError
from .hrf import HRF_MODELS
from .transform_query import QueryError, parse_query, query_names, sanitized, with_identifiers

TRANSFORMER = "pybids-transforms-v1"


LAG_MODES = ("nearest", "reflect", "constant", "mirror", "wrap",
             "grid-mirror", "grid-constant", "grid-wrap")


_GLOB = re.compile(r"[*?\[\]]")


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
    "And": {},
    "Or": {},
    "Not": {},
    "Assign": {"target": _check_name,
               "input_attr": _choice("amplitude", "onset", "duration"),
               "target_attr": _choice("amplitude", "onset", "duration")},
    "Filter": {"query": _check_name, "by": _check_names},
    "Split": {"by": _check_names},
    "ToDense": {},
    "Group": {},
}


#: Arguments without a default (pybids's required ones).
_REQUIRED = {"Assign": {"target": "the variable whose copy takes the input's values"},
             "Filter": {"query": "the condition events must meet, e.g. \"RT > 0.5\""},
             "Split": {"by": "the variable(s) whose levels split the input"}}


#: pybids-transforms-v1 names refused, with the reason (checked before any data).
_REFUSED = {
    "Resample": "a run's dense variables are sampled at the scans here (the design's "
                "grid); resampling them elsewhere could not enter the design (remove it)",
}


#: pybids's arguments refused, with the reason.
_REFUSED_ARGUMENTS = {
    ("ToDense", "sampling_rate"): "events are made dense at the frame times here (the "
                                  "design's grid); remove SamplingRate",
}


#: Transformations whose results need names (pybids's ``_output_required``).
_OUTPUT_REQUIRED = {"Rename", "Copy", "Product", "Sum", "And", "Or", "Group"}


#: Transformations that make one variable of all their inputs.
_ONE_OUTPUT = {"Product", "Sum", "And", "Or", "Group"}


#: Transformations that write nothing new (no Output arguments).
_NO_OUTPUT = {"Factor", "Select", "Delete", "Split"}


#: Transformations that accept categorical (text) variables.
_CATEGORICAL_OK = {"Factor", "Replace", "DropNA", "Rename", "Copy", "Select", "Delete",
                   "Assign", "Filter"}


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
        name = _canonical(instruction.get("Name"))
        if name in _REFUSED:
            raise InputError(f"{where}.Name: {name} is not supported: {_REFUSED[name]}")
        if name not in _ARGUMENTS:
            raise InputError(f"{where}.Name: expected one of "
                             f"{', '.join(SUPPORTED_TRANSFORMATIONS)}, got "
                             f"{instruction.get('Name')!r}")
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
            if (name, snake) in _REFUSED_ARGUMENTS:
                raise InputError(f"{where}.{key}: not supported: "
                                 f"{_REFUSED_ARGUMENTS[name, snake]}")
            if snake not in allowed or snake in arguments:
                raise InputError(f"{where}.{key}: unknown argument (allowed: "
                                 f"{', '.join(_camel(k) for k in allowed)})")
            problem = allowed[snake](value)
            if problem:
                raise InputError(f"{where}.{key}: {problem}, got {_shown(value)}")
            arguments[snake] = value
        if "input" not in arguments:
            raise InputError(f"{where}.Input: required (the variables to transform)")
        for key, meaning in _REQUIRED.get(name, {}).items():
            if key not in arguments:
                raise InputError(f"{where}.{_camel(key)}: required ({meaning})")
        arguments["input"] = _listify(arguments["input"])
        if "output" in arguments:
            arguments["output"] = _listify(arguments["output"])
        _check_outputs(name, arguments, where)
        if name == "Convolve":
            _convolve_model(arguments, where)
        if name == "Filter":
            _check_query(arguments, where)
        checked.append(arguments)
    return checked


def _canonical(name):
    """A transformation's name as this package spells it: pybids's, whatever the case
    (bids-matlab reads names case-insensitively; the model zoo's FaceRep files write
    ``AND``)."""
    if not isinstance(name, str):
        return name
    known = {n.lower(): n for n in (*_ARGUMENTS, *_REFUSED)}
    return known.get(name.lower(), name)


def _check_query(arguments: dict, where: str) -> None:
    """A Filter's Query parsed (never executed) and its names checked, before any data."""
    names = [*arguments["input"], *_listify(arguments.get("by", []))]
    try:
        tree = parse_query(with_identifiers(arguments["query"], names))
    except QueryError as exc:
        raise InputError(f"{where}.Query: {exc}, got {_shown(arguments['query'])}") from None
    if any(_GLOB.search(n) for n in names):
        return  # the names are known once the globs are expanded
    known = {sanitized(n) for n in names}
    for identifier in query_names(tree):
        if identifier not in known:
            raise InputError(f"{where}.Query: unknown name {identifier!r} (the query may "
                             f"name the Input and By variables: {', '.join(names)})")


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
