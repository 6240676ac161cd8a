"""Benchmark: group-level permutation inference, ours in chunks against nilearn.

A synthetic group study (20 subjects x 64x64x64 voxels of 3 mm, one float32 effect map
``.nii.gz`` per subject: spatially smooth Gaussian noise of unit variance, FWHM about 4.7
voxels, plus a true effect, a Gaussian blob of peak 0.8 off the centre; a brain-like
ellipsoid mask of about 85,000 voxels) is generated into the work folder the first
time. The design is one-sample (an intercept; contrast ``[1]``, one-sided). Then, each
in a fresh process with ``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1``:

1. ``nilearn n_jobs=1``: ``non_parametric_inference(..., n_perm=N, random_state=SEED,
   n_jobs=1)``, the reference our results must equal;
2. ``nilearn n_jobs=2``: the same with ``n_jobs=2`` (it draws other permutations: nilearn
   seeds each job, so its maps differ from 1.);
3. ``ours K=2``: :func:`~glm_workflows.core.permutations.permutation_chunk` on two halves of the
   permutations in two processes (``ProcessPoolExecutor(2)``, fork, each under
   ``threadpool_limits(1)``), then
   :func:`~glm_workflows.core.permutation_results.combine_permutations` in the parent
   (which reads and masks the maps once more, as a separate combining step of a workflow
   would).

This is done for cluster inference (``--n-perm`` permutations, cluster-forming
``--threshold`` in p; maps t, size and mass with their FWE log10 p) and, separately, for
TFCE (``--tfce-perm`` permutations, no cluster threshold; skipped with ``--no-tfce`` or
``--tfce-perm 0``). In every other repetition the order of the three measurements is
rotated, so that a change in the load of the machine does not favour one side.

Printed: wall and CPU times (medians and ranges over ``--repeat``), the ratios
ours/nilearn n_jobs=1 and ours/nilearn n_jobs=2 taken within a repetition, peak
resident memory (the measured process's own ``ru_maxrss``, the largest of its worker
processes' from ``getrusage(RUSAGE_CHILDREN)``, and the largest sum over the process
tree sampled from ``/proc`` every 50 ms), our time split into the two chunks and the
combination, whether each of our maps equals nilearn n_jobs=1's (``numpy.array_equal``),
and the load average before and after each measurement.

Usage::

    python benchmarks/bench_group.py [--n-perm 5000] [--threshold 0.001]
                                     [--tfce-perm 500 | --no-tfce] [--repeat 1]
                                     [--seed 0] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import REPO, Timing, print_table  # noqa: E402

N_SUBJECTS = 20
SHAPE = (64, 64, 64)
VOXEL_MM = 3.0
SMOOTH_SIGMA = 2.0  # voxels (FWHM 4.7 voxels)
EFFECT = dict(peak=0.8, centre=(40, 24, 34), sigma=3.0)
#: One BLAS thread in every measured process: OpenBLAS results depend on the thread
#: count, and ours must match the reference bit for bit.
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SIDES = ("nilearn n_jobs=1", "nilearn n_jobs=2", "ours K=2")
K_CHUNKS = 2


# --------------------------------------------------------------------------- data


def make_study(root: Path) -> tuple[list[str], str]:
    """Write the effect maps and the mask once (``.complete`` marks a finished study)."""
    files = [str(root / f"sub-{i:02d}_effect.nii.gz") for i in range(1, N_SUBJECTS + 1)]
    mask = str(root / "mask.nii.gz")
    if (root / ".complete").exists():
        return files, mask
    import nibabel as nb
    import numpy as np
    from scipy.ndimage import gaussian_filter

    root.mkdir(parents=True, exist_ok=True)
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine[:3, 3] = -VOXEL_MM * (np.array(SHAPE) - 1) / 2
    grid = np.indices(SHAPE, dtype=np.float64)
    centre = (np.array(SHAPE) - 1) / 2
    radii = np.array([27.0, 30.0, 25.0])  # voxels, within the box
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1
    nb.Nifti1Image(inside.astype(np.uint8), affine).to_filename(mask)
    blob = EFFECT["peak"] * np.exp(-sum((g - c) ** 2 for g, c in zip(
        grid, EFFECT["centre"], strict=True)) / (2 * EFFECT["sigma"] ** 2))
    delta = np.zeros(SHAPE)
    delta[tuple(s // 2 for s in SHAPE)] = 1.0
    norm = np.sqrt(np.sum(gaussian_filter(delta, SMOOTH_SIGMA) ** 2))  # noise sd -> 1
    rng = np.random.default_rng(20240611)
    for path in files:
        noise = gaussian_filter(rng.standard_normal(SHAPE), SMOOTH_SIGMA, mode="wrap") / norm
        nb.Nifti1Image((noise + blob).astype(np.float32), affine).to_filename(path)
    (root / ".complete").write_text("ok\n")
    return files, mask


def _design(n: int):
    from glm_workflows.core.group import group_design

    return group_design([f"{i:02d}" for i in range(1, n + 1)], "one-sample")


# --------------------------------------------------------------------------- children


def _peak_mb() -> dict:
    """Own and largest-reaped-child peak resident memory, MB (Linux: ru_maxrss in kB)."""
    return {"self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def child_nilearn(files, mask, out: Path, n_perm, seed, threshold, tfce, n_jobs) -> dict:
    """nilearn's ``non_parametric_inference``; maps saved to ``out`` (npz)."""
    import warnings

    import numpy as np
    from nilearn.glm.second_level import non_parametric_inference

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = non_parametric_inference(
            second_level_input=files, design_matrix=_design(len(files)),
            second_level_contrast=np.array([1.0]), mask=mask, n_perm=n_perm,
            two_sided_test=False, random_state=seed, n_jobs=n_jobs, threshold=threshold,
            tfce=tfce, smoothing_fwhm=None)
    if not isinstance(maps, dict):
        maps = {"logp_max_t": maps}
    np.savez(out, **{key: img.get_fdata() for key, img in maps.items()})
    if n_jobs > 1:  # reap joblib's worker processes, so that their usage is counted
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    return {}


def _chunk(task):
    """One chunk in a worker process, single-threaded BLAS; (chunk, (wall, CPU seconds))."""
    from threadpoolctl import threadpool_limits

    from glm_workflows.core.permutations import permutation_chunk

    files, mask, n_perm, seed, start, stop, threshold, tfce = task
    begin, cpu = time.perf_counter(), time.process_time()
    with threadpool_limits(1):
        chunk = permutation_chunk(files, _design(len(files)), mask, [1.0], n_perm=n_perm,
                                  seed=seed, start=start, stop=stop, threshold=threshold,
                                  tfce=tfce)
    return chunk, (time.perf_counter() - begin, time.process_time() - cpu)


def child_ours(files, mask, out: Path, n_perm, seed, threshold, tfce) -> dict:
    """K chunks in K processes, then the combination here; maps saved to ``out``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np
    from threadpoolctl import threadpool_limits

    from glm_workflows.core.permutation_results import combine_permutations

    bounds = [round(n_perm * j / K_CHUNKS) for j in range(K_CHUNKS + 1)]
    tasks = [(files, mask, n_perm, seed, a, b, threshold, tfce)
             for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    begin = time.perf_counter()
    with ProcessPoolExecutor(K_CHUNKS, mp_context=multiprocessing.get_context("fork")) as pool:
        results = list(pool.map(_chunk, tasks))
    parallel = time.perf_counter() - begin
    begin = time.perf_counter()
    with threadpool_limits(1):
        maps = combine_permutations(files, _design(len(files)), mask, [1.0],
                                    [chunk for chunk, _ in results], n_perm=n_perm,
                                    threshold=threshold, tfce=tfce)
    combine = time.perf_counter() - begin
    np.savez(out, **{key: img.get_fdata() for key, img in maps.items()})
    return {"chunks_s": [seconds for _, seconds in results], "parallel_s": parallel,
            "combine_s": combine}


def run_child(args) -> None:
    side, out = args.child
    files, mask = make_study(args.work_dir / "study")
    threshold = None if args.kind == "tfce" else args.threshold
    tfce = args.kind == "tfce"
    n_perm = args.tfce_perm if tfce else args.n_perm
    if side == "ours":
        info = child_ours(files, mask, Path(out), n_perm, args.seed, threshold, tfce)
    else:
        info = child_nilearn(files, mask, Path(out), n_perm, args.seed, threshold, tfce,
                             int(side[-1]))
    Path(out).with_suffix(".json").write_text(json.dumps({**info, **_peak_mb()}))


# --------------------------------------------------------------------------- measuring


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MB (0 once it is gone)."""
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


def measured(cmd: list[str]) -> tuple[Timing, float]:
    """Run ``cmd`` in a fresh process (single-threaded BLAS); its times and the largest
    resident memory of its process tree sampled every 50 ms (MB)."""
    env = {**os.environ, **SINGLE_THREAD}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, start = usage.ru_utime + usage.ru_stime, time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                         f"{stdout[-1500:]}\n{stderr[-3000:]}")
    return Timing(wall, usage.ru_utime + usage.ru_stime - cpu), peak[0]


def compare(ours: Path, reference: Path) -> dict[str, bool]:
    """``numpy.array_equal`` of each reference map with ours (False when ours lacks it)."""
    import numpy as np

    with np.load(ours) as a, np.load(reference) as b:
        return {key: key in a.files and bool(np.array_equal(a[key], b[key]))
                for key in b.files}


def repetition(args, kind: str, scratch: Path, rotate: int) -> tuple[dict, dict, dict]:
    """The three measurements of ``kind`` (cluster or tfce), in rotated order."""
    times, extra, equal = {}, {}, {}
    order = SIDES[rotate % 3:] + SIDES[:rotate % 3]
    for side in order:
        out = scratch / f"{kind}-{side.replace(' ', '_').replace('=', '')}.npz"
        tag = "ours" if side.startswith("ours") else f"nilearn{side[-1]}"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", tag, str(out),
               "--kind", kind, "--n-perm", str(args.n_perm), "--tfce-perm",
               str(args.tfce_perm), "--threshold", str(args.threshold), "--seed",
               str(args.seed), "--work-dir", str(args.work_dir)]
        timing, tree = measured(cmd)
        name = f"{kind[:4]} {side}"
        times[name] = timing
        extra[name] = {**json.loads(out.with_suffix(".json").read_text()), "tree_mb": tree}
        print(f"    {name:<22} {timing.wall:8.2f} s ({timing.cpu:.2f} CPU); "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
    reference = scratch / f"{kind}-nilearn_n_jobs1.npz"
    equal["ours"] = compare(scratch / f"{kind}-ours_K2.npz", reference)
    equal["nilearn n_jobs=2"] = compare(scratch / f"{kind}-nilearn_n_jobs2.npz", reference)
    return times, extra, equal


def report(kind: str, n_perm: int, rows, extras, equals) -> None:
    names = [f"{kind[:4]} {side}" for side in SIDES]
    ours, n1, n2 = names[2], names[0], names[1]
    print(f"\n{kind}: {n_perm} permutations")
    print_table(rows, names, ((f"{kind[:4]} ours/nilearn j1", ours, n1),
                              (f"{kind[:4]} ours/nilearn j2", ours, n2),
                              (f"{kind[:4]} nilearn j2/j1", n2, n1)))
    print(f"\n  {'peak RSS, MB (last rep.)':<26} {'process':>8} {'largest worker':>15} "
          f"{'tree sum':>9}")
    for name in names:
        e = extras[-1][name]
        workers = "-" if name == n1 else f"{e['workers_mb']:.0f}"
        print(f"  {name:<26} {e['self_mb']:8.0f} {workers:>15} {e['tree_mb']:9.0f}")
    split = extras[-1][ours]
    chunks = ", ".join(f"{wall:.2f} s ({cpu:.2f} CPU)" for wall, cpu in split["chunks_s"])
    print(f"\n  ours (last rep.): chunks {chunks} in parallel ({split['parallel_s']:.2f} s "
          f"incl. the pool), combine {split['combine_s']:.2f} s")
    for who, flags in equals[-1].items():
        every = all(all(e[who].values()) for e in equals)
        print(f"  {who} maps equal to nilearn n_jobs=1's (array_equal, every rep.): "
              f"{'yes' if every else 'NO'}  "
              + ", ".join(f"{k} {'=' if v else '!='}" for k, v in flags.items()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-perm", type=int, default=5000,
                        help="permutations of the cluster inference")
    parser.add_argument("--threshold", type=float, default=0.001,
                        help="cluster-forming threshold (p)")
    parser.add_argument("--tfce-perm", type=int, default=500,
                        help="permutations of the TFCE measurement (0: skip it)")
    parser.add_argument("--no-tfce", action="store_true", help="skip the TFCE measurement")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions (medians shown)")
    parser.add_argument("--seed", type=int, default=0, help="random_state of the permutations")
    parser.add_argument("--work-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "glm-workflows-bench-group",
                        help="where the synthetic study is kept between runs")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "OUT"),
                        help=argparse.SUPPRESS)  # a measured process
    parser.add_argument("--kind", choices=("cluster", "tfce"), default="cluster",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.work_dir = args.work_dir.resolve()
    if args.child:
        run_child(args)
        return
    begin = time.perf_counter()
    files, _ = make_study(args.work_dir / "study")
    kinds = [("cluster", args.n_perm)]
    if not args.no_tfce and args.tfce_perm > 0:
        kinds.append(("tfce", args.tfce_perm))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; study "
          f"{args.work_dir / 'study'} ({len(files)} subjects x {'x'.join(map(str, SHAPE))}, "
          f"ready in {time.perf_counter() - begin:.1f} s); one-sample, one-sided, seed "
          f"{args.seed}, cluster threshold p < {args.threshold}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results = {kind: ([], [], []) for kind, _ in kinds}
    with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
        for index in range(args.repeat):
            for kind, n_perm in kinds:
                print(f"  repetition {index + 1}, {kind} ({n_perm} permutations):", flush=True)
                for store, value in zip(results[kind], repetition(args, kind, Path(scratch),
                                                                   index), strict=True):
                    store.append(value)
    for kind, n_perm in kinds:
        report(kind, n_perm, *results[kind])
    print(f"\n  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
