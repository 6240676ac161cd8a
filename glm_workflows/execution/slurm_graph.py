"""Nipype's SLURMGraph plugin, tracked: the jobs it submits are followed until they end
(a run waits for its graph, reports failed nodes, cancels its jobs when interrupted)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .lean_imports import without_unusable_ipython

with without_unusable_ipython():
    from nipype.pipeline.plugins.slurmgraph import SLURMGraphPlugin

from .progress import NodeRecord, flushed_print

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
