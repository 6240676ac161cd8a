"""The whole study as one workflow: a model per run, fixed effects per subject.

Each run's outputs are named after all its BIDS entities (``RunInputs.prefix``: sub,
ses, task, acq, ce, rec, dir, run, echo). A subject's fixed effects are named
``sub-<label>[_ses-<label>]_task-<label>`` plus each of ``acq``, ``ce``, ``rec``, ``dir``
and ``echo`` that all the subject's runs share with the same value
(:func:`subject_session`, :func:`subject_entities`); an entity whose value differs
between the runs, or that some run lacks, is left out, and ``run`` always is.
"""

from __future__ import annotations

from typing import NamedTuple

from nipype.pipeline import engine as pe

from .first_level import estimate_memory_gb, init_first_level_wf
from .fixed_effects import connect_runs, init_fixed_effects_wf
from .group import connect_subjects, init_group_wf, set_subject_inputs
from .settings import (
    DEFAULT_CONFOUNDS,
    DEFAULT_GROUP,
    DEFAULT_INFERENCE,
    DEFAULT_MODEL,
    SEED_CONTRASTS,
)


def run_contrasts(contrasts, run, skipped: dict) -> list:
    """The contrasts of ``run``: all but those ``skipped`` lists for its label."""
    return [c for c in contrasts if c[0] not in skipped.get(run.label, ())]


def subject_groups(runs) -> dict:
    """Runs grouped by subject, in the order given."""
    groups: dict = {}
    for run in runs:
        groups.setdefault(run.subject, []).append(run)
    return groups


def subject_session(runs) -> str | None:
    """The session entity of a subject's combined outputs: set only if all runs share it."""
    sessions = {run.session for run in runs}
    return sessions.pop() if len(sessions) == 1 else None


def subject_entities(runs) -> dict:
    """The other entities of a subject's combined outputs: those all runs share."""
    first, *others = [run.entities for run in runs]
    return {key: value for key, value in first.items()
            if all(other.get(key) == value for other in others)}


def init_glm_wf(runs, *, output_dir, contrasts=SEED_CONTRASTS, model=DEFAULT_MODEL,
                inference=DEFAULT_INFERENCE, confounds=DEFAULT_CONFOUNDS, mem_gb=None,
                skipped=None, group=DEFAULT_GROUP, group_plans=None,
                participants_file=None, n_chunks: int = 1, name: str = "glm_workflows_wf"):
    """Build the workflow of a study: one first-level workflow per run and, per subject
    with several runs, a fixed-effects workflow combining them.

    Runs and subjects are independent branches, run in parallel by MultiProc and SLURM;
    building the graph costs the same for every run (no iterables to expand).

    Parameters
    ----------
    runs : list of glm_workflows.inputs.RunInputs
        The runs (from :func:`glm_workflows.inputs.find_bids_runs`, ``file_list_run``...).
    output_dir : str or PathLike
        Derivatives root.
    contrasts : sequence of (name, stat_type, rows)
        The contrasts of every run (and of the subjects' fixed effects).
    model : ModelSettings
        A run whose sidecar gives its slice timing (``run.slice_time_ref``) uses it.
    inference : InferenceSettings
    confounds : ConfoundSettings
        Confounds and censoring of runs with an fMRIPrep confounds file.
    mem_gb : list of dict or None
        Per run, the node memory estimates (:func:`estimate_memory_gb`); by default
        those of a 64x64x64x96 run.
    skipped : dict or None
        Per run label, the names of the contrasts it does not have (a condition absent
        from the run); its subject's fixed effects combine the runs that have them.
    group : GroupSettings
        The group level (its ``model`` None: none).
    group_plans : list of GroupPlan or None
        Per group analysis, the first-level contrast(s), the subjects that have them and
        the group contrasts (:func:`group_plans`).
    participants_file : str or None
        ``participants.tsv`` of the study (groups, covariates).
    n_chunks : int
        Permutation nodes of each group contrast.
    name : str
        Workflow name.

    Returns
    -------
    workflow : nipype Workflow
        Ready to run (every input set).
    """
    workflow = pe.Workflow(name=name)
    mem_gb = mem_gb or [estimate_memory_gb(64 * 64 * 64, 96)] * len(runs)
    skipped = skipped or {}
    run_wfs, subject_wfs = {}, {}
    for run, run_mem in zip(runs, mem_gb, strict=True):
        run_wf = init_first_level_wf(
            t_r=run.t_r, output_dir=str(output_dir), subject=run.subject, task=run.task,
            session=run.session, run=run.run, entities=run.entities,
            contrasts=run_contrasts(contrasts, run, skipped),
            model=model.for_run(run.slice_time_ref), inference=inference, confounds=confounds,
            mem_gb=run_mem, bold_is_4d=len(run.bold_files) == 1,
            skipped_contrasts=skipped.get(run.label, ()), input_sources=run.sources,
            name=f"{run.label}_wf",
        )
        # the inputnode's own inputs: ``run_wf.inputs`` would build every node's spec
        inputnode = run_wf.get_node("inputnode")
        inputnode.inputs.bold_files = run.bold_files
        inputnode.inputs.events_file = run.events_file
        if run.confounds_file:
            inputnode.inputs.confounds_file = run.confounds_file
        if run.mask_file:
            inputnode.inputs.mask_file = run.mask_file
        workflow.add_nodes([run_wf])
        run_wfs[run.label] = run_wf
    for subject, subject_runs in subject_groups(runs).items():
        if len(subject_runs) < 2:
            continue
        session = subject_session(subject_runs)
        contrast_runs = {name: [index for index, r in enumerate(subject_runs)
                                if name not in skipped.get(r.label, ())]
                         for name, _, _ in contrasts}
        ffx_wf = init_fixed_effects_wf(
            run_labels=[r.prefix for r in subject_runs],
            contrasts=contrasts, output_dir=str(output_dir), subject=subject,
            task=subject_runs[0].task, session=session,
            entities=subject_entities(subject_runs), inference=inference,
            contrast_runs=contrast_runs,
            name=f"sub_{subject}{'_ses_' + session if session else ''}_fixed_effects_wf",
        )
        connect_runs(workflow, [run_wfs[r.label] for r in subject_runs], ffx_wf, contrasts,
                     contrast_runs)
        subject_wfs[subject] = ffx_wf
    for plan in group_plans or []:
        group_wf = init_group_wf(
            task=runs[0].task, contrast=plan.name, subjects=list(plan.subjects),
            output_dir=str(output_dir), group_contrasts=list(plan.group_contrasts),
            group=group, inference=inference, participants_file=participants_file,
            n_chunks=n_chunks, name=f"group_{plan.name}_wf")
        sources = []
        groups = subject_groups(runs)
        for subject in plan.subjects:
            maps = {"effect_maps": plan.contrasts[0]}
            if len(plan.contrasts) == 2:
                maps["paired_maps"] = plan.contrasts[1]
            sources.append(_subject_sources(subject, maps, subject_wfs, run_wfs,
                                             groups[subject]))
        connect_subjects(workflow, sources, group_wf)
    return workflow


def init_group_only_wf(subject_maps, *, task: str, output_dir, group_plans,
                       group=DEFAULT_GROUP, inference=DEFAULT_INFERENCE,
                       participants_file=None, n_chunks: int = 1,
                       name: str = "glm_workflows_group_wf"):
    """Build the group level alone, on subject maps a derivatives folder already holds
    (``--from-derivatives``): one :func:`~glm_workflows.group.init_group_wf` per group
    plan, its ``merge_<field>`` nodes given the files directly.

    Parameters
    ----------
    subject_maps : list of glm_workflows.from_derivatives.SubjectMaps
        Each subject's effect maps, mask and mean image.
    task : str
        The task label (of the group outputs' names).
    output_dir : str or PathLike
        Derivatives root (the outputs go to its ``group/``).
    group_plans : list of GroupPlan
        From :func:`group_plans` on ``subject_maps`` (their ``subject`` and ``label``).
    group, inference, participants_file, n_chunks
        As for :func:`init_glm_wf`.
    name : str
        Workflow name (not the study's: its cache stays apart).

    Returns
    -------
    workflow : nipype Workflow
        Ready to run (every input set).
    """
    workflow = pe.Workflow(name=name)
    by_subject = {maps.subject: maps for maps in subject_maps}
    for plan in group_plans:
        group_wf = init_group_wf(
            task=task, contrast=plan.name, subjects=list(plan.subjects),
            output_dir=str(output_dir), group_contrasts=list(plan.group_contrasts),
            group=group, inference=inference, participants_file=participants_file,
            n_chunks=n_chunks, name=f"group_{plan.name}_wf")
        inputs = []
        for subject in plan.subjects:
            maps = by_subject[subject]
            files = {"effect_maps": maps.effect_maps[plan.contrasts[0]],
                     "mask_files": maps.mask_file, "mean_files": maps.mean_file}
            if len(plan.contrasts) == 2:
                files["paired_maps"] = maps.effect_maps[plan.contrasts[1]]
            inputs.append(files)
        set_subject_inputs(group_wf, inputs)
        workflow.add_nodes([group_wf])
    return workflow


def _subject_sources(subject, maps: dict, subject_wfs: dict, run_wfs: dict, subject_runs):
    """Where a subject's maps come from: its fixed-effects workflow if it has several
    runs, else its one run's workflow."""
    if subject in subject_wfs:
        ffx_wf = subject_wfs[subject]
        sources = {field: (ffx_wf, f"ffx_{contrast}.effect") for field, contrast in maps.items()}
        sources.update(mask_files=(ffx_wf, "combine.mask_file"),
                       mean_files=(ffx_wf, "combine.mean_file"))
        return sources
    run_wf = run_wfs[subject_runs[0].label]
    sources = {field: (run_wf, f"outputnode.effect_{contrast}")
               for field, contrast in maps.items()}
    sources.update(mask_files=(run_wf, "outputnode.mask_file"),
                   mean_files=(run_wf, "outputnode.mean_file"))
    return sources


class GroupPlan(NamedTuple):
    """One group analysis: ``name`` (the first-level contrast, or ``<A>Minus<B>`` for a
    paired pair), ``contrasts`` (the first-level contrast, or the pair ``(A, B)``), the
    ``subjects`` that have them, and the ``group_contrasts`` ((name or None, expression))."""

    name: str
    contrasts: tuple
    subjects: tuple
    group_contrasts: tuple


def group_plans(runs, contrasts, skipped: dict, group, design_columns=None) -> tuple[list, list]:
    """The group analyses of a study, and one warning line per subject left out.

    Parameters
    ----------
    runs : list of RunInputs
    contrasts : sequence of (name, stat_type, rows)
        The first-level contrasts; the t contrasts go to the group level (or, paired,
        the two of ``group.pair``).
    skipped : dict
        Per run label, the contrasts it does not have: a subject none of whose runs has
        a contrast is left out of that contrast's group analysis.
    group : GroupSettings
    design_columns : callable or None
        ``design_columns(subjects)`` -> the group design's columns, for the default
        two-sample contrast (the difference of the two groups).

    Returns
    -------
    plans : list of GroupPlan
    warnings : list of str
    """
    if not group.model:
        return [], []
    by_subject = subject_groups(runs)
    if group.model == "paired":
        analyses = [(f"{group.pair[0]}Minus{group.pair[1]}", tuple(group.pair))]
    else:
        analyses = [(name, (name,)) for name, stat_type, _ in contrasts if stat_type == "t"
                    and (not group.inputs or name in group.inputs)]
    plans, warnings = [], []
    for name, needed in analyses:
        subjects = []
        for subject, subject_runs in by_subject.items():
            missing = [c for c in needed
                       if all(c in skipped.get(r.label, ()) for r in subject_runs)]
            if missing:
                warnings.append(f"group {name}: sub-{subject} left out (no map of contrast "
                                f"{', '.join(missing)})")
            else:
                subjects.append(subject)
        if group.contrasts:
            group_contrasts = tuple(group.contrasts)
        elif group.model == "two-sample":
            levels = [c for c in design_columns(subjects) if c not in group.covariates]
            group_contrasts = ((f"{levels[0]}Minus{levels[1]}", f"{levels[0]} - {levels[1]}"),)
        else:
            group_contrasts = ((None, "intercept"),)
        plans.append(GroupPlan(name, needed, tuple(subjects), group_contrasts))
    return plans, warnings
