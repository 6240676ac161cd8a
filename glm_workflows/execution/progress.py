"""Progress lines and node records: what each node of a run did (cached, ran, failed),
its time and its warnings, printed as it finishes and kept for provenance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .interrupts import received_interrupt


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
