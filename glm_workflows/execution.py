"""Running a workflow: Nipype configuration, progress lines, and what was cached."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PLUGINS = ("Linear", "MultiProc", "SLURM", "SLURMGraph")
#: Plugins that submit the whole graph at once and report nothing per node.
GRAPH_PLUGINS = ("SLURMGraph",)


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

    def __init__(self, printer=print):
        self.printer = printer
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
        "poll_sleep_duration": 1 if plugin.startswith("SLURM") else 0.1,
    })


def run_workflow(workflow, *, work_dir, plugin: str = "Linear", plugin_args: dict | None = None,
                 printer=print) -> list[NodeRecord]:
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
    workflow.run(plugin=plugin, plugin_args=plugin_args)
    return reporter.records
