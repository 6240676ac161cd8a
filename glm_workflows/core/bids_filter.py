"""BIDS filters as fMRIPrep reads them (``--bids-filter-file``): a JSON object of queries
(``{"bold": {"session": "01", "run": [1, 2], "acquisition": null}}``) whose keys are
pybids entity names.

:func:`normalize_filters` checks such an object and gives its hashable form (what an
:class:`~glm_workflows.spec.analysis.InputSpec` holds); :func:`check_filters` checks that
form again (a spec read back from JSON) and where it applies; :func:`query_keeps` says
whether a file's entities pass a query. Values: a label or index (``"01"``, ``1``), a list
of them (any of them), ``null`` (the file has no such entity) or ``"*"`` (it has one,
any value); index entities (``run``, ``echo``) compare as numbers.

Only the ``bold`` query selects anything: its raw entities select the raw runs, its
derivative entities (``space``, ``res``, ``den``, ``desc``) the fMRIPrep images chosen for
them. fMRIPrep's other queries (``t1w``, ``sbref``, ...) are accepted, so one filter file
serves both tools, and select nothing here.
"""

from __future__ import annotations

import json
from pathlib import Path

from .entities import check_label
from .errors import InputError

#: fMRIPrep's query names (``bold`` is the only one a GLM reads).
QUERIES = ("bold", "sbref", "t1w", "t2w", "flair", "fmap", "roi")
#: The query that selects the runs.
BOLD_QUERY = "bold"
#: pybids entity names of raw runs -> their key in file names.
RAW_ENTITIES = {"subject": "sub", "session": "ses", "task": "task", "acquisition": "acq",
                "ceagent": "ce", "reconstruction": "rec", "direction": "dir", "run": "run",
                "echo": "echo"}
#: pybids entity names of fMRIPrep's images -> their key in file names.
DERIVATIVE_ENTITIES = {"space": "space", "res": "res", "den": "den", "desc": "desc"}
ENTITIES = {**RAW_ENTITIES, **DERIVATIVE_ENTITIES}
#: Entities whose values are indices: ``run-1`` is ``run-01``.
_INDEX_KEYS = ("run", "echo")
#: A value meaning "the entity is present, whatever its value" (pybids' Query.ANY).
ANY = "*"


def read_filter_file(path) -> tuple:
    """The normalized filters of a ``--bids-filter-file`` (see :func:`normalize_filters`).

    Raises
    ------
    InputError
        One line naming the file: not found, not valid JSON, not an object, an unknown
        query or entity name, a value that is not a label.
    """
    where = f"--bids-filter-file {path}"
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    return normalize_filters(data, where)


def normalize_filters(data, where: str) -> tuple:
    """Check a filter object; its hashable form.

    Parameters
    ----------
    data : dict
        ``{query: {entity: value or list of values}}`` (fMRIPrep's format).
    where : str
        Names the file (or field) in messages.

    Returns
    -------
    filters : tuple
        Sorted ``(query, ((entity, values), ...))`` pairs, each ``values`` a tuple of
        labels (str), ``None`` (absent) or ``"*"`` (present).
    """
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object of queries (e.g. "
                         f'{{"bold": {{"session": "01"}}}}), got {type(data).__name__}')
    found = []
    for query, entities in data.items():
        if query not in QUERIES:
            raise InputError(f"{where}: unknown query {query!r} (known: {', '.join(QUERIES)})")
        if not isinstance(entities, dict):
            raise InputError(f"{where}: {query}: expected an object of entities, got "
                             f"{type(entities).__name__}")
        items = []
        for entity, value in entities.items():
            if entity not in ENTITIES:
                raise InputError(f"{where}: {query}.{entity}: unknown entity (known: "
                                 f"{', '.join(ENTITIES)})")
            values = value if isinstance(value, list) else [value]
            if not values:
                raise InputError(f"{where}: {query}.{entity}: an empty list selects nothing")
            items.append((entity, tuple(_value(v, f"{where}: {query}.{entity}")
                                        for v in values)))
        found.append((query, tuple(sorted(items))))
    return tuple(sorted(found))


def _value(value, where: str):
    if value is None or value == ANY:
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"{where}: expected a label, a number, null or \"*\", got "
                         f"{json.dumps(value)}")
    if isinstance(value, int):
        if value < 0:
            raise InputError(f"{where}: expected a label, a number, null or \"*\", got {value}")
        return str(value)
    return check_label(value, where)


def check_filters(filters, where: str, derivatives: bool) -> None:
    """Check a spec's normalized filters (:func:`normalize_filters` output) and that their
    derivative entities have derivatives to select (``derivatives``)."""
    if not isinstance(filters, tuple):
        raise InputError(f"{where}: expected normalized filters, got {filters!r}")
    try:
        data = {query: {entity: list(values) for entity, values in items}
                for query, items in filters}
    except (TypeError, ValueError):
        raise InputError(f"{where}: expected normalized filters, got {filters!r}") from None
    if normalize_filters(data, where) != filters:
        raise InputError(f"{where}: expected normalized filters, got {filters!r}")
    if not derivatives:
        used = [entity for entity, _ in bold_query(filters, DERIVATIVE_ENTITIES)]
        if used:
            raise InputError(f"{where}: bold.{used[0]}: selects fMRIPrep images, only with "
                             "--derivatives")


def bold_query(filters, entities=ENTITIES) -> tuple:
    """The ``bold`` query's ``(entity, values)`` pairs among ``entities`` (names)."""
    items = dict(filters).get(BOLD_QUERY, ())
    return tuple((entity, values) for entity, values in items if entity in entities)


def query_keeps(query, file_entities: dict) -> bool:
    """Whether a file with ``file_entities`` (file-name keys: ``sub``, ``run``, ...) passes
    every ``(entity, values)`` of ``query`` (one value of each list)."""
    return all(any(_matches(ENTITIES[entity], wanted, file_entities.get(ENTITIES[entity]))
                   for wanted in values) for entity, values in query)


def _matches(key: str, wanted, value) -> bool:
    if wanted is None or value is None:
        return wanted is None and value is None
    if wanted == ANY:
        return True
    if key in _INDEX_KEYS and wanted.isdigit() and value.isdigit():
        return int(wanted) == int(value)
    return wanted == value


def describe(query) -> str:
    """A query in one phrase: ``session-01, run-1|2, acquisition absent``."""
    return ", ".join(
        f"{entity} " + ("absent" if values == (None,) else "present" if values == (ANY,)
                        else "|".join("absent" if v is None else v for v in values))
        for entity, values in query)
