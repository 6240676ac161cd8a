"""The graph's cheaper Nipype plumbing gives Nipype's own results: ``workflows.engine.Workflow``
connects, refuses and flattens as ``nipype.pipeline.engine.Workflow`` does, and
``execution.engine.run_graph`` runs the graph ``Workflow.run`` runs (same nodes, inputs,
hashes, work folders, results)."""

from __future__ import annotations

from pathlib import Path

import pytest
from glm_workflows.interfaces import MeanImage
from nipype.interfaces.utility import Function, IdentityInterface
from nipype.pipeline import engine as pe

from glm_workflows.execution.engine import execution_graph, run_graph, same_run_as_nipype
from glm_workflows.workflows.engine import Workflow

CLASSES = {"nipype": pe.Workflow, "ours": Workflow}


def _first(value):
    return value


def _add_one(x):
    return x + 1


def _identity(name, fields=("x",)):
    return pe.Node(IdentityInterface(fields=list(fields)), name=name)


def _nested(cls, *, runnable=False):
    """Sub-workflows (one nested twice), connections into, out of and between them, one
    through a function, list and four-argument forms, nodes added one by one and at once;
    ``runnable``: with Function nodes and inputs set, so that it runs."""
    def work(name):
        if not runnable:
            return _identity(name)
        return pe.Node(Function(input_names=["x"], output_names=["x"], function=_add_one),
                       name=name)

    top = cls(name="top_wf")
    subs = []
    for label in ("a", "b", "c"):
        sub = cls(name=f"{label}_wf")
        inputnode, middle, outputnode = _identity("inputnode"), work("work"), \
            _identity("outputnode")
        sub.connect([(inputnode, middle, [("x", "x")])])
        sub.connect(middle, "x", outputnode, "x")
        subs.append(sub)
    inner = cls(name="inner_wf")
    inner.add_nodes([work("deep"), _identity("spare")])
    subs[1].connect(subs[1].get_node("work"), "x", inner, "deep.x")
    top.add_nodes([subs[2]])
    top.add_nodes([_identity("alone")])
    source = _identity("source")
    source.inputs.x = 1
    top.connect([(source, subs[0], [("x", "inputnode.x")]),
                 (subs[0], subs[1], [(("outputnode.x", _first), "inputnode.x")]),
                 (subs[1], _identity("sink", ("x", "y")), [("inner_wf.deep.x", "x")])])
    top.connect(subs[0], "outputnode.x", subs[2], "inputnode.x")
    top.connect(subs[2], "outputnode.x", top.get_node("sink"), "y")
    return top


def _described(graph):
    """A flat or execution graph as names, in Nipype's order: nodes, edges and their
    connections, each node's inputs, needed outputs and input sources."""
    return ([node.fullname for node in graph.nodes()],
            [(u.fullname, v.fullname, d["connect"]) for u, v, d in graph.edges(data=True)],
            [(sorted(node.inputs.get().items()), getattr(node, "needed_outputs", None),
              sorted(getattr(node, "input_source", {}).items())) for node in graph.nodes()])


def test_workflow_builds_nipypes_graph():
    """Same nested graphs (node order, edges, edge data, caches) and the same flat graph."""
    built = {name: _nested(cls) for name, cls in CLASSES.items()}
    ours, theirs = built["ours"], built["nipype"]
    assert [n.name for n in ours._graph.nodes()] == [n.name for n in theirs._graph.nodes()]
    assert [(u.name, v.name, d) for u, v, d in ours._graph.edges(data=True)] == \
        [(u.name, v.name, d) for u, v, d in theirs._graph.edges(data=True)]
    assert sorted(map(str, ours._get_all_nodes())) == sorted(map(str, theirs._get_all_nodes()))
    assert sorted(w.name for w in ours._nested_workflows_cache) == \
        sorted(w.name for w in theirs._nested_workflows_cache)
    assert _described(ours._create_flat_graph()) == _described(theirs._create_flat_graph())


def _refusal(cls, case: str) -> str:
    top = _nested(cls, runnable=True)
    sub = top.get_node("a_wf")
    function = pe.Node(MeanImage(), name="function")  # identity and Function: unchecked
    with pytest.raises(Exception) as raised:  # Nipype raises Exception and OSError
        if case == "no output":
            top.connect(sub, "outputnode.nothing", _identity("other"), "x")
        elif case == "no input":
            top.connect(_identity("other"), "x", sub, "inputnode.nothing")
        elif case == "node output":
            top.connect(function, "nothing", _identity("other"), "x")
        elif case == "node input":
            top.connect(_identity("other"), "x", function, "nothing")
        elif case == "nested node":
            top.connect(sub, "work.nothing", function, "in_file")
        elif case == "connected":
            top.connect(_identity("other"), "x", top.get_node("sink"), "x")
        elif case == "same name":
            top.connect(_identity("source"), "x", _identity("other"), "x")
        elif case == "added twice":
            top.add_nodes([_identity("source")])
        else:  # two new nodes of one name
            top.add_nodes([_identity("twin"), _identity("twin")])
    return f"{type(raised.value).__name__}: {raised.value}"


@pytest.mark.parametrize("case", ["no output", "no input", "node output", "node input",
                                  "nested node", "connected",
                                  "same name", "added twice", "twins"])
def test_workflow_refuses_as_nipype(case):
    """A missing port, an input connected twice and a repeated node name: Nipype's error."""
    assert _refusal(Workflow, case) == _refusal(pe.Workflow, case)


def _nipype_execution_graph(workflow):
    """What ``Workflow.run`` makes before calling the plugin (Nipype 1.11's lines)."""
    from copy import deepcopy

    from nipype import config
    from nipype.pipeline.engine.utils import generate_expanded_graph, merge_dict

    flatgraph = workflow._create_flat_graph()
    workflow.config = merge_dict(deepcopy(config._sections), workflow.config)
    workflow._set_needed_outputs(flatgraph)
    execgraph = generate_expanded_graph(deepcopy(flatgraph))
    for index, node in enumerate(execgraph.nodes()):
        node.config = merge_dict(deepcopy(workflow.config), node.config)
        node.base_dir = workflow.base_dir
        node.index = index
    workflow._configure_exec_nodes(execgraph)
    return execgraph


@pytest.mark.skipif(not same_run_as_nipype(), reason="run_graph is workflow.run here")
def test_execution_graph_is_nipypes(tmp_path):
    """The graph a plugin receives: Nipype's, node for node; the workflow left as built."""
    ours, theirs = _nested(Workflow, runnable=True), _nested(pe.Workflow, runnable=True)
    ours.base_dir = theirs.base_dir = str(tmp_path)
    before = sorted((str(n), n._hierarchy) for n in ours._get_all_nodes())
    graph = execution_graph(ours)
    expected = _nipype_execution_graph(theirs)
    assert len(graph) > 0 and _described(graph) == _described(expected)
    assert [node.config for node in graph.nodes()] == [node.config for node in expected]
    assert [node.index for node in graph.nodes()] == list(range(len(expected)))
    assert sorted((str(n), n._hierarchy) for n in ours._get_all_nodes()) == before


@pytest.mark.skipif(not same_run_as_nipype(), reason="run_graph is workflow.run here")
def test_consumed_workflow_gives_nipypes_graph(tmp_path):
    """``consume=True`` flattens the workflow itself, not a copy: the graph a plugin
    receives is still Nipype's, node for node, and its nodes are the workflow's own."""
    ours, theirs = _nested(Workflow, runnable=True), _nested(pe.Workflow, runnable=True)
    ours.base_dir = theirs.base_dir = str(tmp_path)
    own = {id(node) for node in ours._get_all_nodes()}
    graph = execution_graph(ours, consume=True)
    expected = _nipype_execution_graph(theirs)
    assert len(graph) > 0 and _described(graph) == _described(expected)
    assert [node.config for node in graph.nodes()] == [node.config for node in expected]
    assert {id(node) for node in graph.nodes()} <= own  # identity nodes removed, none copied


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if "_report" not in p.parts)


def test_run_graph_runs_what_workflow_run_runs(tmp_path):
    """Same work folders and hash files (so caches stay valid) and the same results as
    ``Workflow.run``; a rerun of either folder by the other finds every node cached."""
    for name, cls in CLASSES.items():
        workflow = _nested(cls, runnable=True)
        workflow.base_dir = str(tmp_path / name)
        graph = run_graph(workflow, "Linear") if cls is Workflow else workflow.run("Linear")
        results = {node.fullname: node.result.outputs.x for node in graph.nodes()
                   if node.name in ("work", "deep")}
        assert results == {"top_wf.a_wf.work": 2, "top_wf.b_wf.work": 3,
                           "top_wf.c_wf.work": 3, "top_wf.b_wf.inner_wf.deep": 4}  # 1 + 1...
    assert _files(tmp_path / "ours") == _files(tmp_path / "nipype")
    consumed = _nested(Workflow, runnable=True)
    consumed.base_dir = str(tmp_path / "consumed")
    run_graph(consumed, "Linear", consume=True)
    assert _files(tmp_path / "consumed") == _files(tmp_path / "nipype")
    workflow = _nested(Workflow, runnable=True)
    workflow.base_dir = str(tmp_path / "nipype")
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "nipype").rglob("result_*.pklz")}
    run_graph(workflow, "Linear")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing recomputed


def test_multiproc_wakes_up_for_every_finished_node(tmp_path):
    """Our MultiProc (no sleep in Nipype's loop; each round waits for a node to finish)
    runs the nested workflow to Linear's results, and each node's return woke the loop."""
    from glm_workflows.execution.plugins import MultiProcPlugin, configure_workflow

    workflow = _nested(Workflow, runnable=True)
    configure_workflow(workflow, tmp_path, "MultiProc")
    assert workflow.config["execution"]["poll_sleep_duration"] == 0
    runner = MultiProcPlugin({"n_procs": 2})
    graph = run_graph(workflow, runner)
    results = {node.fullname: node.result.outputs.x for node in graph.nodes()
               if node.name in ("work", "deep")}
    assert results == {"top_wf.a_wf.work": 2, "top_wf.b_wf.work": 3,
                       "top_wf.c_wf.work": 3, "top_wf.b_wf.inner_wf.deep": 4}
    assert runner._n_finished == runner._taskid > 0


def _killed(x):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer does
    return x


KILLED_NODE_RUN = """
import sys
from nipype.interfaces.utility import Function
from nipype.pipeline import engine as pe
from glm_workflows.execution.plugins import run_workflow
from glm_workflows.workflows.engine import Workflow
sys.path.insert(0, {tests!r})
from test_engine import _killed
workflow = Workflow(name="killed_wf")
node = pe.Node(Function(input_names=["x"], output_names=["x"], function=_killed), name="n")
node.inputs.x = 1
workflow.add_nodes([node])
try:
    run_workflow(workflow, work_dir={work!r}, plugin="MultiProc", plugin_args={{"n_procs": 2}})
except RuntimeError as error:
    print("RuntimeError:", error)
"""


def test_multiproc_node_killed_fails_the_run(tmp_path):
    """A node whose process is killed (SIGKILL, as for lack of memory) fails the run with a
    line saying so; Nipype's MultiProc waited forever (its callback raised)."""
    import subprocess
    import sys

    code = KILLED_NODE_RUN.format(tests=str(Path(__file__).parent), work=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "RuntimeError: the process running this node ended abruptly" in done.stdout
    assert "--mem-gb" in done.stdout and "FAILED  n" in done.stdout
    from glm_workflows.execution.analysis import crash_summary

    [line] = crash_summary(tmp_path, 0)
    assert line.startswith("node killed_wf.n failed: the process running this node ended "
                           "abruptly (BrokenProcessPool: ")


def test_stopped_workers_leave_no_pipe_for_python_exit_to_race():
    """Stopping MultiProc's workers (an interrupted run) returns once the pool's manager
    thread has closed its wake-up pipe: Python 3.11's exit handler writes to that pipe
    without the lock guarding it, and an interrupted run printed its traceback."""
    import time
    from concurrent.futures import process

    from glm_workflows.execution.plugins import MultiProcPlugin

    runner = MultiProcPlugin({"n_procs": 2})
    futures = [runner.pool.submit(time.sleep, 60) for _ in range(2)]
    manager = runner.pool._executor_manager_thread
    while not all(runner.pool._processes.values()):
        time.sleep(0.01)
    runner.stop_workers()
    assert not manager.is_alive()
    assert process._threads_wakeups.get(manager) is None or \
        process._threads_wakeups[manager]._closed
    assert all(future.done() for future in futures)


def _signal_handlers(conn):
    import signal

    conn.send([signal.getsignal(sig) == signal.SIG_DFL
               for sig in (signal.SIGINT, signal.SIGTERM)])


def test_a_process_forked_during_a_run_takes_signals_by_default():
    """A worker forked during a run (LegacyMultiProc's pool sets no signal handling of its
    own) does not inherit the run's Python handlers: with them, a SIGTERM arriving just
    before the worker blocked on its pool's queue lock was never acted on, and the run
    waited for that worker forever. The run's own process keeps them."""
    import multiprocessing as mp
    import signal

    from glm_workflows.execution.interrupts import _raise_interrupted, interrupts_raise

    context = mp.get_context("fork")
    with interrupts_raise():
        ours, theirs = context.Pipe()
        child = context.Process(target=_signal_handlers, args=(theirs,))
        child.start()
        assert ours.recv() == [True, True]
        child.join(timeout=30)
        assert signal.getsignal(signal.SIGTERM) is _raise_interrupted
