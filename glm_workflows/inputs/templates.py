"""The template (space, cohort, resolution, density) of an analysis: one for all its runs
(:func:`check_runs_template`), and, for a run of the group level alone, that of the subject
maps it reads (:func:`~glm_workflows.inputs.derivatives.find_subject_maps`): the one the
flags ask for, else the only one. Plain strings, no file access."""

from __future__ import annotations

from ..core.entities import parse_prefix, template_of
from ..core.errors import InputError
from .runs import _same_label


def template_key(entities: dict) -> tuple:
    """``((entity, label), ...)``: a prefix's template entities
    (:func:`~glm_workflows.core.entities.template_of`)."""
    return tuple(template_of(entities).items())


#: How :func:`chosen_template` names each template entity, and what chooses one.
_TEMPLATE_WORDS = {"space": ("spaces", "choose one with --space"),
                   "cohort": ("cohorts", "no flag chooses a cohort: give a folder of one"),
                   "res": ("resolutions", "choose one with --res"),
                   "den": ("densities", "choose one with --den")}


def chosen_template(templates: set, asked: dict, folder, task: str) -> tuple | None:
    """The one template (:func:`template_key`) of the maps read: those matching the labels
    asked (``res-2`` is ``res-02``, as at the first level); of an entity not asked for, the
    maps without it when some have none (fMRIPrep's image without ``res-`` beside a
    ``res-2`` one). Several left: refused, naming the first entity that tells them apart.
    None: no maps match."""
    candidates = {template for template in templates
                  if all(_same_label(key, value, dict(template).get(key))
                         for key, value in asked.items() if value)}
    for entity in ("cohort", "res", "den"):
        if not asked.get(entity) and any(entity not in dict(t) for t in candidates):
            candidates = {t for t in candidates if entity not in dict(t)}
    for entity, (words, choose) in _TEMPLATE_WORDS.items():
        values = {dict(template).get(entity) for template in candidates}
        if len(values) > 1:
            raise InputError(f"--from-derivatives {folder}: the results of task {task} are in "
                             f"several {words} ({', '.join(sorted(v or 'none' for v in values))}"
                             f"); {choose}")
    return next(iter(candidates), None)


def maps_template(maps) -> dict:
    """The template entities (``space``, ``cohort``, ``res``, ``den``: those they have) of
    subject maps found by :func:`find_subject_maps` (one template)."""
    return template_of(parse_prefix(maps[0].prefix))


def check_runs_template(runs) -> None:
    """Refuse runs of one analysis whose images differ in template (fMRIPrep's image is
    chosen per run, so one subject's ``res-1`` beside another's ``res-2``): its label and
    group names take one (:func:`~glm_workflows.core.analyses.analysis_label`)."""
    ours = template_of(runs[0].entities) if runs else {}
    for run in runs[1:]:
        theirs = template_of(run.entities)
        entity = next((e for e in _TEMPLATE_WORDS if ours.get(e) != theirs.get(e)), None)
        if entity is not None:
            raise InputError(f"{run.prefix}: its image's {entity} is "
                             f"{theirs.get(entity) or 'none'}, that of {runs[0].prefix} "
                             f"{ours.get(entity) or 'none'}; the runs of one analysis share "
                             f"their {entity} ({_TEMPLATE_WORDS[entity][1]})")
