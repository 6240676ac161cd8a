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
(:class:`~.stats_model.StatsModel`, :class:`~.stats_model.NodeSpec`, ...) for the workflows:
edges are explicit (absent ``Edges`` chain the nodes in order, as the specification
says), HRF model names are nilearn's and contrast weights are numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import InputError, one_line
from .stats_model import (
    BIDS_MODEL_VERSIONS,
    INTERCEPT,
    INTERCEPT_NAME,
    LEVELS,
    DummyContrastsSpec,
    EdgeSpec,
    NodeSpec,
    StatsModel,
    _check_keys,
    _check_type,
    _json_type,
    _Where,
)
from .stats_model_fields import (
    _contrasts,
    _formula,
    _hrf,
    _in_x,
    _listed,
    _options,
    _transformations,
    convolved_variables,
    level_conditions,
)
from .stats_model_schema import _Constant, _Repeated, check_schema


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
    spec = input_lists(spec)
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


def input_lists(spec: dict) -> dict:
    """The model as pybids and FitLins read it where the published schema is stricter:
    each ``Input`` value given as one string or number (``"task": "MGT"``) is a
    one-element list (they pass it to the layout's query), and a node's ``Model`` without
    ``Type`` is ``glm`` (pybids's default). Other values as given."""
    def listed(value):
        return [value] if isinstance(value, (str, int, float)) \
            and not isinstance(value, bool) else value

    given = spec.get("Input")
    if isinstance(given, dict):
        spec = {**spec, "Input": {k: listed(v) for k, v in given.items()}}
    nodes = spec.get("Nodes")
    if isinstance(nodes, list) and any(isinstance(n, dict) and isinstance(n.get("Model"), dict)
                                       and "Type" not in n["Model"] for n in nodes):
        spec = {**spec, "Nodes": [{**n, "Model": {**n["Model"], "Type": "glm"}}
                                  if isinstance(n, dict) and isinstance(n.get("Model"), dict)
                                  and "Type" not in n["Model"] else n for n in nodes]}
    return spec


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
    contrasts = _contrasts(level_conditions(spec.get("Contrasts") or [], x), x, path, where)
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
