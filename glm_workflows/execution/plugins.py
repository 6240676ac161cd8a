"""Running a workflow: Nipype configuration, progress lines, and what was cached."""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing as mp
import os
import re
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from nipype.pipeline.plugins.multiproc import MultiProcPlugin as _NipypeMultiProcPlugin
from nipype.pipeline.plugins.slurmgraph import SLURMGraphPlugin

from ..settings import PLUGINS
from .interrupts import RunInterrupted, received_interrupt, worker_initializer

#: Plugins that submit the whole graph at once and report nothing per node.
GRAPH_PLUGINS = ("SLURMGraph",)


def flushed_print(line: str) -> None:
    """Print a progress line at once, also when output goes to a file or a pipe
    (a cluster job's log, a killed run)."""
    print(line, flush=True)


class MultiProcPlugin(_NipypeMultiProcPlugin):
    """Nipype's MultiProc whose workers ignore Ctrl-C (see :func:`worker_initializer`)
    and are stopped at once when the run is interrupted."""

    def __init__(self, plugin_args=None):
        super().__init__(plugin_args=plugin_args)
        self.pool.shutdown(wait=False)  # no worker started yet: replace the pool
        self.pool = ProcessPoolExecutor(
            max_workers=self.processors, initializer=worker_initializer,
            initargs=(self._cwd,),
            mp_context=mp.get_context((plugin_args or {}).get("mp_context")))

    def stop_workers(self) -> None:
        """Terminate the workers (their nodes rerun next time) and drop the pool.

        The futures of the stopped nodes then fail; ``concurrent.futures`` would log a
        traceback for each (from Nipype's callback), which is not news to the user.
        """
        logging.getLogger("concurrent.futures").setLevel(logging.CRITICAL)
        for process in list((getattr(self.pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                process.terminate()
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class NodeRecord:
    """What happened to one node in a run, read from Nipype's result file."""

    name: str
    cached: bool
    seconds: float | None
    status: str


def node_label(node) -> str:
    """The node's name inside the top-level workflow (``sub_01_task_x_wf.fit``)."""
    return node.fullname.split(".", 1)[-1]


def _parse_time(stamp):
    when = datetime.fromisoformat(str(stamp))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def read_result(node):
    """A finished node's Nipype result (read from its result file), or None if it has none."""
    try:
        return node.result
    except Exception:  # no result file (a failed node) or an unreadable one
        return None


def node_record(node, result, run_started: datetime, status: str) -> NodeRecord:
    """A finished node's record from its ``result`` (:func:`read_result`); a node whose
    result predates the run was cached."""
    try:
        runtime = result.runtime
        started = _parse_time(runtime.startTime)
        seconds = runtime.duration
    except Exception:  # no readable result (a failed node)
        return NodeRecord(node_label(node), False, None, status)
    return NodeRecord(node_label(node), started < run_started, seconds, status)


class ProgressReporter:
    """Nipype ``status_callback``: one line per finished node, and the records kept."""

    def __init__(self, printer=None):
        self.printer = printer or flushed_print
        self.started = datetime.now(timezone.utc)
        self.records: list[NodeRecord] = []

    def __call__(self, node, status):
        if status == "start":
            return
        result = read_result(node)  # once: each read unpickles the result file
        record = node_record(node, result, self.started, status)
        self.records.append(record)
        if status != "end":
            self.printer(f"  {'stopped' if received_interrupt() else 'FAILED '} {record.name}")
        elif record.cached:
            self.printer(f"  cached  {record.name}")
        else:
            self.printer(f"  done    {record.name} ({record.seconds or 0:.1f} s)")
        for warning in node_warnings(result) if status == "end" else ():
            self.printer(f"  warning: {record.name}: {warning}")


def node_warnings(result) -> list[str]:
    """The ``warnings`` output in a finished node's ``result`` (:func:`read_result`) when
    its interface has one (e.g. the fit's note on non-finite samples), printed also when
    the node was cached."""
    warnings = getattr(getattr(result, "outputs", None), "warnings", None)
    return [str(w) for w in warnings] if isinstance(warnings, list) else []


def configure_workflow(workflow, work_dir, plugin: str = "Linear") -> None:
    """Put the Nipype cache in ``work_dir``, keep crash files there as text, and poll
    local plugins often (a cluster scheduler less often).

    Nipype's own reports (``_report/report.rst`` in every node folder, written before and
    after each node, and the workflow's graph page) are not written: nothing reads them
    (the HTML report and the provenance record say what ran), and they cost about half a
    millisecond per node.
    """
    work_dir = Path(work_dir).absolute()
    workflow.base_dir = str(work_dir)
    workflow.config["execution"].update({
        "crashdump_dir": str(work_dir / "crash"),
        "crashfile_format": "txt",
        "stop_on_first_crash": "true",
        "hash_method": "timestamp",
        "create_report": "false",
        "poll_sleep_duration": 1 if plugin.startswith("SLURM") else 0.02,
    })


def run_workflow(workflow, *, work_dir, plugin: str = "Linear", plugin_args: dict | None = None,
                 printer=None) -> list[NodeRecord]:
    """Run ``workflow`` with a Nipype plugin, printing one line per node.

    Parameters
    ----------
    workflow : nipype Workflow
    work_dir : str
        Nipype cache folder; a rerun with the same folder reuses finished nodes.
    plugin : {'Linear', 'MultiProc', 'SLURM', 'SLURMGraph'}
    plugin_args : dict or None
        Passed to the plugin (``n_procs``, ``memory_gb``, ``sbatch_args``, ...).
    printer : callable
        Receives the progress lines.

    Returns
    -------
    records : list of NodeRecord
        One per node that finished (for SLURMGraph, one per job it submitted).
    """
    if plugin not in PLUGINS:
        raise ValueError(f"plugin: expected one of {', '.join(PLUGINS)}, got {plugin!r}")
    os.environ.setdefault("NIPYPE_NO_ET", "1")
    os.environ.setdefault("LOGNAME", os.environ.get("USER", "glm-workflows"))
    configure_workflow(workflow, work_dir, plugin)
    plugin_args = dict(plugin_args or {})
    reporter = ProgressReporter(printer)
    if plugin not in GRAPH_PLUGINS:
        plugin_args["status_callback"] = reporter
        # MultiProc runs a full garbage collection before every submission round; with
        # nilearn and matplotlib loaded each takes ~0.1 s and serialises the scheduler.
        # Objects alive before the run are left out of those collections.
        gc.collect()
        gc.freeze()
        runner = MultiProcPlugin(plugin_args) if plugin == "MultiProc" else plugin
        try:
            workflow.run(plugin=runner, plugin_args=plugin_args)
        except RunInterrupted:
            if plugin == "MultiProc":
                runner.stop_workers()
            raise
        finally:
            gc.unfreeze()
        return reporter.records
    plugin_args.setdefault("dont_resubmit_completed_jobs", True)
    runner = TrackedSLURMGraphPlugin(plugin_args=plugin_args)
    workflow.run(plugin=runner)
    return wait_for_graph_jobs(runner, printer=printer)


#: SLURM job states of a job that has not finished yet.
ACTIVE_JOB_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                     "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT", "REQUEUE_HOLD",
                     "REQUEUE_FED", "STOPPED"}


@dataclass
class GraphJob:
    """A node that SLURMGraph submitted as a job, and its files as they were before."""

    name: str
    batch_script: str
    output_dir: Path
    result_file: Path
    old_result: tuple | None
    reads_cache: bool
    job_id: str = "?"
    left_queue: float | None = None

    @classmethod
    def before_submission(cls, node, pyscript: str) -> GraphJob:
        """The job SLURMGraph submits for ``node``, whose ``pyscript`` runs it."""
        pyscript = Path(pyscript)
        batch_script = str(pyscript.with_name(f"batchscript_{pyscript.stem}.sh"))
        output_dir = Path(node.output_dir())
        result_file = output_dir / f"result_{node.name}.pklz"
        return cls(_graph_job_name(batch_script), batch_script, output_dir, result_file,
                   _file_signature(result_file), _reads_cache(node))

    def completed(self, ended: bool) -> bool:
        """Whether the node's files show it completed: a finished hash file and a result
        file written since the submission, or the old ones once the job has ended if it
        only had to read the cache."""
        signature = _file_signature(self.result_file)
        if signature is None or not _has_finished_hash(self.output_dir):
            return False
        return signature != self.old_result or (ended and self.reads_cache)

    def outcome(self, queue: dict | None, crashed: set, grace: float) -> str | None:
        """``'done'``, why the job failed, or None while it may still complete.

        Parameters
        ----------
        queue : dict or None
            ``batch script -> (job id, state, reason)`` from squeue; None if it failed.
        crashed : set of Path
            Node directories named by the crash files written since the submission.
        grace : float
            Seconds the job may be out of the queue before its files must show it done.
        """
        entry = (queue or {}).get(self.batch_script)
        if entry:
            self.job_id = entry[0]
        if self.completed(ended=False):
            return "done"
        if self.output_dir in crashed:
            return "node failed"
        if queue is None:
            return None
        if entry and entry[1] in ACTIVE_JOB_STATES:
            never = entry[2] == "DependencyNeverSatisfied"
            return "dependency never satisfied" if never else None
        self.left_queue = self.left_queue or time.monotonic()
        if time.monotonic() - self.left_queue < grace:
            return None  # a shared file system may show its last files late
        if self.completed(ended=True):
            return "done"
        return f"{'ended ' + entry[1] if entry else 'left the queue'} before its node completed"


def _file_signature(path: Path) -> tuple | None:
    """What tells a file from one written in its place later (None if there is none)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _has_finished_hash(output_dir: Path) -> bool:
    """Whether ``output_dir`` holds Nipype's ``_0x<hash>.json``, which a run renames from
    ``_0x<hash>_unfinished.json`` after writing the result file, only if the node succeeded."""
    return any(not p.name.endswith("_unfinished.json") for p in output_dir.glob("_0x*.json"))


def _reads_cache(node) -> bool:
    """Whether Nipype finds ``node`` up to date, so that its job only reads the cache and
    writes no result file (unless a node it depends on reruns and changes its inputs)."""
    if node.overwrite or (node.overwrite is None and node.interface.always_run):
        return False
    try:
        return node.is_cached()[1]
    except Exception:  # the result file of a node it depends on is missing or unreadable
        return False


def _crashed_node_dir(crash_file: Path) -> Path | None:
    """The node directory named in a text crash file (``Working directory: ...``)."""
    prefix = "Working directory: "
    for line in crash_file.read_text(errors="replace").splitlines()[:3]:
        if line.startswith(prefix):
            return Path(line[len(prefix):])
    return None


class TrackedSLURMGraphPlugin(SLURMGraphPlugin):
    """Nipype's SLURMGraph plugin, keeping what it submitted so that the jobs can be
    awaited (the plugin returns as soon as they are queued).

    Attributes
    ----------
    jobs : list of GraphJob
        One per node submitted; nodes already complete are not
        (``dont_resubmit_completed_jobs``).
    crash_dir : Path or None
        Where the jobs write their crash files.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.jobs: list[GraphJob] = []
        self.crash_dir: Path | None = None
        self._old_crash_files: set[str] = set()

    def _submit_graph(self, pyfiles, dependencies, nodes):
        """Note each node's job and files, then submit as Nipype does (a job may end
        before the last one is queued)."""
        self.crash_dir = Path(self._config["execution"].get("crashdump_dir", os.getcwd()))
        self._old_crash_files = {p.name for p in self.crash_dir.glob("crash-*")}
        jobs = [GraphJob.before_submission(node, pyfile)
                for node, pyfile in zip(nodes, pyfiles, strict=True)]
        super()._submit_graph(pyfiles, dependencies, nodes)
        submitted = (Path(pyfiles[0]).parent / "submit_jobs.sh").read_text()
        self.jobs = [job for job in jobs if f" {job.batch_script} |" in submitted]

    def crashed_dirs(self) -> set[Path]:
        """Node directories named by the crash files written since the submission."""
        return {_crashed_node_dir(crash) for crash in self.crash_dir.glob("crash-*.txt")
                if crash.name not in self._old_crash_files}


def wait_for_graph_jobs(plugin: TrackedSLURMGraphPlugin, *, poll: float = 1.0,
                        grace: float = 10.0, printer=None) -> list[NodeRecord]:
    """Wait for the jobs Nipype's SLURMGraph plugin submitted, which it does not do.

    The node directories tell how each job ended, not squeue: SLURM forgets finished
    jobs after ``MinJobAge`` seconds, and without accounting ``sacct`` knows nothing. A
    job is done when its node's result file and finished hash file (``_0x<hash>.json``)
    appear, or, if the node was up to date and its job only reads the cache, when the
    job has ended. It failed when a crash file names its node, when it is pending on a
    dependency that can never be satisfied, or when it has been out of the queue for
    ``grace`` seconds without being done (killed, out of time or memory). squeue only
    tells whether a job is still pending or running, and its id.

    Parameters
    ----------
    plugin : TrackedSLURMGraphPlugin
        The plugin, after ``workflow.run`` submitted the jobs.
    poll : float
        Seconds between two looks at the queue and the files.
    grace : float
        Seconds a job may be out of the queue before its files must show it done (a
        shared file system may show them late).
    printer : callable
        Receives one line per finished job.

    Returns
    -------
    records : list of NodeRecord
        One per job (named after its batch script), status ``'end'``.

    Raises
    ------
    RuntimeError
        If a job failed; the jobs not finished are then cancelled.
    """
    printer = printer or flushed_print
    if plugin.jobs:
        printer(f"  waiting for {len(plugin.jobs)} SLURM job(s) submitted by SLURMGraph")
    waiting, records = list(plugin.jobs), []
    while waiting:
        queue, crashed = _queued_jobs(), plugin.crashed_dirs()
        outcomes = [(job, job.outcome(queue, crashed, grace)) for job in waiting]
        waiting = [job for job, outcome in outcomes if outcome is None]
        failures = []
        for job, outcome in outcomes:
            if outcome == "done":
                printer(f"  done    {job.name} (job {job.job_id})")
                records.append(NodeRecord(job.name, False, None, "end"))
            elif outcome is not None:
                printer(f"  FAILED  {job.name} (job {job.job_id})")
                failures.append(f"{job.name} (job {job.job_id}: {outcome}; "
                                f"stderr in {job.batch_script}.e)")
        if failures:
            _cancel(waiting)
            raise RuntimeError("SLURM job(s) did not complete: " + "; ".join(failures))
        if waiting:
            time.sleep(poll)
    return records


def _queued_jobs() -> dict[str, tuple[str, str, str]] | None:
    """``batch script -> (job id, state, reason)`` of this user's jobs that squeue still
    shows, or None if squeue failed (a busy controller may time out)."""
    listing = subprocess.run(["squeue", "-h", "-t", "all", "-u", str(os.getuid()),
                              "-o", "%i|%T|%r|%o"], capture_output=True, text=True)
    if listing.returncode != 0:
        return None
    rows = (line.split("|", 3) for line in listing.stdout.splitlines())
    return {command: (job_id, state, reason) for job_id, state, reason, command in rows}


def _cancel(jobs) -> None:
    """scancel the jobs not finished whose ids squeue showed."""
    ids = [job.job_id for job in jobs if job.job_id != "?"]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, check=False)


def _graph_job_name(batch_script: str) -> str:
    """``workflow.node`` from a SLURMGraph batch script name."""
    stem = Path(batch_script).name[len("batchscript_"):-len(".sh")]
    return re.sub(r"^pyscript_\d+_\d+_", "", stem)
