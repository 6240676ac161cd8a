"""Raw BIDS runs: :func:`find_bids_runs` (a task's bold runs with their events,
sidecars and inherited files) and the SPM auditory data (:func:`find_spm_auditory`)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from ..core.bids_filter import RAW_ENTITIES, bold_query, describe, query_keeps
from ..core.entities import check_label
from ..core.errors import InputError
from ..core.run_tables import check_repetition_time
from ..settings import seed_data_dir
from .runs import (
    COMPUTED_MASK,
    SLICE_TIME_REF_FLAG,
    RunInputs,
    _absolute,
    _acquisitions,
    _bids_name,
    _check_distinct_labels,
    _echo_list,
    _entities,
    _extra_entities,
    _inherited_files,
    _labels,
    _Listing,
    _same_label,
    _sidecar_metadata,
)

SPM_AUDITORY_SCANS = "fM00223_*.img"
#: The entities of a preprocessed image, which no raw bold file has.
DERIVATIVE_NAME = re.compile(r"_(space|desc)-[a-zA-Z0-9]+_")


def find_bids_runs(bids_dir, task: str, subjects=None, sessions=None, runs=None,
                   filters=()) -> list:
    """Every ``*_bold.nii[.gz]`` of ``task`` in a BIDS dataset, with its events and TR.

    Events and sidecars follow BIDS inheritance: an ``events.tsv`` at the dataset root
    (``task-<T>_events.tsv``), subject or session level applies to every run below it
    whose entities include its own; the most specific file wins.

    Parameters
    ----------
    bids_dir : str
        Dataset root.
    task : str
        Task label.
    subjects, sessions, runs : list of str or None
        Keep only these labels (``sub-`` etc. prefixes are accepted and dropped).
    filters : tuple
        A ``--bids-filter-file``'s queries
        (:func:`~glm_workflows.core.bids_filter.normalize_filters`): the ``bold`` query
        keeps the runs it matches too.

    Returns
    -------
    runs : list of RunInputs
    """
    root = Path(bids_dir)
    selected = _select_raw_runs(root, task, subjects, sessions, runs, filters)
    for echoes in _acquisitions(selected):
        if len(echoes) > 1:
            raise InputError(
                f"{echoes[0][0]}: multi-echo raw run ({_echo_list(echoes)}): a GLM of one "
                "echo is not what multi-echo data are for; combine the echoes first and give "
                "the combined run, e.g. fMRIPrep's output with --derivatives")
    found = []
    listing = _Listing()
    for bold, ents in selected:
        stem = bold.name[: bold.name.index("_bold.nii")]
        inherited = _inherited_files(bold, root, "events", "tsv", listing)
        if not inherited:  # BIDS inheritance: the most specific events file applies
            raise InputError(f"{bold.parent / f'{stem}_events.tsv'}: events file not found "
                             f"for {bold.name} (nor an inherited task-{task}_events.tsv at "
                             "the dataset root, subject or session level)")
        events = inherited[-1]
        metadata, origins = _sidecar_metadata(bold, root, listing)
        if "RepetitionTime" not in metadata:
            raise InputError(f"{bold}: no RepetitionTime in any sidecar JSON "
                             f"(e.g. task-{task}_bold.json)" + (
                                 "; its VolumeTiming (a sparse acquisition) is not supported: "
                                 "the design needs volumes one TR apart"
                                 if "VolumeTiming" in metadata else ""))
        found.append(RunInputs(
            subject=ents["sub"], task=task, session=ents.get("ses"), run=ents.get("run"),
            bold_files=[_absolute(bold)], events_file=_absolute(events),
            t_r=check_repetition_time(metadata["RepetitionTime"],
                                      f"{origins['RepetitionTime']}: RepetitionTime"),
            entities=_extra_entities(ents),
            sources={"RepetitionTimeSource": origins["RepetitionTime"],
                     "SliceTimeRefSource": SLICE_TIME_REF_FLAG, "MaskSource": COMPUTED_MASK},
        ))
    _check_distinct_labels(found, root, task)
    return found


def _select_raw_runs(root: Path, task: str, subjects=None, sessions=None, runs=None,
                     filters=()):
    """The raw ``*_bold.nii[.gz]`` of ``task`` kept by the selections and the raw
    entities of the filters' ``bold`` query (one glob).

    Returns
    -------
    selected : list of (pathlib.Path, dict)
        Each bold file with its entities, in sorted order.
    """
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
    selected = [(bold, ents) for bold, ents in candidates
                if not any(keep and not any(_same_label(key, k, ents.get(key)) for k in keep)
                           for key, keep in wanted.items())]
    query = bold_query(filters, RAW_ENTITIES)
    if query:
        kept = [(bold, ents) for bold, ents in selected
                if query_keeps(query, _bids_name(bold.name)[0])]
        if selected and not kept:
            raise InputError(f"{root}: no task-{task} run of the {len(selected)} selected "
                             f"matches the --bids-filter-file bold query ({describe(query)})")
        selected = kept
    if not selected:
        selection = ", ".join(f"{k}-{sorted(v)}" for k, v in wanted.items() if v)
        raise InputError(f"{root}: no task-{task} run matches {selection} "
                         "(each exists, but not in one run together)")
    _check_raw_files(selected)
    return selected


def _check_raw_files(selected: list) -> None:
    """Refuse what a raw dataset's bold files cannot be: a preprocessed image (``space-``
    or ``desc-``: an fMRIPrep folder given as the BIDS folder) and one run stored twice
    (``_bold.nii`` beside ``_bold.nii.gz``, which looked like the echoes of one run)."""
    stems: dict = {}
    for bold, _ in selected:
        if DERIVATIVE_NAME.search(bold.name):
            raise InputError(f"{bold}: a preprocessed image (space-/desc- entities) where the "
                             "raw dataset's runs were expected: give the raw BIDS folder as "
                             "BIDS_DIR and fMRIPrep's outputs as --derivatives")
        stem = bold.name[: bold.name.index("_bold.nii")]
        if stem in stems:
            raise InputError(f"{stems[stem]}: the same run is also stored as {bold.name}; "
                             "keep only one of the two files")
        stems[stem] = bold


def find_spm_auditory(data_dir=None) -> RunInputs:
    """The SPM auditory (MoAE) run under ``data_dir``, else through nilearn's downloader.

    Looked for, in order: ``spm_auditory/sub001/fM00223/fM00223_*.img`` with
    ``fM00223_events.tsv``; nilearn's BIDS copy ``spm_auditory/MoAEpilot``; a BIDS
    copy ``moae_bids``. ``data_dir`` defaults to ``$NILEARN_DATA`` or ``~/nilearn_data``.
    """
    data_dir = seed_data_dir(data_dir)
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
                         events_file=_absolute(events), t_r=7.0,
                         sources={"RepetitionTimeSource": "the SPM auditory data's 7 s",
                                  "SliceTimeRefSource": SLICE_TIME_REF_FLAG,
                                  "MaskSource": COMPUTED_MASK})
    for bids_dir in (data_dir / "spm_auditory" / "MoAEpilot", data_dir / "moae_bids"):
        if list(bids_dir.glob("sub-*/func/*_task-auditory_bold.nii*")):
            return find_bids_runs(bids_dir, "auditory")[0]
    return None
