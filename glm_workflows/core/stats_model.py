"""BIDS Stats Models (``*_smdl.json``, BIDSModelVersion 1.0.0): reading and checking.

:func:`load_stats_model` reads a model file and refuses, in one line naming the file
and the JSON path of the problem, anything the published schema refuses (the
``bsmschema`` package, the specification's own Pydantic models) and what this package
cannot run or the specification forbids but the schema lets through: unknown keys,
values of the wrong type, a model without a Run node, duplicate node or contrast names,
edges naming missing nodes, going down levels or making a cycle, contrast weights that
do not fit their conditions, conditions not in ``Model.X``, unknown HRF models,
unsupported options (a low-pass filter, formulas other than a Dataset node's sums
of X names and their ``a:b`` interactions, replaced variables), transformations
this package does not implement and a variable convolved twice.

:func:`stats_model` turns the checked JSON into small frozen data classes
(:class:`StatsModel`, :class:`NodeSpec`, :class:`EdgeSpec`, ...) for the workflows:
edges are explicit (absent ``Edges`` chain the nodes in order, as the specification
says), HRF model names are nilearn's and contrast weights are numbers.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import InputError, one_line
from .group_variables import check_table_instructions
from .hrf import HRF_MODELS
from .transform_checks import TRANSFORMER, check_instructions

LEVELS = ("Run", "Session", "Subject", "Dataset")
MODEL_TYPES = ("glm", "meta")
#: The tests the specification defines (``StatisticalTest``).
TESTS = ("t", "F", "pass")
BIDS_MODEL_VERSIONS = ("1.0.0", "1.0")
#: ``Model.X``'s intercept, and the name of its dummy contrast (pybids's).
INTERCEPT = 1
INTERCEPT_NAME = "intercept"
#: HRF models the specification names that nilearn has no model for.
UNSUPPORTED_HRF_MODELS = ("afni",)

_FREE = None  # an object whose keys are the user's (filters, software settings)
_KEYS = {
    "model": {"Name", "BIDSModelVersion", "Description", "Input", "Nodes", "Edges"},
    "node": {"Level", "Name", "GroupBy", "Transformations", "Model", "Contrasts",
             "DummyContrasts", "Description"},
    "transformations": {"Transformer", "Instructions", "Description"},
    "model_section": {"Type", "X", "Formula", "HRF", "Options", "Software", "Description"},
    "hrf": {"Variables", "Model", "Parameters", "Description"},
    "options": {"HighPassFilterCutoffHz", "LowPassFilterCutoffHz", "ReplaceVariables",
                "Mask", "Aggregate", "Description"},
    "contrast": {"Name", "ConditionList", "Weights", "Test", "Description"},
    "dummy": {"Contrasts", "Test", "Description"},
    "edge": {"Source", "Destination", "Filter", "Description"},
}


@dataclass(frozen=True)
class HRFSpec:
    """``Model.HRF``: the variables to convolve and nilearn's HRF model."""

    variables: tuple[str, ...]
    model: str
    fir_delays: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ContrastSpec:
    """A contrast: conditions (names, or :data:`INTERCEPT`), weights and test.

    ``weights`` has one row per contrast row (one for t and pass contrasts).
    """

    name: str
    conditions: tuple
    weights: tuple[tuple[float, ...], ...]
    test: str

    @property
    def matrix(self) -> np.ndarray:
        """The weights, shape ``(n_rows, n_conditions)``."""
        return np.array(self.weights, dtype=float)


@dataclass(frozen=True)
class DummyContrastsSpec:
    """``DummyContrasts``: conditions (None: every ``Model.X`` entry) and test."""

    conditions: tuple | None
    test: str


@dataclass(frozen=True)
class NodeSpec:
    """One node of a model, normalised.

    Attributes
    ----------
    name, level : str
    group_by : tuple of str
    model_type : {'glm', 'meta'}
    x : tuple
        ``Model.X``: names (globs allowed) and :data:`INTERCEPT`.
    hrf : HRFSpec or None
    high_pass : float or None
        ``Model.Options.HighPassFilterCutoffHz`` (Hz).
    transformations : tuple of dict
        ``Transformations.Instructions`` as written (for
        :func:`glm_workflows.core.transformations.apply_transformations`).
    contrasts : tuple of ContrastSpec
    dummy_contrasts : DummyContrastsSpec or None
    software : dict
        ``Model.Software``, unchecked.
    path : str
        The node in messages, e.g. ``"model.json: Nodes[0]"``.
    """

    name: str
    level: str
    group_by: tuple[str, ...]
    model_type: str
    x: tuple
    hrf: HRFSpec | None = None
    high_pass: float | None = None
    transformations: tuple = ()
    contrasts: tuple[ContrastSpec, ...] = ()
    dummy_contrasts: DummyContrastsSpec | None = None
    software: dict = field(default_factory=dict)
    path: str = ""

    def expanded_contrasts(self, columns=None) -> tuple[ContrastSpec, ...]:
        """The explicit contrasts, then the dummy contrasts as contrasts.

        Dummy contrasts without a list take every ``Model.X`` entry; glob entries are
        matched against ``columns`` (the design's, if given) and otherwise skipped. The
        intercept's dummy contrast is named ``'intercept'`` (pybids's name; at a node
        grouped by ``contrast``, the wiring names it after the incoming contrast, as pybids
        does).
        """
        if self.dummy_contrasts is None:
            return self.contrasts
        conditions = self.dummy_contrasts.conditions
        if conditions is None:
            conditions = []
            for entry in self.x:
                if isinstance(entry, str) and _is_glob(entry):
                    conditions += [c for c in columns or () if fnmatch.fnmatchcase(c, entry)]
                else:
                    conditions.append(entry)
        dummies = tuple(
            ContrastSpec(INTERCEPT_NAME if c == INTERCEPT else c, (c,), ((1.0,),),
                         self.dummy_contrasts.test)
            for c in dict.fromkeys(conditions))
        return self.contrasts + dummies


@dataclass(frozen=True)
class EdgeSpec:
    """An edge: the source node's outputs, filtered, go to the destination node."""

    source: str
    destination: str
    filter: dict | None = None


@dataclass(frozen=True)
class StatsModel:
    """A checked BIDS Stats Model: nodes in file order and explicit edges."""

    name: str
    version: str
    nodes: tuple[NodeSpec, ...]
    edges: tuple[EdgeSpec, ...]
    description: str | None = None
    input: dict | None = None
    source: str = ""

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def root(self) -> NodeSpec:
        """The node without inputs (the Run node the data enter)."""
        destinations = {edge.destination for edge in self.edges}
        return next(node for node in self.nodes if node.name not in destinations)

    def inputs(self, name: str) -> tuple[EdgeSpec, ...]:
        """The edges into node ``name``."""
        return tuple(edge for edge in self.edges if edge.destination == name)

    def outputs(self, name: str) -> tuple[EdgeSpec, ...]:
        """The edges out of node ``name``."""
        return tuple(edge for edge in self.edges if edge.source == name)


# --------------------------------------------------------------------- reading


def load_stats_model(path: str | os.PathLike) -> dict:
    """Read and check a BIDS Stats Model file.

    Parameters
    ----------
    path : str or PathLike
        A ``*_smdl.json`` file.

    Returns
    -------
    dict
        The model as read (checked); :func:`stats_model` normalises it.

    Raises
    ------
    InputError
        One line naming the file and, for a problem inside it, its JSON path, e.g.
        ``model.json: Nodes[1].Model.X: field required``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: model file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the model file ({one_line(exc)})") from None
    spec = parse_stats_model(text, str(path))
    stats_model(spec, str(path))
    return spec


def read_stats_model(path: str | os.PathLike) -> StatsModel:
    """:func:`load_stats_model`, normalised by :func:`stats_model`."""
    return stats_model(load_stats_model(path), str(path))


def parse_stats_model(text: str, source: str = "model") -> dict:
    """Parse a model's JSON text; refuse invalid JSON, repeated keys and NaN/Infinity."""
    def no_repeats(pairs):
        result = {}
        for key, value in pairs:
            if key in result:
                raise _Repeated(key)
            result[key] = value
        return result

    def no_constants(name):
        raise _Constant(name)

    try:
        spec = json.loads(text, object_pairs_hook=no_repeats, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON (line {exc.lineno} column {exc.colno}: "
                         f"{exc.msg})") from None
    except _Repeated as exc:
        raise InputError(f"{source}: not valid JSON: key {exc.args[0]!r} given twice in "
                         "one object") from None
    except _Constant as exc:
        raise InputError(f"{source}: not valid JSON: {exc.args[0]} is not a JSON "
                         "number") from None
    if not isinstance(spec, dict):
        raise InputError(f"{source}: expected a JSON object (a BIDS Stats Model), got "
                         f"{_json_type(spec)}")
    return spec


class _Repeated(Exception):
    pass


class _Constant(Exception):
    pass


# --------------------------------------------------------------------- schema


_UNION_TAG = re.compile(r"^(str|int|float|bool|none|[a-z-]+\[.*\])$")


def check_schema(spec: dict, source: str = "model") -> None:
    """Validate against the published schema (``bsmschema``); one line on failure."""
    from bsmschema.models import BIDSStatsModel
    from pydantic import ValidationError

    try:
        BIDSStatsModel.model_validate(spec)
    except ValidationError as exc:
        raise InputError(f"{source}: {_schema_error(exc.errors())}") from None


def _schema_error(errors: list) -> str:
    """One line for pydantic's errors: the first place, the alternatives a union
    allowed there merged, at the deepest place a union's branches reached."""
    def split(loc):
        for i, part in enumerate(loc):
            if isinstance(part, str) and _UNION_TAG.match(part):
                return loc[:i]
        return loc

    def clean(loc):
        return tuple(p for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p)))

    prefix = split(errors[0]["loc"])
    group = [e for e in errors if split(e["loc"]) == prefix]
    depth = max(len(clean(e["loc"])) for e in group)
    group = [e for e in group if len(clean(e["loc"])) == depth]
    where = _json_path(clean(group[0]["loc"]))
    messages = list(dict.fromkeys(e["msg"] for e in group))
    lead = "Input should be "
    if len(messages) > 1 and all(m.startswith(lead) for m in messages):
        message = lead + " or ".join(m[len(lead):] for m in messages)
    else:
        message = "; ".join(messages)
    message = message[:1].lower() + message[1:]
    if group[0]["type"] != "missing":
        message += f" (got {_shown(group[0].get('input'))})"
    return f"{where}: {message}" if where else message


def _json_path(loc) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _shown(value, limit: int = 60) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string"}.get(
        type(value), "a number")


# --------------------------------------------------------------------- our checks


def stats_model(spec: dict, source: str = "model") -> StatsModel:
    """Check a model (schema, then this package's checks) and normalise it.

    Parameters
    ----------
    spec : dict
        The model's JSON.
    source : str
        Names the model (its file) in messages.

    Returns
    -------
    StatsModel

    Raises
    ------
    InputError
        One line ``<source>: <JSON path>: <problem>`` on the first problem.
    """
    check_schema(spec, source)
    _check_keys(spec, "model", "", source)
    where = _Where(source)
    version = spec["BIDSModelVersion"]
    if version not in BIDS_MODEL_VERSIONS:
        where.fail("BIDSModelVersion", f"expected '1.0.0', got {version!r}")
    if not spec["Name"]:
        where.fail("Name", "expected a non-empty name")
    _check_type(spec, "Description", str, where, "")
    nodes_spec = spec["Nodes"]
    if not nodes_spec:
        where.fail("Nodes", "expected at least one node")
    nodes = tuple(_node(node, i, where) for i, node in enumerate(nodes_spec))
    names: dict = {}
    for i, node in enumerate(nodes):
        if node.name in names:
            where.fail(f"Nodes[{i}].Name", f"node name {node.name!r} already names "
                       f"Nodes[{names[node.name]}]")
        names[node.name] = i
    if not any(node.level == "Run" for node in nodes):
        where.fail("Nodes", "no Run node (the run-level model the data enter; add a node "
                   "with Level 'Run')")
    edges = _edges(spec.get("Edges"), nodes, where)
    return StatsModel(name=spec["Name"], version=version, nodes=nodes, edges=edges,
                      description=spec.get("Description"), input=spec.get("Input"),
                      source=source)


class _Where:
    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str):
        raise InputError(f"{self.source}: {path}: {message}" if path
                         else f"{self.source}: {message}")

    def node(self, index: int) -> str:
        return f"{self.source}: Nodes[{index}]"


def _check_keys(value, kind: str, path: str, source: str) -> None:
    """Refuse keys the specification does not define, anywhere in the model."""
    allowed = _KEYS[kind]
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise InputError(f"{source}: {where}: unknown key (allowed here: "
                             f"{', '.join(sorted(allowed))})")
    children = {
        "model": {"Nodes": "node", "Edges": "edge"},
        "node": {"Transformations": "transformations", "Model": "model_section",
                 "Contrasts": "contrast", "DummyContrasts": "dummy"},
        "model_section": {"HRF": "hrf", "Options": "options"},
    }.get(kind, {})
    for key, child in children.items():
        item = value.get(key)
        if isinstance(item, list):
            for i, element in enumerate(item):
                _check_keys(element, child, f"{path}.{key}[{i}]" if path else f"{key}[{i}]",
                            source)
        elif isinstance(item, dict):
            _check_keys(item, child, f"{path}.{key}" if path else key, source)


def _check_type(value: dict, key: str, kind, where: _Where, path: str) -> None:
    if key in value and value[key] is not None and (
            not isinstance(value[key], kind) or isinstance(value[key], bool)):
        name = {str: "a string", float: "a number", dict: "an object"}.get(kind, str(kind))
        where.fail(f"{path}.{key}" if path else key,
                   f"expected {name}, got {_json_type(value[key])}")


def _is_glob(name: str) -> bool:
    return bool(re.search(r"[*?\[\]]", name))


def _in_x(condition, x) -> bool:
    """Whether a condition is one of ``Model.X`` (its entries may be globs)."""
    if condition == INTERCEPT and not isinstance(condition, bool):
        return any(e == INTERCEPT and not isinstance(e, str) for e in x)
    return any(isinstance(e, str) and (e == condition or fnmatch.fnmatchcase(condition, e))
               for e in x)


def _node(spec: dict, index: int, where: _Where) -> NodeSpec:
    path = f"Nodes[{index}]"
    name, level = spec["Name"], spec["Level"]
    if not name:
        where.fail(f"{path}.Name", "expected a non-empty name")
    _check_type(spec, "Description", str, where, path)
    model = spec["Model"]
    mpath = f"{path}.Model"
    _check_type(model, "Description", str, where, mpath)
    model_type = model["Type"]
    if level == "Run" and model_type != "glm":
        where.fail(f"{mpath}.Type", f"a Run node models time series: expected 'glm', got "
                   f"{model_type!r}")
    x = tuple(model["X"])
    if not x:
        where.fail(f"{mpath}.X", "expected at least one variable")
    for i, entry in enumerate(x):
        if any(e == entry and type(e) is type(entry) for e in x[:i]):
            where.fail(f"{mpath}.X[{i}]", f"{entry!r} is listed twice")
    if model.get("Formula") is not None:
        x = _formula(model["Formula"], level, x, f"{mpath}.Formula", where)
    if model.get("Software") is not None and not isinstance(model["Software"], dict):
        where.fail(f"{mpath}.Software", "expected an object")
    hrf = _hrf(model.get("HRF"), level, model_type, x, f"{mpath}.HRF", where)
    high_pass = _options(model.get("Options"), level, f"{mpath}.Options", where)
    transformations = _transformations(spec.get("Transformations"), level, index, where)
    contrasts = _contrasts(spec.get("Contrasts") or [], x, path, where)
    dummy = spec.get("DummyContrasts")
    dummy_contrasts = None
    if dummy is not None:
        _check_type(dummy, "Description", str, where, f"{path}.DummyContrasts")
        conditions = dummy.get("Contrasts")
        for i, condition in enumerate(conditions or ()):
            if not _in_x(condition, x):
                where.fail(f"{path}.DummyContrasts.Contrasts[{i}]",
                           f"{condition!r} is not in Model.X ({_listed(x)})")
        dummy_contrasts = DummyContrastsSpec(
            None if conditions is None else tuple(conditions), dummy["Test"])
        explicit = {c.name for c in contrasts}
        for i, condition in enumerate(conditions or ()):
            dummy_name = INTERCEPT_NAME if condition == INTERCEPT else condition
            if dummy_name in explicit:
                where.fail(f"{path}.DummyContrasts.Contrasts[{i}]",
                           f"contrast {dummy_name!r} is also defined in Contrasts")
    node = NodeSpec(
        name=name, level=level, group_by=tuple(spec["GroupBy"]), model_type=model_type,
        x=x, hrf=hrf, high_pass=high_pass, transformations=transformations,
        contrasts=contrasts, dummy_contrasts=dummy_contrasts,
        software=dict(model.get("Software") or {}), path=where.node(index))
    convolved_variables(node)
    return node


def _formula(formula, level, x, path, where) -> tuple:
    """A Dataset node's ``Formula`` as its design columns (``Model.X`` read as they are).

    Supported: Wilkinson terms of ``X`` names joined by ``+``, interactions written
    ``a:b`` (the product of ``a`` and ``b``, formulaic's name), ``0``/``-1`` (no
    intercept) or ``1``; without ``0`` the intercept is implied, as in R and formulaic.
    """
    if level != "Dataset":
        where.fail(path, "formulas are supported at Dataset nodes only; list the design "
                   "columns in X")
    text = formula.strip()
    text = text[1:] if text.startswith("~") else text
    terms = [t.strip() for t in re.split(r"(?<!-)\+", text.replace("- 1", "+ -1"))]
    intercept, columns = True, []
    for term in terms:
        if term in ("0", "-1"):
            intercept = False
        elif term == "1":
            continue
        elif term and all(part.strip() in x and not _is_glob(part.strip())
                          for part in term.split(":")):
            name = ":".join(part.strip() for part in term.split(":"))
            if name not in columns:
                columns.append(name)
        else:
            where.fail(path, f"term {term!r}: expected Model.X names joined by ':' (an "
                       "interaction), '0' or '1' (formulas of sums of such terms are "
                       "supported)")
    if not columns and not intercept:
        where.fail(path, "no design column")
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
    if level not in ("Run", "Dataset"):
        where.fail(path, f"transformations at a {level} node are not supported (only Run "
                   "nodes' of events and confounds, and Dataset nodes' of participants.tsv)")
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
            if not _in_x(condition, x):
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


# --------------------------------------------------------------------- edges


def _edges(edges, nodes: tuple[NodeSpec, ...], where: _Where) -> tuple[EdgeSpec, ...]:
    names = {node.name: node for node in nodes}
    if not edges:  # absent: the nodes in sequence (the specification's rule)
        result = tuple(EdgeSpec(a.name, b.name) for a, b in zip(nodes[:-1], nodes[1:], strict=True))
        paths = [f"Nodes[{i + 1}]" for i in range(len(result))]
    else:
        result, paths, seen = [], [], {}
        for i, edge in enumerate(edges):
            path = f"Edges[{i}]"
            _check_type(edge, "Description", str, where, path)
            for key in ("Source", "Destination"):
                if edge[key] not in names:
                    where.fail(f"{path}.{key}", f"no node named {edge[key]!r} (nodes: "
                               f"{', '.join(names)})")
            pair = (edge["Source"], edge["Destination"])
            if pair[0] == pair[1]:
                where.fail(path, f"node {pair[0]!r} connected to itself")
            if pair in seen:
                where.fail(path, f"repeats {seen[pair]} ({pair[0]} -> {pair[1]})")
            seen[pair] = path
            filt = edge.get("Filter")
            result.append(EdgeSpec(*pair, None if filt is None else
                                   {k: tuple(v) for k, v in filt.items()}))
            paths.append(path)
        result = tuple(result)
    for edge, path in zip(result, paths, strict=True):
        source, destination = names[edge.source], names[edge.destination]
        if LEVELS.index(destination.level) < LEVELS.index(source.level):
            where.fail(path, f"from {source.level} node {source.name!r} down to "
                       f"{destination.level} node {destination.name!r} (edges go up: "
                       f"{', '.join(LEVELS)})" + ("" if edges else "; without Edges, "
                                                 "the nodes are chained in their order"))
    _check_graph(result, nodes, where)
    return result


def _check_graph(edges, nodes, where: _Where) -> None:
    """One root, a Run node, and no cycle."""
    destinations = {edge.destination for edge in edges}
    roots = [node for node in nodes if node.name not in destinations]
    if len(roots) != 1 and roots:
        where.fail("Edges", f"{len(roots)} nodes have no input edge "
                   f"({', '.join(n.name for n in roots)}); a model has one root node")
    if roots and roots[0].level != "Run":
        where.fail("Edges", f"the root node {roots[0].name!r} is a {roots[0].level} node; "
                   "the root must be a Run node")
    remaining = {node.name for node in nodes}
    while remaining:
        free = [n for n in remaining
                if not any(e.destination == n and e.source in remaining for e in edges)]
        if not free:
            cycle = set(remaining)
            while True:  # leave out the nodes after the cycle
                sinks = {n for n in cycle
                         if not any(e.source == n and e.destination in cycle for e in edges)}
                if not sinks:
                    break
                cycle -= sinks
            cycle = sorted(cycle)
            where.fail("Edges", f"the edges make a cycle through {', '.join(cycle)}")
        remaining -= set(free)
