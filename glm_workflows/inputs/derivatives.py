"""The subject-level maps of a derivatives folder this package wrote earlier, for a run
of the group level alone (``--from-derivatives``): no work directory, no refit.

Each subject folder ``sub-<label>/`` (with its session folders ``ses-<label>/``, where the
outputs of a session's runs and of its fixed effects lie) holds one analysis of the
subject: its runs' outputs (``<run prefix>_...``) and, when it had several runs, its fixed
effects (the prefix
without ``run`` that every run's prefix extends, see :mod:`glm_workflows.workflows.study`). The
subject's map of a contrast is that of the fixed effects if any, else that of its one
run; with it go the mask and mean image of the same prefix. Names are read through
:mod:`glm_workflows.core.naming` (no Nipype); the images are read only by
:func:`check_plan_files`, before any work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from ..core.entities import parse_prefix, subject_label
from ..core.errors import InputError
from ..core.naming import (
    as_volume_name,
    contrast_file,
    model_file,
    output_folder,
    parse_output_name,
    parse_session_folder,
    parse_subject_folder,
    subject_folder,
)
from ..core.surface_names import (
    CIFTI_EXTENSION,
    SURFACE_EXTENSION,
    cifti_name,
    cifti_volume_name,
    surface_name,
)
from .templates import chosen_template, template_key


class SubjectMaps(NamedTuple):
    """A subject's maps in a derivatives folder (see :func:`find_subject_maps`).

    Attributes
    ----------
    subject : str
        Subject label.
    prefix : str
        The BIDS prefix of its subject-level outputs (fixed effects, or its one run).
    mask_file, mean_file : str
        ``<prefix>_desc-brain_mask.nii.gz`` and ``<prefix>_desc-mean_bold.nii.gz``.
    effect_maps : dict
        Contrast name -> ``<prefix>_contrast-<C>_stat-effect_statmap.nii.gz``.
    stat_types : dict
        Contrast name -> ``t`` or ``F`` (the contrast sidecar's ``StatisticType``).
    rows : dict
        Contrast name -> its expressions (the sidecar's ``ContrastRows``).
    variance_maps : dict
        Contrast name -> ``<prefix>_contrast-<C>_stat-variance_statmap.nii.gz`` (what the
        mixed-effects group model reads; checked by :func:`check_plan_files` when used).
    """

    subject: str
    prefix: str
    mask_file: str
    mean_file: str
    effect_maps: dict
    stat_types: dict
    rows: dict
    variance_maps: dict = {}

    @property
    def label(self) -> str:
        """What the study's ``skipped`` contrasts are keyed by (a run's label)."""
        return self.prefix


def find_subject_maps(folder, task: str, subjects=None, space: str | None = None, *,
                      res: str | None = None,
                      den: str | None = None) -> tuple[list[SubjectMaps], list[str]]:
    """The subject-level maps of task ``task`` (in ``space``, at ``res``/``den``) in every
    ``sub-*/`` folder of ``folder``.

    Parameters
    ----------
    folder : str or PathLike
        A derivatives folder written by this package.
    task : str
        The task label.
    subjects : list of str or None
        Subject labels (with or without ``sub-``) to keep; None: every subject.
    space, res, den : str or None
        The ``space-``, ``res-``, ``den-`` of the maps (an fMRIPrep image's); None: any, but
        the folder must then hold the task's maps in one template only (space, cohort,
        resolution, density; or without one).

    Returns
    -------
    maps : list of SubjectMaps
        One per subject with results of ``task``, in label order.
    warnings : list of str
        One line per selected subject folder without results of ``task`` (left out).

    Raises
    ------
    InputError
        ``folder`` missing, a selected subject absent, no subject with results of
        ``task``, its results in several templates none of the flags chooses between, or
        a subject's mask, mean image or contrast sidecar missing.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--from-derivatives {folder}: folder not found (the group level "
                         "reads the participant level's maps there, OUTPUT_DIR unless given: "
                         "run the participant level first)")
    found = sorted(label for label in (parse_subject_folder(p.name) for p in root.iterdir()
                                       if p.is_dir()) if label)
    if subjects:
        wanted = [subject_label(s) for s in subjects]
        absent = [s for s in wanted if s not in found]
        if absent:
            raise InputError(f"--subject {', '.join(absent)}: no such subject folder in "
                             f"{folder} (found: {', '.join(found) or 'none'})")
        found = [s for s in found if s in wanted]
    asked = {"space": space, "res": res, "den": den}
    listings, tasks, templates = {}, set(), set()
    for subject in found:
        where = {as_volume_name(name): place  # a surface map stands for its pair
                 for name, place in subject_files(root, subject).items()
                 if "_hemi-R_" not in name}
        parsed = [(name, p) for name, p in ((n, parse_output_name(n)) for n in sorted(where))
                  if p]
        entities = {p.prefix: parse_prefix(p.prefix) for _, p in parsed}  # once a prefix
        tasks.update(parts["task"] for parts in entities.values())
        of_task = {prefix: template_key(parts) for prefix, parts in entities.items()
                   if parts["task"] == task}
        listings[subject] = where, parsed, of_task
        templates.update(of_task.values())
    chosen = chosen_template(templates, asked, folder, task)
    maps, warnings = [], []
    for subject, (where, parsed, of_task) in listings.items():
        prefixes = sorted(prefix for prefix, template in of_task.items() if template == chosen)
        if not prefixes:
            warnings.append(f"sub-{subject}: no results of task {task} in {folder}; left out")
            continue
        prefix = _subject_prefix(subject, prefixes)  # its folder: where its mask is, if any
        maps_folder = where.get(model_file(prefix, "mask_file"), root / output_folder(prefix))
        maps.append(_subject_maps(maps_folder, subject, prefix, parsed))
    if not maps:
        given = ", ".join(f"{key} {value}" for key, value in asked.items() if value)
        found_spaces = "; spaces found: " + (", ".join(sorted(
            " ".join(f"{key}-{value}" if key != "space" else value for key, value in template)
            for template in templates if template)) or "none") if given else ""
        raise InputError(f"--from-derivatives {folder}: no subject results of task {task}"
                         f"{' in ' + given if given else ''} (subject folders: {len(found)}; "
                         f"tasks found: {', '.join(sorted(tasks)) or 'none'}{found_spaces})")
    return maps, warnings


def subject_files(root: Path, subject: str) -> dict:
    """The files in a subject's folder and in its session folders: name -> its folder
    (a session's outputs are found in the subject's folder too, where glm-workflows
    0.1 wrote them)."""
    folder = root / subject_folder(subject)
    folders = [folder, *(p for p in folder.iterdir()
                         if p.is_dir() and parse_session_folder(p.name))]
    return {p.name: where for where in folders for p in where.iterdir() if p.is_file()}


def _subject_prefix(subject: str, prefixes: list[str]) -> str:
    """The prefix of a subject's subject-level outputs: its only one, else the one
    without ``run`` whose entities every other prefix has (the fixed effects)."""
    if len(prefixes) == 1:
        return prefixes[0]
    entities = {prefix: {k: v for k, v in parse_prefix(prefix).items() if v}
                for prefix in prefixes}
    combined = [prefix for prefix, own in entities.items()
                if "run" not in own and all(own.items() <= other.items()
                                            for other in entities.values())]
    if len(combined) != 1:
        raise InputError(f"sub-{subject}: cannot tell its subject-level maps among "
                         f"{', '.join(prefixes)}")
    return combined[0]


def _subject_maps(folder: Path, subject: str, prefix: str, parsed) -> SubjectMaps:
    """The mask, mean image and contrasts of ``prefix`` in its folder (a subject's, or a
    session's)."""
    files = {}
    for output in ("mask_file", "mean_file"):
        path = _existing(folder / model_file(prefix, output))
        if not path.is_file():
            raise InputError(f"{path}: not found (the {output.replace('_file', '')} of "
                             f"sub-{subject}'s maps)")
        files[output] = str(path.absolute())
    contrasts = sorted({p.contrast for _, p in parsed
                        if p.prefix == prefix and p.output == "effect_maps"})
    effect_maps, stat_types, rows, variance_maps = {}, {}, {}, {}
    for contrast in contrasts:
        sidecar = folder / contrast_file(prefix, contrast, "contrast_jsons")
        try:
            meta = json.loads(sidecar.read_text())
            stat_type = meta["StatisticType"]
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"{sidecar}: missing or unreadable (the StatisticType of "
                             f"contrast {contrast})") from None
        if stat_type not in ("t", "F"):
            raise InputError(f"{sidecar}: StatisticType {stat_type!r}, expected t or F")
        effect_maps[contrast] = str(_existing(
            folder / contrast_file(prefix, contrast, "effect_maps")).absolute())
        variance_maps[contrast] = str(_existing(
            folder / contrast_file(prefix, contrast, "variance_maps")).absolute())
        stat_types[contrast] = stat_type
        rows[contrast] = tuple(meta.get("ContrastRows") or ())
    return SubjectMaps(subject, prefix, files["mask_file"], files["mean_file"], effect_maps,
                       stat_types, rows, variance_maps)


def _existing(path: Path) -> Path:
    """A volume output's path, or its left hemisphere's when only that exists (surface
    maps: the right hemisphere's file sits beside it), or its CIFTI map's."""
    if path.is_file():
        return path
    cifti = path.with_name(cifti_name(path.name))
    left = path.with_name(surface_name(path.name, "L"))
    return cifti if cifti.is_file() else left if left.is_file() else path


def is_surface_maps(maps: list) -> bool:
    """Whether subject maps are surface maps (a left hemisphere's GIFTI each, or a CIFTI
    map each)."""
    return bool(maps) and maps[0].mask_file.endswith(("." + SURFACE_EXTENSION,
                                                       "." + CIFTI_EXTENSION))


def is_cifti_maps(maps: list) -> bool:
    """Whether subject maps are CIFTI maps (grayordinates: one ``.dscalar.nii`` each)."""
    return bool(maps) and cifti_volume_name(Path(maps[0].mask_file).name) is not None


def study_contrasts(maps: list[SubjectMaps], folder, requested=()) -> list[tuple]:
    """The first-level contrasts of the group run: every contrast some subject has
    (sorted), or only ``requested`` ones.

    Parameters
    ----------
    maps : list of SubjectMaps
    folder : str or PathLike
        The derivatives folder, for messages.
    requested : sequence of (name, rows or None)
        ``--contrast`` names (rows: the expression given, checked against the one the
        maps were computed with; None: not given).

    Returns
    -------
    contrasts : list of (name, stat_type, rows)
    """
    found: dict = {}
    first: dict = {}  # name -> the first subject that has it
    for subject_maps in maps:
        for name, stat_type in subject_maps.stat_types.items():
            rows = subject_maps.rows[name]
            known = found.setdefault(name, (stat_type, rows))
            source = first.setdefault(name, subject_maps.subject)
            if known[0] != stat_type:
                raise InputError(f"contrast {name}: of statistic {known[0]} for some "
                                 f"subjects of {folder}, {stat_type} for sub-"
                                 f"{subject_maps.subject}")
            if known[1] and rows and _bare(known[1]) != _bare(rows):
                raise InputError(f"contrast {name}: the maps of sub-{source} in {folder} "
                                 f"are of {' , '.join(known[1])!r}, those of sub-"
                                 f"{subject_maps.subject} of {' , '.join(rows)!r}; rerun "
                                 "the participant level of one with the other's expression")
    if not requested:
        return [(name, *found[name]) for name in sorted(found)]
    contrasts = []
    for name, given in requested:
        if name not in found:
            raise InputError(f"--contrast {name}: no subject of {folder} has it (found: "
                             f"{', '.join(sorted(found)) or 'none'})")
        stat_type, rows = found[name]
        if stat_type != "t":
            raise InputError(f"--contrast {name}: an F contrast in {folder}; the group level "
                             "takes t contrasts")
        if given is not None and rows and _bare(given) != _bare(rows):  # rows: if recorded
            raise InputError(f"--contrast {name}: the maps of {folder} are of "
                             f"{' , '.join(rows)!r}, not {' , '.join(given)!r}")
        contrasts.append((name, stat_type, rows))
    return contrasts


def _bare(rows) -> tuple:
    """Expressions without white space, for comparison."""
    return tuple("".join(str(row).split()) for row in rows)


def check_plan_files(maps: list[SubjectMaps], plans) -> None:
    """Check, before any work, every file the group analyses will read
    (:func:`~glm_workflows.core.group_mask.check_group_files`: readable whole, one grid, a
    subject's map finite in most of the group mask).

    Parameters
    ----------
    maps : list of SubjectMaps
    plans : list of glm_workflows.workflows.study.GroupPlan

    Raises
    ------
    InputError
        Naming the first file refused.
    """
    from ..core.group_mask import check_group_files

    by_subject = {subject_maps.subject: subject_maps for subject_maps in maps}
    if is_cifti_maps(maps):  # CIFTI maps: readable, on the same brain models
        from ..core.cifti import check_same_brain_models

        check_same_brain_models([path for m in maps for path in
                                 (m.mask_file, m.mean_file, *m.effect_maps.values())], "map")
        return
    if is_surface_maps(maps):  # GIFTI pairs: readable, on one mesh
        from ..core.surfaces import check_surface_maps

        check_surface_maps([path for m in maps for path in
                            (m.mask_file, m.mean_file, *m.effect_maps.values())])
        return
    for plan in plans:
        chosen = [by_subject[subject] for subject in plan.subjects]
        effect_maps = [[m.effect_maps[contrast] for m in chosen] for contrast in plan.contrasts]
        check_group_files(effect_maps[0], [m.mask_file for m in chosen],
                          [m.mean_file for m in chosen],
                          effect_maps[1] if len(effect_maps) == 2 else None)
        if plan.group is not None and plan.group.estimator == "mixed":
            for subject_maps in chosen:
                path = subject_maps.variance_maps[plan.contrasts[0]]
                if not Path(path).is_file():
                    raise InputError(f"{path}: not found (the variance map of sub-"
                                     f"{subject_maps.subject}, which the mixed-effects group "
                                     "model needs)")


def input_files(maps: list[SubjectMaps], contrasts) -> list[dict]:
    """The files a group run reads, for its provenance record: per subject, its mask,
    mean image and the effect maps of ``contrasts``."""
    names = {name for name, _, _ in contrasts}
    files = []
    for subject_maps in maps:
        entries = [("mask", subject_maps.mask_file), ("mean", subject_maps.mean_file)]
        entries += [(f"effect:{name}", path) for name, path in subject_maps.effect_maps.items()
                    if name in names]
        if is_surface_maps(maps) and not is_cifti_maps(maps):  # a pair of GIFTI files each
            from ..core.surfaces import other_hemisphere_file

            entries = [(role, p) for role, path in entries
                       for p in (path, other_hemisphere_file(path))]
        files += [{"path": path, "role": role, "subject": subject_maps.subject,
                   "prefix": subject_maps.prefix} for role, path in entries]
    return files
