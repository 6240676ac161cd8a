"""The variables of the runs' maps above the run level: their entities and the columns
of the raw dataset's ``scans.tsv`` (a Session node) or ``sessions.tsv`` (a Subject node),
as pybids gives them to those levels (:mod:`glm_workflows.core.within_subject`).

``sub-<s>[/ses-<t>]/sub-<s>[_ses-<t>]_scans.tsv`` rows are matched to runs by the
entities of their ``filename`` (subject, session, task, acquisition, ..., run, echo);
``sub-<s>/sub-<s>_sessions.tsv`` rows by ``session_id``. A run without a row simply has
no value for those columns (``n/a``), which the design refuses only if it uses them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..core.errors import InputError
from ..core.tables import read_tsv
from ..core.within_subject import map_variables

#: The entity keys of a BIDS file name that identify a run (``space`` and the other
#: template entities of fMRIPrep's images are not in the raw ``scans.tsv``).
_RUN_ENTITIES = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo")


def level_rows(runs, bids_dir, level: str) -> dict:
    """Per run label, the row of its variables at a ``level`` node.

    Parameters
    ----------
    runs : list of RunInputs
    bids_dir : str or None
        The raw dataset (None: entities only).
    level : {"Session", "Subject"}
        ``Session``: the ``scans.tsv`` columns; ``Subject``: the ``sessions.tsv`` columns.

    Returns
    -------
    dict
        Run label -> :func:`~glm_workflows.core.within_subject.map_variables` row.
    """
    rows = {}
    for run in runs:
        columns = {}
        if bids_dir is not None:
            columns = (_scans_row(run, Path(bids_dir)) if level == "Session"
                       else _sessions_row(run, Path(bids_dir)))
        rows[run.label] = map_variables(run.subject, run.task, run.session, run.run,
                                        run.entities, columns)
    return rows


def level_source(bids_dir, level: str) -> str:
    """How messages name the tables of ``level`` (e.g. ``/data/sub-*/**_scans.tsv``)."""
    name = "sub-*/[ses-*/]sub-*_scans.tsv" if level == "Session" else "sub-*/sub-*_sessions.tsv"
    return f"{bids_dir}/{name}" if bids_dir else "the maps' entities"


def _scans_row(run, root: Path) -> dict:
    folder = root / f"sub-{run.subject}"
    name = f"sub-{run.subject}"
    if run.session:
        folder, name = folder / f"ses-{run.session}", f"{name}_ses-{run.session}"
    table = _read(str(folder / f"{name}_scans.tsv"), "filename")
    wanted = _run_key({"sub": run.subject, "ses": run.session, "task": run.task,
                       "run": run.run, **run.entities})
    for row in table:
        if _run_key(_file_entities(row["filename"])) == wanted:
            return {k: v for k, v in row.items() if k != "filename"}
    return {}


def _sessions_row(run, root: Path) -> dict:
    if not run.session:
        return {}
    path = root / f"sub-{run.subject}" / f"sub-{run.subject}_sessions.tsv"
    for row in _read(str(path), "session_id"):
        if row["session_id"] in (f"ses-{run.session}", run.session):
            return {k: v for k, v in row.items() if k != "session_id"}
    return {}


@lru_cache(maxsize=256)
def _read(path: str, key: str) -> tuple:
    """A level table's rows (text, ``n/a`` as None); none if the file is absent."""
    if not Path(path).is_file():
        return ()
    table = read_tsv(path, dtype=str, na_values=["n/a", ""], keep_default_na=False)
    if key not in table.columns:
        raise InputError(f"{path}: expected a '{key}' column (BIDS), found "
                         f"{', '.join(map(str, table.columns))}")
    return tuple({str(k): (None if v != v else v) for k, v in row.items()}
                 for row in table.to_dict("records"))


def _file_entities(filename: str) -> dict:
    stem = Path(str(filename)).name.split(".")[0]
    return dict(part.split("-", 1) for part in stem.split("_") if "-" in part)


def _run_key(entities: dict) -> tuple:
    def value(key):
        found = entities.get(key)
        if found is None:
            return None
        return str(int(found)) if str(found).isdigit() and key in ("run", "echo") else str(found)
    return tuple(value(key) for key in _RUN_ENTITIES)
