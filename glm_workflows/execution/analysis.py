"""One entry point: :func:`run_analysis` runs an
:class:`~glm_workflows.spec.analysis.AnalysisSpec` with its
:class:`~glm_workflows.settings.ExecutionSettings`.

collect -> check -> plan (:func:`glm_workflows.execution.prepare.prepare`) -> build (the workflow
factory) -> stage (the workflow runs into an
:class:`~glm_workflows.outputs.folders.OutputTransaction`) -> run -> provenance -> report ->
commit, for every level and route: the first level with or without the group level,
the participant level alone, and the group level alone on a derivatives folder. The
command line (:func:`glm_workflows.cli.main`), the SLURM array jobs
(:mod:`glm_workflows.cli.array_task`) and Python (``glm_workflows.run_analysis``) all run
this.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from ..core.errors import one_line
from ..outputs.publish import description_file, root_files, write_reports
from ..settings import DEFAULT_VERBOSITY, VERBOSE, VERY_VERBOSE
from .analysis_lock import analysis_lock
from .group_planning import model_file
from .prepare import analysis_of_runs, check_run_arguments, prepare


def run_analyses(analyses, *, command_line: list[str] | None = None) -> int:
    """Several analyses (the command line's: one per ``--space``) into their output
    folders in turn, every one checked before the first runs.

    Parameters
    ----------
    analyses : list of (AnalysisSpec, ExecutionSettings)
        From :func:`glm_workflows.cli.command.analyses_from_args`.
    command_line : list of str or None
        As :func:`run_analysis`'s.

    Returns
    -------
    code : int
        The largest of the analyses' exit codes (:func:`run_analysis`); an interruption
        stops the analyses not yet run.

    Raises
    ------
    InputError
        Bad input of any analysis (one line), before any of them runs.
    """
    from .plugins import check_plugin

    plans = []
    for spec, execution in analyses:
        check_plugin(execution.plugin)
        plans.append(prepare(spec, execution))
    codes = []
    for (spec, execution), plan in zip(analyses, plans, strict=True):
        codes.append(run_analysis(spec, execution, command_line=command_line, plan=plan))
        if codes[-1] >= 128:  # interrupted
            break
    return max(codes)


def run_analysis(spec, execution, *, command_line: list[str] | None = None,
                 plan=None) -> int:
    """Check everything, run the workflow, commit its outputs, print the results.

    Parameters
    ----------
    spec : glm_workflows.spec.analysis.AnalysisSpec
        What is computed.
    execution : glm_workflows.settings.ExecutionSettings
        Where and how (plugin, folders; relative paths are from the working directory).
    command_line : list of str or None
        The command recorded in the provenance (None: how this process was started).
    plan : glm_workflows.plan.study.StudyPlan or None
        The analysis already checked (:func:`~glm_workflows.execution.prepare.prepare`
        of ``spec`` and ``execution``; None: checked here).

    Returns
    -------
    code : int
        0, 1 after a node failed (one line per crash file), or 128 + the signal number
        after SIGINT or SIGTERM.

    Raises
    ------
    InputError
        Bad input (one line), before any work folder is written; the command line
        exits with 2.
    """
    from .interrupts import RunInterrupted, interrupts_raise
    from .run_log import RunLog

    check_run_arguments(spec, execution)
    with interrupts_raise(), analysis_lock(spec, execution), RunLog(execution.verbosity) as log:
        try:
            code = _run(spec, execution, command_line, log, plan)
        except RunInterrupted as exc:
            code = interrupted(exc, Path(execution.work_dir).absolute())
        if log.path is not None:
            log.results()
            print(f"Log: {log.path}", flush=True)
        return code


def _run(spec, execution, command, log, plan) -> int:
    from ..outputs.invocation import invocation
    from .plugins import check_plugin

    started = time.time()
    command, cwd = command or invocation(), os.getcwd()  # for the provenance record
    if plan is None:
        check_plugin(execution.plugin)
        plan = prepare(spec, execution)
    plugin_args = plan.plugin_args
    quiet_nipype(execution.debug, execution.verbosity)
    log.open(plan.output_dir, plan.analysis if plan.group_only
             else analysis_of_runs(plan.run_inputs), started, command)
    if plan.group_only:
        return _run_group_only(execution, command, cwd, plan, started, log)
    from ..core.analyses import analysis_record
    from ..core.naming import (
        GROUP_FOLDER,
        INDEX_FILE,
        PROVENANCE_FILE,
        report_page,
        subject_folder,
    )
    from ..outputs.provenance import build_provenance, write_analysis_record, write_provenance
    from ..report import write_subject_report
    from ..report.summary import print_results
    from ..workflows.study import init_analysis_wf
    from .graph import graph_summary
    from .plugins import run_workflow

    runs, output_dir = plan.run_inputs, plan.output_dir
    analysis = analysis_of_runs(runs)
    subjects = plan.participants
    work_dir = Path(execution.work_dir).absolute()
    plugin = execution.plugin
    model = model_file(spec)

    def stage(transaction):
        workflow = init_analysis_wf(replace(plan, output_dir=transaction.staging))
        print(f"Running {len(runs)} run(s), {len(plan.contrasts)} contrast(s), "
              f"plugin {plugin}; cache in {work_dir}", flush=True)
        graph = graph_summary(workflow)  # before the run flattens the workflow itself
        records = run_workflow(workflow, work_dir=work_dir, plugin=plugin,
                               plugin_args=plugin_args, consume=True)
        finished = time.time()
        record = build_provenance(
            runs=runs, graph=graph, records=records, started=started,
            finished=finished, command_line=command, working_directory=cwd, plugin=plugin,
            parameters=parameters(plan, execution, model))
        if model:  # the report shows the model file
            record["StatsModel"] = json.loads(Path(model).read_text())
        write_provenance(transaction.staging, record, subjects, analysis)
        group_folder = Path(transaction.staging) / GROUP_FOLDER
        if group_folder.is_dir():  # the group level's record: the whole run's
            write_analysis_record(group_folder, record, analysis)
        write_reports(transaction.staging, subjects,
                      plugin_args["n_procs"] if plugin == "MultiProc" else 1)
        participant_level = execution.analysis_level == "participant"
        transaction.commit(subjects, description_file if participant_level else root_files,
                           analysis, write_subject_report)
        return records, finished

    code = _staged_run(stage, execution, output_dir, started, log)
    if code:
        return code
    index = Path(output_dir) / INDEX_FILE
    report = index if index.exists() else Path(output_dir) / report_page(subjects[-1])
    print(f"Report: {report}")
    provenance = Path(output_dir) / PROVENANCE_FILE
    if execution.analysis_level == "participant":  # no root listing at this level
        provenance = Path(output_dir) / subject_folder(subjects[-1]) / analysis_record(analysis)
    print(f"Provenance: {provenance}")
    print_results(plan, output_dir, analysis=analysis)
    _print_group_warnings(output_dir, analysis)
    return 0


def _run_group_only(execution, command: list[str], cwd: str, plan, started: float,
                    log) -> int:
    """:func:`_run` for the group level alone: the group workflow, committed into
    ``<output-dir>/group/`` (subject folders untouched), its provenance record (with
    ``command``, run from ``cwd``) in ``group/<analysis>_provenance.json``, then the
    group results printed."""
    from ..core.analyses import analysis_record
    from ..core.naming import GROUP_FOLDER, GROUP_REPORT
    from ..outputs.provenance import build_provenance, write_analysis_record
    from ..report.summary import print_results
    from ..workflows.study import init_analysis_wf
    from .graph import graph_summary
    from .plugins import run_workflow

    output_dir, plugin_args = plan.output_dir, plan.plugin_args
    work_dir = Path(execution.work_dir).absolute()
    plugin = execution.plugin

    def stage(transaction):
        workflow = init_analysis_wf(replace(plan, output_dir=transaction.staging))
        print(f"Running the group level of {len(plan.group_plans)} contrast(s) over "
              f"{len(plan.subject_maps)} subject(s) of {plan.from_derivatives}, "
              f"plugin {plugin}; cache in {work_dir}", flush=True)
        graph = graph_summary(workflow)  # before the run flattens the workflow itself
        records = run_workflow(workflow, work_dir=work_dir, plugin=plugin,
                               plugin_args=plugin_args, consume=True)
        finished = time.time()
        record = build_provenance(
            runs=[], graph=graph, records=records, started=started,
            finished=finished, command_line=command, working_directory=cwd, plugin=plugin,
            parameters=group_parameters(plan, execution),
            inputs=plan.inputs)
        write_analysis_record(Path(transaction.staging) / GROUP_FOLDER, record, plan.analysis)
        transaction.commit([], root_files, plan.analysis)
        return records, finished

    code = _staged_run(stage, execution, output_dir, started, log)
    if code:
        return code
    report = Path(output_dir) / GROUP_REPORT
    if report.exists():
        print(f"Report: {report}")
    record = analysis_record(plan.analysis)
    print(f"Provenance: {Path(output_dir) / GROUP_FOLDER / record}")
    print_results([], output_dir, analysis=plan.analysis)
    _print_group_warnings(output_dir, plan.analysis)
    return 0


def quiet_nipype(debug: bool, verbosity: int = DEFAULT_VERBOSITY) -> None:
    """Failures are summarised by :func:`run_analysis`; Nipype's own log and tracebacks
    only with ``debug`` (everything at DEBUG) or a verbosity above the default (1: the
    workflow log at INFO; 2: every log at DEBUG)."""
    from nipype import config, logging

    debug = debug or verbosity >= VERY_VERBOSE
    workflow = "DEBUG" if debug else "INFO" if verbosity >= VERBOSE else "CRITICAL"
    config.set("logging", "workflow_level", workflow)
    config.set("logging", "interface_level", "DEBUG" if debug else "ERROR")
    config.set("logging", "utils_level", "DEBUG" if debug else "ERROR")
    logging.update_logging(config)


def _staged_run(stage, execution, output_dir, started: float, log) -> int:
    """Run ``stage(transaction)`` on a new :class:`~glm_workflows.outputs.folders.OutputTransaction`
    of ``output_dir`` (it runs the workflow into ``transaction.staging``, writes its
    records and commits) and print the closing line; a failure discards what was staged.

    ``stage`` returns the run's node records and when the workflow finished. Returns 0,
    or 1 after a failure (:func:`_failed`); an interruption is re-raised, noting whether
    the outputs were already committed.
    """
    from ..outputs.folders import OutputTransaction
    from .interrupts import RunInterrupted

    transaction = OutputTransaction(output_dir)  # outputs move in only on success
    try:
        records, finished = stage(transaction)
    except RunInterrupted as exc:
        transaction.discard()
        exc.outputs_committed = transaction.committed
        raise
    except Exception as exc:
        transaction.discard()
        return _failed(exc, execution.debug, Path(execution.work_dir).absolute(), started)
    log.results()  # quiet: the lines from here on are shown
    _print_finished(records, finished - started, execution.plugin)
    return 0


def _failed(exc, debug: bool, work_dir: Path, started: float) -> int:
    """After a failed run (its outputs discarded): the interruption it was, re-raised;
    else its crash files, one line each (exit code 1). Called in the ``except`` block."""
    from .interrupts import RunInterrupted, received_interrupt

    signum = received_interrupt()
    if signum is not None:  # a node's error that is the interruption, rebuilt
        raise RunInterrupted(signum) from None
    if debug:
        raise exc
    details = crash_summary(work_dir, started) or [one_line(exc)]
    for line in details:
        print(f"glm-workflows: error: {line}", file=sys.stderr)
    return 1


#: What Nipype appends to a crash file when the node left no result (its process ended).
NIPYPE_NO_RESULT_NOTE = "When creating this crashfile, the results file"


def crash_summary(work_dir: Path, since: float) -> list[str]:
    """One line per crash file written since ``since``: node, exception, file."""
    lines = []
    for crash in sorted((work_dir / "crash").glob("crash-*.txt")):
        if crash.stat().st_mtime < since:
            continue
        text = crash.read_text(errors="replace").split(NIPYPE_NO_RESULT_NOTE)[0]
        text = text.strip().splitlines()
        node = next((ln.split(":", 1)[1].strip() for ln in text if ln.startswith("Node:")), "?")
        starts = [i for i, ln in enumerate(text) if re.match(r"^\s*[\w.]+(Error|Exception)\b", ln)]
        reason = one_line(" ".join(text[starts[-1]:])) if starts else text[-1].strip()
        lines.append(f"node {node} failed: {reason} (crash file: {crash})")
    return lines


def interrupted(exc, work_dir: Path) -> int:
    """One line for an interrupted run; the exit code a shell gives a signalled job."""
    outputs = ("the outputs were already committed" if getattr(exc, "outputs_committed", False)
               else "no output was changed")
    print(f"glm-workflows: interrupted ({exc.signame}); {outputs}. Nodes that finished are "
          f"cached in {work_dir}: run the same command again to resume.",
          file=sys.stderr, flush=True)
    return 128 + exc.signum


def _print_group_warnings(output_dir, analysis: str) -> None:
    """After a run: one warning line per group contrast of ``analysis`` that left voxels
    out (maps not finite in every subject), read from the group sidecars."""
    from ..report.summary import group_warnings

    for line in group_warnings(output_dir, analysis):
        print(f"glm-workflows: warning: {line}", file=sys.stderr)


def _print_finished(records, seconds: float, plugin: str) -> None:
    """The line closing a run: its time and what ran (or was submitted)."""
    from .plugins import GRAPH_PLUGINS

    if plugin in GRAPH_PLUGINS:
        print(f"\nFinished in {seconds:.1f} s ({len(records)} SLURM job(s); "
              "nodes already complete were not resubmitted)")
    else:
        ran = sum(not r.cached for r in records)
        print(f"\nFinished in {seconds:.1f} s ({ran} node(s) run, {len(records) - ran} cached)")


def _execution_parameters(plan, execution) -> dict:
    return {
        "plugin": execution.plugin,
        "plugin_args": {k: v for k, v in plan.plugin_args.items() if k != "status_callback"},
        "work_dir": str(Path(execution.work_dir).absolute()),
        "output_dir": str(Path(plan.output_dir).absolute()),
    }


def _mesh_parameters(plan) -> dict:
    """A surface study's mesh: the TemplateFlow home given and the mesh's files found
    (:mod:`glm_workflows.core.mesh_sources`); nothing for a volume study."""
    from ..core.mesh_sources import find_mesh, mesh_of_file

    mesh = plan.runs[0].run.surface if plan.runs else None
    if not plan.runs and plan.subject_maps and plan.subject_maps[0].mask_file.endswith(".gii"):
        mesh = mesh_of_file(plan.subject_maps[0].mask_file)
    if not mesh:
        return {}
    home = plan.spec.inputs.templateflow_home if plan.spec else None
    found = find_mesh(mesh, home)
    return {"templateflow_home": home, "mesh_source": found.describe() if found else None}


def _contrast_parameters(plan) -> dict:
    return {"permutation_chunks": plan.n_chunks,
            "skipped_contrasts": plan.skipped,
            "contrasts": [{"name": name, "stat_type": stat, "rows": list(rows)}
                          for name, stat, rows in plan.contrasts]}


def parameters(plan, execution, model: str | None) -> dict:
    """Every setting of a first-level run (its :class:`~glm_workflows.plan.study.StudyPlan`
    and how it ran), for the provenance record."""
    return {
        **asdict(plan.model), **asdict(plan.inference),
        "confounds": asdict(plan.confounds),
        "group": asdict(plan.group),
        **_contrast_parameters(plan),
        **_execution_parameters(plan, execution), **_mesh_parameters(plan),
        "node_memory_gb": plan.mem_gb,
        "stats_model": model,
    }


def group_parameters(plan, execution) -> dict:
    """Every setting of a run of the group level alone, for the provenance record."""
    return {
        "from_derivatives": plan.from_derivatives, "task": plan.task,
        **asdict(plan.inference), "group": asdict(plan.group),
        **_contrast_parameters(plan),
        "group_subjects": {group.name: list(group.subjects) for group in plan.group_plans},
        **_execution_parameters(plan, execution), **_mesh_parameters(plan),
    }
