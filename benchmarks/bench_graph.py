"""Benchmark: how the time before the first node runs grows with the number of runs.

A BIDS folder of N single-run subjects is made of symbolic links to one tiny run
(12x14x12 voxels x 60 scans; ``benchmarks/synthetic.py``), so only the graph, not the
data, grows. For N = 100, 400, 1,600 (``--sizes``) it measures, in one process:

- discover: finding the runs (``find_bids_runs``);
- validate: checking every run before any work (headers, events, design, contrasts);
- build: ``init_glm_wf`` (the study's workflow);
- flatten+expand: what Nipype does before running (``_create_flat_graph`` and
  ``generate_expanded_graph``);

and, in a fresh process, the command line's time from start to its first finished node
("time to first node"). It prints seconds and the cost per run, so linearity is visible.

Usage::

    python benchmarks/bench_graph.py [--sizes 100 400 1600] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from copy import deepcopy
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from glm_workflows.synthetic import write_tiny_bids  # noqa: E402

CONTRAST = "aMinusB=a - b"


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
    """Seconds of discovery, validation, build and flatten+expand, in this process."""
    from nipype.pipeline.engine.utils import generate_expanded_graph

    from glm_workflows.cli import spec_from_args
    from glm_workflows.execution.prepare import prepare
    from glm_workflows.inputs.bids import find_bids_runs
    from glm_workflows.workflows.study import init_analysis_wf

    times = {}
    start = time.perf_counter()
    find_bids_runs(bids, "tiny")
    times["discover"] = time.perf_counter() - start
    spec, execution = spec_from_args(["--bids-dir", str(bids), "--task", "tiny",
                                      "--contrast", CONTRAST, "--output-dir", str(out),
                                      "--work-dir", str(out.parent / "work")])
    start = time.perf_counter()
    plan = prepare(spec, execution)
    times["validate"] = time.perf_counter() - start - times["discover"]
    start = time.perf_counter()
    workflow = init_analysis_wf(plan)
    times["build"] = time.perf_counter() - start
    start = time.perf_counter()
    flat = workflow._create_flat_graph()
    generate_expanded_graph(deepcopy(flat))
    times["flatten+expand"] = time.perf_counter() - start
    return times


def time_to_first_node(bids: Path, root: Path) -> float:
    """Seconds from starting the command line to its first finished node."""
    argv = [sys.executable, "-m", "glm_workflows.cli", "--bids-dir", str(bids), "--task",
            "tiny", "--contrast", CONTRAST, "--output-dir", str(root / "cli_out"),
            "--work-dir", str(root / "cli_work")]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=HERE.parent)
    elapsed = float("nan")
    for line in proc.stdout:
        if line.startswith("  done "):
            elapsed = time.perf_counter() - start
            break
    proc.kill()
    proc.wait()
    return elapsed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400, 1600])
    parser.add_argument("--work-dir", default=str(Path(tempfile.gettempdir())
                                                 / "glm-workflows-bench-graph"))
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    source = work / "source"
    if not (source / "sub-01").exists():
        write_tiny_bids(source, ("01",))
    rows = []
    for size in args.sizes:
        root = work / f"n{size}"
        bids = symlinked_study(root / "bids", size, source)
        for folder in ("out", "work", "cli_out", "cli_work"):
            shutil.rmtree(root / folder, ignore_errors=True)
        times = in_process_times(bids, root / "out")
        times["first node (CLI)"] = time_to_first_node(bids, root)
        rows.append((size, times))
        print(f"N={size}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()),
              flush=True)
    keys = list(rows[0][1])
    print("\n" + f"{'N':>6} " + " ".join(f"{k:>18}" for k in keys)
          + f" {'first node / run':>18}")
    for size, times in rows:
        print(f"{size:>6} " + " ".join(f"{times[k]:>16.2f} s" for k in keys)
              + f" {1000 * times['first node (CLI)'] / size:>15.1f} ms")
    print(json.dumps({str(size): times for size, times in rows}))


if __name__ == "__main__":
    main()
