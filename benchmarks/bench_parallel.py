"""Benchmark: the multi-subject workflow with Nipype's Linear and MultiProc plugins.

A deterministic synthetic BIDS dataset of 8 subjects x 2 runs (64x76x64 voxels, 200
scans, TR 2 s, int16 ``.nii.gz``, block design; ``benchmarks/synthetic.py``) is generated
into the work folder the first time (about a minute). Then the command line runs the
whole analysis (16 run-level models, 8 fixed-effects combinations, two contrasts
each) three times, each in a fresh process:

1. ``--plugin Linear`` with an empty cache;
2. ``--plugin MultiProc --n-procs 2`` with an empty cache;
3. the same MultiProc command again (every computing node cached).

It prints the wall times, the MultiProc speed-up over Linear, and checks that both
cold runs wrote identical z maps.

Usage::

    python benchmarks/bench_parallel.py [--work-dir DIR] [--n-procs 2]
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
from pathlib import Path

from glm_workflows.core.naming import CONTRAST_OUTPUTS

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: Every z map of an output folder.
Z_MAPS = f"*_{CONTRAST_OUTPUTS['z_maps']}"
SUBJECTS = [f"{index:02d}" for index in range(1, 9)]
RUNS = ("1", "2")
TASK = "bench"
SHAPE = (64, 76, 64)
N_SCANS, T_R = 200, 2.0


def make_dataset(root: Path) -> Path:
    """Write the synthetic BIDS dataset once (a seed per subject and run)."""
    import synthetic

    done = root / ".complete"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "glm-workflows parallel benchmark", "BIDSVersion": "1.8.0"}))
    (root / f"task-{TASK}_bold.json").write_text(json.dumps({"RepetitionTime": T_R}))
    for s_index, subject in enumerate(SUBJECTS):
        for run in RUNS:
            stem = root / f"sub-{subject}" / "func" / f"sub-{subject}_task-{TASK}_run-{run}"
            print(f"generating {stem.name}_bold.nii.gz", flush=True)
            synthetic.write_run(f"{stem}_bold.nii.gz", f"{stem}_events.tsv", n_scans=N_SCANS,
                                t_r=T_R, shape=SHAPE, seed=100 * s_index + int(run))
    done.write_text("ok\n")
    return root


def run_cli(bids: Path, out: Path, work: Path, plugin_args: list[str]) -> float:
    """Run the command line in a fresh process; return its wall time."""
    cmd = [sys.executable, "-m", "glm_workflows.cli", "--bids-dir", str(bids), "--task", TASK,
           "--output-dir", str(out), "--work-dir", str(work), *plugin_args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return elapsed


def same_z_maps(first: Path, second: Path) -> bool:
    """Every z map of one output folder equals the other's."""
    import nibabel as nb
    import numpy as np

    maps = sorted(first.rglob(Z_MAPS))
    return bool(maps) and all(
        np.array_equal(nb.load(m).get_fdata(), nb.load(second / m.relative_to(first)).get_fdata())
        for m in maps)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "glm-workflows-bench",
                        help="where the dataset is kept between runs")
    parser.add_argument("--n-procs", type=int, default=2, help="MultiProc processes")
    args = parser.parse_args(argv)
    bids = make_dataset(args.work_dir / "parallel_bids")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; dataset {bids} "
          f"({len(SUBJECTS)} subjects x {len(RUNS)} runs, {SHAPE} x {N_SCANS} scans)")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
        scratch = Path(scratch)
        linear = run_cli(bids, scratch / "out_linear", scratch / "work_linear",
                         ["--plugin", "Linear"])
        multiproc_args = ["--plugin", "MultiProc", "--n-procs", str(args.n_procs)]
        multiproc = run_cli(bids, scratch / "out_multiproc", scratch / "work_multiproc",
                            multiproc_args)
        cached = run_cli(bids, scratch / "out_multiproc", scratch / "work_multiproc",
                         multiproc_args)
        identical = same_z_maps(scratch / "out_linear", scratch / "out_multiproc")
        n_maps = len(list((scratch / "out_linear").rglob(Z_MAPS)))
        shutil.rmtree(scratch / "work_linear", ignore_errors=True)
    print(f"\n  {'run':<38} {'wall s':>8}")
    print(f"  {'Linear, cold':<38} {linear:8.1f}")
    print(f"  {f'MultiProc n_procs={args.n_procs}, cold':<38} {multiproc:8.1f}")
    print(f"  {f'MultiProc n_procs={args.n_procs}, cached rerun':<38} {cached:8.1f}")
    print(f"  speed-up MultiProc/Linear: {linear / multiproc:.2f}x; "
          f"{n_maps} z maps identical: {'yes' if identical else 'NO'}")


if __name__ == "__main__":
    main()
