"""BIDS Stats Models (``*_smdl.json``, BIDSModelVersion 1.0.0) as small frozen data
classes (:class:`StatsModel`, :class:`NodeSpec`, :class:`EdgeSpec`, ...), the
specification's constants, and the helpers that name a JSON path in messages. Reading and
checking a file: :mod:`.stats_model_read` (the schema: :mod:`.stats_model_schema`; a
node's fields: :mod:`.stats_model_fields`).
"""
from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

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


def _shown(value, limit: int = 60) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


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


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string"}.get(
        type(value), "a number")
