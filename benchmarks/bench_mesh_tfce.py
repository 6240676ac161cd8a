"""Benchmark: TFCE (and cluster size/mass) on the mesh, per permutation, against the
textbook loop.

Two measurements, each in fresh processes with one BLAS thread
(``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1``):

1. **By mesh size** (``--maps`` maps per mesh, 10): the seconds per map of the project's
   :func:`~glm_workflows.core.mesh_permutations.mesh_tfce` (one-sided and two-sided) and
   :func:`~glm_workflows.core.mesh_permutations.cluster_measures` (cluster-forming
   p 0.001 and 0.01, as t of 11 degrees of freedom), against a textbook TFCE written here
   (:func:`textbook_tfce`: for each of the 100 heights, label the connected components of
   the supra-threshold subgraph of the whole mesh with
   ``scipy.sparse.csgraph.connected_components`` and add ``e^E h^H``, ``E = 1, H = 2``),
   whose values must equal the project's (max relative difference <= 1e-9, else the run
   stops). The maps are permutation maps: one-sample t of 12 subjects' noise, smoothed by
   neighbour averaging on the mesh (6 iterations on fsaverage5, 24 on the subdivided
   meshes, whose edges are half as long: the same smoothness in mm), their signs flipped
   at random. The meshes: fsaverage5's left hemisphere (10,242 vertices) and both
   (20,484), through :class:`~glm_workflows.core.mesh_permutations.MeshSpace` as the group
   node builds it; and fsaverage5 subdivided once (each triangle into 4 at its edges'
   midpoints: 40,962 vertices per hemisphere, fsaverage6's count), one hemisphere and
   both (81,924), through a ``MeshSpace`` over the subdivided adjacency (the subdivided
   mesh has no mesh files for the group node to find).
2. **By permutations and chunks** (fsaverage5, 12 subjects' packed maps, one-sample
   one-sided): :func:`~glm_workflows.core.permutations.permutation_chunk` with TFCE, and
   with clusters (p 0.001) alone, for each of ``--n-perm`` (100 500) as 1 chunk, and as
   2 chunks in 2 processes (fork, as ``bench_group.py``), then
   :func:`~glm_workflows.core.permutation_results.combine_permutations`; wall and CPU
   seconds, seconds per permutation, and whether the 2 chunks' null maxima equal the
   single chunk's (``numpy.array_equal``).

Usage::

    python benchmarks/bench_mesh_tfce.py [--maps 10] [--n-perm 100 500]
        [--meshes L fsaverage5 L4 fsaverage5x4] [--parts meshes runs]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
MESH, N_HEMI, N_SUBJECTS = "fsaverage5", 10242, 12
E, H, STEPS = 1.0, 2.0, 100  # Smith & Nichols' surface exponents, nilearn's 100 heights
#: name -> (hemispheres, subdivided once, smoothing iterations)
MESHES = {"L": (("L",), False, 6), "fsaverage5": (("L", "R"), False, 6),
          "L4": (("L",), True, 24), "fsaverage5x4": (("L", "R"), True, 24)}
CLUSTER_PS = (0.001, 0.01)


def subdivide(faces, n_vertices: int):
    """Faces of the mesh with each triangle split into 4 at its edges' midpoints (new
    vertices numbered from ``n_vertices``, one per edge); returns (faces, n_vertices)."""
    import numpy as np

    faces = np.asarray(faces, dtype=np.int64)
    pairs = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]),
                    axis=1)
    edges, index = np.unique(pairs, axis=0, return_inverse=True)
    ab, bc, ca = (n_vertices + index.ravel()).reshape(3, -1)
    a, b, c = faces.T
    new = np.concatenate([np.stack(t, axis=1) for t in
                          ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
    return new, n_vertices + len(edges)


def mesh_and_space(name: str):
    """The mesh's whole adjacency (block-diagonal over hemispheres) and its MeshSpace."""
    import numpy as np
    from nilearn.datasets import load_fsaverage
    from scipy import sparse

    from glm_workflows.core.mesh import adjacency
    from glm_workflows.core.mesh_permutations import MeshSpace
    from glm_workflows.core.surfaces import surface_layout

    hemis, split, _ = MESHES[name]
    meshes = load_fsaverage(MESH)
    graphs = []
    for hemi in hemis:
        faces = np.asarray(meshes["pial"].parts["left" if hemi == "L" else "right"].faces)
        n = N_HEMI
        if split:
            faces, n = subdivide(faces, n)
        graphs.append(adjacency(faces, n))
    whole = sparse.block_diag(graphs, format="csr")
    if split:
        return whole, MeshSpace.from_graph(whole)
    layout = surface_layout(MESH, [N_HEMI, N_HEMI])
    mask = np.zeros(2 * N_HEMI, dtype=bool)
    mask[: N_HEMI * len(hemis)] = True
    return whole, MeshSpace(mask.reshape(tuple(layout["PackedShape"]), order="F"), layout)


def permutation_maps(graph, iterations: int, count: int, seed: int = 0):
    """``count`` one-sample t maps of sign-flipped smooth noise (12 subjects)."""
    import numpy as np
    from scipy import sparse

    rng = np.random.default_rng(seed)
    degree = np.asarray(graph.sum(axis=1)).ravel()
    step = sparse.diags(1.0 / (1.0 + degree)) @ (
        graph.astype(np.float64) + sparse.identity(graph.shape[0], format="csr"))
    data = rng.standard_normal((graph.shape[0], N_SUBJECTS))
    for _ in range(iterations):
        data = step @ data
    maps = []
    for _ in range(count):
        flipped = data * rng.choice([-1.0, 1.0], size=N_SUBJECTS)
        maps.append(flipped.mean(axis=1)
                    / (flipped.std(axis=1, ddof=1) / np.sqrt(N_SUBJECTS)))
    return maps


def textbook_tfce(values, graph, two_sided: bool):
    """TFCE by the textbook: at each of 100 heights, the connected components of the
    supra-threshold vertices of the whole mesh, each vertex given ``e^E h^H``."""
    import numpy as np
    from scipy.sparse.csgraph import connected_components

    tfce = np.zeros(values.shape)
    top = np.max(np.abs(values)) if two_sided else np.max(values)
    for sign in ((1, -1) if two_sided else (1,)):
        for height in np.linspace(0, top, STEPS + 1)[1:]:
            supra = np.flatnonzero(sign * values >= height)
            if supra.size:
                _, labels = connected_components(graph[supra][:, supra], directed=False)
                tfce[supra] += sign * np.bincount(labels)[labels] ** E * height ** H
    return tfce


def _seconds(function, maps):
    """CPU seconds per map (this process has one thread: steadier than the wall clock
    on a shared machine) and the results."""
    begin = time.process_time()
    out = [function(m) for m in maps]
    return (time.process_time() - begin) / len(maps), out


def child_mesh(name: str, n_maps: int) -> dict:
    """Measurement 1 for one mesh (in this fresh process)."""
    import numpy as np
    from scipy.stats import t as student

    from glm_workflows.core.mesh_permutations import (
        TFCE_E,
        TFCE_H,
        TFCE_STEPS,
        cluster_measures,
        mesh_tfce,
    )

    assert (TFCE_E, TFCE_H, TFCE_STEPS) == (E, H, STEPS)
    begin = time.perf_counter()
    graph, space = mesh_and_space(name)
    maps = permutation_maps(graph, MESHES[name][2], n_maps)
    out = {"vertices": int(graph.shape[0]), "setup_s": time.perf_counter() - begin}
    for two_sided in (False, True):
        side = "two" if two_sided else "one"
        ours_s, ours = _seconds(lambda m, s=two_sided: mesh_tfce(m, space, s), maps)
        book_s, book = _seconds(lambda m, s=two_sided: textbook_tfce(m, graph, s), maps)
        worst = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                    for a, b in zip(ours, book, strict=True))
        if not worst <= 1e-9:
            raise SystemExit(f"{name}: project and textbook TFCE differ by {worst:.3g}")
        out[f"tfce_{side}"], out[f"book_{side}"], out[f"diff_{side}"] = ours_s, book_s, worst
    for p in CLUSTER_PS:
        threshold = float(student.isf(p, N_SUBJECTS - 1))
        out[f"cluster_{p}"], _ = _seconds(
            lambda m, t=threshold: cluster_measures(m, space, t, False), maps)
    return out


def _chunk(task):
    from threadpoolctl import threadpool_limits

    from glm_workflows.core.permutations import permutation_chunk

    inputs, n_perm, start, stop, options = task
    begin, cpu = time.perf_counter(), time.process_time()
    with threadpool_limits(1):
        chunk = permutation_chunk(*inputs, n_perm=n_perm, seed=0, start=start, stop=stop,
                                  **options)
    return chunk, time.perf_counter() - begin, time.process_time() - cpu


def child_run(kind: str, n_perm: int, chunks: int) -> dict:
    """Measurement 2: one permutation run on fsaverage5 (in this fresh process)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import nibabel as nb
    import numpy as np
    from threadpoolctl import threadpool_limits

    from glm_workflows.core.group import group_design
    from glm_workflows.core.permutation_results import combine_permutations
    from glm_workflows.core.surfaces import surface_layout

    layout = surface_layout(MESH, [N_HEMI, N_HEMI])
    graph, _ = mesh_and_space(MESH)
    shape = tuple(layout["PackedShape"])
    rng = np.random.default_rng(1)
    data = rng.standard_normal((graph.shape[0], N_SUBJECTS))
    degree = np.asarray(graph.sum(axis=1)).ravel()
    for _ in range(MESHES[MESH][2]):
        data = (graph.astype(np.float64) @ data + data) / (1.0 + degree)[:, np.newaxis]
    maps = [nb.Nifti1Image(data[:, i].reshape(shape, order="F"), np.eye(4))
            for i in range(N_SUBJECTS)]
    mask = nb.Nifti1Image(np.ones(shape, dtype=np.uint8), np.eye(4))
    design = group_design([f"{i:02d}" for i in range(N_SUBJECTS)], "one-sample")
    inputs = (maps, design, mask, [1.0])
    options = {"layout": layout, **({"tfce": True} if kind == "tfce" else
                                    {"threshold": 0.001})}
    bounds = [round(n_perm * j / chunks) for j in range(chunks + 1)]
    tasks = [(inputs, n_perm, a, b, options) for a, b in zip(bounds[:-1], bounds[1:],
                                                              strict=True)]
    begin = time.perf_counter()
    if chunks == 1:
        results = [_chunk(tasks[0])]
    else:
        with ProcessPoolExecutor(chunks, mp_context=multiprocessing.get_context("fork")) \
                as pool:
            results = list(pool.map(_chunk, tasks))
    parallel = time.perf_counter() - begin
    begin = time.perf_counter()
    with threadpool_limits(1):
        combine_permutations(*inputs, [r[0] for r in results], n_perm=n_perm, **options)
    key = "max_tfce" if kind == "tfce" else "max_size"
    null = np.concatenate([r[0][key] for r in results])
    return {"parallel_s": parallel, "combine_s": time.perf_counter() - begin,
            "chunk_cpu_s": sum(r[2] for r in results), "null": null.tolist()}


def fresh(args: list[str]) -> dict:
    """Run this script as a child (``--child ...``) in a fresh process; its JSON."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, __file__, "--child", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def by_mesh(args) -> None:
    print(f"\n  1. per map ({args.maps} permutation maps per mesh; CPU ms)\n"
          f"  {'mesh':<13} {'vertices':>8} {'TFCE 1-sided':>12} {'textbook':>9} "
          f"{'TFCE 2-sided':>12} {'textbook':>9} {'max rel diff':>12} "
          f"{'clusters p.001':>14} {'p.01':>6}", flush=True)
    for name in args.meshes:
        r = fresh(["mesh", name, str(args.maps)])
        diff = max(r["diff_one"], r["diff_two"])
        print(f"  {name:<13} {r['vertices']:>8} {1e3 * r['tfce_one']:12.1f} "
              f"{1e3 * r['book_one']:9.1f} {1e3 * r['tfce_two']:12.1f} "
              f"{1e3 * r['book_two']:9.1f} {diff:12.1e} "
              f"{1e3 * r['cluster_0.001']:14.2f} {1e3 * r['cluster_0.01']:6.2f}", flush=True)


def by_run(args) -> None:
    print(f"\n  2. permutation runs on {MESH} ({2 * N_HEMI} vertices, {N_SUBJECTS} subjects, "
          f"one-sided)\n  {'statistic':<16} {'n_perm':>6} {'chunks':>6} {'wall s':>7} "
          f"{'chunks CPU s':>12} {'s/perm (CPU)':>12} {'combine s':>9} {'= 1 chunk':>9}",
          flush=True)
    for kind in ("tfce", "cluster"):
        for n_perm in args.n_perm:
            single = None
            for chunks in (1, 2):
                r = fresh(["run", kind, str(n_perm), str(chunks)])
                single = r["null"] if chunks == 1 else single
                label = "TFCE" if kind == "tfce" else "clusters p<0.001"
                print(f"  {label:<16} {n_perm:>6} {chunks:>6} {r['parallel_s']:7.1f} "
                      f"{r['chunk_cpu_s']:12.1f} {r['chunk_cpu_s'] / n_perm:12.4f} "
                      f"{r['combine_s']:9.2f} {str(r['null'] == single):>9}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, default=10, help="maps timed per mesh")
    parser.add_argument("--meshes", nargs="+", choices=list(MESHES), default=list(MESHES),
                        help="meshes of measurement 1")
    parser.add_argument("--n-perm", type=int, nargs="+", default=[100, 500],
                        help="permutations of measurement 2")
    parser.add_argument("--parts", nargs="+", choices=("meshes", "runs"),
                        default=["meshes", "runs"], help="measurements 1 and/or 2")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        out = child_mesh(rest[0], int(rest[1])) if kind == "mesh" else \
            child_run(rest[0], int(rest[1]), int(rest[2]))
        print(json.dumps(out))
        return
    begin = time.perf_counter()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if "meshes" in args.parts:
        by_mesh(args)
    if "runs" in args.parts:
        by_run(args)
    print(f"\n  total {time.perf_counter() - begin:.0f} s; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
