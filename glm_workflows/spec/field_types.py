"""The types of the fields Python code fills in (an
:class:`~glm_workflows.spec.analysis.AnalysisSpec`'s parts, the
:class:`~glm_workflows.settings.ExecutionSettings`), checked before their rules: a wrong
type is one line naming the field, not a ``TypeError`` from deep inside a rule, nor a
string taken letter by letter (``group_by="run"``). The command line and model files
always give the right types; these checks are for the Python route (docs/python.md).
"""

from __future__ import annotations

import builtins
import numbers
import os

from ..core.errors import InputError
from ..settings import ConfoundSettings, ExecutionSettings, InferenceSettings


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _path(value) -> bool:
    return isinstance(value, str | os.PathLike)


def _refuse(field: str, expected: str, value) -> None:
    kind, module = type(value).__name__, type(value).__module__
    if module != "builtins" and hasattr(builtins, kind):  # numpy.bool is not a bool
        kind = f"{module}.{kind}"
    shown = f"{value!r} ({kind})"
    if len(repr(value)) > 60 or not isinstance(value, str | numbers.Number | tuple | list
                                               | dict | None):
        shown = ("an " if kind[0] in "AEIOU" else "a ") + kind  # not a whole object's repr
    raise InputError(f"{field}: expected {expected}, got {shown}")


def check_names(field: str, value) -> None:
    """``value`` is a tuple or list of strings (not one string, taken letter by letter)."""
    if not isinstance(value, tuple | list) or not all(isinstance(v, str) for v in value):
        _refuse(field, "a tuple of names", value)


def check_node_fields(node) -> None:
    """A :class:`~glm_workflows.spec.analysis.Node`'s field types (its Run model's
    numbers and confound settings too)."""
    where = f"node {node.name!r}"
    if not isinstance(node.name, str):
        _refuse("node.name", "a string", node.name)
    check_names(f"{where}: group_by", node.group_by)
    if not isinstance(node.contrasts, tuple | list) or not all(
            type(c).__name__ == "Contrast" for c in node.contrasts):
        _refuse(f"{where}: contrasts", "a tuple of Contrast", node.contrasts)
    design = getattr(node.model, "design", None)
    if node.level != "Run" or type(design).__name__ not in ("NilearnDesign", "ModelDesign"):
        return  # the rules name a wrong model or design
    model = node.model
    if not isinstance(model.confounds, ConfoundSettings):
        _refuse(f"{where}: RunModel.confounds", "a ConfoundSettings", model.confounds)
    high_pass = getattr(design, "high_pass", None)
    if not (_number(high_pass) or (high_pass is None and not hasattr(design, "hrf_model"))):
        _refuse(f"{where}: {type(design).__name__}.high_pass", "a number (Hz)", high_pass)
    if not _number(design.slice_time_ref):
        _refuse(f"{where}: {type(design).__name__}.slice_time_ref", "a number in [0, 1]",
                design.slice_time_ref)
    if not _whole(design.drift_order):
        _refuse(f"{where}: {type(design).__name__}.drift_order", "a whole number",
                design.drift_order)


def check_inference_fields(inference) -> None:
    """An :class:`~glm_workflows.settings.InferenceSettings`' field types."""
    if not isinstance(inference, InferenceSettings):
        _refuse("AnalysisSpec.inference", "an InferenceSettings", inference)
    for name in ("alpha", "cluster_threshold", "table_min_cluster_size"):
        if not _number(getattr(inference, name)):
            _refuse(f"InferenceSettings.{name}", "a number", getattr(inference, name))
    if not (inference.threshold is None or _number(inference.threshold)):
        _refuse("InferenceSettings.threshold", "a number or None", inference.threshold)
    if not isinstance(inference.two_sided, bool):
        _refuse("InferenceSettings.two_sided", "True or False", inference.two_sided)


def check_run_arguments(spec, execution) -> None:
    """``run_analysis(spec, execution)``'s arguments and the execution's field types."""
    if type(spec).__name__ != "AnalysisSpec":  # by name: spec.analysis imports this module
        _refuse("run_analysis: spec", "an AnalysisSpec (spec_from_args, read_model or "
                "AnalysisSpec(...))", spec)
    if not isinstance(execution, ExecutionSettings):
        _refuse("run_analysis: execution", "an ExecutionSettings", execution)
    for name in ("output_dir", "work_dir"):
        if not _path(getattr(execution, name)):
            _refuse(f"ExecutionSettings.{name}", "a path", getattr(execution, name))
    if not isinstance(execution.plugin, str):
        _refuse("ExecutionSettings.plugin", "a plugin name", execution.plugin)
    if not isinstance(execution.plugin_args, str):
        _refuse("ExecutionSettings.plugin_args", "JSON text (json.dumps of a dict)",
                execution.plugin_args)
    for name in ("n_procs", "permutation_chunks", "participants_per_task"):
        value = getattr(execution, name)
        if not (value is None or _whole(value)):
            _refuse(f"ExecutionSettings.{name}", "a whole number or None", value)
    if not (execution.mem_gb is None or _number(execution.mem_gb)):
        _refuse("ExecutionSettings.mem_gb", "a number (GB) or None", execution.mem_gb)
    if not _whole(execution.verbosity):
        _refuse("ExecutionSettings.verbosity", "-1, 0, 1 or 2", execution.verbosity)
