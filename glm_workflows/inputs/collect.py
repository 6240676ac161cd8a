"""The runs an analysis reads: ``spec.inputs`` -> :class:`~glm_workflows.inputs.runs.RunInputs`.

:func:`collect_runs` finds the runs of a spec's input selection (a BIDS dataset, fMRIPrep
outputs over one, a list of files, or the SPM auditory seed data), applies the mask and
keeps fMRIPrep confounds files only when the Run node takes confounds;
:func:`whole_study` gives every run of the study (the participant selection left out);
:func:`fallback_lines` words the inputs that fell back for lack of a file;
:func:`check_run_grids` refuses runs whose maps are combined on different grids.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from ..core.errors import InputError


def collect_runs(spec, notes: list | None = None) -> list:
    """The runs of ``spec.inputs`` (first level), mask and confounds applied.

    Parameters
    ----------
    spec : glm_workflows.spec.analysis.AnalysisSpec
    notes : list or None
        Appended to: a line saying fMRIPrep confounds files were found and not used.

    Returns
    -------
    runs : list of RunInputs
    """
    return _with_mask_and_confounds(_found_runs(spec.inputs), spec, notes)


def _found_runs(inputs, subjects=...) -> list:
    from .bids import find_bids_runs, find_spm_auditory
    from .fmriprep import find_derivative_runs
    from .runs import file_list_run

    subjects = inputs.subjects if subjects is ... else subjects
    labels = None if subjects is None else list(subjects)
    sessions = None if inputs.sessions is None else list(inputs.sessions)
    runs = None if inputs.runs is None else list(inputs.runs)
    if inputs.kind == "files":
        files = inputs.files
        return [file_list_run(
            list(files.func), files.events, files.tr, subject=(labels or ["01"])[0],
            task=inputs.task, session=(sessions or [None])[0], run=(runs or [None])[0],
            confounds=files.confounds)]
    if inputs.kind == "fmriprep":
        return find_derivative_runs(inputs.bids_dir, list(inputs.derivatives), inputs.task,
                                    space=inputs.space, desc=inputs.desc, res=inputs.res,
                                    den=inputs.den, subjects=labels, sessions=sessions,
                                    runs=runs, filters=inputs.bids_filters)
    if inputs.kind == "bids":
        return find_bids_runs(inputs.bids_dir, inputs.task, labels, sessions, runs,
                              inputs.bids_filters)
    return [find_spm_auditory(inputs.data_dir)]


def whole_study(spec, runs):
    """A callable giving every run of the study, also those the participant selection
    leaves out: a condition absent from a participant's runs is one that some run of the
    study has (a name no run has is a typo), whichever participants this run covers."""
    if not spec.inputs.subjects or spec.inputs.kind == "files":
        return lambda: runs
    return lambda: _with_mask_and_confounds(_found_runs(spec.inputs, None), spec)


def _with_mask_and_confounds(runs, spec, notes: list | None = None) -> list:
    """Apply the mask, and keep fMRIPrep confounds files only when confounds are asked
    for (a note, appended to ``notes`` if given, says a confounds file was found and not
    used; it is printed once every check has passed)."""
    inputs = spec.inputs
    mask = None
    if inputs.mask:
        if not Path(inputs.mask).is_file():
            raise InputError(f"--mask {inputs.mask}: file not found")
        mask = str(Path(inputs.mask).absolute())
    run_node = spec.run_node
    model_design = type(run_node.model.design).__name__ == "ModelDesign"
    # a model's X names the confound columns it takes
    selects = model_design or spec.confounds.selects
    fmriprep = inputs.kind == "fmriprep"
    kept = []
    unused = 0
    for run in runs:
        if fmriprep and run.confounds_file and not selects:
            run, unused = replace(run, confounds_file=None), unused + 1
        if mask:
            run = replace(run, mask_file=mask,
                          sources={**run.sources, "MaskSource": f"--mask {mask}"},
                          fallbacks={k: v for k, v in run.fallbacks.items()
                                     if k != "MaskSource"})
        kept.append(run)
    if unused and notes is not None:
        notes.append(f"{unused} run(s) have an fMRIPrep confounds file, not used (choose "
                     "with --confounds-strategy or --confounds-columns)")
    return kept


def check_one_run_per_subject(model_file, runs) -> None:
    """A model whose Dataset node takes the Run node's outputs directly models one run per
    subject; several runs would need a Subject node to combine them."""
    from ..plan.study import subject_groups

    for subject, subject_runs in subject_groups(runs).items():
        if len(subject_runs) > 1:
            raise InputError(f"{model_file}: the Dataset node takes the Run node's outputs "
                             f"directly, but sub-{subject} has {len(subject_runs)} runs; add "
                             "a Subject node (Model.Type 'meta') to combine them")


def fallback_lines(runs) -> list[str]:
    """One warning line per input that fell back for lack of a file or field (a mask
    computed for want of fMRIPrep's, say), naming the runs it applies to (the first
    three, and how many).

    Parameters
    ----------
    runs : list of RunInputs

    Returns
    -------
    lines : list of str
        In the order the fallbacks were first met.
    """
    which: dict = {}
    for run in runs:
        for key, why in run.fallbacks.items():
            which.setdefault((key, why), []).append(run.prefix)
    lines = []
    for (key, why), prefixes in which.items():
        named = ", ".join(prefixes[:3]) + (", ..." if len(prefixes) > 3 else "")
        runs_text = named if len(prefixes) == 1 else f"{len(prefixes)} runs ({named})"
        lines.append(f"{runs_text}: {why} (recorded as {key} in the design sidecar)")
    return lines


def check_run_grids(runs, across_subjects: bool = False) -> None:
    """Refuse volume runs whose maps will be combined on different grids, before any fit:
    a subject's runs (its fixed effects) and, with a group level (``across_subjects``),
    every run. Grids compare as the group mask compares them
    (:func:`~glm_workflows.core.group_mask.grid_difference`, nilearn's ``check_same_fov``);
    nothing is resampled, so the combining node would fail after every run was fitted.

    Raises
    ------
    InputError
        ``<bold>: not on the grid of <bold> (<what differs>); ...``.
    """
    from ..core.group_mask import grid_difference
    from ..core.images import load_image_header

    volumes = [run for run in runs if not run.surface]
    keys = [None if across_subjects else run.subject for run in volumes]
    counts = Counter(keys)
    first: dict = {}
    for run, key in zip(volumes, keys, strict=True):
        if counts[key] < 2:  # combined with no other run: its header is read by the checks
            continue
        img = load_image_header(run.bold_files[0])
        if key not in first:
            first[key] = (run.bold_files[0], img)
            continue
        path, reference = first[key]
        wrong = grid_difference(img, reference)
        if wrong is None:
            continue
        combined = "the group level combines every run" if across_subjects else \
            f"sub-{run.subject}'s runs are combined by fixed effects"
        raise InputError(f"{run.bold_files[0]}: not on the grid of {path} ({wrong}); "
                         f"{combined}, and nothing is resampled")
