"""Benchmark: a SLURM array submission (``--slurm-array --dry-run``) of a large study.

A BIDS folder of N single-run participants is made of symbolic links to one tiny
synthetic run (12x14x12 voxels x 60 scans, :mod:`glm_workflows.synthetic`), with a
root task sidecar and a participants.tsv of N rows, so only the number of participants,
not the data, grows. Each participant has an events file of its own, whose last event
lasts a little longer than the one before's: every design differs, as in a real study,
and is checked (``--same-events``: one events file for all, checked once).
For N = 100, 1,000, 10,000 (``--participants``) it measures:

- discover: finding the runs, as the command line does (``collect.collect_runs``);
- validate: ``execution.prepare`` (every run checked before any work) minus discover: prepare
  is timed whole, and the discovery it includes is subtracted (discover measured just
  before it, in the same process);
- submit: ``submit.submit_array`` with ``--dry-run`` (cluster limits, plan, scripts and
  submission.json written, sbatch lines printed; its output is captured);
- dry run (CLI): the wall (and CPU) time of the whole command in a fresh process,
  ``python -m glm_workflows.cli --bids-dir DS --task tiny ... --group one-sample
  --slurm-array --dry-run``: the user-facing number (goal: <= 120 s for 10,000);
- the tasks, arrays and jobs (tasks + the group job) that run planned, read from its
  ``<work-dir>/slurm-array/submission.json``.

Every measurement starts with a fresh work directory (no kept design checks).

Per participant (one real participant, label 01, of the tiny study): the build time of
``init_glm_wf`` for its runs (as ``--analysis-level participant`` builds it, which is
what each array task runs) and its nodes after flattening (``_create_flat_graph``) and
expansion (``generate_expanded_graph``, as ``bench_graph.py`` does); and the disk use of
a real run (Linear plugin, ``--analysis-level participant --participant-label 01``): its
work directory, and its output folder ``sub-01/`` plus its page ``sub-01.html``.

The in-process measurements run after a warm-up on the one-participant study (imports
out of the way). The machine's load average is printed with each size.

Usage::

    python benchmarks/bench_scale.py [--participants 100 1000 10000] [--same-events]
                                     [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from copy import deepcopy
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from timing import timed  # noqa: E402

from glm_workflows.synthetic import write_participants, write_tiny_bids  # noqa: E402

TASK = "tiny"
CONTRAST = "aMinusB=a - b"
#: Builds of the participant's graph timed (their median is reported), after one warm-up.
BUILD_REPEATS = 5


def symlinked_study(root: Path, n_subjects: int, source: Path, width: int,
                    same_events: bool = False) -> tuple[Path, float]:
    """A BIDS folder of ``n_subjects`` participants whose bold links to ``source``'s sub-01
    and whose events differ (the last event lasts ``index`` ms longer; ``same_events``:
    links to sub-01's too); and the seconds it took to make."""
    start = time.perf_counter()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name in ("dataset_description.json", f"task-{TASK}_bold.json"):
        shutil.copy(source / name, root / name)
    func = (source / "sub-01" / "func").resolve()
    labels = [f"{index:0{width}d}" for index in range(1, n_subjects + 1)]
    events = (func / f"sub-01_task-{TASK}_events.tsv").read_text().splitlines()
    onset, duration, trial_type = events[-1].split("\t")
    for index, label in enumerate(labels):
        folder = root / f"sub-{label}" / "func"
        folder.mkdir(parents=True)
        stem = folder / f"sub-{label}_task-{TASK}"
        Path(f"{stem}_bold.nii.gz").symlink_to(func / f"sub-01_task-{TASK}_bold.nii.gz")
        if same_events:
            Path(f"{stem}_events.tsv").symlink_to(func / f"sub-01_task-{TASK}_events.tsv")
        else:
            last = f"{onset}\t{float(duration) + index / 1000:.3f}\t{trial_type}"
            Path(f"{stem}_events.tsv").write_text("\n".join([*events[:-1], last]) + "\n")
    write_participants(root, labels)
    return root, time.perf_counter() - start


def cli_args(bids: Path, out: Path, work: Path, *extra: str) -> list[str]:
    """The command line's arguments for ``bids``."""
    return ["--bids-dir", str(bids), "--task", TASK, "--output-dir", str(out),
            "--work-dir", str(work), "--contrast", CONTRAST, *extra]


ARRAY_FLAGS = ("--group", "one-sample", "--slurm-array", "--dry-run")


def in_process_times(bids: Path, root: Path) -> tuple[dict, str]:
    """Seconds of discovery, validation (prepare minus discovery) and the dry-run
    submission, in this process; and what the submission printed."""
    from glm_workflows.cli import spec_from_args
    from glm_workflows.execution.prepare import prepare
    from glm_workflows.execution.submit import submit_array
    from glm_workflows.inputs.collect import collect_runs

    argv = cli_args(bids, root / "out", root / "work", *ARRAY_FLAGS)
    spec, execution = spec_from_args(argv)
    times = {}
    start = time.perf_counter()
    runs = collect_runs(spec)
    times["discover"] = time.perf_counter() - start
    start = time.perf_counter()
    plan = prepare(spec, execution)
    times["prepare"] = time.perf_counter() - start
    times["validate"] = times["prepare"] - times["discover"]
    if len(plan.runs) != len(runs):
        raise SystemExit(f"prepare found {len(plan.runs)} runs, collect_runs "
                         f"{len(runs)}")
    printed = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        code = submit_array(spec, execution, argv, plan)
    times["submit"] = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"submit_array returned {code}:\n{printed.getvalue()}")
    return times, printed.getvalue()


def planned(work: Path) -> dict:
    """Tasks, arrays, jobs and participants per task of a submission record."""
    record = json.loads((work / "slurm-array-dry-run" / "submission.json").read_text())
    tasks = record["tasks"]
    return {"tasks": len(tasks), "arrays": len(record["arrays"]), "jobs": len(tasks) + 1,
            "per task": max(map(len, tasks)), "participants": sum(map(len, tasks)),
            "task MB": record["task_job"]["MemMB"], "group MB": record["group_job"]["MemMB"],
            "limits": record["limits"]}


def disk_use(*paths: Path) -> tuple[int, int]:
    """Bytes of ``paths``: allocated on disk (``du -sk``) and apparent (``du -sb``)."""
    existing = [str(p) for p in paths if p.exists()]
    if not existing:
        return 0, 0

    def total(*flags: str) -> int:
        shown = subprocess.run(["du", "-s", "-c", *flags, *existing], capture_output=True,
                               text=True, check=True)
        return int(shown.stdout.splitlines()[-1].split()[0])

    return 1024 * total("-k"), total("-b")


def one_participant(source: Path, root: Path) -> dict:
    """Graph of one participant (build time, nodes) and the disk use of a real run."""
    from nipype.pipeline.engine.utils import generate_expanded_graph

    from glm_workflows.cli import spec_from_args
    from glm_workflows.execution.prepare import prepare
    from glm_workflows.workflows.study import init_analysis_wf

    level = ("--analysis-level", "participant", "--participant-label", "01")
    plan = prepare(*spec_from_args(cli_args(source, root / "graph_out",
                                            root / "graph_work", *level)))
    init_analysis_wf(plan)  # warm-up
    builds, flattens = [], []
    for _ in range(BUILD_REPEATS):
        start = time.perf_counter()
        workflow = init_analysis_wf(plan)
        builds.append(time.perf_counter() - start)
        start = time.perf_counter()
        flat = workflow._create_flat_graph()
        expanded = generate_expanded_graph(deepcopy(flat))
        flattens.append(time.perf_counter() - start)
    figures = {"runs": len(plan.runs), "build s": median(builds),
               "flatten+expand s": median(flattens), "nodes (flat)": len(flat.nodes()),
               "nodes (expanded)": len(expanded.nodes())}
    out, work = root / "run_out", root / "run_work"
    run = timed([sys.executable, "-m", "glm_workflows.cli",
                 *cli_args(source, out, work, "--plugin", "Linear", *level)])
    figures["run wall s"], figures["run cpu s"] = run.wall, run.cpu
    figures["work"] = disk_use(work)
    figures["output"] = disk_use(out / "sub-01", out / "sub-01.html")
    figures["output folder"] = disk_use(out)
    return figures


def load() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n_bytes) < 1024 or unit == "TiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return ""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--same-events", action="store_true",
                        help="one events file for every participant (its design checked "
                             "once)")
    parser.add_argument("--keep", metavar="DIR",
                        help="build everything in DIR and keep it (default: a temporary "
                             "folder, removed at the end)")
    args = parser.parse_args(argv)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"folder: {base}; load average (1/5/15 min): {load()}; "
          f"{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}",
          flush=True)
    try:
        source = base / "source"
        shutil.rmtree(source, ignore_errors=True)
        write_tiny_bids(source, ("01",))
        write_participants(source, ("01",))
        participant = one_participant(source, base / "participant")  # warms imports too
        print("one participant: " + ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in participant.items()), flush=True)
        width = max(5, len(str(max(args.participants))))
        rows = []
        for n in args.participants:
            root = base / f"n{n}"
            for folder in ("out", "work", "cli_out", "cli_work"):
                shutil.rmtree(root / folder, ignore_errors=True)
            load_before = load()
            bids, made = symlinked_study(root / "bids", n, source, width, args.same_events)
            times, printed = in_process_times(bids, root)
            cli = timed([sys.executable, "-m", "glm_workflows.cli",
                         *cli_args(bids, root / "cli_out", root / "cli_work", *ARRAY_FLAGS)])
            plan = planned(root / "cli_work")
            if plan["participants"] != n or plan != planned(root / "work"):
                raise SystemExit(f"N={n}: unexpected plan {plan} / {planned(root / 'work')}")
            scripts = disk_use(root / "cli_work" / "slurm-array-dry-run")
            row = {"N": n, "dataset s": made, **times, "cli wall": cli.wall, "cli cpu": cli.cpu,
                   **plan, "scripts": scripts[1], "load": f"{load_before} -> {load()}"}
            rows.append(row)
            print(f"\nN={n}: dataset {made:.2f} s, discover {times['discover']:.2f} s, "
                  f"validate {times['validate']:.2f} s (prepare {times['prepare']:.2f} s), "
                  f"submit {times['submit']:.2f} s, dry run (CLI) {cli.wall:.2f} s wall / "
                  f"{cli.cpu:.2f} s CPU; {plan['tasks']} task(s) of up to {plan['per task']} "
                  f"in {plan['arrays']} array(s), {plan['jobs']} jobs; load {row['load']}",
                  flush=True)
            print("  _submit_array printed:\n" + "\n".join(
                "    " + line for line in printed.splitlines()[:4]) + "\n    ...", flush=True)
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
        print_tables(rows, participant)
        print(json.dumps({"sizes": rows, "participant": participant}, default=str))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def print_tables(rows: list[dict], participant: dict) -> None:
    limits = rows[0]["limits"]
    print(f"\nDry runs (MaxArraySize {limits['MaxArraySize']}, MaxJobCount "
          f"{limits['MaxJobCount']}, from {limits['Source']}); validate = prepare - discover\n")
    print("| N | dataset s | discover s | validate s | submit s | dry run (CLI) wall s "
          "| CLI CPU s | discover+validate ms/participant | CLI ms/participant | tasks "
          "| per task | arrays | jobs | scripts+record | load 1/5/15 before -> after |")
    print("|" + "---:|" * 14 + "---|")
    for r in rows:
        n = r["N"]
        print(f"| {n:,} | {r['dataset s']:.2f} | {r['discover']:.2f} | {r['validate']:.2f} "
              f"| {r['submit']:.2f} | {r['cli wall']:.2f} | {r['cli cpu']:.2f} "
              f"| {1000 * (r['discover'] + r['validate']) / n:.2f} "
              f"| {1000 * r['cli wall'] / n:.2f} | {r['tasks']:,} | {r['per task']} "
              f"| {r['arrays']} | {r['jobs']:,} | {size(r['scripts'])} | {r['load']} |")
    work, output = participant["work"], participant["output"]
    print("\nPer participant (label 01; graph as --analysis-level participant builds it; "
          f"median of {BUILD_REPEATS} builds)\n")
    print("| runs | init_glm_wf s | flatten+expand s | nodes (flat) | nodes (expanded) "
          "| real run (Linear) wall s | work dir (disk / apparent) "
          "| sub-01/ + sub-01.html (disk / apparent) |")
    print("|" + "---:|" * 8)
    print(f"| {participant['runs']} | {participant['build s']:.3f} "
          f"| {participant['flatten+expand s']:.3f} | {participant['nodes (flat)']} "
          f"| {participant['nodes (expanded)']} | {participant['run wall s']:.1f} "
          f"| {size(work[0])} / {size(work[1])} | {size(output[0])} / {size(output[1])} |")
    print("\nProjected for the study (per-participant disk use x N): "
          + "; ".join(f"N={r['N']:,}: work {size(work[0] * r['N'])}, outputs "
                      f"{size(output[0] * r['N'])}" for r in rows))


if __name__ == "__main__":
    main()
