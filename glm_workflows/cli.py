"""Command line: ``glm-workflows`` / ``python run_workflow.py``."""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from .core.errors import InputError, one_line
from .settings import (
    DEFAULT_INFERENCE,
    DEFAULT_MODEL,
    DRIFT_MODELS,
    HEIGHT_CONTROLS,
    NOISE_MODELS,
    PLUGINS,
    SEED_CONTRASTS,
    ExecutionSettings,
    InferenceSettings,
    ModelSettings,
)

DEFAULT_EXECUTION = ExecutionSettings()

#: The successful design checks of earlier runs, in the work directory
#: (:func:`load_design_checks`).
DESIGN_CHECKS_FILE = "design_checks.json"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, in groups: inputs, model, contrasts, inference, execution."""
    parser = argparse.ArgumentParser(
        prog="glm-workflows",
        description="First-level fMRI GLM as a Nipype workflow. With no input flags, runs the "
                    "SPM auditory analysis on the data found under --data-dir.",
    )
    data = parser.add_argument_group("inputs")
    data.add_argument("--bids-dir", help="BIDS dataset root (TR read from the sidecar JSON)")
    data.add_argument("--task", default="auditory", help="task label (default: %(default)s)")
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
    model.add_argument("--noise-model", default=DEFAULT_MODEL.noise_model, choices=NOISE_MODELS,
                       help="temporal noise model (default %(default)s)")
    model.add_argument("--hrf-model", default=DEFAULT_MODEL.hrf_model,
                       help="nilearn HRF model: spm, glover, 'spm + derivative', ... "
                            "(default %(default)s)")
    model.add_argument("--drift-model", default=DEFAULT_MODEL.drift_model,
                       choices=DRIFT_MODELS,
                       help="slow drift regressors (default %(default)s)")
    model.add_argument("--high-pass", type=float, default=DEFAULT_MODEL.high_pass,
                       help="high-pass cut-off in Hz (default %(default)s)")
    model.add_argument("--drift-order", type=int, default=DEFAULT_MODEL.drift_order,
                       help="order of polynomial drifts (default %(default)s)")
    model.add_argument("--slice-time-ref", type=float,
                       default=DEFAULT_MODEL.slice_time_ref,
                       help="reference slice time as a fraction of the TR (default %(default)s)")

    contrasts = parser.add_argument_group("contrasts (default: the seed's two)")
    contrasts.add_argument("--contrast", action="append", default=[], metavar="NAME=EXPR",
                           help="t contrast, e.g. activeMinusRest='active - rest' (repeatable)")
    contrasts.add_argument("--f-contrast", action="append", default=[],
                           metavar="NAME=EXPR1,EXPR2",
                           help="F contrast, e.g. effectsOfInterest=active,rest (repeatable)")

    inference = parser.add_argument_group("thresholds and tables")
    inference.add_argument("--height-control", default=DEFAULT_INFERENCE.height_control,
                           choices=HEIGHT_CONTROLS,
                           help="how the z threshold is chosen (default %(default)s)")
    inference.add_argument("--alpha", type=float, default=DEFAULT_INFERENCE.alpha,
                           help="error rate for fpr/fdr/bonferroni (default %(default)s)")
    inference.add_argument("--threshold", type=float, default=DEFAULT_INFERENCE.threshold,
                           help="z threshold with --height-control none (default %(default)s)")
    inference.add_argument("--cluster-threshold", type=int,
                           default=DEFAULT_INFERENCE.cluster_threshold,
                           help="remove clusters smaller than this many voxels "
                                "(default %(default)s)")
    sided = inference.add_mutually_exclusive_group()
    two_sided = DEFAULT_INFERENCE.two_sided
    sided.add_argument("--two-sided", dest="two_sided", action="store_true",
                       help="threshold and tabulate negative effects too"
                            + (" (default)" if two_sided else ""))
    sided.add_argument("--one-sided", dest="two_sided", action="store_false",
                       help="positive effects only" + ("" if two_sided else " (default)"))
    inference.add_argument("--table-min-cluster-size", type=int,
                           default=DEFAULT_INFERENCE.table_min_cluster_size,
                           help="smallest cluster (voxels) listed in the tables "
                                "(default %(default)s)")

    execution = parser.add_argument_group("execution")
    execution.add_argument("--output-dir", default=DEFAULT_EXECUTION.output_dir,
                           help="derivatives root (default: %(default)s)")
    execution.add_argument("--work-dir", default=DEFAULT_EXECUTION.work_dir,
                           help="Nipype cache; reruns reuse it (default: %(default)s)")
    execution.add_argument("--plugin", default=DEFAULT_EXECUTION.plugin, choices=PLUGINS,
                           help="Nipype execution plugin (default %(default)s)")
    execution.add_argument("--n-procs", type=int, help="processes for MultiProc")
    execution.add_argument("--mem-gb", type=float,
                           help="memory MultiProc may use at once, in GB (default: 90%% of "
                                "the machine's); nodes declare their needs from the data size")
    execution.add_argument("--plugin-args", default="{}", metavar="JSON",
                           help='extra plugin arguments, e.g. \'{"sbatch_args": "-p short"}\'')
    execution.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(two_sided=DEFAULT_INFERENCE.two_sided)
    return parser


def _contrasts(args):
    from .core.contrasts import parse_contrast_option

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


def validate_run(run, model: dict, contrasts, *, output_dir, warnings: list,
                 design_checks: dict | None = None) -> dict:
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
    design_checks : dict or None
        Outcomes of earlier runs' design checks, shared by the runs of one study
        (:func:`_checked_design`).

    Returns
    -------
    mem_gb : dict
        The memory estimates of the run's nodes.
    """
    try:
        return _validate_run(run, model, contrasts, output_dir, warnings,
                             {} if design_checks is None else design_checks)
    except InputError:
        raise
    except Exception as exc:  # the promise is one line, whatever failed
        raise InputError(f"{run.events_file}: cannot be checked "
                         f"({type(exc).__name__}: {one_line(exc)})") from exc


def _validate_run(run, model: dict, contrasts, output_dir, warnings: list,
                  design_checks: dict) -> dict:
    """:func:`validate_run` without its guard: images, design and contrasts, names."""
    from .core.images import check_header_repetition_time, check_images_compatible
    from .first_level import estimate_memory_gb

    imgs = check_images_compatible(run.bold_files)
    check_header_repetition_time(run.t_r, imgs, run.bold_files)
    n_scans = sum(img.shape[3] if img.ndim == 4 else 1 for img in imgs)
    run_warnings = _checked_design(run, n_scans, model, contrasts, design_checks)
    _check_output_names(run, contrasts, output_dir)
    warnings.extend(run_warnings)
    return estimate_memory_gb(int(imgs[0].shape[0] * imgs[0].shape[1] * imgs[0].shape[2]),
                              n_scans)


def _checked_design(run, n_scans: int, model: dict, contrasts, cache: dict) -> list[str]:
    """Check a run's design (:func:`~glm_workflows.core.design.first_level_design`) and
    return its warnings; runs whose events and confounds files have the same bytes,
    with the same scans, TR, model and contrasts (a study with one events file for
    every subject, say), are checked once, their messages naming each run's files.
    ``cache`` maps a digest of all that (and of the checking code) to the outcome;
    its successes are kept in the work directory (:func:`load_design_checks`)."""
    from hashlib import sha1

    files = [str(f) if f else f for f in (run.events_file, run.confounds_file)]
    digests = tuple(sha1(Path(f).read_bytes()).hexdigest() if f and Path(f).is_file() else f
                    for f in files)
    key = sha1(repr((digests, n_scans, run.t_r, sorted(model.items()), contrasts,
                     _design_code_version())).encode()).hexdigest()
    if key not in cache:
        from .core.design import first_level_design

        try:
            _, run_warnings = first_level_design(run.events_file, n_scans, run.t_r,
                                                 confounds_file=run.confounds_file,
                                                 contrasts=contrasts, **model)
            cache[key] = (files, run_warnings, None)
        except InputError as exc:
            cache[key] = (files, [], str(exc))
    checked_files, run_warnings, error = cache[key]

    def renamed(text: str) -> str:
        for old, new in zip(checked_files, files, strict=True):
            if old and new and old != new:
                text = text.replace(str(old), str(new))
        return text

    if error is not None:
        raise InputError(renamed(error))
    return [renamed(line) for line in run_warnings]


def _check_output_names(run, contrasts, output_dir) -> None:
    """Refuse a contrast whose output file names would exceed the file system's limit.

    The longest name the sink writes for a contrast is the run's BIDS prefix, the
    contrast entity and the longest suffix of ``CONTRAST_OUTPUTS``; the limit is
    ``PC_NAME_MAX`` of the output folder or its nearest existing parent (255 if unknown).
    """
    from .core.naming import CONTRAST_OUTPUTS, bids_prefix, contrast_file

    existing = _nearest_existing(output_dir)
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    prefix = bids_prefix(run.subject, run.task, run.session, run.run)
    for name, stat_type, _ in contrasts:
        longest = max(len(os.fsencode(contrast_file(prefix, name, output, stat_type)))
                      for output in CONTRAST_OUTPUTS)
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


def _nearest_existing(path) -> Path:
    """``path`` if it exists, else its nearest existing parent (what creating it needs)."""
    path = Path(path).absolute()
    return next(p for p in (path, *path.parents) if p.exists())


@functools.cache
def _design_code_version() -> str:
    """A digest of the code that checks designs (this package's design and contrast
    modules, nilearn's version): a kept outcome is reused only by the same code."""
    from hashlib import sha1
    from importlib.metadata import version

    from .core import contrasts, design

    sources = b"".join(Path(module.__file__).read_bytes() for module in (design, contrasts))
    return sha1(sources + version("nilearn").encode()).hexdigest()


def load_design_checks(work_dir) -> dict:
    """The successful design checks kept in ``work_dir`` by an earlier run (empty if
    none or unreadable): a rerun does not rebuild (nor import nilearn to rebuild)
    designs it has already checked."""
    try:
        kept = json.loads((Path(work_dir) / DESIGN_CHECKS_FILE).read_text())
        return {key: (files, warnings, None) for key, (files, warnings) in kept.items()}
    except (OSError, ValueError, TypeError):
        return {}


def save_design_checks(work_dir, checks: dict) -> None:
    """Keep the successful outcomes of ``checks`` in ``work_dir`` (written atomically)."""
    from .core.derivatives import write_text_atomic

    kept = {key: [files, warnings] for key, (files, warnings, error) in checks.items()
            if error is None}
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(work_dir) / DESIGN_CHECKS_FILE, json.dumps(kept, sort_keys=True))


def check_work_dir(path) -> Path:
    """Refuse a work directory that cannot be created or written, without creating it
    (bad input leaves no work directory behind)."""
    path = Path(path).absolute()
    existing = _nearest_existing(path)
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


def prepare(args) -> tuple[dict, dict]:
    """Check every input and setting before any work; raise InputError on the first problem.

    Returns the keyword arguments of :func:`~glm_workflows.study.init_glm_wf`, and the
    plugin arguments.
    """
    from .core.inference import check_threshold_settings

    model = ModelSettings(**{f.name: getattr(args, f.name) for f in fields(ModelSettings)})
    inference = InferenceSettings(**{f.name: getattr(args, f.name)
                                     for f in fields(InferenceSettings)})
    check_threshold_settings(args.height_control, args.alpha, args.threshold,
                             args.cluster_threshold)
    if args.table_min_cluster_size < 0:
        raise InputError("--table-min-cluster-size: expected a number of voxels >= 0")
    contrasts = _contrasts(args)
    plugin_args = _plugin_args(args)
    runs = _runs(args)
    warnings: list = []
    design_checks = load_design_checks(args.work_dir)
    mem_gb = [validate_run(run, model.design(), contrasts, output_dir=args.output_dir,
                           design_checks=design_checks,
                           warnings=warnings) for run in runs]
    check_memory(mem_gb, plugin_args.get("memory_gb") if args.plugin == "MultiProc" else None)
    output_dir = check_output_dir(args.output_dir)
    save_design_checks(check_work_dir(args.work_dir), design_checks)
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
    from .core.naming import INDEX_FILE, PROVENANCE_FILE, report_page
    from .execution import GRAPH_PLUGINS, run_workflow
    from .interrupts import RunInterrupted, received_interrupt
    from .outputs import OutputTransaction
    from .provenance import build_provenance, write_provenance
    from .study import init_glm_wf, subject_groups
    from .summary import print_results

    runs, output_dir = settings["runs"], settings["output_dir"]
    subjects = list(subject_groups(runs))
    work_dir = Path(args.work_dir).absolute()
    transaction = OutputTransaction(output_dir)  # outputs move in only on success
    try:
        workflow = init_glm_wf(**{**settings, "output_dir": transaction.staging})
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
        else Path(output_dir) / report_page(subjects[-1])
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
    from .outputs import write_root_files
    from .report import write_index

    write_root_files(output_dir, write_index)


def write_reports(output_dir, subjects, n_procs: int = 1) -> list[Path]:
    """One HTML report per subject (in ``n_procs`` processes), ``sub-<label>.html``."""
    from .report import write_subject_report

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
        **asdict(settings["model"]), **asdict(settings["inference"]),
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
