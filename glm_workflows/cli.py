"""Command line: ``glm-workflows`` / ``python run_workflow.py``."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from .core.errors import InputError, one_line

DEFAULT_WORK_DIR = "work"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, in groups: inputs, model, contrasts, inference, execution."""
    parser = argparse.ArgumentParser(
        prog="glm-workflows",
        description="First-level fMRI GLM as a Nipype workflow. With no input flags, runs the "
                    "SPM auditory analysis on the data found under --data-dir.",
    )
    data = parser.add_argument_group("inputs")
    data.add_argument("--bids-dir", help="BIDS dataset root (TR read from the sidecar JSON)")
    data.add_argument("--task", default="auditory", help="task label (default: auditory)")
    data.add_argument("--subject", nargs="+", metavar="LABEL",
                      help="subject label(s); with --func, the one label of that run "
                           "(default: all subjects / 01)")
    data.add_argument("--session", nargs="+", metavar="LABEL", help="BIDS session label(s)")
    data.add_argument("--run", nargs="+", metavar="INDEX", help="BIDS run index(es)")
    data.add_argument("--func", nargs="+", metavar="FILE",
                      help="3D scans or 4D image(s) of one run, in order")
    data.add_argument("--events", metavar="TSV", help="events.tsv of the --func run")
    data.add_argument("--confounds", metavar="TSV", help="confounds TSV of the --func run")
    data.add_argument("--tr", type=float, help="repetition time in seconds (with --func)")
    data.add_argument("--data-dir",
                      help="where to find the SPM auditory data when no input flag is given "
                           "(default: $NILEARN_DATA or ~/nilearn_data)")

    model = parser.add_argument_group("model")
    model.add_argument("--noise-model", default="ar1", choices=["ar1", "ols"],
                       help="temporal noise model (default ar1)")
    model.add_argument("--hrf-model", default="spm",
                       help="nilearn HRF model: spm, glover, 'spm + derivative', ... (default spm)")
    model.add_argument("--drift-model", default="cosine", choices=["cosine", "polynomial", "none"],
                       help="slow drift regressors (default cosine)")
    model.add_argument("--high-pass", type=float, default=1 / 160,
                       help="high-pass cut-off in Hz (default 1/160 = 0.00625)")
    model.add_argument("--drift-order", type=int, default=1,
                       help="order of polynomial drifts (default 1)")
    model.add_argument("--slice-time-ref", type=float, default=0.0,
                       help="reference slice time as a fraction of the TR (default 0)")

    contrasts = parser.add_argument_group("contrasts (default: the seed's two)")
    contrasts.add_argument("--contrast", action="append", default=[], metavar="NAME=EXPR",
                           help="t contrast, e.g. activeMinusRest='active - rest' (repeatable)")
    contrasts.add_argument("--f-contrast", action="append", default=[],
                           metavar="NAME=EXPR1,EXPR2",
                           help="F contrast, e.g. effectsOfInterest=active,rest (repeatable)")

    inference = parser.add_argument_group("thresholds and tables")
    inference.add_argument("--height-control", default="fdr",
                           choices=["fpr", "fdr", "bonferroni", "none"],
                           help="how the z threshold is chosen (default fdr)")
    inference.add_argument("--alpha", type=float, default=0.05,
                           help="error rate for fpr/fdr/bonferroni (default 0.05)")
    inference.add_argument("--threshold", type=float, default=3.09,
                           help="z threshold with --height-control none")
    inference.add_argument("--cluster-threshold", type=int, default=10,
                           help="remove clusters smaller than this many voxels (default 10)")
    sided = inference.add_mutually_exclusive_group()
    sided.add_argument("--two-sided", dest="two_sided", action="store_true",
                       help="threshold and tabulate negative effects too")
    sided.add_argument("--one-sided", dest="two_sided", action="store_false",
                       help="positive effects only (default)")
    inference.add_argument("--table-min-cluster-size", type=int, default=20,
                           help="smallest cluster (voxels) listed in the tables (default 20)")

    execution = parser.add_argument_group("execution")
    execution.add_argument("--output-dir", default="derivatives",
                           help="derivatives root (default: ./derivatives)")
    execution.add_argument("--work-dir", default=DEFAULT_WORK_DIR,
                           help="Nipype cache; reruns reuse it (default: ./work)")
    execution.add_argument("--plugin", default="Linear",
                           choices=["Linear", "MultiProc", "SLURM", "SLURMGraph"],
                           help="Nipype execution plugin (default Linear)")
    execution.add_argument("--n-procs", type=int, help="processes for MultiProc")
    execution.add_argument("--mem-gb", type=float,
                           help="memory MultiProc may use at once, in GB (default: 90%% of "
                                "the machine's); nodes declare their needs from the data size")
    execution.add_argument("--plugin-args", default="{}", metavar="JSON",
                           help='extra plugin arguments, e.g. \'{"sbatch_args": "-p short"}\'')
    execution.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(two_sided=False)
    return parser


def _contrasts(args):
    from .core.contrasts import parse_contrast_option
    from .first_level import SEED_CONTRASTS

    parsed = [parse_contrast_option(c, "t") for c in args.contrast]
    parsed += [parse_contrast_option(c, "F") for c in args.f_contrast]
    names = [c[0] for c in parsed]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"--contrast: name(s) used twice: {', '.join(duplicates)}")
    return parsed or list(SEED_CONTRASTS)


def _runs(args):
    from .inputs import file_list_run, find_bids_runs, find_spm_auditory

    if args.func and args.bids_dir:
        raise InputError("give either --bids-dir or --func, not both")
    if args.func:
        if not args.events or args.tr is None:
            raise InputError("--func needs --events and --tr")
        if args.subject and len(args.subject) > 1:
            raise InputError("--func takes one --subject label")
        return [file_list_run(
            args.func, args.events, args.tr, subject=(args.subject or ["01"])[0], task=args.task,
            session=(args.session or [None])[0], run=(args.run or [None])[0],
            confounds=args.confounds)]
    if args.bids_dir:
        return find_bids_runs(args.bids_dir, args.task, args.subject, args.session, args.run)
    return [find_spm_auditory(args.data_dir)]


def _plugin_args(args) -> dict:
    try:
        plugin_args = json.loads(args.plugin_args)
    except json.JSONDecodeError as exc:
        raise InputError(f"--plugin-args: not valid JSON ({exc.msg})") from None
    if not isinstance(plugin_args, dict):
        raise InputError("--plugin-args: expected a JSON object")
    if args.n_procs is not None:
        if args.n_procs < 1:
            raise InputError(f"--n-procs: expected a positive number, got {args.n_procs}")
        plugin_args["n_procs"] = args.n_procs
    if args.mem_gb is not None:
        if args.mem_gb <= 0:
            raise InputError(f"--mem-gb: expected a positive number, got {args.mem_gb}")
        plugin_args["memory_gb"] = args.mem_gb
    return plugin_args


def validate_run(run, model: dict, contrasts, *, output_dir, warnings: list) -> dict:
    """Check a run's files, events, design and contrasts before any work starts.

    The design is checked by :func:`~glm_workflows.core.design.first_level_design`,
    the function the run's DesignMatrix node builds it with. Nothing but an
    :class:`InputError` leaves this function: any other exception becomes one line
    naming the run's events file and the exception.

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

    Returns
    -------
    mem_gb : dict
        The memory estimates of the run's nodes.
    """
    try:
        return _validate_run(run, model, contrasts, output_dir, warnings)
    except InputError:
        raise
    except Exception as exc:  # the promise is one line, whatever failed
        raise InputError(f"{run.events_file}: cannot be checked "
                         f"({type(exc).__name__}: {one_line(exc)})") from exc


def _validate_run(run, model: dict, contrasts, output_dir, warnings: list) -> dict:
    """:func:`validate_run` without its guard: images, design and contrasts, names."""
    from .core.design import first_level_design
    from .core.images import check_header_repetition_time, check_images_compatible
    from .first_level import estimate_memory_gb

    imgs = check_images_compatible(run.bold_files)
    check_header_repetition_time(run.t_r, imgs, run.bold_files)
    n_scans = sum(img.shape[3] if img.ndim == 4 else 1 for img in imgs)
    _, run_warnings = first_level_design(run.events_file, n_scans, run.t_r,
                                         confounds_file=run.confounds_file,
                                         contrasts=contrasts, **model)
    _check_output_names(run, contrasts, output_dir)
    warnings.extend(run_warnings)
    return estimate_memory_gb(int(imgs[0].shape[0] * imgs[0].shape[1] * imgs[0].shape[2]),
                              n_scans)


def _check_output_names(run, contrasts, output_dir) -> None:
    """Refuse a contrast whose output file names would exceed the file system's limit.

    The longest name the sink writes for a contrast is the run's BIDS prefix, the
    contrast entity and the longest suffix of ``CONTRAST_OUTPUTS``; the limit is
    ``PC_NAME_MAX`` of the output folder or its nearest existing parent (255 if unknown).
    """
    from interfaces.derivatives import CONTRAST_OUTPUTS

    from .core.derivatives import bids_prefix

    folder = Path(output_dir).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    prefix = bids_prefix(run.subject, run.task, run.session, run.run)
    for name, stat_type, _ in contrasts:
        longest = max(len(os.fsencode(f"{prefix}_contrast-{name}_{suffix.format(stat=stat_type)}"))
                      for suffix in CONTRAST_OUTPUTS.values())
        if longest > name_max:
            shown = name if len(name) <= 40 else f"{name[:37]}..."
            raise InputError(
                f"contrast {shown}: name too long: its output file names would have up to "
                f"{longest} bytes, more than the {name_max} allowed in {existing}; use at most "
                f"{len(name) - (longest - name_max)} characters")


def check_output_dir(path) -> Path:
    """Create the output folder if needed and make sure it is writable."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"{path}: output directory is not writable ({exc.strerror})") from None
    return path


def check_work_dir(path) -> Path:
    """Refuse a work directory that cannot be created or written, without creating it
    (bad input leaves no work directory behind)."""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"--work-dir {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--work-dir {path}: {existing} is not writable")
    return path


def check_memory(mem_gb: list, limit_gb: float | None) -> None:
    """Refuse a MultiProc memory limit below the largest node's estimate (that node
    could never start)."""
    if limit_gb is None or not mem_gb:
        return
    largest = max(max(estimates.values()) for estimates in mem_gb)
    if largest > limit_gb:
        raise InputError(f"--mem-gb {limit_gb:g}: the largest node needs an estimated "
                         f"{largest:g} GB; give at least that much")


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


def build_workflow(runs, *, output_dir, model: dict, contrasts, inference: dict, mem_gb):
    """One top-level workflow: a first-level workflow per run, and per subject with
    several runs a fixed-effects workflow combining them. Runs and subjects are
    independent branches, run in parallel by MultiProc and SLURM."""
    from nipype.pipeline import engine as pe

    from .core.derivatives import bids_prefix
    from .first_level import init_first_level_wf
    from .fixed_effects import connect_runs, init_fixed_effects_wf

    workflow = pe.Workflow(name="glm_workflows_wf")
    run_wfs = {}
    for run, run_mem in zip(runs, mem_gb, strict=True):
        run_wf = init_first_level_wf(
            t_r=run.t_r, output_dir=str(output_dir), subject=run.subject, task=run.task,
            session=run.session, run=run.run, contrasts=contrasts, mem_gb=run_mem,
            name=f"{run.label}_wf", **model, **inference,
        )
        run_wf.inputs.inputnode.bold_files = run.bold_files
        run_wf.inputs.inputnode.events_file = run.events_file
        if run.confounds_file:
            run_wf.inputs.inputnode.confounds_file = run.confounds_file
        workflow.add_nodes([run_wf])
        run_wfs[run.label] = run_wf
    for subject, subject_runs in subject_groups(runs).items():
        if len(subject_runs) < 2:
            continue
        session = subject_session(subject_runs)
        ffx_wf = init_fixed_effects_wf(
            output_dir=str(output_dir), subject=subject,
            task=subject_runs[0].task, session=session,
            run_labels=[bids_prefix(r.subject, r.task, r.session, r.run) for r in subject_runs],
            name=f"sub_{subject}{'_ses_' + session if session else ''}_fixed_effects_wf",
            **inference,
        )
        connect_runs(workflow, [run_wfs[r.label] for r in subject_runs], ffx_wf)
    return workflow


def result_prefixes(runs) -> list[tuple[str, str]]:
    """(subject, BIDS prefix) of every model whose results are written: each run, and
    each subject's fixed effects when it has several runs."""
    from .core.derivatives import bids_prefix

    prefixes = [(r.subject, bids_prefix(r.subject, r.task, r.session, r.run)) for r in runs]
    for subject, subject_runs in subject_groups(runs).items():
        if len(subject_runs) > 1:
            prefixes.append((subject, bids_prefix(subject, subject_runs[0].task,
                                                  subject_session(subject_runs), None)))
    return prefixes


def _crash_summary(work_dir: Path, since: float) -> list[str]:
    """One line per crash file written since ``since``: node, exception, file."""
    lines = []
    for crash in sorted((work_dir / "crash").glob("crash-*.txt")):
        if crash.stat().st_mtime < since:
            continue
        text = crash.read_text(errors="replace").strip().splitlines()
        node = next((ln.split(":", 1)[1].strip() for ln in text if ln.startswith("Node:")), "?")
        starts = [i for i, ln in enumerate(text) if re.match(r"^\s*[\w.]+(Error|Exception)\b", ln)]
        reason = one_line(" ".join(text[starts[-1]:])) if starts else text[-1].strip()
        lines.append(f"node {node} failed: {reason} (crash file: {crash})")
    return lines


def print_results(runs, output_dir, printer=print) -> None:
    """Where the outputs are, and each contrast's threshold and cluster table."""
    import pandas as pd

    printer(f"Outputs in {Path(output_dir).absolute()}")
    for subject, prefix in result_prefixes(runs):
        folder = Path(output_dir) / f"sub-{subject}"
        for table_file in sorted(folder.glob(f"{prefix}_contrast-*_clusters.tsv")):
            contrast = table_file.name[len(prefix) + len("_contrast-"):-len("_clusters.tsv")]
            settings = json.loads((folder / f"{prefix}_contrast-{contrast}_stat-z_desc-"
                                            "thresholded_statmap.json").read_text())
            how = ("fixed threshold" if settings["HeightControl"] == "none"
                   else f"{settings['HeightControl']} alpha={settings['Alpha']}")
            threshold = settings["Threshold"]  # null: no voxel can pass (fdr)
            height = f"z > {threshold:.3f}, " if threshold is not None else ""
            if settings.get("NoSurvivingVoxels"):
                printer(f"\n{prefix} contrast {contrast}: {how} -> {height}no voxel survives")
                continue
            table = pd.read_csv(table_file, sep="\t", keep_default_na=False)
            printer(f"\n{prefix} contrast {contrast}: {how} -> {height}"
                    f"{(table['Cluster Size (mm3)'] != '').sum()} cluster(s)")
            printer(table.to_string(index=False) if len(table) else "  (no cluster)")


def prepare(args) -> tuple[dict, dict]:
    """Check every input and setting before any work; raise InputError on the first problem.

    Returns the keyword arguments of :func:`build_workflow`, and the plugin arguments.
    """
    from .core.inference import check_threshold_settings

    model = dict(noise_model=args.noise_model, hrf_model=args.hrf_model,
                 drift_model=args.drift_model, high_pass=args.high_pass,
                 drift_order=args.drift_order, slice_time_ref=args.slice_time_ref)
    inference = dict(height_control=args.height_control, alpha=args.alpha,
                     threshold=args.threshold, cluster_threshold=args.cluster_threshold,
                     two_sided=args.two_sided, table_min_cluster_size=args.table_min_cluster_size)
    check_threshold_settings(args.height_control, args.alpha, args.threshold,
                             args.cluster_threshold)
    if args.table_min_cluster_size < 0:
        raise InputError("--table-min-cluster-size: expected a number of voxels >= 0")
    contrasts = _contrasts(args)
    plugin_args = _plugin_args(args)
    runs = _runs(args)
    design_model = {k: v for k, v in model.items() if k != "noise_model"}
    warnings: list = []
    mem_gb = [validate_run(run, design_model, contrasts, output_dir=args.output_dir,
                           warnings=warnings) for run in runs]
    check_memory(mem_gb, plugin_args.get("memory_gb") if args.plugin == "MultiProc" else None)
    output_dir = check_output_dir(args.output_dir)
    check_work_dir(args.work_dir)
    for line in warnings:
        print(f"glm-workflows: warning: {line}", file=sys.stderr)
    return dict(runs=runs, output_dir=output_dir, model=model, contrasts=contrasts,
                inference=inference, mem_gb=mem_gb), plugin_args


def main(argv=None) -> int:
    """Run the command line; return the exit code (2: bad input, 1: a node failed,
    128 + signal number: interrupted by SIGINT or SIGTERM)."""
    from .interrupts import RunInterrupted, interrupts_raise

    args = build_parser().parse_args(argv)
    with interrupts_raise():
        try:
            return _run(args, argv)
        except RunInterrupted as exc:
            return _interrupted(exc, Path(args.work_dir).absolute())


def _run(args, argv) -> int:
    """Check everything, run the workflow, commit its outputs, print the results."""
    started = time.time()
    try:
        settings, plugin_args = prepare(args)
    except InputError as exc:
        if args.debug:
            raise
        print(f"glm-workflows: error: {exc}", file=sys.stderr)
        return 2

    from nipype import config, logging

    # Failures are summarised below; Nipype's own tracebacks only with --debug.
    config.set("logging", "workflow_level", "DEBUG" if args.debug else "CRITICAL")
    config.set("logging", "interface_level", "DEBUG" if args.debug else "ERROR")
    config.set("logging", "utils_level", "DEBUG" if args.debug else "ERROR")
    logging.update_logging(config)
    from .core.derivatives import PROVENANCE_FILE
    from .execution import GRAPH_PLUGINS, run_workflow
    from .interrupts import RunInterrupted, received_interrupt
    from .outputs import INDEX_FILE, OutputTransaction
    from .provenance import build_provenance, write_provenance

    runs, output_dir = settings["runs"], settings["output_dir"]
    subjects = list(subject_groups(runs))
    work_dir = Path(args.work_dir).absolute()
    transaction = OutputTransaction(output_dir)  # outputs move in only on success
    try:
        workflow = build_workflow(**{**settings, "output_dir": transaction.staging})
        print(f"Running {len(runs)} run(s), {len(settings['contrasts'])} contrast(s), "
              f"plugin {args.plugin}; cache in {work_dir}", flush=True)
        records = run_workflow(workflow, work_dir=work_dir, plugin=args.plugin,
                               plugin_args=plugin_args)
        finished = time.time()
        record = build_provenance(
            runs=runs, workflow=workflow, records=records, started=started, finished=finished,
            command_line=["glm-workflows", *(sys.argv[1:] if argv is None else argv)],
            plugin=args.plugin, parameters=_parameters(settings, args, plugin_args),
        )
        write_provenance(transaction.staging, record, subjects)
        write_reports(transaction.staging, subjects,
                      plugin_args.get("n_procs", os.cpu_count() or 1)
                      if args.plugin == "MultiProc" else 1)
        transaction.commit(subjects, root_files)
    except RunInterrupted as exc:
        transaction.discard()
        exc.outputs_committed = transaction.committed
        raise
    except Exception as exc:
        transaction.discard()
        signum = received_interrupt()
        if signum is not None:  # a node's error that is the interruption, rebuilt
            raise RunInterrupted(signum) from None
        if args.debug:
            raise
        details = _crash_summary(work_dir, started) or [one_line(exc)]
        for line in details:
            print(f"glm-workflows: error: {line}", file=sys.stderr)
        return 1
    if args.plugin in GRAPH_PLUGINS:
        print(f"\nFinished in {finished - started:.1f} s ({len(records)} SLURM job(s); "
              "nodes already complete were not resubmitted)")
    else:
        ran = sum(not r.cached for r in records)
        print(f"\nFinished in {finished - started:.1f} s ({ran} node(s) run, "
              f"{len(records) - ran} cached)")
    index = Path(output_dir) / INDEX_FILE
    report = index if len(subjects) > 1 and index.exists() \
        else Path(output_dir) / f"sub-{subjects[-1]}.html"
    print(f"Report: {report}")
    print(f"Provenance: {Path(output_dir) / PROVENANCE_FILE}")
    print_results(runs, output_dir)
    return 0


def _interrupted(exc, work_dir: Path) -> int:
    """One line for an interrupted run; the exit code a shell gives a signalled job."""
    outputs = ("the outputs were already committed" if getattr(exc, "outputs_committed", False)
               else "no output was changed")
    print(f"glm-workflows: interrupted ({exc.signame}); {outputs}. Nodes that finished are "
          f"cached in {work_dir}: run the same command again to resume.",
          file=sys.stderr, flush=True)
    return 128 + exc.signum


def root_files(output_dir) -> None:
    """Rewrite the output folder's shared root files (see :mod:`glm_workflows.outputs`)."""
    from .core.report import write_index
    from .outputs import write_root_files

    write_root_files(output_dir, write_index)


def write_reports(output_dir, subjects, n_procs: int = 1) -> list[Path]:
    """One HTML report per subject (in ``n_procs`` processes), ``sub-<label>.html``."""
    from .core.report import write_subject_report

    if n_procs > 1 and len(subjects) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(n_procs, len(subjects)),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(write_subject_report, [output_dir] * len(subjects),
                                 subjects))
    return [write_subject_report(output_dir, subject) for subject in subjects]


def _parameters(settings: dict, args, plugin_args: dict) -> dict:
    """Every setting of the run, for the provenance record."""
    return {
        **settings["model"], **settings["inference"],
        "contrasts": [{"name": name, "stat_type": stat, "rows": list(rows)}
                      for name, stat, rows in settings["contrasts"]],
        "plugin": args.plugin,
        "plugin_args": {k: v for k, v in plugin_args.items() if k != "status_callback"},
        "work_dir": str(Path(args.work_dir).absolute()),
        "output_dir": str(Path(settings["output_dir"]).absolute()),
        "node_memory_gb": settings["mem_gb"],
    }


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
