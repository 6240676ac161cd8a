"""Running a workflow: Nipype's configuration and plugins (MultiProc with interrupts,
SLURM, SLURMGraph tracked; any other plugin Nipype has, by name, with its arguments as
given), :func:`run_workflow` returning what each node did."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .lean_imports import without_unusable_ipython

with without_unusable_ipython():
    from nipype.pipeline.plugins.multiproc import MultiProcPlugin as _NipypeMultiProcPlugin

from ..core.errors import InputError
from ..settings import GRAPH_PLUGINS, PLUGINS
from .engine import run_graph
from .garbage import collections_of_new_objects
from .interrupts import RunInterrupted, worker_initializer
from .progress import NodeRecord, ProgressReporter
from .slurm_graph import TrackedSLURMGraphPlugin, wait_for_graph_jobs

#: Plugins that run nodes on this machine (polled often; the others ask a scheduler).
LOCAL_PLUGINS = ("Linear", "MultiProc", "LegacyMultiProc", "Debug")
#: Nipype's poll interval for local plugins, and the longest our MultiProc's scheduling
#: loop waits for a node to finish before it looks again.
WAKE_UP_SECONDS = 0.02

#: The longest an interrupted run waits for MultiProc's pool to wind down.
STOP_SECONDS = 10


def nipype_plugins() -> tuple[str, ...]:
    """The execution plugins Nipype has (``nipype.pipeline.plugins.<Name>Plugin``)."""
    import nipype.pipeline.plugins as plugins

    return tuple(sorted(name.removesuffix("Plugin") for name in dir(plugins)
                        if name.endswith("Plugin") and name != "Plugin"))


def check_plugin(name: str) -> None:
    """Refuse a plugin name Nipype does not have, listing those it has (one line)."""
    if name in PLUGINS:
        return
    known = nipype_plugins()
    if name not in known:
        raise InputError(f"--plugin {name}: not a Nipype plugin (Nipype's: "
                         f"{', '.join(known)})")


class MultiProcPlugin(_NipypeMultiProcPlugin):
    """Nipype's MultiProc whose workers ignore Ctrl-C (see :func:`worker_initializer`),
    are stopped at once when the run is interrupted, and whose scheduler wakes up when a
    node finishes.

    Nipype's scheduling loop sleeps a fixed ``poll_sleep_duration`` after each round, so a
    node that finishes waits for the end of that sleep before the nodes depending on it
    are sent: on a study of small nodes (20-30 ms each) the workers stood idle about a
    third of the time. Here the loop does not sleep (``poll_sleep_duration`` 0, set by
    :func:`configure_workflow`); each round ends waiting until a node has finished since
    the last round, at most :data:`WAKE_UP_SECONDS` (then it looks again, as Nipype's
    poll does).
    """

    def __init__(self, plugin_args=None):
        super().__init__(plugin_args=plugin_args)
        self.pool.shutdown(wait=False)  # no worker started yet: replace the pool
        self.pool = ProcessPoolExecutor(
            max_workers=self.processors, initializer=worker_initializer,
            initargs=(self._cwd,),
            mp_context=mp.get_context((plugin_args or {}).get("mp_context")))
        self._finished = threading.Condition()
        self._n_finished = self._n_seen = 0

    def _async_callback(self, args):
        """Nipype's (keep the node's result), then wake the scheduling loop (the
        executor's thread calls it when a node's process returns, or ended abruptly: see
        :meth:`_get_result`)."""
        try:
            if args.exception() is None:
                super()._async_callback(args)
        finally:
            with self._finished:
                self._n_finished += 1
                self._finished.notify()

    def _get_result(self, taskid):
        """Nipype's, and a failed node's result when its process ended abruptly (killed,
        e.g. by the kernel when memory ran out), so the run stops and says so; Nipype's
        own callback raised there, and the run then waited forever."""
        result = super()._get_result(taskid)
        future = self._task_obj.get(taskid)
        if result is None and future is not None and future.done() \
                and future.exception() is not None:
            error = future.exception()
            return {"taskid": taskid, "result": None, "traceback": [
                f"the process running this node ended abruptly ({type(error).__name__}: "
                f"{error}); if the system killed it for lack of memory, give --mem-gb "
                "less than the machine has or fewer --n-procs\n"]}
        return result

    def _send_procs_to_workers(self, updatehash=False, graph=None):
        """Nipype's round of submissions, then the wait for the next finished node (at
        most :data:`WAKE_UP_SECONDS`): the end of each round of Nipype's loop."""
        super()._send_procs_to_workers(updatehash=updatehash, graph=graph)
        with self._finished:
            self._finished.wait_for(lambda: self._n_finished != self._n_seen,
                                    timeout=WAKE_UP_SECONDS)
            self._n_seen = self._n_finished

    def stop_workers(self) -> None:
        """Terminate the workers (their nodes rerun next time) and drop the pool.

        The futures of the stopped nodes then fail; ``concurrent.futures`` would log a
        traceback for each (from Nipype's callback), which is not news to the user.

        The pool's manager thread is then waited for (at most :data:`STOP_SECONDS`): it
        closes its wake-up pipe once it sees the workers gone, and Python 3.11's exit
        handler writes to that pipe without the lock guarding it, so a process leaving
        while the thread closes it printed a traceback ("Bad file descriptor").
        """
        logging.getLogger("concurrent.futures").setLevel(logging.CRITICAL)
        for process in list((getattr(self.pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                process.terminate()
        manager = getattr(self.pool, "_executor_manager_thread", None)
        self.pool.shutdown(wait=False, cancel_futures=True)
        if manager is not None:
            manager.join(timeout=STOP_SECONDS)


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
        "poll_sleep_duration": _poll_sleep_duration(plugin),
    })


def _poll_sleep_duration(plugin: str) -> float:
    """Nipype's sleep after each round of its scheduling loop: none for our MultiProc
    (it waits for a node to finish instead), :data:`WAKE_UP_SECONDS` for the other local
    plugins, 1 s for a cluster's scheduler."""
    if plugin == "MultiProc":
        return 0
    return WAKE_UP_SECONDS if plugin in LOCAL_PLUGINS else 1


def run_workflow(workflow, *, work_dir, plugin: str = "Linear", plugin_args: dict | None = None,
                 printer=None, consume: bool = False) -> list[NodeRecord]:
    """Run ``workflow`` with a Nipype plugin, printing one line per node.

    Parameters
    ----------
    workflow : nipype Workflow
    work_dir : str
        Nipype cache folder; a rerun with the same folder reuses finished nodes.
    plugin : str
        ``Linear``, ``MultiProc`` (interruptible workers), ``SLURM``, ``SLURMGraph``
        (its jobs tracked), or any other Nipype plugin's name (given to Nipype as it is).
    plugin_args : dict or None
        Passed to the plugin (``n_procs``, ``memory_gb``, ``sbatch_args``, ...).
    printer : callable
        Receives the progress lines.
    consume : bool
        Run the workflow's own nodes rather than copies (one deep copy of the workflow
        less; :func:`~glm_workflows.execution.engine.execution_graph`): the workflow is of
        no further use.

    Returns
    -------
    records : list of NodeRecord
        One per node that finished (for SLURMGraph, one per job it submitted).
    """
    if plugin not in PLUGINS and plugin not in nipype_plugins():
        raise ValueError(f"plugin: expected one of {', '.join(nipype_plugins())}, got "
                         f"{plugin!r}")
    os.environ.setdefault("LOGNAME", os.environ.get("USER", "glm-workflows"))
    configure_workflow(workflow, work_dir, plugin)
    plugin_args = dict(plugin_args or {})
    reporter = ProgressReporter(printer)
    if plugin not in GRAPH_PLUGINS:
        plugin_args["status_callback"] = reporter
        # MultiProc runs a full garbage collection before every submission round; with
        # nilearn and matplotlib loaded each takes ~0.1 s and serialises the scheduler.
        # Objects alive before the run are left out of those collections.
        runner = MultiProcPlugin(plugin_args) if plugin == "MultiProc" else plugin
        with collections_of_new_objects():
            try:
                run_graph(workflow, runner, plugin_args, consume=consume)
            except RunInterrupted:
                if plugin == "MultiProc":
                    runner.stop_workers()
                raise
        return reporter.records
    plugin_args.setdefault("dont_resubmit_completed_jobs", True)
    runner = TrackedSLURMGraphPlugin(plugin_args=plugin_args)
    run_graph(workflow, runner, consume=consume)
    return wait_for_graph_jobs(runner, printer=printer)
