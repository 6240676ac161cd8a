"""The synthetic surface study's patch and mesh-smoothed noise
(:mod:`glm_workflows.synthetic_surface`), against a breadth-first search over the faces and
the variance formula."""

from __future__ import annotations

from collections import deque

import numpy as np
from nilearn.datasets import load_fsaverage

from glm_workflows.synthetic_surface import FSAVERAGE5_VERTICES, mesh_patch, mesh_smoother


def _neighbours(faces) -> list[set]:
    found = [set() for _ in range(FSAVERAGE5_VERTICES)]
    for a, b, c in np.asarray(faces):
        found[a] |= {b, c}
        found[b] |= {a, c}
        found[c] |= {a, b}
    return found


def test_the_patch_is_the_vertices_within_k_edges():
    """``mesh_patch(center, k)`` equals a breadth-first search over the left faces."""
    neighbours = _neighbours(load_fsaverage("fsaverage5")["pial"].parts["left"].faces)
    depth, queue = {100: 0}, deque([100])
    while queue:
        vertex = queue.popleft()
        if depth[vertex] == 4:
            continue
        for other in neighbours[vertex] - depth.keys():
            depth[other] = depth[vertex] + 1
            queue.append(other)
    np.testing.assert_array_equal(mesh_patch(100, 4), sorted(depth))


def test_smoothed_noise_keeps_its_variance_and_is_smooth():
    """Each row of the smoother has unit norm (so white noise keeps variance 1 at every
    vertex: the sum of the squared weights), and neighbours become correlated."""
    smoother = mesh_smoother("L", 4)
    norms = np.asarray(smoother.multiply(smoother).sum(axis=1)).ravel()
    np.testing.assert_allclose(norms, 1.0, rtol=1e-12)
    noise = smoother @ np.random.default_rng(0).normal(size=(FSAVERAGE5_VERTICES, 400))
    assert abs(noise.var() - 1.0) < 0.02
    faces = np.asarray(load_fsaverage("fsaverage5")["pial"].parts["left"].faces)
    a, b = faces[:, 0], faces[:, 1]
    correlation = np.mean([np.corrcoef(noise[i], noise[j])[0, 1]
                           for i, j in zip(a[:200], b[:200], strict=True)])
    assert correlation > 0.5
