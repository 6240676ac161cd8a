"""Validity audit on the mesh: family-wise error rates of group inference on fsaverage5
noise, and the power to find a planted patch.

Each repetition draws ``--subjects`` (12) effect maps on fsaverage5 (2 x 10,242 vertices,
every vertex in the mask) of noise that is smooth **on the mesh**: white Gaussian noise,
then ``--smoothing`` (6) iterations of neighbour averaging over each hemisphere's
adjacency (``glm_workflows.core.mesh``: vertices joined by a face's edge), each iteration
replacing a vertex's value by the mean of itself and its neighbours; the smoothing
operator ``S = M^k`` is built once as a sparse matrix and each vertex divided by the norm
of its row, so that every vertex has unit variance exactly. The smoothness is printed as
the mean correlation between neighbouring vertices ``rho`` and the FWHM of a Gaussian
field with that correlation at one edge's distance (``FWHM = sqrt(-2 ln 2 / ln rho)``
edges), also in mm (times the mean edge length of the midthickness surface,
``glm_workflows.core.mesh``'s). There is no effect anywhere in the null repetitions.

Each map is packed as the group node reads surface maps (``core.surfaces``) and analysed
with the project's core, the very functions the group nodes run: the parametric fit
(:func:`~glm_workflows.core.group.fit_group`) thresholded by
:func:`~glm_workflows.core.surface_inference.threshold_surface` (Bonferroni 0.05 over the
20,484 vertices), and sign-flipping permutations on the mesh
(:func:`~glm_workflows.core.permutations.permutation_chunk` with the layout, then
:func:`~glm_workflows.core.permutation_results.combine_permutations`), one-sided (the
project's default): vertex max-t, cluster size and cluster mass for each cluster-forming
p in ``--cluster-p`` (0.001 and 0.01), and TFCE on the mesh (``E = 1, H = 2``; in the
first ``--tfce-repetitions`` repetitions only, with ``--tfce-perm`` permutations: one
TFCE permutation labels the mesh 100 times). A null repetition is a family-wise error
when a method declares any vertex significant (FWE ``-log10 p >= -log10 0.05``, to 1e-9,
as one reads the written maps). With ``n``
permutations the exact nominal rate of max-t and TFCE, whose p counts the original map
(``(1 + #{null >= observed}) / (n + 1)``), is ``floor(0.05 (n + 1)) / (n + 1)``; cluster
p-values are nilearn's ``null_to_p`` (``#{null >= observed} / n``, at least ``1 / n``:
the original map not counted), as the group node computes them on a grid and on the
mesh, so their exact rate is ``(floor(0.05 n) + 1) / (n + 1)`` (0.0547 for 200; 0 below
20 permutations, where ``1 / n > 0.05``).

The planted patch (``--patch-repetitions``, 20): the same noise plus ``--amplitude``
(1.0 noise standard deviation) on every subject at the vertices within
``--patch-radius`` (4) edges of left vertex ``PATCH_CENTRE``; every method, TFCE
included. Power is the fraction of repetitions in which some patch vertex is
significant; the rate of repetitions with a significant vertex outside the patch is shown
too (cluster and TFCE inference extend a detection to the supra-threshold vertices
around the patch, which the signal has not touched: a true cluster, a false vertex).

Printed per method: the rate, the count, its exact 95 % Clopper-Pearson interval. Repetitions
run in ``--jobs`` processes (one BLAS thread each); repetition ``i`` draws its noise and
permutation seed from ``SeedSequence(--seed)``'s child ``(kind, i)``, so the results do
not depend on ``--jobs``.

Usage::

    python benchmarks/bench_surface_null.py [--repetitions 200] [--n-perm 200]
        [--tfce-repetitions 60] [--tfce-perm 100] [--patch-repetitions 20]
        [--subjects 12] [--smoothing 6] [--cluster-p 0.001 0.01] [--jobs 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from null_rates import clopper_pearson, exact_fwe_rate  # noqa: E402

MESH, N_HEMI = "fsaverage5", 10242
ALPHA = 0.05
PATCH_CENTRE = 100  # a left-hemisphere vertex (the tests' patch centre)
DEFAULTS = {"repetitions": 200, "n_perm": 200, "tfce_repetitions": 60, "tfce_perm": 100,
            "patch_repetitions": 20}
KINDS = {"null": 0, "patch": 1}


def geometry():
    """fsaverage5's geometry as the group node finds it for a layout of that mesh."""
    from glm_workflows.core.mesh import geometry_for
    from glm_workflows.core.surfaces import surface_layout

    return geometry_for(surface_layout(MESH, [N_HEMI, N_HEMI]))


@functools.cache
def smoother(iterations: int):
    """Per hemisphere, the sparse operator of ``iterations`` neighbour averagings and
    the norms of its rows (each vertex's noise standard deviation before scaling)."""
    import numpy as np
    from scipy import sparse

    out = {}
    for hemi, part in geometry().items():
        graph = part.adjacency.astype(np.float64)
        degree = np.asarray(graph.sum(axis=1)).ravel()
        step = (sparse.diags(1.0 / (1.0 + degree))
                @ (graph + sparse.identity(part.n_vertices, format="csr"))).tocsr()
        operator = sparse.identity(part.n_vertices, format="csr")
        for _ in range(iterations):
            operator = (step @ operator).tocsr()
        norms = np.sqrt(np.asarray(operator.multiply(operator).sum(axis=1)).ravel())
        out[hemi] = (operator, norms)
    return out


def smoothness(iterations: int) -> tuple[float, float, float]:
    """Mean neighbour correlation of the noise, its FWHM in edges and in mm."""
    import numpy as np
    from nilearn.datasets import load_fsaverage

    meshes = load_fsaverage(MESH)
    correlations, lengths = [], []
    for hemi, part in (("L", "left"), ("R", "right")):
        operator, norms = smoother(iterations)[hemi]
        covariance = (operator @ operator.T).tocsr()
        rows, cols = np.asarray(meshes["pial"].parts[part].faces)[:, [0, 1]].T
        correlations.append(np.asarray(covariance[rows, cols]).ravel()
                            / (norms[rows] * norms[cols]))
        mid = (np.asarray(meshes["pial"].parts[part].coordinates, dtype=np.float64)
               + np.asarray(meshes["white_matter"].parts[part].coordinates,
                            dtype=np.float64)) / 2
        lengths.append(np.linalg.norm(mid[rows] - mid[cols], axis=1))
    rho = float(np.mean(np.concatenate(correlations)))
    fwhm = math.sqrt(-2 * math.log(2) / math.log(rho)) if 0 < rho < 1 else float("nan")
    return rho, fwhm, fwhm * float(np.mean(np.concatenate(lengths)))


@functools.cache
def patch(radius: int):
    """Indices (packed order) of the left vertices within ``radius`` edges of the centre."""
    import numpy as np

    graph = geometry()["L"].adjacency
    inside = np.zeros(N_HEMI, dtype=bool)
    inside[PATCH_CENTRE] = True
    for _ in range(radius):
        inside |= np.asarray(graph @ inside).ravel() > 0
    return np.flatnonzero(inside)


def smooth_noise(rng, iterations: int):
    import numpy as np

    return np.concatenate([operator @ rng.standard_normal(N_HEMI) / norms
                           for operator, norms in smoother(iterations).values()])


def _init_worker():
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _significant(img, layout):
    import numpy as np

    from glm_workflows.core.surfaces import unpack

    halves = unpack(np.nan_to_num(np.asarray(img.dataobj, dtype=np.float64)), layout)
    return np.concatenate([halves["L"], halves["R"]]) >= -math.log10(ALPHA) - 1e-9


def repetition(task) -> dict:
    """One group analysis: {method: significant vertices (bool, per vertex)}, seconds."""
    import warnings

    import nibabel as nb
    import numpy as np

    from glm_workflows.core.group import fit_group, group_design
    from glm_workflows.core.permutation_results import combine_permutations
    from glm_workflows.core.permutations import permutation_chunk
    from glm_workflows.core.surface_inference import threshold_surface
    from glm_workflows.core.surfaces import surface_layout, unpack

    kind, index, args = task
    rng = np.random.default_rng(np.random.SeedSequence(args.seed,
                                                       spawn_key=(KINDS[kind], index)))
    perm_seed = int(rng.integers(2**31 - 1))
    layout = surface_layout(MESH, [N_HEMI, N_HEMI])
    shape = tuple(layout["PackedShape"])
    signal = np.zeros(2 * N_HEMI)
    if kind == "patch":
        signal[patch(args.patch_radius)] = args.amplitude
    pack = lambda v: nb.Nifti1Image(v.reshape(shape, order="F"), np.eye(4))  # noqa: E731
    mask = pack(np.ones(2 * N_HEMI, dtype=np.uint8))
    maps = [pack(smooth_noise(rng, args.smoothing) + signal) for _ in range(args.subjects)]
    design = group_design([f"{i:02d}" for i in range(args.subjects)], "one-sample")
    out, seconds = {}, {}
    begin = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = fit_group(maps, design, mask, [1.0])["z"]
        thresholded, _ = threshold_surface(
            np.asarray(z.dataobj), np.asarray(mask.dataobj), layout, None,
            height_control="bonferroni", alpha=ALPHA, threshold=None, cluster_threshold=0,
            two_sided=False)
    halves = unpack(thresholded, layout)
    out["Bonferroni 0.05"] = np.concatenate([halves["L"], halves["R"]]) != 0
    seconds["parametric"] = time.perf_counter() - begin
    runs = [(f"p<{p}", dict(threshold=p), args.n_perm) for p in args.cluster_p]
    if kind == "patch" or index < args.tfce_repetitions:
        runs.append(("TFCE", dict(tfce=True), args.tfce_perm))
    for label, options, n_perm in runs:
        begin = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chunk = permutation_chunk(maps, design, mask, [1.0], n_perm=n_perm,
                                      seed=perm_seed, start=0, stop=n_perm, layout=layout,
                                      **options)
            seconds[label] = time.perf_counter() - begin
            result = combine_permutations(maps, design, mask, [1.0], [chunk],
                                          n_perm=n_perm, layout=layout, **options)
        if label == "TFCE":
            out[f"perm TFCE ({n_perm} perm)"] = _significant(result["logp_max_tfce"], layout)
            continue
        if "perm max-t" not in out:
            out["perm max-t"] = _significant(result["logp_max_t"], layout)
        out[f"perm cluster size {label}"] = _significant(result["logp_max_size"], layout)
        out[f"perm cluster mass {label}"] = _significant(result["logp_max_mass"], layout)
    return {"kind": kind, "significant": out, "seconds": seconds}


def _rate(k: int, n: int) -> str:
    lo, hi = clopper_pearson(k, n)
    return f"{k / n:6.3f} {f'{k}/{n}':>8} {f'[{lo:.3f}, {hi:.3f}]':>16}"


def report(results, args) -> None:
    """Print the FWE table (null repetitions) and the power table (patch repetitions)."""
    import numpy as np

    null = [r for r in results if r["kind"] == "null"]
    methods = list(dict.fromkeys(m for r in null for m in r["significant"]))
    if null:
        print(f"\n  null: family-wise error rate\n  {'method':<32} {'FWE':>6} {'count':>8} "
              f"{'95% CI (C-P)':>16} {'nominal':>8}")
        for name in methods:
            hits = [bool(r["significant"][name].any()) for r in null if name in r["significant"]]
            n_perm = args.tfce_perm if "TFCE" in name else args.n_perm
            nominal = ALPHA if name.startswith("Bonferroni") else \
                exact_fwe_rate(n_perm, "cluster" in name)
            print(f"  {name:<32} {_rate(sum(hits), len(hits))} {nominal:8.4f}")
    planted = [r for r in results if r["kind"] == "patch"]
    if planted:
        inside = np.zeros(2 * N_HEMI, dtype=bool)
        inside[patch(args.patch_radius)] = True
        print(f"\n  planted patch ({int(inside.sum())} vertices, amplitude {args.amplitude}): "
              f"power, and repetitions with a significant vertex outside the patch\n"
              f"  {'method':<32} {'power':>6} {'count':>8} {'95% CI (C-P)':>16} "
              f"{'patch found':>11} {'outside':>8}")
        for name in planted[0]["significant"]:
            maps = [r["significant"][name] for r in planted]
            found = sum(bool(m[inside].any()) for m in maps)
            share = np.median([m[inside].mean() for m in maps])
            outside = sum(bool(m[~inside].any()) for m in maps)
            print(f"  {name:<32} {_rate(found, len(maps))} {share:11.2f} "
                  f"{f'{outside}/{len(maps)}':>8}")
    parts: dict[str, list[float]] = {}
    for r in results:
        for key, value in r["seconds"].items():
            parts.setdefault(key, []).append(value)
    print("\n  seconds per repetition (mean, in a worker): " + ", ".join(
        f"{key} {np.mean(v):.2f}" for key, v in parts.items()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=DEFAULTS["repetitions"],
                        help="null group analyses")
    parser.add_argument("--n-perm", type=int, default=DEFAULTS["n_perm"],
                        help="permutations for max-t and clusters")
    parser.add_argument("--tfce-repetitions", type=int,
                        default=DEFAULTS["tfce_repetitions"],
                        help="null repetitions that also run TFCE (the first ones)")
    parser.add_argument("--tfce-perm", type=int, default=DEFAULTS["tfce_perm"],
                        help="permutations for TFCE")
    parser.add_argument("--patch-repetitions", type=int,
                        default=DEFAULTS["patch_repetitions"],
                        help="analyses with a planted patch (0: none)")
    parser.add_argument("--amplitude", type=float, default=1.0,
                        help="the patch's effect, in noise standard deviations")
    parser.add_argument("--patch-radius", type=int, default=4, help="in edges")
    parser.add_argument("--subjects", type=int, default=12, help="subjects per analysis")
    parser.add_argument("--smoothing", type=int, default=6,
                        help="neighbour-averaging iterations")
    parser.add_argument("--cluster-p", type=float, nargs="+", default=[0.001, 0.01],
                        help="cluster-forming p values")
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument("--seed", type=int, default=0, help="master seed")
    args = parser.parse_args(argv)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from glm_workflows.core.permutations import check_permutations

    check_permutations(args.n_perm, ALPHA)
    check_permutations(args.tfce_perm, ALPHA)
    rho, fwhm, fwhm_mm = smoothness(args.smoothing)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {MESH} "
          f"({2 * N_HEMI} vertices), {args.subjects} subjects, noise smoothed by "
          f"{args.smoothing} neighbour averagings (neighbour correlation {rho:.3f}, FWHM "
          f"~{fwhm:.1f} edges ~{fwhm_mm:.1f} mm); one-sample one-sided; null: "
          f"{args.repetitions} repetitions x {args.n_perm} permutations, TFCE in "
          f"{min(args.tfce_repetitions, args.repetitions)} x {args.tfce_perm}; patch: "
          f"{args.patch_repetitions}; seed {args.seed}, {args.jobs} processes; load "
          f"average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    tasks = [("null", i, args) for i in range(args.repetitions)]
    tasks += [("patch", i, args) for i in range(args.patch_repetitions)]
    tasks.sort(key=lambda t: t[0] == "patch" or t[1] < args.tfce_repetitions, reverse=True)
    begin, cpu = time.perf_counter(), time.process_time()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_init_worker) as pool:
            results = list(pool.map(repetition, tasks, chunksize=1))
        usage = os.times()
        cpu = usage.children_user + usage.children_system
    else:
        _init_worker()
        results = [repetition(task) for task in tasks]
        cpu = time.process_time() - cpu
    wall = time.perf_counter() - begin
    report(results, args)
    print(f"  wall {wall:.1f} s, CPU {cpu:.1f} s; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
