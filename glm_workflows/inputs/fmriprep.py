"""fMRIPrep derivatives: :func:`find_derivative_runs` pairs each raw run with its
preprocessed image, brain mask and confounds table (one space, multi-echo combined)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.bids_filter import DERIVATIVE_ENTITIES, bold_query, query_keeps
from ..core.cifti import CIFTI_DENSITY, CIFTI_SPACE
from ..core.entities import TEMPLATE_ENTITIES, check_label
from ..core.errors import InputError
from ..core.run_tables import check_repetition_time
from ..core.surfaces import is_surface_space
from .bids import _select_raw_runs
from .cifti import cifti_file, cifti_run, fslr_density, fslr_found_text
from .runs import (
    COMPUTED_MASK,
    RUN_ENTITIES,
    SLICE_TIME_REF_FLAG,
    RunInputs,
    _absolute,
    _acquisitions,
    _bids_name,
    _check_distinct_labels,
    _echo_list,
    _extra_entities,
    _inherited_files,
    _is_subset,
    _Listing,
    _read_json,
    _run_key,
    _same_label,
    _sidecar_metadata,
    slice_time_reference,
)
from .surfaces import surface_pair, surface_run

NIFTI = ("nii", "nii.gz")


def find_derivative_runs(bids_dir, derivatives, task: str, *, space=None, desc="preproc",
                         res=None, den=None, subjects=None, sessions=None,
                         runs=None, filters=()) -> list:
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
        A surface space (``fsaverage5``, ``fsnative``...) finds each run's GIFTI
        hemisphere pair instead (:mod:`glm_workflows.inputs.surfaces`); ``fsLR`` each
        run's CIFTI-2 ``den-91k`` dense time series (:mod:`glm_workflows.inputs.cifti`),
        or its fsLR 32k GIFTI pair with ``den='32k'`` or when no run has a CIFTI series
        (:func:`~glm_workflows.inputs.cifti.fslr_density`).
    desc : str
        ``desc`` of the preprocessed bold.
    res, den : str or None
        Keep only this resolution / density; needed when a run has several images.
    subjects, sessions, runs : list of str or None
        Keep only these labels (``sub-`` etc. prefixes are accepted and dropped).
    filters : tuple
        A ``--bids-filter-file``'s queries: the ``bold`` query's raw entities select the
        raw runs, its ``space``, ``res``, ``den`` and ``desc`` the images chosen for them
        (besides ``space``, ``desc``, ``res`` and ``den`` above).

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
    selected = _select_raw_runs(root, task, subjects, sessions, runs, filters)
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
    if space == CIFTI_SPACE:  # CIFTI-2 grayordinates, or fsLR 32k GIFTI pairs
        den = fslr_density(matches, den, desc, bold_query(filters, DERIVATIVE_ENTITIES))
    if space == CIFTI_SPACE and den == CIFTI_DENSITY:  # CIFTI-2 (inputs.cifti)
        listing, found = _Listing(), []
        query = bold_query(filters, DERIVATIVE_ENTITIES)
        found_text = fslr_found_text(desc, query, _found)
        for match in matches:
            image = cifti_file(match, desc, folders, query, found_text)
            found.append(cifti_run(_derivative_run(match, image, root, task, listing),
                                   image[0]))
        _check_distinct_labels(found, root, task)
        return found
    if is_surface_space(space) or space == CIFTI_SPACE:  # GIFTI pairs (inputs.surfaces)
        listing = _Listing()
        found = []
        query = bold_query(filters, DERIVATIVE_ENTITIES)
        for match in matches:
            pair = surface_pair(match, space, desc, den, folders, query)
            found.append(surface_run(_derivative_run(match, pair[0], root, task, listing),
                                     pair, space, den))
        _check_distinct_labels(found, root, task)
        return found
    query = bold_query(filters, DERIVATIVE_ENTITIES)
    for match in matches:  # the images the filters' bold query allows
        match.images = [f for f in match.images if query_keeps(query, f[1])]
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
                    for f in bolds})
    if kinds == [""]:  # the run's own name: a raw dataset
        return ("found only the raw run itself (--derivatives takes fMRIPrep's output "
                "folder, not the raw dataset)")
    return f"found {', '.join(kind or 'the raw run itself' for kind in kinds)} only"


def _one_image(match: _Match, space, desc, res, den, folders):
    """The one preprocessed image of a run in ``space`` (and ``res``/``den`` if given)."""
    chosen = [f for f in match.images if f[1]["space"] == space
              and (res is None or _same_label("res", res, f[1].get("res")))
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
    hint = ("one image in several --derivatives folders: give only one of them"
            if len({Path(f[0]).name for f in chosen}) == 1 else "choose one with --res / --den")
    if len({str(f[0]).removesuffix(".gz") for f in chosen}) == 1:  # .nii beside .nii.gz
        hint = "the same image is stored as .nii and .nii.gz: keep only one of the two files"
    raise InputError(f"{match.bold.name}: several preprocessed images match: {names}; {hint}")


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
        entities={**_extra_entities({k: v for k, v in entities.items()
                                     if k != "echo" or "echo" in image_entities}),
                  **{k: image_entities[k] for k in TEMPLATE_ENTITIES if image_entities.get(k)}},
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
