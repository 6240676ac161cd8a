"""Running a workflow: Nipype configuration, progress lines, and what was cached."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PLUGINS = ("Linear", "MultiProc", "SLURM", "SLURMGraph")
#: Plugins that submit the whole graph at once and report nothing per node.
GRAPH_PLUGINS = ("SLURMGraph",)


def flushed_print(line: str) -> None:
    """Print a progress line at once, also when output goes to a file or a pipe
    (a cluster job's log, a killed run)."""
    print(line, flush=True)


@dataclass
class NodeRecord:
    """What happened to one node in a run, read from Nipype's result file."""

    name: str
    cached: bool
    seconds: float | None
    status: str


def node_label(node) -> str:
    """``workflow.node`` plus the contrast it belongs to, if any (``[activeMinusRest]``)."""
    label = node.fullname.split(".", 1)[-1] if "." in node.fullname else node.fullname
    for param in getattr(node, "parameterization", None) or []:
        if param.startswith("_contrast_name_"):
            label += f" [{param[len('_contrast_name_'):].split('_')[0]}]"
    return label


def _parse_time(stamp):
    when = datetime.fromisoformat(str(stamp))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def node_record(node, run_started: datetime, status: str) -> NodeRecord:
    """Read a finished node's record; a node whose result predates the run was cached."""
    try:
        runtime = node.result.runtime
        started = _parse_time(runtime.startTime)
        seconds = runtime.duration
    except Exception:  # no result file (a failed node)
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
        record = node_record(node, self.started, status)
        self.records.append(record)
        if status != "end":
            self.printer(f"  FAILED  {record.name}")
        elif record.cached:
            self.printer(f"  cached  {record.name}")
        else:
            self.printer(f"  done    {record.name} ({record.seconds or 0:.1f} s)")


def configure_workflow(workflow, work_dir, plugin: str = "Linear") -> None:
    """Put the Nipype cache in ``work_dir``, keep crash files there as text, and poll
    local plugins often (a cluster scheduler less often)."""
    work_dir = Path(work_dir).absolute()
    workflow.base_dir = str(work_dir)
    workflow.config["execution"].update({
        "crashdump_dir": str(work_dir / "crash"),
        "crashfile_format": "txt",
        "stop_on_first_crash": "true",
        "hash_method": "timestamp",
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
        One per node that finished (empty for graph plugins, which report nothing).
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
        try:
            workflow.run(plugin=plugin, plugin_args=plugin_args)
        finally:
            gc.unfreeze()
        return reporter.records
    plugin_args.setdefault("dont_resubmit_completed_jobs", True)
    submitted = time.time()
    workflow.run(plugin=plugin, plugin_args=plugin_args)
    return wait_for_graph_jobs(Path(work_dir).absolute() / workflow.name / "batch", submitted,
                               printer=printer)


#: SLURM job states of a job that has not finished yet.
ACTIVE_JOB_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                     "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT", "REQUEUE_HOLD",
                     "REQUEUE_FED", "STOPPED"}


def wait_for_graph_jobs(batch_dir, since: float, *, poll: float = 1.0,
                        printer=None) -> list[NodeRecord]:
    """Wait for the jobs Nipype's SLURMGraph plugin submitted, which it does not do.

    The plugin writes ``<batch_dir>/submit_jobs.sh`` (one ``sbatch`` per node not
    already complete) and returns. The jobs are found in ``squeue -t all`` by their
    batch script; this returns when none is pending or running.

    Returns
    -------
    records : list of NodeRecord
        One per job (named after its batch script), status ``'end'`` if it completed.

    Raises
    ------
    RuntimeError
        If a job failed or was cancelled (its dependents then never run), or a job
        never reached the queue.
    """
    printer = printer or flushed_print
    script = Path(batch_dir) / "submit_jobs.sh"
    if not script.exists() or script.stat().st_mtime < since - 1:
        return []  # every node was complete: nothing was submitted
    wanted = set(re.findall(r" (\S+/batchscript_\S+\.sh) \|", script.read_text()))
    printer(f"  waiting for {len(wanted)} SLURM job(s) submitted by SLURMGraph")
    while True:
        listing = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%o"],
                                 capture_output=True, text=True, check=True).stdout
        jobs = {}
        for line in listing.splitlines():
            job_id, state, command = line.split("|", 2)
            if command in wanted:
                jobs[command] = (job_id, state)
        if not any(state in ACTIVE_JOB_STATES for _, state in jobs.values()):
            break
        time.sleep(poll)
    records = []
    failures = []
    for command in sorted(wanted):
        name = _graph_job_name(command)
        job_id, state = jobs.get(command, ("?", "NOT SUBMITTED"))
        records.append(NodeRecord(name, False, None, "end" if state == "COMPLETED" else state))
        if state != "COMPLETED":
            failures.append(f"{name} (job {job_id}: {state}; stderr in {command}.e)")
        printer(f"  {'done  ' if state == 'COMPLETED' else 'FAILED'}  {name} (job {job_id})")
    if failures:
        raise RuntimeError("SLURM job(s) did not complete: " + "; ".join(failures))
    return records


def _graph_job_name(batch_script: str) -> str:
    """``workflow.node`` from a SLURMGraph batch script name."""
    stem = Path(batch_script).name[len("batchscript_"):-len(".sh")]
    return re.sub(r"^pyscript_\d+_\d+_", "", stem)
