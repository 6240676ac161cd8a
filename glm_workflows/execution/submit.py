"""``--slurm-array``: an analysis submitted as SLURM array jobs and one group job.

:func:`submit_array` plans the tasks within the cluster's limits, writes ``spec.json``
and ``execution.json`` (the analysis and how it runs, once) and the scripts into the
submission folder (:mod:`glm_workflows.execution.slurm_array`), then submits them (or prints the
sbatch commands). Each job (:mod:`glm_workflows.cli.array_task`) loads them:
:func:`task_analysis` and :func:`group_analysis` give what a task and the group job run
with :func:`~glm_workflows.execution.analysis.run_analysis`. :func:`resubmit_failed` resubmits
what did not finish, if the analysis is the stored one.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import asdict, replace
from pathlib import Path

from ..core.derivatives import write_text_atomic
from ..core.errors import InputError
from ..settings import ExecutionSettings

SPEC_FILE = "spec.json"
EXECUTION_FILE = "execution.json"
#: The template the participant tasks' runs have (``space``, ``res``, ``den``; null: none),
#: found at submission: the maps the group job reads.
TEMPLATE_FILE = "template.json"


def submit_array(spec, execution, command: list[str], prepared=None) -> int:
    """Plan the tasks within the cluster's limits, write the spec, the execution and the
    scripts, submit the arrays and the group job (or print the sbatch commands:
    ``execution.dry_run``). ``command``: the command line, recorded; ``prepared``: the
    study's plan (:func:`~glm_workflows.execution.prepare.prepare`) if already computed:
    its subjects, their runs and memory estimates size the tasks."""
    import math
    import shutil

    import nibabel as nb

    from .cluster import (
        JobSize,
        group_size,
        plan_tasks,
        read_cluster_limits,
        sbatch_partition,
        split_arrays,
        task_size,
    )
    from .group_planning import model_file
    from .prepare import prepare
    from .slurm_array import (
        Submission,
        active_jobs,
        array_sbatch,
        describe_follow,
        group_sbatch,
        submission_folder,
        submit,
        write_scripts,
    )

    plan = prepared or prepare(spec, execution)
    folder = submission_folder(execution.work_dir, execution.dry_run)
    if (folder / "submission.json").exists() and not execution.dry_run:
        still = active_jobs(Submission.load(folder).job_ids())
        if still:
            raise InputError(f"--slurm-array: the last submission in {folder} still has "
                             f"{len(still)} job(s) queued or running; wait, scancel them, or "
                             "use another --work-dir")
    runs, participants = plan.run_inputs, plan.participants
    sbatch_args = shlex.split(str(plan.plugin_args.get("sbatch_args", "")))
    limits = read_cluster_limits(sbatch_partition(sbatch_args))
    tasks = plan_tasks(participants, limits, execution.participants_per_task)
    run_estimates = {subject.subject: [p.mem_gb for p in subject.runs]
                     for subject in plan.subjects}
    sizes = [task_size([m for label in task for m in run_estimates[label]], execution.n_procs,
                       limits.node_cpus) for task in tasks]
    size = JobSize(max(s.cpus for s in sizes), max(s.memory_gb for s in sizes))  # one for all
    if runs[0].surface:  # a GIFTI hemisphere pair: its vertices
        from ..core.surfaces import check_surface_pair

        n_voxels = sum(check_surface_pair(runs[0].bold_files)[1])
    else:
        n_voxels = math.prod(nb.load(runs[0].bold_files[0]).shape[:3])
    group = group_size(len(participants), n_voxels, execution.n_procs)
    limits.check_job(size, "array task")
    limits.check_job(group, "group job")
    output_dir = str(Path(plan.output_dir).absolute())
    if folder.exists() and not execution.dry_run:
        shutil.rmtree(folder / "done", ignore_errors=True)  # a new submission
    folder.mkdir(parents=True, exist_ok=True)
    model = model_file(spec)
    if model:  # the jobs' records show a copy: editing the file later changes no record
        copy = folder / Path(model).name
        if Path(model) != copy:
            shutil.copyfile(model, copy)
        spec = replace(spec, source=str(copy))  # not compared: the same analysis
    write_text_atomic(folder / SPEC_FILE, spec.to_json())
    write_text_atomic(folder / TEMPLATE_FILE, json.dumps(
        {"space": runs[0].space, "res": None, "den": None, **runs[0].template_entities}))
    write_text_atomic(folder / EXECUTION_FILE, json.dumps(
        asdict(replace(execution, resubmit_failed=False)), indent=1, sort_keys=True))
    name = f"glm-{runs[0].task}"
    submission = Submission(
        command=command, cwd=os.getcwd(), python=sys.executable,
        output_dir=output_dir, tasks=tasks,
        task_job={"Name": name, "Cpus": size.cpus, "MemMB": size.mem_mb,
                  "MemGB": size.memory_gb},
        group_job={"Name": f"{name}-group", "Cpus": group.cpus, "MemMB": group.mem_mb,
                   "MemGB": group.memory_gb},
        limits={"MaxArraySize": limits.max_array_size, "MaxJobCount": limits.max_job_count,
                "Source": limits.source},
        arrays=[{"Offset": offset, "Count": count, "JobIds": [],
                 "Script": str(folder / f"array-{index:03d}.sh")}
                for index, (offset, count) in enumerate(split_arrays(
                    len(tasks), limits.max_array_size))],
        group={"Script": str(folder / "group.sh"), "JobIds": []},
        sbatch_args=sbatch_args)
    write_scripts(submission)
    per_task = max(len(task) for task in tasks)
    print(f"Array submission: {sum(map(len, tasks))} participant(s) in {len(tasks)} task(s) "
          f"of up to {per_task}, {len(submission.arrays)} array(s) + 1 group job "
          f"(MaxArraySize {limits.max_array_size}, MaxJobCount {limits.max_job_count}, from "
          f"{limits.source})")
    print(f"Each task: {size.cpus} CPU(s), {size.mem_mb} MB; group job: {group.cpus} CPU(s), "
          f"{group.mem_mb} MB. Scripts and record in {folder}")
    if execution.dry_run:
        print("Dry run: nothing submitted. The commands would be:")
        for index in range(len(submission.arrays)):
            print("  " + shlex.join(array_sbatch(submission, index)))
        after = [f"<array-{index:03d}>" for index in range(len(submission.arrays))]
        print("  " + shlex.join(group_sbatch(submission, after)))
        return 0
    submit(submission)
    for line in describe_follow(submission):
        print(line)
    return 0


def load_analysis(folder):
    """The spec and the execution a submission in ``folder`` wrote."""
    from ..spec.analysis import AnalysisSpec

    folder = Path(folder)
    spec = AnalysisSpec.from_json((folder / SPEC_FILE).read_text())
    execution = ExecutionSettings(**json.loads((folder / EXECUTION_FILE).read_text()))
    return spec, execution


def participant_level(spec):
    """The spec without its Dataset node (the participant level)."""
    kept = tuple(node for node in spec.nodes if node.level != "Dataset")
    names = {node.name for node in kept}
    return replace(spec, nodes=kept, edges=tuple(e for e in spec.edges
                                                 if e.destination in names))


def _job_execution(execution, submission, job: dict, work_dir, level: str, **kept):
    arguments = {"memory_gb": job["MemGB"], "n_procs": job["Cpus"]}
    return ExecutionSettings(
        output_dir=submission.output_dir, work_dir=str(work_dir), plugin="MultiProc",
        plugin_args=json.dumps(arguments, sort_keys=True), n_procs=job["Cpus"],
        mem_gb=job["MemGB"], debug=execution.debug, analysis_level=level, **kept)


def task_analysis(submission, task: int):
    """What array task ``task`` runs: the participant level of its participants, as a
    MultiProc run of the task's size in its own work directory."""
    spec, execution = load_analysis(submission.folder)
    return (participant_level(spec).with_subjects(submission.tasks[task]),
            _job_execution(execution, submission, submission.task_job,
                           submission.task_work_dir(task), "participant"))


def group_analysis(submission):
    """What the group job runs: the group level alone on the participants' outputs, in
    their runs' space, resolution and density (:func:`_submitted_template`; None: the
    analysis has no group level)."""
    from ..spec.analysis import InputSpec

    spec, execution = load_analysis(submission.folder)
    if spec.dataset_node is None:
        return None
    from ..settings import SEED_CONTRASTS

    run, designed = spec.run_node, spec.designed_node
    seed = spec.source == "flags" and spec.contrasts() == [
        (name, test, tuple(rows)) for name, test, rows in SEED_CONTRASTS]
    if designed is not None:  # the subjects' maps are the node's contrasts
        contrasts = tuple((c.name, None) for c in designed.contrasts)
    else:
        contrasts = () if seed else tuple((c.name, c.rows[0]) for c in run.contrasts
                                          if c.test == "t")
    inputs = InputSpec(bids_dir=spec.inputs.bids_dir, task=spec.inputs.task,
                       from_derivatives=submission.output_dir,
                       subjects=spec.inputs.subjects, contrasts=contrasts,
                       **_submitted_template(submission.folder, spec),
                       templateflow_home=spec.inputs.templateflow_home)
    nodes = tuple(replace(node, model=replace(node.model, group=replace(
        node.model.group, inputs=spec.group_inputs(node)))) for node in spec.dataset_nodes)
    group_spec = replace(spec, inputs=inputs, nodes=nodes, edges=())
    return group_spec, _job_execution(
        execution, submission, submission.group_job, submission.folder / "group", "group",
        permutation_chunks=execution.permutation_chunks)


def _submitted_template(folder: Path, spec) -> dict:
    """``space``, ``res``, ``den`` of the participant tasks' runs, as recorded at submission
    (:data:`TEMPLATE_FILE`; a submission recorded before it: the command's flags)."""
    path = Path(folder) / TEMPLATE_FILE
    recorded = json.loads(path.read_text()) if path.is_file() else {
        "space": spec.inputs.space, "res": spec.inputs.res, "den": spec.inputs.den}
    return {key: recorded.get(key) for key in ("space", "res", "den")}


def resubmit_failed(spec, execution) -> int:
    """``--slurm-array --resubmit-failed``: the tasks of the last submission that did not
    finish, resubmitted alone (each reuses its cache), and a new group job; refused if
    the analysis or how it runs differs from the submission's."""
    from .slurm_array import Submission, describe_follow, submission_folder
    from .slurm_array import resubmit_failed as resubmit

    submission = Submission.load(submission_folder(execution.work_dir))
    try:
        stored = load_analysis(submission.folder)
    except (OSError, InputError, TypeError, ValueError):
        stored = None
    if stored != (spec, replace(execution, resubmit_failed=False)):
        raise InputError(f"--resubmit-failed: the command differs from the submission in "
                         f"{submission.folder} ({shlex.join(submission.command)}); "
                         "give the same command")
    if resubmit(submission):
        for line in describe_follow(submission):
            print(line)
    return 0
