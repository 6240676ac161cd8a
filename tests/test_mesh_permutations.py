"""Permutation inference on the mesh: the vertex-level max-t equals nilearn's
non_parametric_inference on SurfaceImages; cluster sizes, masses and TFCE of the
original map equal a breadth-first search over the faces and a pure-Python TFCE; the
result does not depend on the split into chunks."""

from collections import deque

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.datasets import load_fsaverage
from nilearn.glm.second_level import non_parametric_inference
from nilearn.surface import SurfaceImage

from glm_workflows.core.errors import InputError
from glm_workflows.core.permutation_problem import _problem
from glm_workflows.core.permutation_results import combine_permutations
from glm_workflows.core.permutations import permutation_chunk
from glm_workflows.core.surfaces import surface_layout, unpack

N = 10242
N_PERM, SEED, N_SUBJECTS = 30, 7, 8


def _neighbours(faces):
    out = [set() for _ in range(N)]
    for a, b, c in faces.tolist():
        out[a] |= {b, c}
        out[b] |= {a, c}
        out[c] |= {a, b}
    return out


def _bfs(supra, neighbours):
    """Clusters of supra-threshold vertices (lists), by breadth-first search."""
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
        clusters.append(members)
    return clusters


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Eight subjects' packed effect maps on fsaverage5 (a positive patch on each
    hemisphere, a negative one on the left, noise), a mask leaving out a few hundred
    vertices, and the same data as SurfaceImages."""
    tmp = tmp_path_factory.mktemp("meshperm")
    meshes = load_fsaverage("fsaverage5")
    neighbours = {h: _neighbours(meshes["pial"].parts[p].faces)
                  for h, p in (("L", "left"), ("R", "right"))}
    layout = surface_layout("fsaverage5", [N, N])
    shape = tuple(layout["PackedShape"])
    rng = np.random.default_rng(3)
    signal = np.zeros(2 * N)
    for hemi, seed, sign, radius in (("L", 100, 1, 4), ("L", 5000, -1, 3), ("R", 300, 1, 5)):
        ring = {seed}
        for _ in range(radius):
            ring |= {w for v in ring for w in neighbours[hemi][v]}
        signal[np.array(sorted(ring)) + (0 if hemi == "L" else N)] = 1.2 * sign
    mask = np.ones(2 * N, dtype=bool)
    mask[rng.choice(2 * N, 300, replace=False)] = False
    files, images = [], []
    for index in range(N_SUBJECTS):
        values = np.where(mask, signal + rng.standard_normal(2 * N), 0.0)
        path = tmp / f"effect_{index}.nii.gz"
        nb.Nifti1Image(values.reshape(shape, order="F"), np.eye(4)).to_filename(path)
        files.append(str(path))
        images.append(SurfaceImage(mesh=meshes["pial"],
                                   data={"left": values[:N], "right": values[N:]}))
    mask_file = tmp / "mask.nii.gz"
    nb.Nifti1Image(mask.reshape(shape, order="F").astype(np.uint8), np.eye(4)).to_filename(
        mask_file)
    mask_img = SurfaceImage(mesh=meshes["pial"], data={"left": mask[:N], "right": mask[N:]})
    design = pd.DataFrame({"intercept": np.ones(N_SUBJECTS)},
                          index=[f"sub-{i:02d}" for i in range(N_SUBJECTS)])
    return {"files": files, "images": images, "mask_file": str(mask_file),
            "mask_img": mask_img, "mask": mask, "layout": layout, "design": design,
            "neighbours": neighbours}


def _run(study, splits, **options):
    chunks = [permutation_chunk(study["files"], study["design"], study["mask_file"],
                                "intercept", n_perm=N_PERM, seed=SEED, start=a, stop=b,
                                layout=study["layout"], **options) for a, b in splits]
    maps = combine_permutations(study["files"], study["design"], study["mask_file"],
                                "intercept", chunks, n_perm=N_PERM, layout=study["layout"],
                                **options)
    return chunks, maps


def _values(img, layout):
    halves = unpack(np.asarray(img.dataobj, dtype=np.float64), layout)
    return np.concatenate([halves["L"], halves["R"]])


@pytest.mark.parametrize("two_sided", [False, True])
def test_vertex_max_t_equals_nilearn(study, two_sided):
    """t and -log10 vertex-level FWE p equal non_parametric_inference on the
    SurfaceImages (n_jobs=1, same seed and mask), bit for bit."""
    _, maps = _run(study, [(0, N_PERM)], two_sided=two_sided)
    theirs = non_parametric_inference(
        study["images"], design_matrix=study["design"].reset_index(drop=True),
        second_level_contrast="intercept", mask=study["mask_img"], n_perm=N_PERM,
        two_sided_test=two_sided, random_state=SEED, n_jobs=1)
    expected = np.concatenate([np.asarray(theirs.data.parts[p]) for p in ("left", "right")])
    ours = _values(maps["logp_max_t"], study["layout"])
    np.testing.assert_array_equal(ours[study["mask"]], expected[study["mask"]])


@pytest.mark.parametrize("two_sided", [False, True])
def test_split_does_not_change_the_result(study, two_sided):
    """1 chunk or 3 chunks: the same null maxima and the same maps (cluster size and mass,
    TFCE)."""
    one, maps_one = _run(study, [(0, N_PERM)], two_sided=two_sided, threshold=0.01,
                         tfce=True)
    three, maps_three = _run(study, [(0, 7), (7, 19), (19, N_PERM)], two_sided=two_sided,
                             threshold=0.01, tfce=True)
    for key in ("max_t", "max_size", "max_mass", "max_tfce"):
        np.testing.assert_array_equal(one[0][key],
                                      np.concatenate([chunk[key] for chunk in three]))
    assert one[0]["max_size"].max() > 0 and one[0]["max_tfce"].min() > 0
    assert maps_one.keys() == maps_three.keys() >= {"logp_max_size", "logp_max_mass",
                                                    "logp_max_tfce", "size", "tfce"}
    for key in maps_one:
        np.testing.assert_array_equal(np.asarray(maps_one[key].dataobj),
                                      np.asarray(maps_three[key].dataobj))


def test_original_clusters_and_tfce_equal_references(study):
    """The original map's cluster sizes and masses (two-sided) equal a breadth-first
    search over the faces, restricted to the mask; its TFCE (E=1, H=2, 100 heights) a
    pure-Python sum over the same clusters (1e-9 relative)."""
    _, maps = _run(study, [(0, N_PERM)], two_sided=True, threshold=0.01, tfce=True)
    problem = _problem(study["files"], study["design"], study["mask_file"], "intercept",
                       True, 0.01)
    t = np.zeros(2 * N)
    t[study["mask"]] = problem.scores[:, 0]
    size = np.zeros(2 * N)
    mass = np.zeros(2 * N)
    tfce = np.zeros(2 * N)
    top = np.abs(t[study["mask"]]).max()
    heights = np.linspace(0, top, 101)[1:]
    for offset, hemi in ((0, "L"), (N, "R")):
        half, inside = t[offset:offset + N], study["mask"][offset:offset + N]
        for sign in (1, -1):
            for members in _bfs(inside & (sign * half > problem.threshold_t),
                                study["neighbours"][hemi]):
                idx = np.array(members) + offset
                size[idx] = len(members)
                mass[idx] = np.sum(np.abs(t[idx]) - problem.threshold_t)
            for h in heights:
                for members in _bfs(inside & (sign * half >= h), study["neighbours"][hemi]):
                    tfce[np.array(members) + offset] += sign * len(members) * h ** 2
    assert size.max() > 20
    np.testing.assert_array_equal(_values(maps["size"], study["layout"]), size)
    np.testing.assert_allclose(_values(maps["mass"], study["layout"]), mass, rtol=1e-9)
    np.testing.assert_allclose(_values(maps["tfce"], study["layout"]), tfce, rtol=1e-9)


def test_mesh_without_geometry_refused(study):
    layout = dict(study["layout"], Mesh="fsaverage6")
    with pytest.raises(InputError, match="fsaverage6"):
        permutation_chunk(study["files"], study["design"], study["mask_file"], "intercept",
                          n_perm=N_PERM, seed=SEED, start=0, stop=2, layout=layout,
                          tfce=True)
