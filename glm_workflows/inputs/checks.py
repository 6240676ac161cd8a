"""Checking a study before any work: each run's images, events, confounds, censoring,
design and contrasts, and the output names (the folders and memory: :mod:`.folders`).

Everything raises :class:`~glm_workflows.core.errors.InputError` with one line naming the
file or setting. Design checks that succeed are kept in the work directory
(:data:`DESIGN_CHECKS_FILE`), so a rerun neither rebuilds the designs nor imports nilearn's
GLM to do so.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from ..core.errors import InputError, one_line
from ..settings import DEFAULT_CONFOUNDS
from .folders import nearest_existing

#: The successful design checks of earlier runs, in the work directory
#: (:func:`load_design_checks`).
DESIGN_CHECKS_FILE = "design_checks.json"


#: Studies of at least this many runs are checked in parallel, one process per core.
PARALLEL_RUNS = 200


#: The most processes that check a study (a login node may have many cores, and users).
MAX_PROCESSES = 8


def validate_runs(runs, models, contrasts, *, design_checks: dict, warnings: list,
                  study_runs=None, n_procs: int | None = None,
                  parallel_from: int = PARALLEL_RUNS, **options) -> list[tuple[dict, list]]:
    """:func:`validate_run` on every run of a study, in order; for ``parallel_from`` runs
    or more, in ``n_procs`` forked processes, each checking a contiguous share of the
    runs.

    Parameters
    ----------
    runs : list of RunInputs
    models : list of dict
        Each run's design settings.
    contrasts, options
        As :func:`validate_run` (``output_dir``, ``confounds``, ``min_kept_volumes``,
        ``strict``).
    design_checks : dict
        Updated with the checks made.
    warnings : list
        The runs' warning lines are appended, in run order.
    study_runs : callable or None
        Returns every run of the study (default: ``runs``), whose conditions tell a
        condition absent from a run from a typo; called only if a contrast names a
        column a run lacks.
    n_procs : int or None
        Processes (default: the cores this process may use, at most
        :data:`MAX_PROCESSES`).

    Returns
    -------
    list of (mem_gb, skipped)
        One per run.

    Raises
    ------
    InputError
        The first failing run's (in run order).
    """
    global _STUDY
    n_procs = n_procs or min(MAX_PROCESSES, len(os.sched_getaffinity(0)))
    conditions = functools.cache(lambda: study_conditions(study_runs() if study_runs
                                                          else runs))
    if n_procs < 2 or len(runs) < parallel_from:
        return [validate_run(run, model, contrasts, design_checks=design_checks,
                             warnings=warnings, study_conditions=conditions, **options)
                for run, model in zip(runs, models, strict=True)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if not design_checks:  # none kept from an earlier run: import once, not per worker
        from ..core.design import load_design_functions
        load_design_functions()
    bounds = [len(runs) * i // n_procs for i in range(n_procs + 1)]
    _STUDY = (runs, models, contrasts, design_checks, conditions, options)
    try:  # the forked workers inherit _STUDY
        with ProcessPoolExecutor(n_procs, mp_context=multiprocessing.get_context("fork")) \
                as pool:
            shares = list(pool.map(_validate_share, bounds[:-1], bounds[1:]))
    finally:
        _STUDY = None
    checked = []
    for results, share_warnings, share_checks, error in shares:
        checked += results
        warnings += share_warnings
        design_checks.update(share_checks)
        if error is not None:
            raise InputError(error)
    return checked


_STUDY = None


def _validate_share(start: int, stop: int):
    """Check runs ``start`` to ``stop`` of :data:`_STUDY` (in a forked worker): their
    results, warnings, new design checks, and the first error (or None)."""
    runs, models, contrasts, design_checks, conditions, options = _STUDY
    known, results, warnings = set(design_checks), [], []
    try:
        for run, model in zip(runs[start:stop], models[start:stop], strict=True):
            results.append(validate_run(run, model, contrasts, design_checks=design_checks,
                                        warnings=warnings, study_conditions=conditions,
                                        **options))
    except InputError as exc:
        return results, warnings, {}, str(exc)
    return results, warnings, {k: v for k, v in design_checks.items() if k not in known}, None


def validate_run(run, model: dict, contrasts, *, output_dir, warnings: list,
                 design_checks: dict | None = None, confounds: dict | None = None,
                 min_kept_volumes: int = DEFAULT_CONFOUNDS.min_kept_volumes,
                 strict: bool = False, study_conditions=frozenset) -> tuple[dict, list]:
    """Check a run's files, events, confounds, design and contrasts before any work starts.

    The design is checked by :func:`~glm_workflows.core.design.first_level_design`,
    the function the run's DesignMatrix node builds it with, on the confounds and
    censoring :func:`~glm_workflows.core.design.design_confounds` selects, as the node
    does. Nothing but an :class:`InputError` leaves this function: any other exception
    becomes one line naming the run's events file and the exception.

    Parameters
    ----------
    run : RunInputs
    model : dict
        The design settings (HRF, drifts, slice-time reference).
    contrasts : sequence of (name, stat_type, rows)
    output_dir : str or PathLike
        Where the outputs will go (its file system limits the length of names).
    warnings : list
        The run's warning lines (e.g. events after the last frame) are appended.
    design_checks : dict or None
        Outcomes of earlier runs' design checks, shared by the runs of one study
        (:func:`_checked_design`).
    confounds : dict or None
        :meth:`~glm_workflows.settings.ConfoundSettings.selection`.
    min_kept_volumes : int
        Fewest volumes a run may keep after censoring.
    strict : bool
        Refuse a contrast that names a condition absent from the run, instead of
        skipping that run's contrast with a warning.
    study_conditions : callable
        Returns the conditions of every run of the study (called only when a contrast
        names a column the run lacks, to tell an absent condition from a typo).

    Returns
    -------
    mem_gb : dict
        The memory estimates of the run's nodes.
    skipped : list of str
        The contrasts the run does not have (a condition absent from it).
    """
    try:
        return _validate_run(run, model, contrasts, output_dir, warnings,
                             {} if design_checks is None else design_checks,
                             confounds, min_kept_volumes, strict, study_conditions)
    except InputError:
        raise
    except Exception as exc:  # the promise is one line, whatever failed
        raise InputError(f"{run.events_file}: cannot be checked "
                         f"({type(exc).__name__}: {one_line(exc)})") from exc


def _validate_run(run, model: dict, contrasts, output_dir, warnings: list, design_checks: dict,
                  confounds, min_kept_volumes, strict, study_conditions) -> tuple[dict, list]:
    """:func:`validate_run` without its guard: images, design and contrasts, names."""
    from ..core.images import check_header_repetition_time, check_images_compatible
    from ..plan.study import estimate_memory_gb

    if run.surface:  # a GIFTI pair or a CIFTI run (core.surfaces): checked, packed later
        from ..core.surfaces import check_surface_pair

        n_scans, counts = check_surface_pair(run.bold_files, run.surface)
        n_voxels = sum(counts)
    else:
        imgs = check_images_compatible(run.bold_files)
        check_header_repetition_time(run.t_r, imgs, run.bold_files)
        if run.mask_file:
            _check_mask(run.mask_file, imgs[0])
        n_scans = sum(img.shape[3] if img.ndim == 4 else 1 for img in imgs)
        n_voxels = int(imgs[0].shape[0] * imgs[0].shape[1] * imgs[0].shape[2])
    run_warnings, skipped = _checked_design(run, n_scans, model, contrasts, design_checks,
                                            confounds, min_kept_volumes, strict,
                                            study_conditions)
    _check_output_names(run, [c for c in contrasts if c[0] not in skipped], output_dir)
    warnings.extend(run_warnings)
    estimates = estimate_memory_gb(n_voxels, n_scans)
    if len(run.bold_files) == 1:  # a 4D run is read as it is: no concatenate node
        del estimates["concatenate"]
    return estimates, skipped


def _check_mask(mask_file, img) -> None:
    """Refuse a mask on another grid than the run's (shape or affine)."""
    from ..core.images import check_mask_grid, load_image_header

    check_mask_grid(load_image_header(mask_file), img)  # its message names the mask file


@functools.cache
def _design_code_version() -> str:
    """A digest of the code that checks designs (the source of every module a design
    depends on, :data:`~glm_workflows.core.design.DESIGN_MODULES`, and nilearn's version):
    a kept outcome is reused only by the same code."""
    from hashlib import sha1
    from importlib.metadata import version
    from importlib.util import find_spec

    from ..core.design import DESIGN_MODULES

    sources = b"".join(Path(find_spec(name).origin).read_bytes() for name in DESIGN_MODULES)
    return sha1(sources + version("nilearn").encode()).hexdigest()


def _checked_design(run, n_scans: int, model: dict, contrasts, cache: dict, confounds=None,
                    min_kept_volumes: int = 0, strict: bool = False,
                    study_conditions=frozenset) -> tuple[list[str], list[str]]:
    """Check a run's design (:func:`~glm_workflows.core.design.first_level_design`) and
    return its warnings and skipped contrasts; runs whose events and confounds files have
    the same bytes, with the same scans, TR, model, confounds selection and contrasts (a
    study with one events file for every subject, say), are checked once, their messages
    naming each run's files. ``cache`` maps a digest of all that (and of the checking
    code) to the outcome; its successes are kept in the work directory
    (:func:`load_design_checks`)."""
    from hashlib import sha1

    files = [str(f) if f else f for f in (run.events_file, run.confounds_file)]
    digests = tuple(sha1(Path(f).read_bytes()).hexdigest() if f and Path(f).is_file() else f
                    for f in files)
    key = sha1(repr((digests, n_scans, run.t_r, sorted(model.items()), contrasts, confounds,
                     min_kept_volumes, strict, _design_code_version())).encode()).hexdigest()
    if key not in cache:
        try:
            run_warnings, skipped = _design_outcome(run, n_scans, model, contrasts, confounds,
                                                    min_kept_volumes, strict, study_conditions)
            cache[key] = (files, run_warnings, None, skipped)
        except InputError as exc:
            cache[key] = (files, [], str(exc), [])
    checked_files, run_warnings, error, skipped = cache[key]

    def renamed(text: str) -> str:
        for old, new in zip(checked_files, files, strict=True):
            if old and new and old != new:
                text = text.replace(str(old), str(new))
        return text

    if error is not None:
        raise InputError(renamed(error))
    return [renamed(line) for line in run_warnings], list(skipped)


def _design_outcome(run, n_scans, model, contrasts, confounds, min_kept_volumes, strict,
                    study_conditions) -> tuple[list[str], list[str]]:
    """The checks behind :func:`_checked_design`: confounds and censoring, contrasts
    naming absent conditions, then the design."""
    from ..core.contrasts import referenced_names
    from ..core.design import design_confounds, first_level_design
    from ..core.run_tables import absence_reason, run_conditions

    bold = run.bold_files[0] if len(run.bold_files) == 1 or run.surface else None
    selected, sample_mask = design_confounds(bold, run.confounds_file, n_scans, confounds)
    name = bids_label(run)
    if sample_mask is not None and len(sample_mask) < min_kept_volumes:
        raise InputError(f"{name}: {len(sample_mask)} of {n_scans} volumes kept after "
                         f"censoring, fewer than --min-kept-volumes {min_kept_volumes}")
    skipped, lines, reasons = [], [], {}
    # a model file's Run node names its own columns: no condition of the events to skip
    checked = [] if model.get("run_node") else contrasts
    present = run_conditions(run.events_file, n_scans, run.t_r, model["slice_time_ref"],
                             sample_mask) if checked else set()
    for contrast, _, rows in checked:
        names = set().union(*(referenced_names(row) for row in rows))
        absent = sorted(names - present & set(study_conditions())) if names - present else []
        if not absent:
            continue
        for condition in absent:  # each condition's reason read once per run
            if condition not in reasons:
                reasons[condition] = absence_reason(run.events_file, condition, n_scans,
                                                    run.t_r, model["slice_time_ref"],
                                                    sample_mask)
        why = "; ".join(f"{condition}: " * (len(absent) > 1) + reasons[condition]
                        for condition in absent if reasons[condition])
        where = f"condition(s) {', '.join(absent)} absent from {name}" + \
            (f" ({why})" if why else "")
        if strict:
            raise InputError(f"contrast {contrast}: {where} (--strict)")
        skipped.append(contrast)
        lines.append(f"contrast {contrast}: {where}; skipped for this run")
    _, run_warnings = first_level_design(
        run.events_file, n_scans, run.t_r, confounds_file=run.confounds_file,
        confounds=selected, sample_mask=sample_mask,
        contrasts=[c for c in contrasts if c[0] not in skipped], **model)
    return [*run_warnings, *lines], skipped


def check_contrasts_estimated(contrasts, runs, skipped: dict, warnings: list) -> None:
    """Refuse a contrast that no run of the analysis can estimate (every run skips it).

    Runs that differ may each lack a condition; a contrast no run has is no analysis (e.g.
    onsets written in milliseconds put every event after the run's end).

    Parameters
    ----------
    contrasts : sequence of (name, stat_type, rows)
    runs : list of RunInputs
        Every run of the analysis.
    skipped : dict
        Run label to the contrasts that run skips.
    warnings : list of str
        The runs' warning lines (the skip lines say why, run by run).

    Raises
    ------
    InputError
        ``contrast <name>: no run of the analysis can estimate it: <first run's reason>``.
    """
    for name, _, _ in contrasts:
        if runs and all(name in skipped.get(run.label, ()) for run in runs):
            why = next((line.split(": ", 1)[1].removesuffix("; skipped for this run")
                        for line in warnings if line.startswith(f"contrast {name}: ")), "")
            raise InputError(f"contrast {name}: no run of the analysis can estimate it: {why}")


def bids_label(run) -> str:
    """The run's BIDS prefix, for messages."""
    return run.prefix


def _check_output_names(run, contrasts, output_dir) -> None:
    """Refuse a contrast whose output file names would exceed the file system's limit.

    The longest name the sink writes for a contrast is the run's BIDS prefix, the
    contrast entity and the longest suffix of ``CONTRAST_OUTPUTS``; the limit is
    ``PC_NAME_MAX`` of the output folder or its nearest existing parent (255 if unknown).
    """
    from ..core.naming import CONTRAST_OUTPUTS, contrast_file

    existing = nearest_existing(output_dir)
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    prefix = run.prefix
    for name, stat_type, _ in contrasts:
        longest = max(len(os.fsencode(contrast_file(prefix, name, output, stat_type)))
                      for output in CONTRAST_OUTPUTS)
        if longest > name_max:
            shown = name if len(name) <= 40 else f"{name[:37]}..."
            raise InputError(
                f"contrast {shown}: name too long: its output file names would have up to "
                f"{longest} bytes, more than the {name_max} allowed in {existing}; use at most "
                f"{len(name) - (longest - name_max)} characters")


def load_design_checks(work_dir) -> dict:
    """The successful design checks kept in ``work_dir`` by an earlier run (empty if
    none or unreadable): a rerun does not rebuild (nor import nilearn to rebuild)
    designs it has already checked."""
    try:
        kept = json.loads((Path(work_dir) / DESIGN_CHECKS_FILE).read_text())
        return {key: (files, warnings, None, skipped)
                for key, (files, warnings, skipped) in kept.items()}
    except (OSError, ValueError, TypeError):
        return {}


def save_design_checks(work_dir, checks: dict) -> None:
    """Keep the successful outcomes of ``checks`` in ``work_dir`` (written atomically)."""
    from ..core.derivatives import write_text_atomic

    kept = {key: [files, warnings, skipped]
            for key, (files, warnings, error, skipped) in checks.items() if error is None}
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(work_dir) / DESIGN_CHECKS_FILE, json.dumps(kept, sort_keys=True))


def study_conditions(runs) -> frozenset:
    """Every trial type of the study's events files (an absent condition is one of them;
    a name no run has is a typo)."""
    import pandas as pd

    names = set()
    for events in dict.fromkeys(run.events_file for run in runs):
        try:
            names.update(pd.read_csv(events, sep="\t", usecols=["trial_type"])["trial_type"]
                         .dropna().astype(str))
        except (OSError, ValueError):
            continue  # the run's own check names the problem
    return frozenset(names)
