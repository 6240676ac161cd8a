"""Analyses: what one task, in one template (space, cohort, resolution, density), under
one model makes, and its record in each folder it writes into.

Each folder an analysis writes into (a subject's, a session's, the group's) holds its
record :func:`analysis_record`, which lists the files it wrote there, so that a later run
of the same analysis replaces exactly those and no other's
(:mod:`glm_workflows.outputs.folders`). Plain strings, no Nipype, no file access.
"""

from __future__ import annotations

import re

from .entities import (
    _LABEL,
    _TEMPLATE,
    TEMPLATE_ENTITIES,
    check_label,
    parse_prefix,
    template_of,
    template_part,
)
from .naming import ANALYSIS_RECORD_SUFFIX, as_volume_name, parse_group_name, parse_output_name

_ANALYSIS = re.compile(rf"task-(?P<task>{_LABEL}){_TEMPLATE}(?:_model-(?P<model>{_LABEL}))?")


def analysis_label(task: str, space: str | None = None, model: str | None = None,
                   **template: str | None) -> str:
    """``task-<T>[_space-<S>][_cohort-<C>][_res-<R>][_den-<D>][_model-<M>]``: what
    identifies an analysis.

    Two runs are the same analysis, whose later run replaces the earlier one's files,
    when they have the same task, template (space, cohort, resolution, density) and model;
    any other analysis' files are never replaced or deleted
    (:mod:`glm_workflows.outputs.folders`). So ``res-1`` and ``res-2`` images of one space,
    or fsLR's CIFTI ``den-91k`` and GIFTI ``den-32k`` series, are two analyses.

    Parameters
    ----------
    task : str
        The task label.
    space : str or None
        The space of the fitted images (fMRIPrep's ``space-``); None for raw images.
    model : str or None
        The model's label; None for the one model of a task, today's only case (the output
        names carry no model yet, so two analyses of one task that differ in it would
        write the same files: the later one is refused, not let in over the other).
    **template : str or None
        The images' other template entities, ``cohort``, ``res``, ``den`` (None or absent:
        none).

    Returns
    -------
    label : str
        E.g. ``task-auditory`` or ``task-rest_space-MNI152NLin2009cAsym_res-2``.
    """
    return (f"task-{check_label(task, 'task')}{template_part(space=space, **template)}"
            + (f"_model-{check_label(model, 'model')}" if model else ""))


def legacy_analysis(analysis: str) -> str | None:
    """The label glm-workflows gave ``analysis`` before its template entities besides the
    space were part of it (its task, space and model alone), when that differs; None
    otherwise."""
    parts = parse_analysis(analysis)
    if parts is None or not any(parts[entity] for entity in TEMPLATE_ENTITIES[1:]):
        return None
    return analysis_label(parts["task"], parts["space"], parts["model"])


def names_its_template(name: str, analysis: str) -> bool:
    """Whether output file ``name`` (a subject's, a session's or a group's) has the
    template entities of ``analysis``, no more and no fewer: which of the files its
    :func:`legacy_analysis` record lists are its own."""
    template = template_of(parse_analysis(analysis))
    return bool(template) and _name_template(name) == template


def _name_template(name: str) -> dict | None:
    """The template entities of an output file's name; None for a name of neither a
    model's outputs nor a group's."""
    parsed = parse_output_name(as_volume_name(name))
    if parsed is not None:
        return template_of(parse_prefix(parsed.prefix))
    parts = parse_group_name(name)
    return None if parts is None else template_of(parts)


def analysis_record(analysis: str) -> str:
    """``<analysis>_provenance.json``: an analysis' record in a subject or group folder
    (its provenance, and the files it wrote there under ``Outputs``)."""
    if parse_analysis(analysis) is None:
        raise ValueError(f"not an analysis label: {analysis!r}")
    return f"{analysis}{ANALYSIS_RECORD_SUFFIX}"


def parse_analysis(label: str) -> dict | None:
    """``task``, ``space``, ``cohort``, ``res``, ``den`` and ``model`` (None when absent)
    of an analysis label
    (:func:`analysis_label`); None if ``label`` is not one."""
    match = _ANALYSIS.fullmatch(label)
    return match.groupdict() if match else None


def parse_analysis_record(name: str) -> str | None:
    """The analysis label of a record's file name (:func:`analysis_record`); None for any
    other name."""
    label = name.removesuffix(ANALYSIS_RECORD_SUFFIX)
    if label == name or parse_analysis(label) is None:
        return None
    return label


def group_output_analysis(name: str) -> str | None:
    """The analysis (:func:`analysis_label`: task and template entities) of a group output's
    file name (:func:`~glm_workflows.core.naming.parse_group_name`); None for any other
    name."""
    parts = parse_group_name(name)
    if parts is None:
        return None
    return analysis_label(parts["task"], **{entity: parts[entity] for entity in TEMPLATE_ENTITIES})
