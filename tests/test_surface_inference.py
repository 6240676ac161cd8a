"""Inference on the mesh: height thresholds equal nilearn's threshold_stats_img on a
SurfaceImage, clusters of connected vertices equal nilearn's get_clusters_table (one-sided)
and a breadth-first search over the faces, vertex areas a third of the incident
triangles' areas (Heron's formula)."""

import math
import warnings
from collections import deque

import numpy as np
import pytest
from nilearn.datasets import load_fsaverage
from nilearn.glm import threshold_stats_img
from nilearn.reporting import get_clusters_table
from nilearn.surface import SurfaceImage

from glm_workflows.core.errors import InputError
from glm_workflows.core.mesh import geometry_for
from glm_workflows.core.surface_inference import surface_cluster_table, threshold_surface
from glm_workflows.core.surfaces import surface_layout, unpack

N = 10242


@pytest.fixture(scope="module")
def meshes():
    return load_fsaverage("fsaverage5")


def _neighbours(faces):
    """Each vertex's neighbours, from the faces, as Python sets."""
    out = [set() for _ in range(N)]
    for a, b, c in faces.tolist():
        out[a] |= {b, c}
        out[b] |= {a, c}
        out[c] |= {a, b}
    return out


def _bfs_clusters(supra, neighbours):
    """Clusters of supra-threshold vertices by breadth-first search, in order of their
    lowest vertex."""
    seen, clusters = set(), []
    for start in np.flatnonzero(supra).tolist():
        if start in seen:
            continue
        queue, members = deque([start]), []
        seen.add(start)
        while queue:
            v = queue.popleft()
            members.append(v)
            for w in neighbours[v]:
                if supra[w] and w not in seen:
                    seen.add(w)
                    queue.append(w)
        clusters.append(sorted(members))
    return clusters


def _heron_areas(coords, faces):
    """Per vertex, a third of its triangles' areas (Heron's formula, a Python loop)."""
    areas = np.zeros(len(coords))
    for face in faces.tolist():
        p = [coords[i] for i in face]
        a, b, c = (math.dist(p[0], p[1]), math.dist(p[1], p[2]), math.dist(p[2], p[0]))
        s = (a + b + c) / 2
        area = math.sqrt(max(s * (s - a) * (s - b) * (s - c), 0.0))
        for i in face:
            areas[i] += area / 3
    return areas


@pytest.fixture(scope="module")
def study(meshes):
    """A z map with three patches (two positive, one negative) over noise, a mask
    leaving out 5 % of the vertices, both packed, and the SurfaceImages of nilearn."""
    layout = surface_layout("fsaverage5", [N, N])
    geometry = geometry_for(layout)
    rng = np.random.default_rng(0)
    z = rng.standard_normal(2 * N)
    neighbours = {hemi: _neighbours(meshes["pial"].parts[part].faces)
                  for hemi, part in (("L", "left"), ("R", "right"))}
    for hemi, seed, sign, radius in (("L", 100, 1, 4), ("L", 5000, -1, 3), ("R", 300, 1, 5)):
        ring = {seed}
        for _ in range(radius):
            ring |= {w for v in ring for w in neighbours[hemi][v]}
        z[np.array(sorted(ring)) + (0 if hemi == "L" else N)] += 5 * sign
    mask = rng.random(2 * N) > 0.05
    shape = tuple(layout["PackedShape"])
    mesh = meshes["pial"]
    img = SurfaceImage(mesh=mesh, data={"left": z[:N], "right": z[N:]})
    mask_img = SurfaceImage(mesh=mesh, data={"left": mask[:N], "right": mask[N:]})
    return {"layout": layout, "geometry": geometry, "neighbours": neighbours,
            "z": z.reshape(shape, order="F"), "mask": mask.reshape(shape, order="F"),
            "img": img, "mask_img": mask_img}


@pytest.mark.parametrize("height_control", ["fpr", "fdr", "bonferroni"])
@pytest.mark.parametrize("two_sided", [False, True])
@pytest.mark.parametrize("cluster_threshold", [0, 10])
def test_threshold_equals_nilearn(study, height_control, two_sided, cluster_threshold):
    """The threshold equals threshold_stats_img's on the SurfaceImage (mask given), and so
    does the thresholded map, except (two-sided, with a cluster extent) at vertices where
    nilearn joins a negative vertex to an adjacent positive cluster: here each sign's
    clusters are counted on their own, as for volumes."""
    thresholded, z_threshold = threshold_surface(
        study["z"], study["mask"], study["layout"], study["geometry"],
        height_control=height_control, alpha=0.001, threshold=None,
        cluster_threshold=cluster_threshold, two_sided=two_sided)
    expected, expected_threshold = threshold_stats_img(
        study["img"], mask_img=study["mask_img"], alpha=0.001,
        height_control=height_control, cluster_threshold=cluster_threshold,
        two_sided=two_sided)
    assert z_threshold == expected_threshold
    halves = unpack(thresholded, study["layout"])
    differ = np.concatenate([halves[h] != expected.data.parts[p]
                             for h, p in (("L", "left"), ("R", "right"))])
    if not (two_sided and cluster_threshold):
        assert not differ.any()
    else:  # only vertices nilearn kept through an adjacent cluster of the other sign
        ours = np.concatenate([halves["L"], halves["R"]])
        assert (ours[differ] == 0).all() and differ.sum() <= 2


def test_one_sided_table_equals_nilearn(study):
    """Cluster by cluster: hemisphere, peak z and size equal get_clusters_table's on the
    SurfaceImage of our thresholded map."""
    thresholded, z_threshold = threshold_surface(
        study["z"], study["mask"], study["layout"], study["geometry"],
        height_control="fpr", alpha=0.001, threshold=None, cluster_threshold=10,
        two_sided=False)
    table = surface_cluster_table(thresholded, study["layout"], study["geometry"],
                                  min_cluster_size=0, two_sided=False)
    halves = unpack(thresholded, study["layout"])
    img = SurfaceImage(mesh=study["img"].mesh, data={"left": halves["L"], "right": halves["R"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = get_clusters_table(img, stat_threshold=z_threshold)
    assert len(table) == len(expected) == 2
    assert table["Hemisphere"].tolist() == [{"left": "L", "right": "R"}[h]
                                            for h in expected["Hemisphere"]]
    assert table["Peak Stat"].tolist() == expected["Peak Stat"].tolist()
    assert table["Cluster Size (vertices)"].tolist() \
        == expected["Cluster Size (vertices)"].tolist()


def test_table_equals_breadth_first_search(study, meshes):
    """Two-sided: every cluster, its peak (largest |z|), size and midthickness area
    equal a breadth-first search over the faces and Heron's areas of the average of the
    pial and white coordinates (1e-9 mm²)."""
    thresholded, _ = threshold_surface(
        study["z"], study["mask"], study["layout"], study["geometry"],
        height_control="fpr", alpha=0.001, threshold=None, cluster_threshold=0,
        two_sided=True)
    table = surface_cluster_table(thresholded, study["layout"], study["geometry"],
                                  min_cluster_size=5, two_sided=True)
    halves = unpack(thresholded, study["layout"])
    rows = []
    for sign in (1, -1):
        for hemi, part in (("L", "left"), ("R", "right")):
            coords = (np.asarray(meshes["pial"].parts[part].coordinates, dtype=float)
                      + np.asarray(meshes["white_matter"].parts[part].coordinates,
                                   dtype=float)) / 2
            areas = _heron_areas(coords, meshes["pial"].parts[part].faces)
            for members in _bfs_clusters(sign * halves[hemi] > 0, study["neighbours"][hemi]):
                if len(members) < 5:
                    continue
                values = halves[hemi][members]
                peak = members[int(np.argmax(np.abs(values)))]
                rows.append((hemi, peak, halves[hemi][peak], len(members),
                             areas[members].sum()))
    assert len(rows) == len(table) == 3
    for row, (_, ours) in zip(rows, table.iterrows(), strict=True):
        assert (ours["Hemisphere"], ours["Peak Vertex"], ours["Peak Stat"],
                ours["Cluster Size (vertices)"]) == row[:4]
        assert ours["Cluster Area (mm2)"] == pytest.approx(row[4], abs=1e-9)
    assert table["Cluster ID"].tolist() == [1, 2, 3]
    assert table["Peak Stat"].iloc[-1] < 0  # the negative cluster last, its minimum


def test_cluster_extent_needs_the_mesh(study):
    """A mesh nilearn does not ship: a height threshold only; a cluster extent is refused."""
    layout = dict(study["layout"], Mesh="fsaverage6")
    assert geometry_for(layout) is None
    _, threshold = threshold_surface(study["z"], study["mask"], layout, None,
                                     height_control="fpr", alpha=0.001, threshold=None,
                                     cluster_threshold=0, two_sided=False)
    assert threshold > 3
    with pytest.raises(InputError, match="fsaverage6"):
        threshold_surface(study["z"], study["mask"], layout, None, height_control="fpr",
                          alpha=0.001, threshold=None, cluster_threshold=10,
                          two_sided=False)
