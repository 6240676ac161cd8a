"""BIDS entities in output names: labels checked, a model's prefix built and parsed, in
the order the BIDS schema gives (:mod:`bidsschematools`)."""

from __future__ import annotations

import re

from .errors import InputError

#: The characters of a BIDS label (and of a contrast name).
BIDS_LABEL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


_LABEL = "[A-Za-z0-9]+"


def _schema_entity_order() -> tuple[str, ...]:
    """Every BIDS entity's short name (``sub``, ``ses``, ...), in the order the BIDS
    schema puts them in file names (``rules.entities`` of :mod:`bidsschematools`)."""
    from bidsschematools.schema import load_schema

    schema = load_schema()
    return tuple(schema.objects.entities[key].name for key in schema.rules.entities)


#: Every BIDS entity, in the schema's file-name order (BIDS 1.11: sub, ses, cohort, task,
#: acq, ce, rec, dir, run, echo, ..., space, ..., res, den, ..., desc).
BIDS_ENTITY_ORDER = _schema_entity_order()


#: The entities a model's prefix carries (:func:`bids_prefix`), in the schema's order:
#: the raw run's, and the fMRIPrep image's template entities (``space``, ``cohort``,
#: ``res``, ``den``), so that analyses of two spaces (or resolutions) of the same runs
#: write side by side.
PREFIX_ENTITIES = tuple(entity for entity in BIDS_ENTITY_ORDER if entity in {
    "sub", "ses", "cohort", "task", "acq", "ce", "rec", "dir", "run", "echo", "space",
    "res", "den"})


#: The prefix entities besides ``sub, ses, task, run``: each a keyword of
#: :func:`bids_prefix` and a key of :func:`parse_prefix`.
EXTRA_ENTITIES = tuple(entity for entity in PREFIX_ENTITIES
                       if entity not in {"sub", "ses", "task", "run"})


#: The template entities of an fMRIPrep image (not of the raw run).
TEMPLATE_ENTITIES = ("space", "cohort", "res", "den")


#: ``[_space-<S>][_cohort-<C>][_res-<R>][_den-<D>]`` in a name (one group per entity).
_TEMPLATE = "".join(rf"(?:_{entity}-(?P<{entity}>{_LABEL}))?" for entity in TEMPLATE_ENTITIES)


_GROUPS = {"sub": "subject", "ses": "session"}


_PREFIX = "_".join(
    [rf"sub-(?P<subject>{_LABEL})"]
    + [rf"task-(?P<task>{_LABEL})" if entity == "task" else
       rf"(?:_{entity}-(?P<{_GROUPS.get(entity, entity)}>{_LABEL}))?"
       for entity in PREFIX_ENTITIES if entity != "sub"]).replace("_(?:_", "(?:_")


def check_label(value: str, entity: str) -> str:
    """A BIDS label: letters and digits only (no path separators, dots or dashes).

    Parameters
    ----------
    value : str
        The label.
    entity : str
        What it labels (``subject``, ``task``...), for the message.

    Returns
    -------
    label : str
        ``value`` as a string.

    Raises
    ------
    InputError
        If the label is empty or has another character.
    """
    value = str(value)
    if not value or any(char not in BIDS_LABEL_CHARS for char in value):
        key, _, rest = value.partition("-")
        hint = f" (the label of {value} is {rest!r})" if key in BIDS_ENTITY_ORDER and rest \
            and all(char in BIDS_LABEL_CHARS for char in rest) else ""
        raise InputError(f"{entity} label {value!r}: use letters and digits only{hint}")
    return value


def check_space_label(space: str) -> str:
    """A ``--space`` label (:func:`check_label`); fMRIPrep's ``TEMPLATE:res-2`` form of an
    output space is refused with the flags that select the same images.

    Raises
    ------
    InputError
        ``--space MNI152NLin2009cAsym:res-2: ...; give --space MNI152NLin2009cAsym --res 2``.
    """
    space = str(space)
    if ":" in space:
        template, *modifiers = space.split(":")
        flags = "".join(f" --{key} {label}" for key, _, label in
                        (modifier.partition("-") for modifier in modifiers)
                        if key in ("res", "den"))
        raise InputError(f"--space {space}: fMRIPrep's TEMPLATE:ENTITY-LABEL form of an "
                         f"output space; give them apart: --space {template}{flags}")
    return check_label(space, "space")


def bids_prefix(subject: str, task: str, session: str | None = None,
                run: str | None = None, **entities: str | None) -> str:
    """A model's BIDS prefix, each label checked.

    ``sub-<label>[_ses-<label>]...``: ``sub``, ``ses``, ``task``, ``run`` and the
    ``entities`` (keys of :data:`EXTRA_ENTITIES`: ``acq``, ``ce``, ``rec``, ``dir``,
    ``echo``, ``space``, ``cohort``, ``res``, ``den``) in the BIDS schema's order, each left
    out when None or empty (so a prefix with only ``sub``, ``ses``, ``task`` and ``run`` is
    as before).

    Raises
    ------
    TypeError
        For an entity a prefix does not carry.
    """
    unknown = sorted(set(entities) - set(EXTRA_ENTITIES))
    if unknown:
        raise TypeError(f"bids_prefix: unexpected entities {unknown}")
    values = {"sub": subject, "ses": session, "task": task, "run": run, **entities}
    return "_".join(f"{entity}-{check_label(values[entity], _GROUPS.get(entity, entity))}"
                    for entity in PREFIX_ENTITIES
                    if values.get(entity) or entity in ("sub", "task"))


def parse_prefix(prefix: str) -> dict | None:
    """The entities of a BIDS prefix, the inverse of :func:`bids_prefix`.

    Returns
    -------
    entities : dict or None
        ``subject``, ``session``, ``task``, ``acq``, ``ce``, ``rec``, ``dir``, ``run``
        and ``echo`` (None when absent); None if ``prefix`` is not a prefix.
        ``bids_prefix(**entities)`` rebuilds it.
    """
    match = re.fullmatch(_PREFIX, prefix)
    return match.groupdict() if match else None


def subject_label(subject: str) -> str:
    """A subject label given with or without ``sub-``, checked; ``"sub-01"`` -> ``"01"``."""
    subject = str(subject)
    return check_label(subject.removeprefix("sub-"), "subject")


def template_part(**template: str | None) -> str:
    """``[_space-<S>][_cohort-<C>][_res-<R>][_den-<D>]``: the template entities given (keys
    of :data:`~glm_workflows.core.entities.TEMPLATE_ENTITIES`, None: absent), in the BIDS
    order, each label checked."""
    unknown = sorted(set(template) - set(TEMPLATE_ENTITIES))
    if unknown:
        raise TypeError(f"template_part: unexpected entities {unknown}")
    return "".join(f"_{entity}-{check_label(template[entity], entity)}"
                   for entity in TEMPLATE_ENTITIES if template.get(entity))


def template_of(entities: dict) -> dict:
    """The template entities (:data:`TEMPLATE_ENTITIES`) among ``entities``, those set, in
    the BIDS order: what, with the task, tells an analysis from another."""
    return {key: entities[key] for key in TEMPLATE_ENTITIES if entities.get(key)}
