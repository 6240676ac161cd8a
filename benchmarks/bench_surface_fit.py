"""Benchmark: the vectorized fit on surface runs (20k to 80k vertices) against nilearn's
``FirstLevelModel`` on the same ``SurfaceImage``.

Each size is a synthetic run of two hemispheres of ``n`` vertices (AR(1) noise, coefficient
from 0 to 0.5 along the vertices; condition ``a`` adds its HRF-shaped signal to the first
tenth of the left hemisphere), ``--scans`` volumes at TR 2 s, the tests' block events.
Both fits use the same design matrix (nilearn's, SPM HRF, cosine drifts), AR(1), every
vertex in the mask (nilearn's ``SurfaceMasker`` default), one BLAS thread:

- ours: :func:`glm_workflows.core.glm.fit_glm` on the packed run (the folded NIfTI-1 grid
  the surface nodes use, :func:`glm_workflows.core.surfaces.pack_hemispheres`' layout) and
  :func:`glm_workflows.core.estimates.compute_contrast` of ``a - b``;
- nilearn: ``FirstLevelModel(mask_img=SurfaceMasker)`` fitted on the ``SurfaceImage`` (a
  mesh of the right vertex counts: fsaverage5's for 10242, a placeholder triangle
  otherwise: the fit reads no geometry) and its ``compute_contrast``.

Printed per size: CPU seconds of each fit and contrast (median of ``--repeat``), the ratio
nilearn / ours within each repetition, and the largest |z| difference.

Usage::

    python benchmarks/bench_surface_fit.py [--vertices 10242 40962] [--scans 200] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _run(n_vertices: int, n_scans: int, seed: int = 0):
    """Two hemispheres' series (float64), the design and the layout-shaped image."""
    import nibabel as nb
    import pandas as pd
    from nilearn.glm.first_level import make_first_level_design_matrix

    from glm_workflows.core.packing import folded_shape

    t_r = 2.0
    frame_times = np.arange(n_scans) * t_r
    onsets = np.arange(0, n_scans * t_r - 20, 20.0)
    events = pd.DataFrame({"onset": onsets, "duration": 10.0,
                           "trial_type": ["a" if i % 2 == 0 else "b" for i in range(len(onsets))]})
    design = make_first_level_design_matrix(frame_times, events, hrf_model="spm",
                                            drift_model="cosine", high_pass=1 / 160)
    rng = np.random.default_rng(seed)
    rho = np.linspace(0, 0.5, 2 * n_vertices)
    noise = np.empty((2 * n_vertices, n_scans))
    noise[:, 0] = rng.normal(0, 10, 2 * n_vertices)
    for t in range(1, n_scans):
        noise[:, t] = rho * noise[:, t - 1] + rng.normal(0, 10, 2 * n_vertices)
    data = 1000 + noise
    data[: n_vertices // 10] += 20 * design["a"].to_numpy()
    shape = folded_shape(2 * n_vertices)
    padded = np.zeros((int(np.prod(shape)), n_scans))
    padded[: 2 * n_vertices] = data
    packed = nb.Nifti1Image(padded.reshape(shape + (n_scans,), order="F"), np.eye(4))
    mask = np.zeros(int(np.prod(shape)), dtype=np.uint8)
    mask[: 2 * n_vertices] = 1
    mask_img = nb.Nifti1Image(mask.reshape(shape, order="F"), np.eye(4))
    return data, design, packed, mask_img


def _mesh(n_vertices: int):
    from nilearn.datasets import load_fsaverage
    from nilearn.surface import InMemoryMesh, PolyMesh

    if n_vertices == 10242:
        return load_fsaverage("fsaverage5")["pial"]
    part = InMemoryMesh(np.zeros((n_vertices, 3)), np.array([[0, 1, 2]]))
    return PolyMesh(left=part, right=part)


def _ours(design, packed, mask_img) -> tuple[float, np.ndarray]:
    from glm_workflows.core.estimates import compute_contrast
    from glm_workflows.core.glm import fit_glm

    start = time.process_time()
    fit = fit_glm(packed, design, mask_img=mask_img, noise_model="ar1", smoothing_fwhm=None)
    weights = np.array([1.0 if c == "a" else -1.0 if c == "b" else 0.0 for c in design.columns])
    z = compute_contrast(fit, weights, "t")["z"]
    seconds = time.process_time() - start
    return seconds, np.asarray(z.get_fdata()).ravel(order="F")


def _nilearn(data, design, n_vertices: int) -> tuple[float, np.ndarray]:
    from nilearn.glm.first_level import FirstLevelModel
    from nilearn.maskers import SurfaceMasker
    from nilearn.surface import SurfaceImage

    mesh = _mesh(n_vertices)
    img = SurfaceImage(mesh=mesh, data={"left": data[:n_vertices],
                                        "right": data[n_vertices:]})
    everything = np.ones(n_vertices, dtype=bool)
    masker = SurfaceMasker(SurfaceImage(mesh=mesh, data={"left": everything,
                                                         "right": everything})).fit()
    start = time.process_time()
    model = FirstLevelModel(mask_img=masker, noise_model="ar1", minimize_memory=True)
    model.fit(img, design_matrices=[design])
    z = model.compute_contrast("a - b", output_type="z_score")
    seconds = time.process_time() - start
    return seconds, np.concatenate([np.asarray(z.data.parts[p]).ravel() for p in ("left", "right")])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vertices", type=int, nargs="+", default=[10242, 40962],
                        help="vertices per hemisphere (10242: fsaverage5; 40962: fsaverage6)")
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; one BLAS thread; "
          "CPU seconds of fit + contrast", flush=True)
    print(f"{'vertices':>9} {'scans':>6} {'ours':>8} {'nilearn':>8} {'ratio':>8} {'max |dz|':>9}")
    with threadpool_limits(1):
        for n in args.vertices:
            data, design, packed, mask_img = _run(n, args.scans)
            ours, theirs, ratios, worst = [], [], [], 0.0
            for _ in range(args.repeat):
                seconds, z_ours = _ours(design, packed, mask_img)
                their_seconds, z_theirs = _nilearn(data, design, n)
                ours.append(seconds)
                theirs.append(their_seconds)
                ratios.append(their_seconds / seconds)
                worst = max(worst, float(np.max(np.abs(z_ours[: 2 * n] - z_theirs))))
            print(f"{2 * n:>9} {args.scans:>6} {statistics.median(ours):>7.2f}s "
                  f"{statistics.median(theirs):>7.2f}s {statistics.median(ratios):>7.1f}x "
                  f"{worst:>9.1e}", flush=True)


if __name__ == "__main__":
    main()
