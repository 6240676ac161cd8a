"""Benchmark: how the time before the first node runs grows with the number of runs.

A BIDS folder of N single-run subjects is made of symbolic links to one tiny run
(12x14x12 voxels x 60 scans; ``benchmarks/synthetic.py``), so only the graph, not the
data, grows. For N = 100, 400, 1,600 (``--sizes``) it measures, in one process:

- discover: finding the runs (``find_bids_runs``);
- validate: checking every run before any work (headers, events, design, contrasts);
- build: ``init_analysis_wf`` (the study's workflow);
- flatten+expand: what is done before the plugin runs the first node (flattening,
  expansion, each node configured: ``glm_workflows.execution.engine.execution_graph``,
  or, in a checkout without it, the same steps as Nipype's ``Workflow.run``);

and, in a fresh process, the command line's time from start to its first finished node
("time to first node"). It prints seconds and the cost per run, so linearity is visible,
and the goals of issue 28: the first node within 8 s at 1,000 runs, and the cost per run at
10,000 runs within 1.2x of that at 1,000 (each checked when that size is measured).
The in-process steps run in a fresh process too (``--child``), at most ``--repeat`` times
(the fastest kept: the machine may be loaded), also showing their CPU seconds.

With ``--baseline CHECKOUT`` (e.g. a ``git archive`` of main unpacked in /tmp) every size is
also measured with that checkout's code (its ``glm_workflows`` and command line), and the
ratios ours/baseline are printed.

Usage::

    python benchmarks/bench_graph.py [--sizes 100 400 1600] [--work-dir DIR]
                                     [--baseline CHECKOUT] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from copy import deepcopy
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

CONTRAST = "aMinusB=a - b"
#: Issue 28's goals: seconds to the first node at 1,000 runs; the cost per run at 10,000
#: runs over that at 1,000.
GOAL_FIRST_NODE = (1000, 8.0)
GOAL_PER_RUN = (10000, 1000, 1.2)


def symlinked_study(root: Path, n_subjects: int, source: Path) -> Path:
    """A BIDS folder of ``n_subjects`` subjects whose run links to ``source``'s sub-01."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name in ("dataset_description.json", "task-tiny_bold.json"):
        shutil.copy(source / name, root / name)
    func = source / "sub-01" / "func"
    for index in range(1, n_subjects + 1):
        folder = root / f"sub-{index:05d}" / "func"
        folder.mkdir(parents=True)
        for suffix in ("bold.nii.gz", "events.tsv"):
            (folder / f"sub-{index:05d}_task-tiny_{suffix}").symlink_to(
                func / f"sub-01_task-tiny_{suffix}")
    return root


def in_process_times(bids: Path, out: Path) -> dict:
    """Seconds (wall, and CPU as ``<step> CPU``) of discovery, validation, build and
    flatten+expand, in this process, with the ``glm_workflows`` it imports."""
    from glm_workflows.cli import spec_from_args
    from glm_workflows.execution.prepare import prepare
    from glm_workflows.inputs.bids import find_bids_runs
    from glm_workflows.workflows.study import init_analysis_wf

    times = {}

    def step(name, function, *args):
        wall, cpu = time.perf_counter(), time.process_time()
        value = function(*args)
        times[name] = time.perf_counter() - wall
        times[f"{name} CPU"] = time.process_time() - cpu
        return value

    step("discover", find_bids_runs, bids, "tiny")
    spec, execution = spec_from_args(["--bids-dir", str(bids), "--task", "tiny",
                                      "--contrast", CONTRAST, "--output-dir", str(out),
                                      "--work-dir", str(out.parent / "work")])
    plan = step("validate", prepare, spec, execution)
    times["validate"] -= times["discover"]  # prepare finds the runs again
    times["validate CPU"] -= times["discover CPU"]
    workflow = step("build", init_analysis_wf, plan)
    workflow.base_dir = str(out.parent / "work")
    step("flatten+expand", execution_graph, workflow)
    return times


def execution_graph(workflow):
    """The graph the plugin receives: ours, or Nipype's ``Workflow.run`` steps."""
    try:
        from glm_workflows.execution.engine import execution_graph as ours
    except ImportError:  # a checkout before it: Workflow.run's own steps (Nipype 1.11)
        from nipype import config
        from nipype.pipeline.engine.utils import generate_expanded_graph, merge_dict

        flatgraph = workflow._create_flat_graph()
        workflow.config = merge_dict(deepcopy(config._sections), workflow.config)
        workflow._set_needed_outputs(flatgraph)
        graph = generate_expanded_graph(deepcopy(flatgraph))
        for index, node in enumerate(graph.nodes()):
            node.config = merge_dict(deepcopy(workflow.config), node.config)
            node.base_dir, node.index = workflow.base_dir, index
        workflow._configure_exec_nodes(graph)
        return graph
    return ours(workflow)


def child_times(checkout: Path, bids: Path, out: Path) -> dict:
    """:func:`in_process_times` in a fresh process importing ``checkout``'s code."""
    shutil.rmtree(out.parent, ignore_errors=True)
    out.parent.mkdir(parents=True)
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(bids),
                           str(out)], capture_output=True, text=True, cwd=checkout,
                          env={**os.environ, "PYTHONPATH": str(checkout)}, check=False)
    if proc.returncode:
        raise SystemExit(f"in-process times ({checkout}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_to_first_node(bids: Path, root: Path, checkout: Path = REPO) -> tuple[float, float]:
    """Seconds from starting ``checkout``'s command line to its first finished node, and
    the CPU seconds the process had used by then (Linux's ``/proc``; else NaN)."""
    for folder in ("cli_out", "cli_work"):
        shutil.rmtree(root / folder, ignore_errors=True)
    argv = [sys.executable, "-m", "glm_workflows.cli", "--bids-dir", str(bids), "--task",
            "tiny", "--contrast", CONTRAST, "--output-dir", str(root / "cli_out"),
            "--work-dir", str(root / "cli_work")]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)})
    elapsed = cpu = float("nan")
    for line in proc.stdout:
        if line.startswith("  done "):
            elapsed = time.perf_counter() - start
            cpu = _cpu_seconds(proc.pid)
            break
    proc.kill()
    proc.wait()
    return elapsed, cpu


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process and its finished children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def measure(checkout: Path, bids: Path, root: Path, repeat: int) -> dict:
    """Every measurement of one size with ``checkout``'s code; of ``repeat`` tries, the
    fastest of each."""
    tries = []
    for _ in range(repeat):
        times = child_times(checkout, bids, root / "in_process" / "out")
        times["first node (CLI)"], times["first node (CLI) CPU"] = time_to_first_node(
            bids, root, checkout)
        tries.append(times)
    return {key: min(t[key] for t in tries) for key in tries[0]}


def print_goals(rows: dict) -> None:
    """Issue 28's goals, for the sizes measured."""
    size, limit = GOAL_FIRST_NODE
    if size in rows:
        seconds, cpu = rows[size]["first node (CLI)"], rows[size]["first node (CLI) CPU"]
        print(f"goal: first node at N={size} <= {limit:.0f} s: {seconds:.2f} s "
              f"({'met' if seconds <= limit else 'not met'}; CPU {cpu:.2f} s)")
    large, small, limit = GOAL_PER_RUN
    if large in rows and small in rows:
        for key in ("first node (CLI)", "first node (CLI) CPU"):
            ratio = (rows[large][key] / large) / (rows[small][key] / small)
            print(f"goal: {key} per run, N={large} over N={small} <= {limit}: {ratio:.2f} "
                  f"({'met' if ratio <= limit else 'not met'})")


def print_table(title: str, rows: dict) -> None:
    keys = [k for k in next(iter(rows.values())) if not k.endswith(" CPU")]
    print(f"\n{title}\n{'N':>6} " + " ".join(f"{k:>18}" for k in keys)
          + f" {'first node / run':>18}")
    for size, times in rows.items():
        print(f"{size:>6} " + " ".join(
            f"{times[k]:>7.2f} s" + (f" ({times[k + ' CPU']:>5.2f})" if k + " CPU" in times
                                     else " " * 8) for k in keys)
            + f" {1000 * times['first node (CLI)'] / size:>15.1f} ms")
    print("(in parentheses: CPU seconds; the command line's: by its first node)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400, 1600])
    parser.add_argument("--work-dir", default=str(Path(tempfile.gettempdir())
                                                 / "glm-workflows-bench-graph"))
    parser.add_argument("--baseline", type=Path, help="another checkout measured alongside")
    parser.add_argument("--repeat", type=int, default=1, help="tries per size (fastest kept)")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # a fresh process: the checkout's code is on PYTHONPATH
        print(json.dumps(in_process_times(*args.child)))
        return
    sys.path.insert(0, str(REPO))
    from glm_workflows.synthetic import write_tiny_bids

    work = Path(args.work_dir)
    source = work / "source"
    if not (source / "sub-01").exists():
        write_tiny_bids(source, ("01",))
    checkouts = {"ours": REPO}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), **checkouts}
    rows = {tag: {} for tag in checkouts}
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for size in args.sizes:
        root = work / f"n{size}"
        bids = symlinked_study(root / "bids", size, source)
        for tag, checkout in checkouts.items():
            rows[tag][size] = measure(checkout, bids, root, args.repeat)
            print(f"{tag} N={size}: " + ", ".join(f"{k} {v:.2f} s" for k, v in
                                                   rows[tag][size].items())
                  + f"; load average {os.getloadavg()[0]:.2f}", flush=True)
    for tag in checkouts:
        print_table(tag, rows[tag])
    if args.baseline:
        def ratio(size, key):
            return rows["ours"][size][key] / rows["baseline"][size][key]

        print("\nours / baseline: " + ", ".join(
            f"N={size} build {ratio(size, 'build CPU'):.2f} (CPU), flatten+expand "
            f"{ratio(size, 'flatten+expand CPU'):.2f} (CPU), first node "
            f"{ratio(size, 'first node (CLI)'):.2f} ({ratio(size, 'first node (CLI) CPU'):.2f} "
            f"CPU)" for size in args.sizes))
        print("baseline:")
        print_goals(rows["baseline"])
        print("ours:")
    print_goals(rows["ours"])
    print(json.dumps({tag: {str(size): times for size, times in r.items()}
                      for tag, r in rows.items()}))


if __name__ == "__main__":
    main()
