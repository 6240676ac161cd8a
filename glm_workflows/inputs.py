"""Finding the runs to analyse: BIDS datasets, file lists, and the SPM auditory data."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .core.design import check_repetition_time
from .core.errors import InputError
from .core.naming import check_label

ENTITY = re.compile(r"(sub|ses|task|acq|ce|dir|rec|run|echo)-([a-zA-Z0-9]+)")
SPM_AUDITORY_SCANS = "fM00223_*.img"


@dataclass
class RunInputs:
    """One functional run and what its model needs."""

    subject: str
    task: str
    bold_files: list
    events_file: str
    t_r: float
    session: str | None = None
    run: str | None = None
    confounds_file: str | None = None

    @property
    def label(self) -> str:
        """Identifier for workflow names: ``sub_01_task_auditory[_ses_x][_run_1]``."""
        parts = ["sub", self.subject]
        if self.session:
            parts += ["ses", self.session]
        parts += ["task", self.task]
        if self.run:
            parts += ["run", self.run]
        return "_".join(parts)


def _entities(name: str) -> dict:
    return dict(ENTITY.findall(name.split(".")[0]))


def _sidecar_metadata(bold: Path, root: Path) -> dict:
    """BIDS inheritance: merge ``*_bold.json`` files from the root down to the file's folder.

    A sidecar applies when its entities are a subset of the bold file's.
    """
    entities = _entities(bold.name)
    folders = [bold.parent]
    while folders[-1] != root and root in folders[-1].parents:
        folders.append(folders[-1].parent)
    metadata = {}
    for folder in reversed(folders):
        for sidecar in sorted(folder.glob("*_bold.json")):
            side = _entities(sidecar.name)
            if all(entities.get(k) == v for k, v in side.items()):
                try:
                    metadata.update(json.loads(sidecar.read_text()))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{sidecar}: not valid JSON ({exc.msg})") from None
    return metadata


def find_bids_runs(bids_dir, task: str, subjects=None, sessions=None, runs=None) -> list:
    """Every ``*_bold.nii[.gz]`` of ``task`` in a BIDS dataset, with its events and TR.

    Parameters
    ----------
    bids_dir : str
        Dataset root.
    task : str
        Task label.
    subjects, sessions, runs : list of str or None
        Keep only these labels (``sub-`` etc. prefixes are accepted and dropped).

    Returns
    -------
    runs : list of RunInputs
    """
    root = Path(bids_dir)
    if not root.is_dir():
        raise InputError(f"{root}: BIDS directory not found")
    check_label(task, "task")
    wanted = {
        "sub": _labels(subjects, "sub", "subject"),
        "ses": _labels(sessions, "ses", "session"),
        "run": _labels(runs, "run", "run"),
    }
    candidates = []
    for bold in sorted(root.glob(f"sub-*/**/func/sub-*_task-{task}_*bold.nii*")):
        if bold.name.endswith(("_bold.nii", "_bold.nii.gz")):
            candidates.append((bold, _entities(bold.name)))
    if not candidates:
        tasks = sorted({_entities(p.name).get("task", "?")
                        for p in root.glob("sub-*/**/func/sub-*_bold.nii*")})
        raise InputError(f"{root}: no sub-*/func/*_task-{task}_bold.nii[.gz] found"
                         + (f"; tasks found: {', '.join(tasks)}" if tasks else ""))
    for key, keep in wanted.items():
        present = {ents.get(key) for _, ents in candidates}
        missing = sorted(k for k in keep if not any(_same_label(key, k, p) for p in present))
        if missing:
            found_values = sorted(p for p in present if p is not None)
            raise InputError(
                f"{root}: no task-{task} run for {key}-{', '.join(missing)}; "
                + (f"{key} values found: {', '.join(found_values)}" if found_values
                   else f"the runs have no {key} entity"))
    found = []
    for bold, ents in candidates:
        if any(keep and not any(_same_label(key, k, ents.get(key)) for k in keep)
               for key, keep in wanted.items()):
            continue
        stem = bold.name[: bold.name.index("_bold.nii")]
        events = bold.parent / f"{stem}_events.tsv"
        if not events.exists():
            raise InputError(f"{events}: events file not found for {bold.name}")
        metadata = _sidecar_metadata(bold, root)
        if "RepetitionTime" not in metadata:
            raise InputError(f"{bold}: no RepetitionTime in any sidecar JSON "
                             f"(e.g. task-{task}_bold.json)")
        found.append(RunInputs(
            subject=ents["sub"], task=task, session=ents.get("ses"), run=ents.get("run"),
            bold_files=[_absolute(bold)], events_file=_absolute(events),
            t_r=check_repetition_time(metadata["RepetitionTime"], f"{bold.name}: RepetitionTime"),
        ))
    if not found:
        selection = ", ".join(f"{k}-{sorted(v)}" for k, v in wanted.items() if v)
        raise InputError(f"{root}: no task-{task} run matches {selection} "
                         "(each exists, but not in one run together)")
    labels = [r.label for r in found]
    clashes = sorted({label for label in labels if labels.count(label) > 1})
    if clashes:
        raise InputError(f"{root}: several task-{task} runs share the entities {clashes[0]} "
                         "(only sub, ses, task and run tell runs apart)")
    return found


#: BIDS index entities: their values are numbers (``run-1`` is ``run-01``).
INDEX_ENTITIES = ("run", "echo")


def _same_label(key: str, wanted: str, value: str | None) -> bool:
    """Whether an entity value matches a selected label (index entities as numbers)."""
    if value is None:
        return False
    if key in INDEX_ENTITIES and wanted.isdigit() and value.isdigit():
        return int(wanted) == int(value)
    return wanted == value


def _labels(values, prefix, entity):
    if not values:
        return set()
    return {check_label(str(v).removeprefix(f"{prefix}-"), entity) for v in values}


def find_spm_auditory(data_dir=None) -> RunInputs:
    """The SPM auditory (MoAE) run under ``data_dir``, else through nilearn's downloader.

    Looked for, in order: ``spm_auditory/sub001/fM00223/fM00223_*.img`` with
    ``fM00223_events.tsv``; nilearn's BIDS copy ``spm_auditory/MoAEpilot``; a BIDS
    copy ``moae_bids``. ``data_dir`` defaults to ``$NILEARN_DATA`` or ``~/nilearn_data``.
    """
    data_dir = Path(data_dir or os.environ.get("NILEARN_DATA") or Path.home() / "nilearn_data")
    found = _local_spm_auditory(data_dir)
    if found:
        return found
    try:
        from nilearn.datasets import fetch_spm_auditory

        with contextlib.redirect_stdout(io.StringIO()):
            fetch_spm_auditory(data_dir=str(data_dir), verbose=0)
    except Exception as exc:
        raise InputError(
            f"SPM auditory data not found under {data_dir} and nilearn's download failed "
            f"({type(exc).__name__}); "
            "point --data-dir at a folder holding spm_auditory/sub001/fM00223/ "
            "(e.g. --data-dir ../shared/data), or give --bids-dir or --func/--events/--tr"
        ) from None
    found = _local_spm_auditory(data_dir)
    if not found:
        raise InputError(f"{data_dir}: nilearn's download gave no SPM auditory run")
    return found


def _local_spm_auditory(data_dir: Path):
    scans_dir = data_dir / "spm_auditory" / "sub001" / "fM00223"
    scans = sorted(scans_dir.glob(SPM_AUDITORY_SCANS))
    if scans:
        events = scans_dir / "fM00223_events.tsv"
        if not events.exists():
            raise InputError(f"{events}: events file not found beside the SPM auditory scans")
        return RunInputs(subject="01", task="auditory", bold_files=[_absolute(s) for s in scans],
                         events_file=_absolute(events), t_r=7.0)
    for bids_dir in (data_dir / "spm_auditory" / "MoAEpilot", data_dir / "moae_bids"):
        if list(bids_dir.glob("sub-*/func/*_task-auditory_bold.nii*")):
            return find_bids_runs(bids_dir, "auditory")[0]
    return None


def _absolute(path) -> str:
    """Nodes run in their own folders, so every input path is made absolute."""
    return str(Path(path).absolute())


def file_list_run(func, events, t_r, subject="01", task="auditory", session=None, run=None,
                  confounds=None) -> RunInputs:
    """A run given as files on the command line or from Python."""
    for path in [*func, events, *([confounds] if confounds else [])]:
        if not Path(path).exists():
            raise InputError(f"{path}: file not found")
    return RunInputs(
        subject=check_label(subject, "subject"), task=check_label(task, "task"),
        session=check_label(session, "session") if session else None,
        run=check_label(run, "run") if run else None,
        bold_files=[_absolute(f) for f in func], events_file=_absolute(events),
        t_r=check_repetition_time(t_r, "--tr"),
        confounds_file=_absolute(confounds) if confounds else None,
    )
