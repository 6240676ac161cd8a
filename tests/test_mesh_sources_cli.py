"""A mesh nilearn does not ship, found in a TemplateFlow home, through the command line:
a synthetic ``space-fsaverage_den-10k`` study (its TemplateFlow files written from nilearn's
fsaverage5, no network) gets clusters, a cluster table equal to nilearn's
``get_clusters_table`` on the SurfaceImage, figures, and permutations (cluster size, mass,
TFCE) by the BIDS-App group call; the sidecars name the mesh's files."""

import json

import nibabel as nb
import numpy as np
import pytest
from nilearn.glm import threshold_stats_img
from nilearn.reporting import get_clusters_table
from nilearn.surface import InMemoryMesh, PolyMesh, SurfaceImage, load_surf_mesh
from test_bids_names import all_problems
from test_mesh_sources import PARTS, write_templateflow_home

from glm_workflows.cli import main
from glm_workflows.core.surface_names import surface_name
from glm_workflows.report.markup import SURFACE_CAPTIONS
from glm_workflows.synthetic_surface import write_surface_study

pytestmark = pytest.mark.slow  # CLI runs

SUBJECTS = ("01", "02", "03")
PREFIX = "task-tiny_space-fsaverage_den-10k"


def _gifti(path) -> np.ndarray:
    return np.column_stack([np.asarray(d.data) for d in nb.load(str(path)).darrays]).squeeze()


def test_templateflow_mesh_through_the_command_line(tmp_path, monkeypatch, face_rings):
    monkeypatch.delenv("TEMPLATEFLOW_HOME", raising=False)
    home = tmp_path / "templateflow"
    write_templateflow_home(home)
    files = {hemi: home / "tpl-fsaverage" / f"tpl-fsaverage_hemi-{hemi}_den-10k_pial.surf.gii"
             for hemi, _ in PARTS}
    patch = face_rings(load_surf_mesh(str(files["L"])).faces, 5000, 4)
    raw, derivatives = write_surface_study(tmp_path / "s", subjects=SUBJECTS, n_scans=40,
                                           convolved=True,
                                           space="fsaverage", den="10k",
                                           effect_vertices=patch)
    out, work = tmp_path / "out", str(tmp_path / "work")
    assert main([str(raw), str(out), "participant", "--derivatives", str(derivatives),
                 "--task", "tiny", "--space", "fsaverage", "--den", "10k",
                 "--contrast", "aGtB=a - b", "--height-control", "fpr", "--alpha", "0.001",
                 "--table-min-cluster-size", "0", "--templateflow-home", str(home),
                 "--work-dir", work, "-q"]) == 0
    mesh = PolyMesh(**{part: InMemoryMesh(*(lambda m: (m.coordinates, m.faces))(
        load_surf_mesh(str(files[hemi])))) for hemi, part in PARTS})
    folder, stem = out / "sub-01", f"sub-01_{PREFIX}_contrast-aGtB"

    def image(name) -> SurfaceImage:
        return SurfaceImage(mesh=mesh, data={part: _gifti(folder / surface_name(name, hemi))
                                             .astype(float) for hemi, part in PARTS})

    settings = json.loads((folder / f"{stem}_stat-z_desc-thresholded_statmap.json")
                          .read_text())
    assert settings["Mesh"] == "fsaverage_den-10k" and settings["ClusterThreshold"] == 10
    assert settings["MeshSource"]["Source"] == "templateflow"
    assert settings["MeshSource"]["Files"]["pial"]["L"] == str(files["L"].absolute())
    assert "ClusterExtentNotApplied" not in settings and not settings["TwoSided"]
    # the thresholded map: nilearn's threshold_stats_img on our z map, same mask and extent
    mask = image(f"sub-01_{PREFIX}_desc-brain_mask.nii.gz")
    expected, threshold = threshold_stats_img(
        image(f"{stem}_stat-z_statmap.nii.gz"), mask_img=mask, alpha=settings["Alpha"],
        height_control=settings["HeightControl"], cluster_threshold=10, two_sided=False)
    assert settings["Threshold"] == pytest.approx(threshold, abs=1e-6)
    ours = image(f"{stem}_stat-z_desc-thresholded_statmap.nii.gz")
    for part in ("left", "right"):
        np.testing.assert_allclose(ours.data.parts[part],
                                   np.asarray(expected.data.parts[part], dtype=float),
                                   rtol=1e-6, atol=1e-6)
    # the cluster table: nilearn's get_clusters_table on the thresholded SurfaceImage
    table = np.genfromtxt(folder / f"{stem}_clusters.tsv", delimiter="\t", names=True,
                          dtype=None, encoding="utf-8")
    table = np.atleast_1d(table)
    theirs = get_clusters_table(ours, stat_threshold=settings["Threshold"])
    assert len(table) == len(theirs) >= 1
    assert [str(h) for h in table["Hemisphere"]] == \
        [{"left": "L", "right": "R"}[h] for h in theirs["Hemisphere"]]
    np.testing.assert_allclose(table["Peak_Stat"], theirs["Peak Stat"], rtol=1e-12)
    assert table["Cluster_Size_vertices"].tolist() == \
        theirs["Cluster Size (vertices)"].tolist()
    sidecar = json.loads((folder / f"{stem}_clusters.json").read_text())
    assert sidecar["MeshSource"]["Source"] == "templateflow"
    assert table["Peak_Vertex"][0] in patch  # the signal's patch is the first cluster
    for desc in ("surface", "thresholded"):
        assert (folder / f"{stem}_stat-z_desc-{desc}_statmap.png").exists()
    provenance = json.loads((folder / f"{PREFIX}_provenance.json").read_text())
    assert provenance["Parameters"]["templateflow_home"] == str(home.absolute())
    assert provenance["Parameters"]["mesh_source"] == settings["MeshSource"]
    # permutations on the mesh by the BIDS-App group call (the home given again)
    assert main([str(raw), str(out), "group", "--task", "tiny", "--space", "fsaverage",
                 "--group", "one-sample", "--permutations", "19", "--tfce",
                 "--templateflow-home", str(home), "--work-dir", work, "-q"]) == 0
    group, prefix = out / "group", PREFIX
    record = json.loads((group / f"{prefix}_contrast-aGtB_desc-permutations_statmap.json")
                        .read_text())
    assert record["Mesh"] == "fsaverage_den-10k"
    assert record["MeshSource"] == settings["MeshSource"]
    provenance = json.loads((group / f"{prefix}_provenance.json").read_text())
    assert provenance["Parameters"]["mesh_source"] == settings["MeshSource"]
    for desc in ("clusterSizeFWE", "clusterMassFWE", "tfceFWE"):
        name = f"{prefix}_contrast-aGtB_stat-logp_desc-{desc}_statmap.nii.gz"
        assert all((group / surface_name(name, hemi)).exists() for hemi in "LR")
    assert (group / f"{prefix}_contrast-aGtB_stat-z_desc-thresholded_statmap.png").exists()
    # every name (the two figures per map too) follows the BIDS schema
    assert all_problems(out) == []
    report = (out / "sub-01.html").read_text()
    assert all(caption in report for caption in SURFACE_CAPTIONS)
