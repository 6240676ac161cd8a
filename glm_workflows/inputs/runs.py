"""A run to analyse (:class:`RunInputs`) and what finding one needs: BIDS entities,
sidecar metadata with inheritance, the slice-timing reference; runs from file lists
(:func:`file_list_run`)."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.entities import (
    EXTRA_ENTITIES,
    TEMPLATE_ENTITIES,
    bids_prefix,
    check_label,
    template_of,
)
from ..core.errors import InputError, not_found
from ..core.run_tables import check_repetition_time

ENTITY = re.compile(r"(sub|ses|task|acq|ce|dir|rec|run|echo)-([a-zA-Z0-9]+)")


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
    mask_file: str | None = None
    slice_time_ref: float | None = None
    space: str | None = None
    #: The other entities kept in its output names (only those present) -> label: the raw
    #: run's ``acq``, ``ce``, ``rec``, ``dir``, ``echo`` and, for an fMRIPrep image, its
    #: ``space``, ``cohort``, ``res`` and ``den``.
    entities: dict = field(default_factory=dict)
    #: Where the run's TR, slice-time reference and brain mask come from
    #: (``RepetitionTimeSource``, ``SliceTimeRefSource``, ``MaskSource`` -> text), recorded
    #: in its design sidecar and in the provenance record.
    sources: dict = field(default_factory=dict)
    #: The keys of :attr:`sources` that fell back for lack of an input (the fMRIPrep mask,
    #: say) -> why, as one phrase shared by every run it applies to (one warning line each).
    fallbacks: dict = field(default_factory=dict)
    #: A surface run's mesh (``fsaverage5``, ``fsaverage_den-10k``, ``fsnative``), its
    #: :attr:`bold_files` being its left and right GIFTI hemispheres, or ``fsLR_den-91k``
    #: for a CIFTI run (its one ``.dtseries.nii``); None for a volume.
    surface: str | None = None

    @property
    def prefix(self) -> str:
        """The run's BIDS prefix (:func:`~glm_workflows.core.entities.bids_prefix`)."""
        return bids_prefix(self.subject, self.task, self.session, self.run, **self.entities)

    @property
    def template_entities(self) -> dict:
        """Its image's template entities besides the space (``cohort``, ``res``, ``den``:
        those it has), which with the space tell its analysis from another's
        (:func:`~glm_workflows.core.analyses.analysis_label`)."""
        return {key: label for key, label in template_of(self.entities).items()
                if key != "space"}

    @property
    def label(self) -> str:
        """Identifier for workflow names: ``sub_01[_ses_x]_task_auditory[_acq_hi][_run_1]``.

        The entities of :attr:`prefix`, in its order.
        """
        return self.prefix.replace("-", "_")


def _entities(name: str) -> dict:
    return dict(ENTITY.findall(name.split(".")[0]))


def _extra_entities(entities: dict) -> dict:
    """The entities of a raw run kept in its names besides sub, ses, task and run."""
    return {key: entities[key] for key in EXTRA_ENTITIES
            if entities.get(key) and key not in TEMPLATE_ENTITIES}


def _sidecar_metadata(bold: Path, root: Path, listing=None) -> tuple[dict, dict]:
    """BIDS inheritance: merge ``*_bold.json`` files from the root down to the file's folder.

    A sidecar applies when its entities are a subset of the bold file's.

    Returns
    -------
    metadata : dict
        The merged fields.
    origins : dict
        Each field -> the name of the sidecar it was taken from.
    """
    metadata, origins = {}, {}
    for sidecar in _inherited_files(bold, root, "bold", "json", listing):
        fields = _read_json(sidecar)
        metadata.update(fields)
        origins.update(dict.fromkeys(fields, sidecar.name))
    return metadata, origins


def _read_json(path: Path) -> dict:
    """A sidecar's fields: a JSON object (a list or a number is refused, naming the file)."""
    try:
        fields = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(fields, dict):
        raise InputError(f"{path}: expected a JSON object of metadata fields ({{...}}), got "
                         f"a {type(fields).__name__}")
    return fields


class _Listing:
    """BIDS files of folders by ``(suffix, extension)``, each folder read once.

    Sharing one listing between the runs of a dataset keeps searches linear in the
    number of runs (the dataset root, listing every subject, is parsed once).
    """

    def __init__(self):
        self._folders = {}

    def __call__(self, folder: Path, suffix: str, extension: str) -> list:
        """``(name, entities)`` of the ``*_<suffix>.<extension>`` files in ``folder``."""
        if folder not in self._folders:
            try:
                names = sorted(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                names = []
            files = {}
            for name in names:
                entities, file_suffix, file_ext = _bids_name(name)
                files.setdefault((file_suffix, file_ext), []).append((name, entities))
            self._folders[folder] = files
        return self._folders[folder].get((suffix, extension), [])


def _inherited_files(bold: Path, root: Path, suffix: str, extension: str, listing=None) -> list:
    """The ``*_<suffix>.<extension>`` files that apply to ``bold`` by BIDS inheritance.

    Looked for from ``root`` down to the bold's folder; a file applies when its entities
    are a subset of the bold's (index entities compared as numbers). The list goes from
    the least to the most specific file (the last one wins).
    """
    listing = listing or _Listing()
    entities = _bids_name(bold.name)[0]
    folders = [bold.parent]
    while folders[-1] != root and root in folders[-1].parents:
        folders.append(folders[-1].parent)
    found = []
    for folder in reversed(folders):
        here = [(len(ents), folder / name) for name, ents in listing(folder, suffix, extension)
                if _is_subset(ents, entities)]
        found += [path for _, path in sorted(here, key=lambda item: item[0])]
    return found


def _bids_name(name: str) -> tuple:
    """``(entities, suffix, extension)`` of a BIDS file name (``sub-01_bold.nii.gz``)."""
    stem, _, extension = name.partition(".")
    *parts, suffix = stem.split("_")
    entities = {}
    for part in parts:
        key, dash, value = part.partition("-")
        if dash:
            entities[key] = value
    return entities, suffix, extension


def _is_subset(entities: dict, of: dict) -> bool:
    """Whether every entity of ``entities`` is in ``of`` with the same value."""
    return all(_same_label(key, value, of.get(key)) for key, value in entities.items())


#: ``MaskSource`` of a run fitted in the mask computed from it (as ``FirstLevelModel``).
COMPUTED_MASK = "computed (nilearn compute_epi_mask of the run, as FirstLevelModel)"


#: ``SliceTimeRefSource`` of a run whose slice-time reference is the model setting.
SLICE_TIME_REF_FLAG = "--slice-time-ref"


def _acquisitions(selected: list) -> list:
    """The raw runs grouped by acquisition: runs that differ only by ``echo`` are the
    echoes of one (multi-echo) acquisition. Each group is a list of ``(bold, entities)``,
    in the order of ``selected``."""
    groups: dict = {}
    for bold, entities in selected:
        key = tuple(item for item in _run_key(_bids_name(bold.name)[0]) if item[0] != "echo")
        groups.setdefault(key, []).append((bold, entities))
    return list(groups.values())


def _echo_list(echoes: list) -> str:
    """``echo-1, echo-2, echo-3`` of an acquisition's raw runs."""
    return ", ".join(f"echo-{entities.get('echo')}" for _, entities in echoes)


def _check_distinct_labels(found: list, root: Path, task: str) -> None:
    counts = Counter(r.label for r in found)
    clashes = sorted(label for label, count in counts.items() if count > 1)
    if clashes:
        raise InputError(f"{root}: several task-{task} runs share the entities {clashes[0]} "
                         "(sub, ses, task, acq, ce, rec, dir, run and echo tell runs apart)")
    subjects = {}
    for run in found:
        subjects.setdefault(run.subject, []).append(run)
    for runs in subjects.values():
        if len(runs) < 2:
            continue
        from ..plan.study import subject_entities, subject_session

        combined = bids_prefix(runs[0].subject, task, subject_session(runs), None,
                               **subject_entities(runs))
        if any(run.prefix == combined for run in runs):
            raise InputError(f"{root}: the fixed effects of sub-{runs[0].subject}'s task-{task} "
                             f"runs would be named {combined}, as one of the runs; select "
                             "runs that all have a run (or acq, ...) entity")


#: Entities that tell a raw run apart; its fMRIPrep derivatives keep them all, but for
#: ``echo``: the echoes of a multi-echo run are combined into one image without it.
RUN_ENTITIES = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo")


def _run_key(entities: dict) -> tuple:
    """The run-identifying entities, index entities as numbers (``run-01`` is ``run-1``)."""
    return tuple((key, int(entities[key]) if key in INDEX_ENTITIES and entities[key].isdigit()
                  else entities[key]) for key in RUN_ENTITIES if key in entities)


def slice_time_reference(metadata: dict, t_r: float, source: str = "sidecar"):
    """The slice-time reference, as a fraction of the TR, from bold metadata.

    ``StartTime / RepetitionTime`` when the sidecar has ``StartTime`` (what fMRIPrep
    writes after slice-timing correction, and what
    :func:`nilearn.glm.first_level.first_level_from_bids` uses); else, with
    ``SliceTiming``, the middle of the slice times (fMRIPrep's default reference,
    ``--slice-time-ref 0.5``); else None.

    Parameters
    ----------
    metadata : dict
        The bold's sidecar metadata.
    t_r : float
        Repetition time (s).
    source : str
        Name of the sidecar, for error messages.

    Returns
    -------
    slice_time_ref : float or None
        Between 0 (included) and 1 (excluded).
    """
    if metadata.get("StartTime") is not None:
        start, field = metadata["StartTime"], "StartTime"
    elif metadata.get("SliceTiming"):
        times = metadata["SliceTiming"]
        try:
            start, field = (min(times) + max(times)) / 2, "SliceTiming"
        except TypeError:
            raise InputError(f"{source}: SliceTiming: expected a list of seconds, "
                             f"got {times!r}") from None
        if not 0 <= min(times) <= max(times) < t_r:  # each slice within the volume's TR
            raise InputError(f"{source}: SliceTiming: expected seconds from 0 to below the "
                             f"TR ({t_r}), got {min(times)!r} to {max(times)!r}")
    else:
        return None
    if (isinstance(start, bool) or not isinstance(start, (int, float))
            or not 0 <= start < t_r):
        raise InputError(f"{source}: {field}: expected seconds from 0 to below the TR "
                         f"({t_r}), got {start!r}")
    return start / t_r


#: BIDS index entities: their values are numbers (``run-1`` is ``run-01``).
INDEX_ENTITIES = ("run", "echo")
#: The entities whose labels a selection compares as numbers: the index entities, and
#: fMRIPrep's ``res`` (``--res 02`` is ``res-2``).
NUMBERED_ENTITIES = (*INDEX_ENTITIES, "res")


def _same_label(key: str, wanted: str, value: str | None) -> bool:
    """Whether an entity value matches a selected label (:data:`NUMBERED_ENTITIES` as
    numbers)."""
    if value is None:
        return False
    if key in NUMBERED_ENTITIES and wanted.isdigit() and value.isdigit():
        return int(wanted) == int(value)
    return wanted == value


def _labels(values, prefix, entity):
    if not values:
        return set()
    return {check_label(str(v).removeprefix(f"{prefix}-"), entity) for v in values}


def _absolute(path) -> str:
    """Nodes run in their own folders, so every input path is made absolute."""
    return str(Path(path).absolute())


def file_list_run(func, events, t_r, subject="01", task="auditory", session=None, run=None,
                  confounds=None) -> RunInputs:
    """A run given as files on the command line or from Python."""
    for path in [*func, events, *([confounds] if confounds else [])]:
        if not Path(path).exists():
            raise not_found(path)
    _check_scan_order(func)
    return RunInputs(
        subject=check_label(subject, "subject"), task=check_label(task, "task"),
        session=check_label(session, "session") if session else None,
        run=check_label(run, "run") if run else None,
        bold_files=[_absolute(f) for f in func], events_file=_absolute(events),
        t_r=check_repetition_time(t_r, "--tr"),
        confounds_file=_absolute(confounds) if confounds else None,
        sources={"RepetitionTimeSource": "--tr", "SliceTimeRefSource": SLICE_TIME_REF_FLAG,
                 "MaskSource": COMPUTED_MASK},
    )


#: A file name's last number, with the text before and after it.
NUMBERED_NAME = re.compile(r"^(.*?)(\d+)(\D*)$")


def _check_scan_order(func) -> None:
    """Refuse scans named alike but for a number (``vol2.nii``, ``vol10.nii``) given out of
    that number's order: a shell's glob sorts unpadded numbers as text (``vol10`` before
    ``vol2``), and the run would be fitted with its volumes shuffled."""
    names = [NUMBERED_NAME.match(Path(path).name) for path in func]
    if len(func) < 2 or not all(names) or len({(m[1], m[3]) for m in names}) > 1:
        return
    numbers = [int(m[2]) for m in names]
    for index in range(len(numbers) - 1):
        if numbers[index] > numbers[index + 1]:
            raise InputError(f"--func {func[index]}: scan {numbers[index]} is given before "
                             f"scan {numbers[index + 1]} ({Path(func[index + 1]).name}); a "
                             "shell's glob sorts unpadded numbers as text: give the scans in "
                             "acquisition order (e.g. ls -v)")
