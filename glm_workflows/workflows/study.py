"""The whole study as one workflow, built by walking the plan's graph.

:func:`init_analysis_wf` walks a :class:`~glm_workflows.plan.study.StudyPlan`'s nodes in
order (as FitLins walks its model graph) and builds, per node, its level's workflows: a
Run node one :func:`~glm_workflows.workflows.first_level.init_first_level_wf` per run, a Subject
node one :func:`~glm_workflows.workflows.fixed_effects.init_fixed_effects_wf` per subject with
several runs, a Dataset node one :func:`~glm_workflows.workflows.group.init_group_wf` per group
analysis, each connected to the outputs of the node its edge comes from.
:func:`init_glm_wf` and :func:`init_group_only_wf` keep their keyword arguments and build
the plan themselves. The planning helpers live in :mod:`glm_workflows.plan.study`
(imported from here too, as before).
"""

from __future__ import annotations

from pathlib import Path

from ..core.mesh_sources import mesh_of_file
from ..core.naming import contrast_file, output_path
from ..core.surface_names import cifti_volume_name, map_names, volume_name
from ..core.surfaces import other_hemisphere_file
from ..core.tables import tables_digest
from ..plan import study as study_plan
from ..plan.study import (  # noqa: F401 (the planning helpers' old import paths)
    GroupPlan,
    StudyPlan,
    estimate_memory_gb,
    plan_study,
    run_contrasts,
    subject_entities,
    subject_groups,
    subject_session,
)
from ..settings import (
    DEFAULT_CONFOUNDS,
    DEFAULT_GROUP,
    DEFAULT_INFERENCE,
    DEFAULT_MODEL,
    SEED_CONTRASTS,
)
from .engine import Workflow
from .first_level import init_first_level_wf
from .fixed_effects import connect_runs, init_fixed_effects_wf
from .group import (
    connect_subjects,
    init_group_wf,
    set_subject_inputs,
    set_subject_surface_inputs,
)


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
    runs : list of glm_workflows.inputs.runs.RunInputs
        The runs (from :func:`glm_workflows.inputs.bids.find_bids_runs`, ``file_list_run``...).
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
    plan = plan_study(runs, output_dir=output_dir, contrasts=contrasts, mem_gb=mem_gb,
                      skipped=skipped, model=model, inference=inference,
                      confounds=confounds, group=group, group_plans=group_plans,
                      participants_file=participants_file, n_chunks=n_chunks)
    return init_analysis_wf(plan, name=name)


def init_group_only_wf(subject_maps, *, task: str, output_dir, group_plans,
                       group=DEFAULT_GROUP, inference=DEFAULT_INFERENCE,
                       participants_file=None, n_chunks: int = 1,
                       name: str = "glm_workflows_group_wf"):
    """Build the group level alone, on subject maps a derivatives folder already holds
    (``--from-derivatives``): one :func:`~glm_workflows.workflows.group.init_group_wf` per group
    plan, its ``merge_<field>`` nodes given the files directly.

    Parameters
    ----------
    subject_maps : list of glm_workflows.inputs.derivatives.SubjectMaps
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
    plan = StudyPlan(output_dir=output_dir, nodes=(("Dataset", "dataset"),),
                     group=group, inference=inference, group_plans=tuple(group_plans),
                     participants_file=participants_file, n_chunks=n_chunks,
                     subject_maps=tuple(subject_maps), task=task)
    return init_analysis_wf(plan, name=name)


def init_analysis_wf(plan: StudyPlan, *, name: str | None = None):
    """Build the workflow of a :class:`~glm_workflows.plan.study.StudyPlan` by walking
    its graph: per node, in order, its level's factory per item
    (:meth:`~glm_workflows.plan.study.StudyPlan.workflows`), connected along the edges.

    Runs and subjects are independent branches, run in parallel by MultiProc and SLURM;
    building the graph costs the same for every run (no iterables to expand).

    Parameters
    ----------
    plan : StudyPlan
        From :func:`glm_workflows.execution.prepare.prepare` (or
        :func:`~glm_workflows.plan.study.plan_study`).
    name : str or None
        Workflow name (None: ``glm_workflows_wf``, the group level alone
        ``glm_workflows_group_wf``: its cache stays apart).

    Returns
    -------
    workflow : nipype Workflow
        Ready to run (every input set).
    """
    default = "glm_workflows_group_wf" if plan.group_only else "glm_workflows_wf"
    workflow = Workflow(name=name or default)
    built: dict = {}  # node name -> (level, {run label, subject or group name: workflow})
    for level, node, items in plan.workflows():
        upstream: dict = {}  # level -> the workflows of the nodes upstream of this one
        for source in plan.ancestors(node):
            source_level, workflows = built[source]
            upstream.setdefault(source_level, {}).update(workflows)
        if level == "Run":
            workflows = {p.run.label: _run_wf(workflow, plan, p) for p in items}
        elif level == "Session":
            workflows = {(s.subject, s.session): _subject_wf(workflow, plan, s, upstream["Run"])
                         for s in items}
        elif level == "Subject":
            workflows = {s.subject: _subject_wf(workflow, plan, s, upstream["Run"],
                                                upstream.get("Session")) for s in items}
        else:  # Dataset
            workflows = {g.name: _group_wf(workflow, plan, g, upstream) for g in items}
        built[node] = (level, workflows)
    return workflow


def _run_wf(workflow, plan: StudyPlan, run_plan):
    """A Run node's workflow of one run, its inputs set."""
    run = run_plan.run
    run_wf = init_first_level_wf(
        t_r=run.t_r, output_dir=str(plan.output_dir), subject=run.subject, task=run.task,
        session=run.session, run=run.run, entities=run.entities,
        contrasts=list(run_plan.contrasts),
        model=plan.model.for_run(run.slice_time_ref), inference=plan.inference,
        confounds=plan.confounds, mem_gb=run_plan.mem_gb,
        bold_is_4d=len(run.bold_files) == 1,
        skipped_contrasts=run_plan.skipped, input_sources=run.sources,
        save_residuals=plan.model.save_residuals, space=run.space,
        surface=run.surface, templateflow_home=_templateflow_home(plan),
        name=run_plan.workflow_name,
    )
    # the inputnode's own inputs: ``run_wf.inputs`` would build every node's spec
    inputnode = run_wf.get_node("inputnode")
    inputnode.inputs.bold_files = run.bold_files
    inputnode.inputs.events_file = run.events_file
    if run.confounds_file:
        inputnode.inputs.confounds_file = run.confounds_file
    if run.mask_file:
        inputnode.inputs.mask_file = run.mask_file
    run_wf.get_node("design").inputs.tables_digest = tables_digest(run.events_file,
                                                                   run.confounds_file)
    workflow.add_nodes([run_wf])
    return run_wf


def _subject_wf(workflow, plan: StudyPlan, subject, run_wfs: dict,
                session_wfs: dict | None = None):
    """A Session node's fixed effects of one session's runs, or a Subject node's of one
    subject's runs (after a Session node: of its sessions' maps, each session's fixed
    effects or its one run), connected to their workflows."""
    combinations = plan.combinations.get(subject.subject, {}) if plan.combinations else None
    contrasts = list(plan.contrasts) if combinations is None else [
        c for c in plan.contrasts if c[0] in {incoming for incoming, _ in combinations.values()}]
    contrast_runs = subject.contrast_parts(contrasts)
    parts = [_session_source(s, run_wfs, session_wfs or {}) for s in subject.sessions] \
        or [run_wfs[p.run.label] for p in subject.runs]
    labels = [s.prefix if s.combined else s.runs[0].run.prefix for s in subject.sessions] \
        or [p.run.prefix for p in subject.runs]
    ffx_wf = init_fixed_effects_wf(
        run_labels=labels,
        contrasts=contrasts, output_dir=str(plan.output_dir), subject=subject.subject,
        task=subject.runs[0].run.task, session=subject.session,
        entities=subject.entities, inference=plan.inference,
        contrast_runs=contrast_runs, space=subject.runs[0].run.space,
        combinations=combinations, surface=subject.runs[0].run.surface,
        name=subject.workflow_name,
    )
    connect_runs(workflow, parts, ffx_wf, contrasts, contrast_runs)
    return ffx_wf


def _session_source(session, run_wfs: dict, session_wfs: dict):
    """The workflow giving a session's maps: its fixed effects (several runs), else its
    one run's."""
    if session.combined:
        return session_wfs[(session.subject, session.session)]
    return run_wfs[session.runs[0].run.label]


def _group_wf(workflow, plan: StudyPlan, group_plan, upstream: dict):
    """A Dataset node's group analysis, connected to each subject's maps: its fixed
    effects (several runs), else its one run; with no incoming node (the group level
    alone), the files of ``plan.subject_maps``. A node grouped by nothing takes each
    subject's map of every contrast it pools."""
    run = plan if plan.group_only else plan.runs[0].run  # the task's and template's source
    task, space, template = run.task, run.space, run.template_entities
    pooled = bool(group_plan.columns)
    surface = _surface_maps(plan)
    participants_file = group_plan.participants_file if group_plan.group is not None \
        else plan.participants_file
    group_wf = init_group_wf(
        task=task, contrast=group_plan.name, subjects=list(group_plan.subjects),
        output_dir=str(plan.output_dir), group_contrasts=list(group_plan.group_contrasts),
        group=group_plan.group or plan.group, inference=plan.inference,
        participants_file=participants_file, n_chunks=plan.n_chunks,
        name=group_plan.workflow_name, node=group_plan.label,
        map_rows=group_plan.map_rows if pooled else None, space=space, template_entities=template,
        sources=_published_maps(plan, group_plan, upstream) if upstream
        else _surface_sources(plan, group_plan) if surface else None,
        design_columns=group_plan.columns if pooled else None, surface=surface,
        blocks=group_plan.blocks)
    if not upstream:
        mesh = mesh_of_file(plan.subject_maps[0].mask_file) or space if surface else None
        _set_subject_maps(group_wf, plan, group_plan, mesh)
        workflow.add_nodes([group_wf])
        return group_wf
    maps = {"effect_maps": group_plan.contrasts[0]}
    if len(group_plan.contrasts) == 2 and not pooled:
        maps["paired_maps"] = group_plan.contrasts[1]
    if (group_plan.group or plan.group).estimator == "mixed":
        maps["variance_maps"] = group_plan.contrasts[0]
    subject_wfs, run_wfs = upstream.get("Subject", {}), upstream.get("Run", {})
    session_wfs = upstream.get("Session", {})
    by_subject = {s.subject: s for s in plan.subjects}
    sources = []
    for subject in group_plan.subjects:
        source = by_subject[subject]
        one = source.sessions[0] if len(source.sessions) == 1 else None
        if one is not None and one.combined:  # one session of several runs: its maps
            subject_wfs = {**subject_wfs, subject: session_wfs[(subject, one.session)]}
        found = _subject_sources(subject, maps, subject_wfs, run_wfs, source.runs)
        if pooled:  # every pooled contrast's map, in the design's row order
            found["effect_maps"] = [_subject_sources(
                subject, {"effect_maps": contrast}, subject_wfs, run_wfs,
                source.runs)["effect_maps"] for contrast in group_plan.contrasts]
        sources.append(found)
    connect_subjects(workflow, sources, group_wf)
    if group_wf.get_node("surface") is not None:  # surface maps: the first subject's layout
        first = group_plan.subjects[0]
        source = subject_wfs[first] if first in subject_wfs else \
            run_wfs[by_subject[first].runs[0].run.label]
        port = "outputnode.surface_layout" if source.get_node("outputnode") is not None \
            else "surface.surface_layout"
        workflow.connect(source, port, group_wf, "surface.surface_layout")
    return group_wf


def _published_maps(plan: StudyPlan, group_plan, upstream: dict) -> list[str]:
    """The subjects' effect maps a group analysis reads, as published (``sub-<s>/<name>``,
    relative to the output folder): its fixed effects' (several runs or sessions; its one
    session's), else its run's."""
    by_subject = {s.subject: s for s in plan.subjects}
    combined = upstream.get("Subject", {})
    pooled = bool(group_plan.columns)
    contrasts = group_plan.contrasts if pooled else group_plan.contrasts[:1]
    published = []
    for subject in group_plan.subjects:
        subject_plan = by_subject[subject]
        one = subject_plan.sessions[0] if len(subject_plan.sessions) == 1 else None
        if one is not None and one.combined:  # one session of several runs: its maps
            prefix = one.prefix
        elif subject in combined:
            prefix = subject_plan.prefix
        else:
            prefix = subject_plan.runs[0].run.prefix
        published += [output_path(contrast_file(prefix, c, 'effect_maps')) for c in contrasts]
    if plan.runs and plan.runs[0].run.surface:  # a pair of GIFTI files, or one CIFTI file
        return [written for name in published
                for written in map_names(name, plan.runs[0].run.surface)]
    return published


def _surface_maps(plan: StudyPlan) -> bool:
    """Whether the study's maps are surface maps (runs of a surface, or subject maps
    written per hemisphere)."""
    if plan.group_only:
        name = Path(plan.subject_maps[0].mask_file).name if plan.subject_maps else ""
        return volume_name(name) is not None or cifti_volume_name(name) is not None
    return bool(plan.runs) and bool(plan.runs[0].run.surface)


def _surface_sources(plan: StudyPlan, group_plan) -> list[str]:
    """The group level alone on surface maps: the GIFTI files of the subjects' effect maps
    it reads (both hemispheres; a CIFTI file each), the sidecars' ``Sources``."""
    by_subject = {maps.subject: maps for maps in plan.subject_maps}
    return [path for subject in group_plan.subjects for contrast in group_plan.contrasts
            if contrast in by_subject[subject].effect_maps
            for path in dict.fromkeys((  # a CIFTI map has no other hemisphere
                by_subject[subject].effect_maps[contrast],
                other_hemisphere_file(by_subject[subject].effect_maps[contrast])))]


def _templateflow_home(plan: StudyPlan) -> str | None:
    """The TemplateFlow home given to the nodes that find a mesh (None: not given)."""
    return plan.spec.inputs.templateflow_home if plan.spec else None


def _set_subject_maps(group_wf, plan: StudyPlan, group_plan, mesh: str | None = None) -> None:
    """The group level alone: the subjects' files given to the ``merge_<field>`` nodes
    (surface maps, ``mesh`` given: through a ``PackSurfaceMap`` node each)."""
    by_subject = {maps.subject: maps for maps in plan.subject_maps}
    inputs = []
    for subject in group_plan.subjects:
        maps = by_subject[subject]
        files = {"effect_maps": maps.effect_maps[group_plan.contrasts[0]],
                 "mask_files": maps.mask_file, "mean_files": maps.mean_file}
        if (group_plan.group or plan.group).estimator == "mixed":
            files["variance_maps"] = maps.variance_maps[group_plan.contrasts[0]]
        if group_plan.columns:  # a node grouped by nothing: every pooled contrast's map
            files["effect_maps"] = [maps.effect_maps[c] for c in group_plan.contrasts]
        elif len(group_plan.contrasts) == 2:
            files["paired_maps"] = maps.effect_maps[group_plan.contrasts[1]]
        inputs.append(files)
    if mesh:
        set_subject_surface_inputs(group_wf, inputs, mesh, _templateflow_home(plan))
        return
    set_subject_inputs(group_wf, inputs)


#: The contrast map each group input takes from a subject's workflow.
_MAP_OF = {"effect_maps": "effect", "paired_maps": "effect", "variance_maps": "variance"}


def _subject_sources(subject, maps: dict, subject_wfs: dict, run_wfs: dict, subject_runs):
    """Where a subject's maps come from: its fixed-effects workflow if it has several
    runs, else its one run's workflow."""
    if subject in subject_wfs:
        ffx_wf = subject_wfs[subject]
        sources = {field: (ffx_wf, f"ffx_{contrast}.{_MAP_OF[field]}")
                   for field, contrast in maps.items()}
        sources.update(mask_files=(ffx_wf, "combine.mask_file"),
                       mean_files=(ffx_wf, "combine.mean_file"))
        return sources
    run_wf = run_wfs[subject_runs[0].run.label]
    sources = {field: (run_wf, f"outputnode.{_MAP_OF[field]}_{contrast}")
               for field, contrast in maps.items()}
    sources.update(mask_files=(run_wf, "outputnode.mask_file"),
                   mean_files=(run_wf, "outputnode.mean_file"))
    return sources


#: :func:`glm_workflows.plan.study.group_plans`, at its old import path.
group_plans = study_plan.group_plans
