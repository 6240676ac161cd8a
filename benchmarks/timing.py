"""Timing helpers shared by the side-by-side benchmarks (bench_study, bench_seed,
bench_fmriprep, bench_fitlins): each measurement in a fresh process, wall and CPU seconds,
each repetition's line, medians and ratios against an anchor measured in the same
repetition."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from pathlib import Path
from statistics import median
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent


class Timing(NamedTuple):
    """Seconds of one measurement: wall clock, and CPU (user + system) of the process.

    The CPU time depends less on what else the machine runs, which the wall time shows.
    """

    wall: float
    cpu: float


def _cpu_of_children() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], log: list[str] | None = None, *, cwd: Path = REPO,
          env: dict | None = None) -> Timing:
    """Run ``cmd`` in a fresh process from ``cwd`` (the repository root), with ``env`` (by
    default this process's); return its times (and append its standard error to ``log``)."""
    cpu, start = _cpu_of_children(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    timing = Timing(time.perf_counter() - start, _cpu_of_children() - cpu)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    if log is not None:
        log.append(proc.stderr)
    return timing


def fresh(*folders: Path) -> None:
    """Remove folders (a cold run starts without cache and outputs)."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def print_repetition(index: int, row: dict[str, Timing], digits: int = 2) -> None:
    """Print one repetition's measurements (wall and CPU seconds) and the load average."""
    print(f"  repetition {index + 1}: " + ", ".join(
        f"{name} {t.wall:.{digits}f} s ({t.cpu:.{digits}f} CPU)" for name, t in row.items())
        + f"; load average {os.getloadavg()[0]:.2f}", flush=True)


def print_table(rows: list[dict[str, Timing]], measures, ratios) -> None:
    """Medians and ranges of the wall times (and the median CPU time) of ``measures``, and
    the ``ratios`` (name, numerator, anchor) each taken within a repetition."""
    print(f"\n  {'measure':<22} {'median s':>9} {'min':>7} {'max':>7} {'CPU s':>7}")
    for name in measures:
        walls = [row[name].wall for row in rows]
        print(f"  {name:<22} {median(walls):9.2f} {min(walls):7.2f} {max(walls):7.2f} "
              f"{median(row[name].cpu for row in rows):7.2f}")
    print(f"\n  {'ratio (per repetition)':<22} {'median':>9} {'min':>7} {'max':>7} {'CPU':>7}")
    for name, numerator, anchor in ratios:
        walls = [row[numerator].wall / row[anchor].wall for row in rows]
        cpu = median(row[numerator].cpu / row[anchor].cpu for row in rows)
        print(f"  {name:<22} {median(walls):9.2f} {min(walls):7.2f} {max(walls):7.2f} "
              f"{cpu:7.2f}")
