"""The whole study as one workflow: a model per run, fixed effects per subject.

Each run's outputs are named after all its BIDS entities (``RunInputs.prefix``: sub,
ses, task, acq, ce, rec, dir, run, echo). A subject's fixed effects are named
``sub-<label>[_ses-<label>]_task-<label>`` plus each of ``acq``, ``ce``, ``rec``, ``dir``
and ``echo`` that all the subject's runs share with the same value
(:func:`subject_session`, :func:`subject_entities`); an entity whose value differs
between the runs, or that some run lacks, is left out, and ``run`` always is.
"""

from __future__ import annotations

from nipype.pipeline import engine as pe

from .first_level import estimate_memory_gb, init_first_level_wf
from .fixed_effects import connect_runs, init_fixed_effects_wf
from .settings import DEFAULT_CONFOUNDS, DEFAULT_INFERENCE, DEFAULT_MODEL, SEED_CONTRASTS


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
                skipped=None, name: str = "glm_workflows_wf"):
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
    run_wfs = {}
    for run, run_mem in zip(runs, mem_gb, strict=True):
        run_wf = init_first_level_wf(
            t_r=run.t_r, output_dir=str(output_dir), subject=run.subject, task=run.task,
            session=run.session, run=run.run, entities=run.entities,
            contrasts=run_contrasts(contrasts, run, skipped),
            model=model.for_run(run.slice_time_ref), inference=inference, confounds=confounds,
            mem_gb=run_mem, bold_is_4d=len(run.bold_files) == 1,
            skipped_contrasts=skipped.get(run.label, ()), name=f"{run.label}_wf",
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
    return workflow
