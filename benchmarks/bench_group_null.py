"""Validity audit: family-wise error rates of group-level inference on pure noise.

Each repetition draws ``--subjects`` (12) maps of spatially smooth Gaussian noise
(24x28x24 voxels of 3 mm; white noise smoothed with ``scipy.ndimage.gaussian_filter`` of
FWHM ``--fwhm`` voxels (2.5) on a padded grid, cropped, divided by the smoothing kernel's
norm so that every voxel has unit variance; no effect anywhere), restricted to a
brain-like ellipsoid mask of about 5,800 voxels, and runs a one-sample, one-sided group
analysis with this project's core (``glm_workflows.core.group``): the parametric fit
(:func:`~glm_workflows.core.group.fit_group`, t -> z) and sign-flipping permutations
(:func:`~glm_workflows.core.permutations.permutation_chunk` over all ``--n-perm`` permutations,
then :func:`~glm_workflows.core.permutation_results.combine_permutations`). A repetition
is a family-wise error when a method declares any voxel significant:

* ``Bonferroni``: z maps thresholded by ``threshold_map(height_control="bonferroni",
  alpha=0.05)`` over the mask's voxels, one-sided;
* ``cluster p<0.001, k=10``: ``threshold_map(height_control="fpr", alpha=0.001,
  cluster_threshold=10)``, i.e. nilearn's ``threshold_stats_img`` with a fixed extent of
  10 voxels (6-connectivity), one-sided as this project's default; the naive practice
  Eklund et al. (PNAS 2016) audited, where the extent is not derived from the data's
  smoothness. The same two-sided (nilearn's default ``two_sided=True``: |z| > 3.29,
  clusters of either sign) is shown too;
* ``FDR 0.05, k=10``: this project's default thresholding (under the complete null the
  FDR equals the FWE, so it should be at most 5 %);
* ``perm max-T``, ``perm cluster size``, ``perm cluster mass`` (cluster-forming
  ``p < 0.001``) and, with ``--tfce``, ``perm TFCE``: any voxel with FWE ``p <= 0.05``.
  With ``n_perm`` permutations the exact rate is shown as the nominal rate
  (``null_rates.exact_fwe_rate``): ``floor(0.05 (n_perm + 1)) / (n_perm + 1)`` for max-T and
  TFCE, whose p counts the identity; ``(floor(0.05 n_perm) + 1) / (n_perm + 1)`` for the
  cluster rows, whose p is nilearn's ``null_to_p`` (the original map not counted).

Printed per method: the FWE rate with its 95 % Monte-Carlo interval (Clopper-Pearson,
exact; Wilson too), and for context the extent k that would have given a 5 % FWE here
(the 95th percentile of the largest one-sided cluster at p < 0.001). Repetitions run in
``--jobs`` processes (single-threaded BLAS each); repetition ``i`` draws its noise and
its permutation seed from ``SeedSequence(--seed).spawn``'s ``i``-th child, so the results
do not depend on ``--jobs``. The wall time, the load average and an estimate of the time
of the default settings (from the measured split between per-permutation and fixed
costs) are printed too.

Usage::

    python benchmarks/bench_group_null.py [--repetitions 200] [--subjects 12]
                                          [--n-perm 200] [--tfce] [--fwhm 2.5]
                                          [--jobs 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from null_rates import clopper_pearson, exact_fwe_rate, wilson  # noqa: E402

SHAPE = (24, 28, 24)
VOXEL_MM = 3.0
ALPHA = 0.05
CLUSTER_P = 0.001
CLUSTER_K = 10
DEFAULTS = {"repetitions": 200, "n_perm": 200}
PARAMETRIC = {  # name: threshold_map arguments
    "Bonferroni 0.05": dict(height_control="bonferroni", alpha=ALPHA, cluster_threshold=0,
                            two_sided=False),
    f"cluster p<{CLUSTER_P}, k={CLUSTER_K}": dict(height_control="fpr", alpha=CLUSTER_P,
                                                  cluster_threshold=CLUSTER_K,
                                                  two_sided=False),
    "  same, two-sided": dict(height_control="fpr", alpha=CLUSTER_P,
                               cluster_threshold=CLUSTER_K, two_sided=True),
    f"FDR 0.05, k={CLUSTER_K}": dict(height_control="fdr", alpha=ALPHA,
                                     cluster_threshold=CLUSTER_K, two_sided=False),
}
PERMUTATION = {"perm max-T": "logp_max_t", "perm cluster size": "logp_max_size",
               "perm cluster mass": "logp_max_mass", "perm TFCE": "logp_max_tfce"}


def mask_and_affine():
    import numpy as np

    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine[:3, 3] = -VOXEL_MM * (np.array(SHAPE) - 1) / 2
    grid = np.indices(SHAPE, dtype=np.float64)
    centre = (np.array(SHAPE) - 1) / 2
    radii = np.array(SHAPE) / 2 - 1.5
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1
    return inside, affine


def smooth_noise(rng, fwhm: float):
    """One map of unit-variance smooth Gaussian noise (no edge effect: padded, cropped)."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    sigma = fwhm / math.sqrt(8 * math.log(2))
    pad = int(math.ceil(4 * sigma))
    big = tuple(s + 2 * pad for s in SHAPE)
    delta = np.zeros(big)
    delta[tuple(s // 2 for s in big)] = 1.0
    norm = np.sqrt(np.sum(gaussian_filter(delta, sigma, mode="constant") ** 2))
    noise = gaussian_filter(rng.standard_normal(big), sigma, mode="constant") / norm
    return noise[tuple(slice(pad, pad + s) for s in SHAPE)]


def _init_worker():
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def repetition(task) -> dict:
    """One null group analysis: {method: any false positive}, largest cluster, seconds."""
    import warnings

    import nibabel as nb
    import numpy as np
    from scipy.ndimage import generate_binary_structure, label
    from scipy.stats import norm as normal

    from glm_workflows.core.group import fit_group, group_design
    from glm_workflows.core.inference import has_surviving_voxels, threshold_map
    from glm_workflows.core.permutation_results import combine_permutations
    from glm_workflows.core.permutations import permutation_chunk

    index, args = task
    rng = np.random.default_rng(np.random.SeedSequence(args.seed, spawn_key=(index,)))
    perm_seed = int(rng.integers(2**31 - 1))
    inside, affine = mask_and_affine()
    mask = nb.Nifti1Image(inside.astype(np.uint8), affine)
    maps = [nb.Nifti1Image(smooth_noise(rng, args.fwhm) * inside, affine)
            for _ in range(args.subjects)]
    design = group_design([f"{i:02d}" for i in range(args.subjects)], "one-sample")
    out, seconds = {}, {}
    begin = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = fit_group(maps, design, mask, [1.0])["z"]
        for name, kwargs in PARAMETRIC.items():
            out[name] = has_surviving_voxels(  # threshold: unused by fpr/fdr/bonferroni
                threshold_map(z, mask_img=mask, threshold=3.09, **kwargs)[0])
    above = (z.get_fdata() > normal.isf(CLUSTER_P)) & inside
    labels, n = label(above, generate_binary_structure(3, 1))
    largest = int(np.bincount(labels.ravel())[1:].max()) if n else 0
    seconds["parametric"] = time.perf_counter() - begin
    options = dict(threshold=CLUSTER_P, tfce=args.tfce)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. nilearn's int64 -> int32 of the size maps
        begin = time.perf_counter()
        chunk = permutation_chunk(maps, design, mask, [1.0], n_perm=args.n_perm,
                                  seed=perm_seed, start=0, stop=args.n_perm, **options)
        seconds["chunk"] = time.perf_counter() - begin
        begin = time.perf_counter()
        result = combine_permutations(maps, design, mask, [1.0], [chunk], n_perm=args.n_perm,
                                      **options)
        seconds["combine"] = time.perf_counter() - begin
    for name, key in PERMUTATION.items():
        if key in result:
            logp = np.nan_to_num(result[key].get_fdata())
            out[name] = bool(logp.max() >= -math.log10(ALPHA) - 1e-9)  # p <= alpha
    return {"fwe": out, "largest": largest, "seconds": seconds}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=DEFAULTS["repetitions"],
                        help="null group analyses")
    parser.add_argument("--subjects", type=int, default=12, help="subjects per analysis")
    parser.add_argument("--n-perm", type=int, default=DEFAULTS["n_perm"],
                        help="permutations per analysis")
    parser.add_argument("--tfce", action="store_true", help="also permutation TFCE")
    parser.add_argument("--fwhm", type=float, default=2.5, help="smoothness, voxels")
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument("--seed", type=int, default=0, help="master seed")
    args = parser.parse_args(argv)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np

    from glm_workflows.core.permutations import check_permutations

    check_permutations(args.n_perm, ALPHA)
    inside, _ = mask_and_affine()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.repetitions} "
          f"repetitions x {args.subjects} subjects of smooth noise ({'x'.join(map(str, SHAPE))}"
          f", FWHM {args.fwhm} voxels, mask {int(inside.sum())} voxels), one-sample "
          f"one-sided; {args.n_perm} permutations{' (with TFCE)' if args.tfce else ''}; "
          f"seed {args.seed}, {args.jobs} processes; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    begin = time.perf_counter()
    tasks = [(i, args) for i in range(args.repetitions)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_init_worker) as pool:
            results = list(pool.map(repetition, tasks, chunksize=1))
    else:
        _init_worker()
        results = [repetition(task) for task in tasks]
    wall = time.perf_counter() - begin
    n = len(results)
    print(f"\n  {'method':<24} {'FWE':>6} {'count':>8} {'95% CI (Clopper-Pearson)':>25} "
          f"{'Wilson':>15} {'nominal':>8}")
    for name in results[0]["fwe"]:
        k = sum(r["fwe"][name] for r in results)
        lo, hi = clopper_pearson(k, n)
        wlo, whi = wilson(k, n)
        nominal = (exact_fwe_rate(args.n_perm, "cluster" in name) if name.startswith("perm")
                   else ALPHA)
        print(f"  {name:<24} {k / n:6.3f} {f'{k}/{n}':>8} {f'[{lo:.3f}, {hi:.3f}]':>25} "
              f"{f'[{wlo:.3f}, {whi:.3f}]':>15} {nominal:8.4f}")
    largest = np.array([r["largest"] for r in results])
    print(f"\n  largest cluster at z > {float(_isf(CLUSTER_P)):.2f} (one-sided, 6-connected): "
          f"median {np.median(largest):.0f}, 95th percentile {np.percentile(largest, 95):.1f}, "
          f"max {largest.max()} voxels (k giving 5 % FWE here: "
          f"{int(np.floor(np.percentile(largest, 95))) + 1})")
    parts = {key: float(np.mean([r["seconds"][key] for r in results]))
             for key in results[0]["seconds"]}
    per_rep = sum(parts.values())
    default = (parts["parametric"] + parts["combine"]
               + parts["chunk"] * DEFAULTS["n_perm"] / args.n_perm)
    estimate = wall * (default / per_rep) * DEFAULTS["repetitions"] / n
    print(f"\n  wall {wall:.1f} s; per repetition (in a worker): parametric "
          f"{parts['parametric']:.2f} s, permutations {parts['chunk']:.2f} s, combine "
          f"{parts['combine']:.2f} s; estimated wall of the defaults "
          f"(--repetitions {DEFAULTS['repetitions']} --n-perm {DEFAULTS['n_perm']}, same "
          f"options and --jobs): {estimate / 60:.1f} min; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _isf(p: float) -> float:
    from scipy.stats import norm

    return norm.isf(p)


if __name__ == "__main__":
    main()
