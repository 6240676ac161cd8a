"""Finding the runs to analyse: BIDS datasets, file lists, and the SPM auditory data."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.design import check_repetition_time
from ..core.errors import InputError
from ..core.naming import EXTRA_ENTITIES, bids_prefix, check_label

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
    mask_file: str | None = None
    slice_time_ref: float | None = None
    space: str | None = None
    #: The raw run's other entities kept in its output names: ``acq``, ``ce``, ``rec``,
    #: ``dir`` and ``echo`` (only those present) -> label.
    entities: dict = field(default_factory=dict)
    #: Where the run's TR, slice-time reference and brain mask come from
    #: (``RepetitionTimeSource``, ``SliceTimeRefSource``, ``MaskSource`` -> text), recorded
    #: in its design sidecar and in the provenance record.
    sources: dict = field(default_factory=dict)
    #: The keys of :attr:`sources` that fell back for lack of an input (the fMRIPrep mask,
    #: say) -> why, as one phrase shared by every run it applies to (one warning line each).
    fallbacks: dict = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        """The run's BIDS prefix (:func:`~glm_workflows.core.naming.bids_prefix`)."""
        return bids_prefix(self.subject, self.task, self.session, self.run, **self.entities)

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
    return {key: entities[key] for key in EXTRA_ENTITIES if entities.get(key)}


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
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg})") from None


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


def find_bids_runs(bids_dir, task: str, subjects=None, sessions=None, runs=None) -> list:
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

    Returns
    -------
    runs : list of RunInputs
    """
    root = Path(bids_dir)
    selected = _select_raw_runs(root, task, subjects, sessions, runs)
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
                             f"(e.g. task-{task}_bold.json)")
        found.append(RunInputs(
            subject=ents["sub"], task=task, session=ents.get("ses"), run=ents.get("run"),
            bold_files=[_absolute(bold)], events_file=_absolute(events),
            t_r=check_repetition_time(metadata["RepetitionTime"], f"{bold.name}: RepetitionTime"),
            entities=_extra_entities(ents),
            sources={"RepetitionTimeSource": origins["RepetitionTime"],
                     "SliceTimeRefSource": SLICE_TIME_REF_FLAG, "MaskSource": COMPUTED_MASK},
        ))
    _check_distinct_labels(found, root, task)
    return found


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


def _select_raw_runs(root: Path, task: str, subjects=None, sessions=None, runs=None):
    """The raw ``*_bold.nii[.gz]`` of ``task`` kept by the selections (one glob).

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
    if not selected:
        selection = ", ".join(f"{k}-{sorted(v)}" for k, v in wanted.items() if v)
        raise InputError(f"{root}: no task-{task} run matches {selection} "
                         "(each exists, but not in one run together)")
    return selected


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
NIFTI = ("nii", "nii.gz")


def find_derivative_runs(bids_dir, derivatives, task: str, *, space=None, desc="preproc",
                         res=None, den=None, subjects=None, sessions=None,
                         runs=None) -> list:
    """The fMRIPrep-preprocessed runs of ``task``, with raw events and their metadata.

    Each raw ``*_bold.nii[.gz]`` selected as in :func:`find_bids_runs` is matched to
    the ``*_space-<space>[_res-*][_den-*]_desc-<desc>_bold.nii[.gz]`` of the
    derivatives with the same ``sub, ses, task, acq, ce, rec, dir, run, echo``
    entities (``run`` and ``echo`` compare as numbers). Raw runs that differ only by
    ``echo`` are the echoes of one acquisition: they are matched, as one run, to the
    image without ``echo`` (fMRIPrep's optimally combined output; its per-echo images
    are not fitted), and the run is named without ``echo``.

    Parameters
    ----------
    bids_dir : str or PathLike
        The raw BIDS dataset (events, and metadata the derivatives lack).
    derivatives : str or PathLike, or list of them
        fMRIPrep output folder(s) (each holding ``sub-*/[ses-*/]func/``).
    task : str
        Task label.
    space : str or None
        Template or space label; None uses the only space present (refused if several).
    desc : str
        ``desc`` of the preprocessed bold.
    res, den : str or None
        Keep only this resolution / density; needed when a run has several images.
    subjects, sessions, runs : list of str or None
        Keep only these labels (``sub-`` etc. prefixes are accepted and dropped).

    Returns
    -------
    runs : list of RunInputs
        With ``mask_file`` (``desc-brain_mask`` in the same space, or None),
        ``confounds_file`` (``desc-confounds_timeseries.tsv`` or the older
        ``desc-confounds_regressors.tsv``, or None), ``t_r`` (from the derivative
        sidecar, else the raw ones), ``slice_time_ref`` (see
        :func:`slice_time_reference`), ``space``, and in ``sources`` and ``fallbacks``
        where the mask, TR and slice-time reference come from.

    Notes
    -----
    Each dataset is listed once (one glob per derivatives folder, one listing per raw
    folder), then runs are matched through dictionaries: the cost grows linearly with
    the number of runs.
    """
    root = Path(bids_dir)
    selected = _select_raw_runs(root, task, subjects, sessions, runs)
    if isinstance(derivatives, (str, os.PathLike)):
        derivatives = [derivatives]
    folders = [Path(folder) for folder in derivatives]
    if not folders:
        raise InputError("--derivatives: expected at least one fMRIPrep output folder")
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"{folder}: derivatives directory not found")
    space = check_label(space, "space") if space else None
    check_label(desc, "desc")
    res = check_label(str(res), "res") if res is not None else None
    den = check_label(str(den), "den") if den is not None else None
    index = _index_derivatives(folders)
    matches = [_match_acquisition(echoes, index, desc) for echoes in _acquisitions(selected)]
    space = _choose_space(space, desc, matches, folders)
    listing = _Listing()
    found = []
    for match in matches:
        image = _one_image(match, space, desc, res, den, folders)
        found.append(_derivative_run(match, image, root, task, listing))
    _check_distinct_labels(found, root, task)
    return found


@dataclass
class _Match:
    """A raw acquisition (one run, or the echoes of a multi-echo run) and its derivatives."""

    #: ``(bold, entities)`` of its raw runs, one per echo.
    echoes: list
    #: The run's ``(path, entities, suffix, extension)`` derivative files.
    files: list
    #: The preprocessed bold images (``desc``, any space) that may be the run's.
    images: list
    #: The file-name stem the image must start with (``sub-01_task-x_run-1``).
    stem: str

    @property
    def bold(self) -> Path:
        """The first raw run (of the first echo)."""
        return self.echoes[0][0]

    def searched(self, entities: str) -> str:
        """The name searched for with ``entities`` (``space-X_desc-preproc``), and for
        echoes, why an ``echo-`` image is not it."""
        name = f"{self.stem}_{entities}_bold.nii[.gz]"
        if len(self.echoes) == 1:
            return name
        return f"{name} ({_echo_list(self.echoes)} combined: no echo- entity)"


def _match_acquisition(echoes: list, index: dict, desc: str) -> _Match:
    """The derivative files of an acquisition, and its candidate preprocessed images.

    One raw run is matched to the images with its own run entities or, if it has an
    ``echo`` and none has it, without ``echo``; several echoes only to the images
    without ``echo`` (the combined output).
    """
    entities = _bids_name(echoes[0][0].name)[0]
    key = _run_key(entities)
    combined = tuple(item for item in key if item[0] != "echo")
    files = [f for bold, _ in echoes for f in index.get(_run_key(_bids_name(bold.name)[0]), [])]
    if "echo" in entities:  # masks, confounds and the combined image have no echo entity
        files += index.get(combined, [])
    images = [f for f in files if f[2] == "bold" and f[3] in NIFTI
              and f[1].get("desc") == desc and "space" in f[1]]
    own = len(echoes) == 1 and any(_run_key(f[1]) == key for f in images)
    wanted = key if own else combined
    images = [f for f in images if _run_key(f[1]) == wanted]
    stem = "_".join(f"{name}-{entities[name]}" for name in RUN_ENTITIES
                    if name in dict(wanted))
    return _Match(echoes, files, images, stem)


def _index_derivatives(folders: list) -> dict:
    """Every ``sub-*/[ses-*/]func`` file of the derivatives, by run entities.

    One :func:`nilearn.interfaces.bids.get_bids_files` glob per folder. Values are
    lists of ``(path, entities, suffix, extension)``.
    """
    from nilearn.interfaces.bids import get_bids_files

    index = {}
    for folder in folders:
        for path in get_bids_files(folder, modality_folder="func"):
            path = Path(path)
            entities, suffix, extension = _bids_name(path.name)
            index.setdefault(_run_key(entities), []).append(
                (path, entities, suffix, extension))
    return index


def _run_key(entities: dict) -> tuple:
    """The run-identifying entities, index entities as numbers (``run-01`` is ``run-1``)."""
    return tuple((key, int(entities[key]) if key in INDEX_ENTITIES and entities[key].isdigit()
                  else entities[key]) for key in RUN_ENTITIES if key in entities)


def _choose_space(space, desc, matches, folders):
    spaces = sorted({f[1]["space"] for match in matches for f in match.images})
    if space is not None:
        return space
    if len(spaces) == 1:
        return spaces[0]
    where = ", ".join(str(f) for f in folders)
    if not spaces:
        match = matches[0]
        raise InputError(f"{where}: no preprocessed *_space-*_desc-{desc}_bold.nii[.gz] for "
                         f"the selected runs; searched {match.searched(f'space-*_desc-{desc}')} "
                         f"(and the other runs' alike): {_found(match)}")
    raise InputError(f"{where}: several spaces in the derivatives ({', '.join(spaces)}); "
                     "choose one with --space")


def _found(match: _Match) -> str:
    """What the derivatives hold for a run: its bold images, by their entities besides
    the run's (``echo-2_desc-preproc``, ``space-T1w_desc-preproc``), or that there is none."""
    bolds = [f for f in match.files if f[2] == "bold" and f[3] in NIFTI]
    if not bolds:
        return "found no preprocessed bold of this run at all"
    run_entities = set(RUN_ENTITIES) - {"echo"}
    kinds = sorted({"_".join(f"{k}-{v}" for k, v in f[1].items() if k not in run_entities)
                    or "no other entity" for f in bolds})
    return f"found {', '.join(kinds)} only"


def _one_image(match: _Match, space, desc, res, den, folders):
    """The one preprocessed image of a run in ``space`` (and ``res``/``den`` if given)."""
    chosen = [f for f in match.images if f[1]["space"] == space
              and (res is None or _same_label("run", res, f[1].get("res")))
              and (den is None or f[1].get("den") == den)]
    if len(chosen) == 1:
        return chosen[0]
    if not chosen:
        wanted = f"space-{space}" + (f"_res-{res}" if res else "") + (
            f"_den-{den}" if den else "") + f"_desc-{desc}"
        raise InputError(
            f"{match.bold.name}: no preprocessed bold in "
            f"{', '.join(str(f) for f in folders)}; searched {match.searched(wanted)}: "
            f"{_found(match)}")
    names = " and ".join(str(f[0]) for f in chosen)
    raise InputError(f"{match.bold.name}: several preprocessed images match: {names}; "
                     "choose one with --res / --den")


def _derivative_run(match: _Match, image, root, task, listing):
    """The RunInputs of one raw acquisition and its chosen preprocessed image."""
    path, image_entities = image[0], image[1]
    bold, entities = match.echoes[0]
    events = _run_events(match, root, task, listing)
    sidecar = path.with_name(path.name.split(".")[0] + ".json")
    metadata = _read_json(sidecar) if sidecar.exists() else {}
    origins = dict.fromkeys(metadata, sidecar.name)
    fallbacks = {}
    if "RepetitionTime" not in metadata:
        raw, raw_origins = _sidecar_metadata(bold, root, listing)
        metadata, origins = {**raw, **metadata}, {**raw_origins, **origins}
        fallbacks["RepetitionTimeSource"] = (
            "no RepetitionTime in the preprocessed bold's sidecar: TR from the raw sidecars")
    if "RepetitionTime" not in metadata:
        raise InputError(f"{path.name}: no RepetitionTime in {sidecar.name} nor in the raw "
                         f"sidecars of {bold.name} (e.g. task-{task}_bold.json)")
    source = origins["RepetitionTime"]
    t_r = check_repetition_time(metadata["RepetitionTime"], f"{source}: RepetitionTime")
    slice_time_ref = slice_time_reference(
        metadata, t_r, origins.get("StartTime" if metadata.get("StartTime") is not None
                                   else "SliceTiming", source))
    if metadata.get("StartTime") is not None:
        slice_source = f"StartTime / RepetitionTime of {origins['StartTime']}"
    elif slice_time_ref is not None:
        slice_source = f"middle of SliceTiming of {origins['SliceTiming']}"
        fallbacks["SliceTimeRefSource"] = (
            "no StartTime in the sidecars: slice-time reference at the middle of SliceTiming "
            "(fMRIPrep's default)")
    else:
        slice_source = SLICE_TIME_REF_FLAG
        fallbacks["SliceTimeRefSource"] = (
            "no StartTime or SliceTiming in the sidecars: slice-time reference from "
            f"{SLICE_TIME_REF_FLAG}")
    same_grid = {key: image_entities.get(key) for key in ("space", "res", "den")}
    masks = [f[0] for f in match.files if f[2] == "mask" and f[3] in NIFTI
             and f[1].get("desc") == "brain" and "echo" not in f[1]
             and all(f[1].get(key) == value for key, value in same_grid.items())]
    mask = _absolute(_nearest(masks, path)) if masks else None
    if mask is None:
        grid = "_".join(f"{k}-{v}" for k, v in same_grid.items() if v)
        fallbacks["MaskSource"] = (f"no fMRIPrep desc-brain_mask in the image's {grid}: "
                                   f"brain mask {COMPUTED_MASK}")
    return RunInputs(
        subject=entities["sub"], task=task, session=entities.get("ses"),
        run=entities.get("run"), bold_files=[_absolute(path)],
        events_file=_absolute(events), t_r=t_r,
        confounds_file=_confounds_file(path, image_entities, match.files),
        mask_file=mask, slice_time_ref=slice_time_ref, space=image_entities["space"],
        entities=_extra_entities({k: v for k, v in entities.items()
                                  if k != "echo" or "echo" in image_entities}),
        sources={"RepetitionTimeSource": source, "SliceTimeRefSource": slice_source,
                 "MaskSource": f"fmriprep desc-brain_mask {mask}" if mask else COMPUTED_MASK},
        fallbacks=fallbacks,
    )


def _run_events(match: _Match, root, task, listing) -> Path:
    """The raw events of an acquisition (BIDS inheritance); the echoes of a multi-echo
    run must share them (one file without ``echo``, or per-echo files of equal bytes)."""
    chosen = []
    for bold, _ in match.echoes:
        events = _inherited_files(bold, root, "events", "tsv", listing)
        if not events:
            raise InputError(f"{bold.name}: no events file (neither "
                             f"{bold.name.split('_bold')[0]}_events.tsv beside it nor an "
                             f"inherited task-{task}_events.tsv)")
        chosen.append(events[-1])
    for other in chosen[1:]:
        if other != chosen[0] and other.read_bytes() != chosen[0].read_bytes():
            raise InputError(f"{other}: events differ from {chosen[0].name}'s, for the echoes "
                             "of one run (they are fitted as one combined run)")
    return chosen[0]


def _nearest(paths: list, image: Path) -> Path:
    """The path in the image's own folder if any, else the first one."""
    return next((p for p in paths if p.parent == image.parent), sorted(paths)[0])


def _confounds_file(image: Path, image_entities: dict, files: list):
    """``*_desc-confounds_timeseries.tsv`` (or ``_regressors``) that applies to the image."""
    candidates = []
    for path, entities, suffix, extension in files:
        if (suffix in ("timeseries", "regressors") and extension == "tsv"
                and entities.get("desc") == "confounds"):
            rest = {k: v for k, v in entities.items() if k != "desc"}
            if _is_subset(rest, image_entities):
                candidates.append((path.parent != image.parent, suffix != "timeseries",
                                   -len(rest), str(path), path))
    return _absolute(min(candidates)[-1]) if candidates else None


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
    else:
        return None
    if (isinstance(start, bool) or not isinstance(start, (int, float))
            or not 0 <= start < t_r):
        raise InputError(f"{source}: {field}: expected seconds from 0 to below the TR "
                         f"({t_r}), got {start!r}")
    return start / t_r


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
                         events_file=_absolute(events), t_r=7.0,
                         sources={"RepetitionTimeSource": "the SPM auditory data's 7 s",
                                  "SliceTimeRefSource": SLICE_TIME_REF_FLAG,
                                  "MaskSource": COMPUTED_MASK})
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
        sources={"RepetitionTimeSource": "--tr", "SliceTimeRefSource": SLICE_TIME_REF_FLAG,
                 "MaskSource": COMPUTED_MASK},
    )
