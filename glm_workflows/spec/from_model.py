"""A BIDS Stats Model file straight to an :class:`~glm_workflows.spec.analysis.AnalysisSpec`
(no flag strings): :func:`read_model`.

The model is read and checked by :mod:`glm_workflows.core.stats_model`, its chain by
:func:`glm_workflows.spec.bsm.check_node_chain`; the project's entry under each node's
``Model.Software["glm-workflows"]`` (what BIDS Stats Models has no field for; written by
:func:`glm_workflows.spec.serialize.to_bids_stats_model`) is read and checked here.
Dataset paths and the selection come from the keywords; ``Input`` fills what they leave.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields, replace

from ..core.errors import InputError
from ..core.smoothing import check_fwhm_value
from ..core.stats_model import INTERCEPT, StatsModel
from ..core.stats_model_read import read_stats_model, stats_model
from ..settings import DEFAULT_CONFOUNDS, DEFAULT_INFERENCE, DEFAULT_MODEL, GroupSettings
from .analysis import (
    AnalysisSpec,
    Contrast,
    Edge,
    GroupModel,
    InputSpec,
    MetaModel,
    ModelDesign,
    NilearnDesign,
    Node,
    RunModel,
)
from .bsm import (
    check_node_graph,
    dataset_contrasts,
    dataset_covariates,
    designed,
    designed_node,
    edge_filter,
    filters_kept,
    run_contrasts,
    session_node,
    subject_group_by,
)
from .bsm_write import SOFTWARE
from .frozen import freeze

#: ``Input`` entities and the InputSpec field each fills.
INPUT_ENTITIES = {"task": "task", "subject": "subjects", "session": "sessions",
                  "run": "runs", "space": "space"}
_RUN_KEYS = {"Inference", "Design", "NoiseModel", "Confounds", "Strict", "Contrasts",
             "GroupOnly", "SmoothingFWHM", "SaveResiduals"}
_GROUP_KEYS = {"Group"}


def read_model(path: str | os.PathLike, **selection) -> AnalysisSpec:
    """The spec of a model file.

    Parameters
    ----------
    path : str or PathLike
        A ``*_smdl.json`` file.
    **selection
        :class:`~glm_workflows.spec.analysis.InputSpec` fields (``bids_dir``,
        ``derivatives``, ``from_derivatives``, ``subjects``, ...): they fill or override
        the model's ``Input``. With ``from_derivatives``, the Run node stays out (the
        group level alone, on the maps the first level wrote).

    Raises
    ------
    InputError
        One line naming the file and the JSON path of the problem.
    """
    if not isinstance(path, str | os.PathLike):
        raise InputError(f"read_model: path: expected a model file's path, got a "
                         f"{type(path).__name__} (spec_from_dict takes a model read as JSON)")
    return spec_from_stats_model(read_stats_model(path), **selection)


def spec_from_dict(model: dict, source: str = "model", **selection) -> AnalysisSpec:
    """:func:`read_model` of a model already read as JSON."""
    return spec_from_stats_model(stats_model(model, source), **selection)


def spec_from_stats_model(model: StatsModel, **selection) -> AnalysisSpec:
    """:func:`read_model` of a checked :class:`~glm_workflows.core.stats_model.StatsModel`."""
    unknown = sorted(set(selection) - {f.name for f in fields(InputSpec)})
    if unknown:
        raise TypeError(f"read_model: unknown selection {', '.join(unknown)}")
    run = model.root
    subject, datasets = check_node_graph(model)
    for dataset in datasets:
        _passing(model, dataset)
    entry = _entry(run, _RUN_KEYS, model.source)
    group_only = bool(entry.get("GroupOnly")) or selection.get("from_derivatives") is not None
    if entry.get("GroupOnly") and selection.get("from_derivatives") is None:
        raise InputError(f"{model.source}: {run.path}: a group-level-only model (its Run "
                         "node is a placeholder): read it with from_derivatives")
    contrasts = _run_contrasts(run, entry, model.source)
    inputs = _inputs(model, selection, group_only, contrasts, entry)
    nodes, edges = [], []
    if not group_only:
        nodes.append(Node("Run", run.name, _run_model(run, entry, model.source),
                          group_by=run.group_by, contrasts=contrasts,
                          transformations=freeze(run.transformations)
                          if entry.get("Design", {}).get("type") != "NilearnDesign" else ()))
    session = session_node(model)
    if session is not None and not group_only:
        nodes.append(_meta_node(session, session.group_by))
    if subject is not None and not group_only:
        nodes.append(_meta_node(subject, subject_group_by(subject)))
    for dataset in datasets:
        group = _group(dataset, model.source)
        if group_only:
            group = replace(group, inputs=_passing(model, dataset))
        nodes.append(Node("Dataset", dataset.name, GroupModel(group),
                          group_by=dataset.group_by))
    if not group_only:
        for edge in model.edges:
            labels = edge_filter(model, edge)
            edges.append(Edge(edge.source, edge.destination,
                              (("contrast", labels),) if labels else ()))
    inference = replace(DEFAULT_INFERENCE, **entry.get("Inference", {}))
    return AnalysisSpec(inputs=inputs, nodes=tuple(nodes), edges=tuple(edges),
                        inference=inference, source=model.source, name=model.name,
                        description=model.description)


def _meta_node(node, group_by) -> Node:
    """A Session or Subject node: fixed effects, with its design if it has one."""
    if not designed(node):
        return Node(node.level, node.name, MetaModel(), group_by=group_by)
    return Node(node.level, node.name, MetaModel(x=tuple(node.x)), group_by=group_by,
                contrasts=tuple(Contrast(*triple) for triple in run_contrasts(node)),
                transformations=freeze(node.transformations))


def _passing(model, dataset) -> tuple[str, ...]:
    """The contrasts the filters on the way to ``dataset`` let through (no filter: ());
    filters no contrast passes are refused. After a node with a design, the filters
    from it on (its contrasts are new)."""
    filters, current = [], dataset
    start = designed_node(model) or model.root
    while current.name != start.name:
        edge = model.inputs(current.name)[0]
        filters.insert(0, (edge.source, edge.destination, edge_filter(model, edge)))
        current = model.node(edge.source)
    return filters_kept(model.source, filters)


def _entry(node, allowed: set, source: str) -> dict:
    """The node's ``Model.Software["glm-workflows"]``, its keys checked."""
    entry = (node.software or {}).get(SOFTWARE) or {}
    if not isinstance(entry, dict):
        raise InputError(f"{node.path}.Model.Software.{SOFTWARE}: expected an object")
    for key in entry:
        if key not in allowed:
            raise InputError(f"{node.path}.Model.Software.{SOFTWARE}.{key}: unknown key "
                             f"(allowed here: {', '.join(sorted(allowed))})")
    return entry


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _run_contrasts(run, entry, source) -> tuple:
    if "Contrasts" in entry and not entry.get("GroupOnly"):
        where = f"{run.path}.Model.Software.{SOFTWARE}.Contrasts"
        try:
            return tuple(Contrast(name, test, tuple(rows)) for name, test, rows
                         in entry["Contrasts"])
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: {exc}") from None
    return tuple(Contrast(*triple) for triple in run_contrasts(run))


def _run_model(run, entry, source) -> RunModel:
    design = entry.get("Design", {})
    where = f"{run.path}.Model.Software.{SOFTWARE}"
    try:
        if design.get("type") == "NilearnDesign":
            made = NilearnDesign(**{k: v for k, v in design.items() if k != "type"})
        else:
            made = ModelDesign(x=run.x, hrf=run.hrf, high_pass=run.high_pass,
                               path=run.path, **design)
        confounds = {k: _tuples(v) for k, v in entry.get("Confounds", {}).items()}
        smoothing = entry.get("SmoothingFWHM")
        check_fwhm_value(smoothing, f"{where}.SmoothingFWHM")
        save_residuals = entry.get("SaveResiduals", DEFAULT_MODEL.save_residuals)
        if not isinstance(save_residuals, bool):
            raise InputError(f"{where}.SaveResiduals: expected true or false, got "
                             f"{json.dumps(save_residuals)}")
        return RunModel(made, noise_model=entry.get("NoiseModel", "ar1"),
                        confounds=replace(DEFAULT_CONFOUNDS, **confounds),
                        strict=bool(entry.get("Strict", False)),
                        smoothing_fwhm=None if smoothing is None else float(smoothing),
                        save_residuals=save_residuals)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from None


def _group(dataset, source) -> GroupSettings:
    entry = _entry(dataset, _GROUP_KEYS, source).get("Group", {})
    where = f"{dataset.path}.Model.Software.{SOFTWARE}.Group"
    settings = {"model": "one-sample", "covariates": dataset_covariates(dataset),
                "transformations": freeze(dataset.transformations),
                "intercept": INTERCEPT in dataset.x}
    settings["contrasts"] = dataset_contrasts(dataset) if "contrasts" not in entry else ()
    settings.update({k: _tuples(v) for k, v in entry.items()})
    try:
        return GroupSettings(**settings)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from None


def _inputs(model, selection, group_only, contrasts, entry) -> InputSpec:
    values = {}
    for entity, wanted in (model.input or {}).items():
        if entity not in INPUT_ENTITIES:
            raise InputError(f"{model.source}: Input.{entity}: not supported (supported: "
                             f"{', '.join(INPUT_ENTITIES)})")
        wanted = tuple(str(w) for w in (wanted if isinstance(wanted, list) else [wanted]))
        if entity in ("task", "space"):
            if len(wanted) != 1:
                raise InputError(f"{model.source}: Input.{entity}: one {entity} per run of "
                                 f"glm-workflows, got {list(wanted)}")
            wanted = wanted[0]
        if group_only and entity not in ("task", "subject"):
            continue  # the maps were chosen when the first level ran
        values[INPUT_ENTITIES[entity]] = wanted
    task = selection.get("task")
    if task is not None and "task" in values and task != values["task"]:
        raise InputError(f"--task {task}: the model file's Input.task is {values['task']}")
    values.update({k: v for k, v in selection.items() if v is not None})
    if group_only:
        if entry.get("GroupOnly"):
            values["contrasts"] = tuple((name, row) for name, row
                                        in entry.get("Contrasts", ()))
        else:
            values["contrasts"] = tuple((c.name, c.rows[0]) for c in contrasts
                                        if c.test == "t")
    return InputSpec(**values)
