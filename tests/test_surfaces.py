"""Surface runs (fMRIPrep's GIFTI hemisphere pairs): found by their entities in every
naming fMRIPrep has used, refused in one line where a step needs a 3-D grid, and fitted
through the command line to the maps of nilearn's FirstLevelModel on the same
SurfaceImage (same events, confounds, censoring, noise model and mask)."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.datasets import load_fsaverage
from nilearn.glm import threshold_stats_img
from nilearn.glm.contrasts import compute_fixed_effects
from nilearn.glm.first_level import FirstLevelModel
from nilearn.glm.second_level import SecondLevelModel
from nilearn.interfaces.fmriprep import load_confounds_strategy
from nilearn.maskers import SurfaceMasker
from nilearn.surface import SurfaceImage

from glm_workflows.cli import main
from glm_workflows.core.errors import InputError
from glm_workflows.core.packing import NIFTI1_MAX_DIM, folded_shape
from glm_workflows.core.surface_names import surface_name
from glm_workflows.core.surfaces import pack_surface, unpack
from glm_workflows.inputs.fmriprep import find_derivative_runs
from glm_workflows.synthetic_surface import write_surface_study

PREFIX = "sub-01_task-tiny"
SCRUBBING = {"motion": "basic", "wm_csf": "basic", "fd_threshold": 0.5,
             "std_dvars_threshold": 1.5, "scrub": 0}


def _gifti(path) -> np.ndarray:
    """A GIFTI file's arrays as columns, read with nibabel alone."""
    return np.column_stack([np.asarray(d.data) for d in nb.load(str(path)).darrays])


def _flags(options: dict) -> list:
    return [item for name, value in options.items()
            for item in (f"--{name.replace('_', '-')}", str(value))]


@pytest.fixture(scope="module")
def surface_run(tmp_path_factory):
    """The CLI (BIDS-App call) on a synthetic fsaverage5 study, censoring by nilearn's
    scrubbing strategy: ``(raw, derivatives, output_dir)``."""
    tmp = tmp_path_factory.mktemp("surface")
    raw, derivatives = write_surface_study(tmp / "study", n_scans=60)
    out = tmp / "out"
    argv = [str(raw), str(out), "participant", "--derivatives", str(derivatives),
            "--task", "tiny", "--space", "fsaverage5",
            "--contrast", "aGtB=a - b", "--f-contrast", "effects=a,b",
            "--confounds-strategy", "scrubbing", *_flags(SCRUBBING),
            "--work-dir", str(tmp / "work"), "-q"]
    assert main(argv) == 0
    return raw, derivatives, out


def test_maps_equal_nilearn_on_the_surface_image(surface_run):
    """Per hemisphere, z, effect and variance maps of a t and an F contrast equal
    FirstLevelModel's on the SurfaceImage of the two GIFTI files (events, confounds and
    sample mask from load_confounds_strategy, ar1, the same vertex mask given as a
    SurfaceMasker) to 1e-6 (the GIFTI maps are float32); outside the mask they are 0."""
    raw, derivatives, out = surface_run
    func = derivatives / "sub-01" / "func"
    files = {hemi: func / f"{PREFIX}_hemi-{hemi}_space-fsaverage5_bold.func.gii"
             for hemi in "LR"}
    data = {part: _gifti(files[hemi]) for part, hemi in (("left", "L"), ("right", "R"))}
    mesh = load_fsaverage("fsaverage5")["pial"]
    img = SurfaceImage(mesh=mesh, data=data)
    mask_data = {part: np.isfinite(values).all(axis=1) & (values.std(axis=1) > 0)
                 for part, values in data.items()}
    assert 0 < sum(m.sum() for m in mask_data.values()) < 2 * 10242  # the zero vertices left out
    masker = SurfaceMasker(SurfaceImage(mesh=mesh, data=mask_data)).fit()
    confounds, sample_mask = load_confounds_strategy(str(files["L"]), "scrubbing", **SCRUBBING)
    assert sample_mask is not None and len(sample_mask) < 60  # volumes were censored
    design = json.loads((out / "sub-01" / f"{PREFIX}_space-fsaverage5_design.json").read_text())
    drift = None if design["DriftModel"] == "none" else design["DriftModel"]
    model = FirstLevelModel(t_r=2.0, mask_img=masker, noise_model="ar1", hrf_model="spm",
                            drift_model=drift, high_pass=0.00625, slice_time_ref=0.0)
    events = pd.read_csv(raw / "sub-01" / "func" / f"{PREFIX}_events.tsv", sep="\t")
    model.fit(img, events=events, confounds=confounds, sample_masks=[sample_mask])
    columns = list(model.design_matrices_[0].columns)
    effects = np.eye(len(columns))[[columns.index("a"), columns.index("b")]]
    worst = 0.0
    for name, rows, stat in (("aGtB", "a - b", "t"), ("effects", effects, "F")):
        theirs = model.compute_contrast(rows, stat_type=stat, output_type="all")
        for ours_name, their_name in (("z", "z_score"), ("effect", "effect_size"),
                                      ("variance", "effect_variance"), (stat, "stat")):
            for part, hemi in (("left", "L"), ("right", "R")):
                volume_name = f"{PREFIX}_space-fsaverage5_contrast-{name}_stat-{ours_name}" \
                              "_statmap.nii.gz"
                ours = _gifti(out / "sub-01" / surface_name(volume_name, hemi))
                expected = np.asarray(theirs[their_name].data.parts[part], dtype=float)
                expected = expected.reshape(len(mask_data[part]), -1)
                inside = mask_data[part]
                assert ours.shape == expected.shape
                np.testing.assert_allclose(ours[inside], expected[inside], rtol=1e-6,
                                           atol=1e-6)
                assert not ours[~inside].any()
                if ours_name == "z":
                    worst = max(worst, float(np.abs(ours[inside] - expected[inside]).max()))
    assert worst < 1e-6


def test_outputs_named_per_hemisphere(surface_run):
    """Every map is written once per hemisphere, hemi- before space- (schema order),
    as .func.gii, the thresholded z maps too; no volume map; one cluster table (TSV) per
    contrast; the report shows the threshold, the table and the z map drawn on the
    fsaverage5 mesh."""
    _, _, out = surface_run
    names = sorted(p.name for p in (out / "sub-01").iterdir())
    assert f"{PREFIX}_hemi-L_space-fsaverage5_contrast-aGtB_stat-z_statmap.func.gii" in names
    assert f"{PREFIX}_hemi-R_space-fsaverage5_contrast-effects_stat-F_statmap.func.gii" in names
    assert f"{PREFIX}_hemi-L_space-fsaverage5_desc-brain_mask.func.gii" in names
    assert not [n for n in names if n.endswith(".nii.gz")]
    assert f"{PREFIX}_space-fsaverage5_contrast-aGtB_clusters.tsv" in names
    for hemi in "LR":
        assert (f"{PREFIX}_hemi-{hemi}_space-fsaverage5_contrast-aGtB_stat-z_"
                "desc-thresholded_statmap.func.gii") in names
    settings = json.loads((out / "sub-01" / f"{PREFIX}_space-fsaverage5_contrast-aGtB_stat-z_"
                           "desc-thresholded_statmap.json").read_text())
    assert settings["Mesh"] == "fsaverage5" and settings["Threshold"] is not None
    left = [n for n in names if "hemi-L" in n]
    assert sorted(n.replace("hemi-L", "hemi-R") for n in left) == \
        sorted(n for n in names if "hemi-R" in n)
    mask = _gifti(out / "sub-01" / f"{PREFIX}_hemi-L_space-fsaverage5_desc-brain_mask.func.gii")
    assert mask.shape == (10242, 1)
    report = (out / "sub-01.html").read_text()
    assert "Surface maps: no volume figure" in report
    assert "Threshold: FDR" in report and "clusters ≥ 10 vertices" in report
    figure = f"{PREFIX}_space-fsaverage5_contrast-aGtB_stat-z_desc-surface_statmap.png"
    assert figure in names and "inflated mesh" in report  # fsaverage5: drawn on the mesh


def test_surface_name_schema_order():
    """hemi- enters after the run's entities and before space-/den- and the output's own."""
    name = "sub-01_ses-2_task-x_run-1_space-fsaverage_den-10k_contrast-a_stat-z_statmap.nii.gz"
    assert surface_name(name, "R") == ("sub-01_ses-2_task-x_run-1_hemi-R_space-fsaverage_"
                                       "den-10k_contrast-a_stat-z_statmap.func.gii")
    assert surface_name("sub-01_task-x_design.tsv", "L") == "sub-01_task-x_design.tsv"


@pytest.mark.parametrize("naming", ["current", "older", "oldest"])
def test_pairs_found_in_every_naming(tmp_path, naming):
    """fMRIPrep's three name orders, with den-, give one run of two hemispheres, its
    confounds file and TR; --den selects."""
    raw, derivatives = write_surface_study(tmp_path, n_scans=40, n_vertices=50,
                                           space="fsaverage", den="10k", naming=naming)
    runs = find_derivative_runs(raw, derivatives, "tiny", space="fsaverage", den="10k")
    assert len(runs) == 1
    run = runs[0]
    assert [p.split("/")[-1].count("hemi-") for p in run.bold_files] == [1, 1]
    assert "hemi-L" in run.bold_files[0] and "hemi-R" in run.bold_files[1]
    assert run.surface == "fsaverage_den-10k" and run.space == "fsaverage"
    assert run.entities == {"space": "fsaverage", "den": "10k"}
    assert run.confounds_file.endswith("_desc-confounds_timeseries.tsv")
    assert run.t_r == 2.0


def test_missing_hemisphere_is_one_line(tmp_path):
    """A lone hemisphere: one line naming the file found and the one expected."""
    raw, derivatives = write_surface_study(tmp_path, n_scans=40, n_vertices=50)
    right = derivatives / "sub-01" / "func" / f"{PREFIX}_hemi-R_space-fsaverage5_bold.func.gii"
    right.unlink()
    with pytest.raises(InputError) as error:
        find_derivative_runs(raw, derivatives, "tiny", space="fsaverage5")
    message = str(error.value)
    assert "\n" not in message
    assert f"{PREFIX}_hemi-L_space-fsaverage5_bold.func.gii" in message
    assert str(right) in message


@pytest.mark.parametrize("flags, words", [
    (["--smoothing-fwhm", "6"], "not smoothed"),
    (["--noise-model", "ar1-corrected"], "3-D grid"),
    (["--mask", "MASK"], "not read for surface runs"),
])
def test_refused_in_one_line(tmp_path, capsys, flags, words):
    """Surface smoothing, the calibrated noise models and a user mask are refused in one
    line."""
    raw, derivatives = write_surface_study(tmp_path / "s", n_scans=40, n_vertices=50)
    if "MASK" in flags:
        mask = tmp_path / "mask.nii.gz"
        nb.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.eye(4)).to_filename(mask)
        flags = [str(mask) if flag == "MASK" else flag for flag in flags]
    argv = [str(raw), str(tmp_path / "out"), "participant", "--derivatives",
            str(derivatives), "--task", "tiny", "--space", "fsaverage5",
            "--contrast", "aGtB=a - b", "--work-dir", str(tmp_path / "work"), *flags]
    assert main(argv) != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and words in lines[0]


def test_fsnative_refused_above_subject_level(tmp_path, capsys):
    """fsnative (each subject's own mesh) is refused for a group model, in one line."""
    raw, derivatives = write_surface_study(tmp_path / "s", subjects=("01", "02"), n_scans=40,
                                           n_vertices=50, space="fsnative")
    argv = ["--bids-dir", str(raw), "--output-dir", str(tmp_path / "out"), "--derivatives",
            str(derivatives), "--task", "tiny", "--space", "fsnative",
            "--contrast", "aGtB=a - b", "--group", "one-sample",
            "--work-dir", str(tmp_path / "work")]
    assert main(argv) != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and "space-fsnative" in lines[0]


def test_packing_folds_large_meshes(tmp_path):
    """A mesh with more vertices than a NIfTI-1 axis holds is folded; unpacking gives
    each hemisphere's values back; the padding is out of the mask."""
    n = 20000  # 40000 in all > 32767
    rng = np.random.default_rng(0)
    paths = []
    values = {}
    for hemi in "LR":
        values[hemi] = rng.normal(size=(n, 3)).astype(np.float32)
        path = tmp_path / f"hemi-{hemi}.func.gii"
        nb.save(nb.gifti.GiftiImage(darrays=[nb.gifti.GiftiDataArray(values[hemi][:, t])
                                             for t in range(3)]), str(path))
        paths.append(path)
    img, mask, layout = pack_surface(paths, "fsaverage6")
    assert max(img.shape[:3]) <= NIFTI1_MAX_DIM and img.shape[:3] == folded_shape(2 * n)
    assert mask.sum() == 2 * n
    back = unpack(np.asarray(img.dataobj), layout)
    for hemi in "LR":
        np.testing.assert_array_equal(back[hemi], values[hemi])


def test_subject_fixed_effects_equal_nilearn(tmp_path):
    """A subject's two surface runs combined: z, effect and variance per hemisphere equal
    nilearn's compute_fixed_effects on the runs' written maps as SurfaceImages (the
    intersection of their masks, their degrees of freedom) to 1e-6; no threshold."""
    raw, derivatives = write_surface_study(tmp_path / "study", n_scans=60, runs=2)
    out = tmp_path / "out"
    argv = [str(raw), str(out), "participant", "--derivatives", str(derivatives),
            "--task", "tiny", "--space", "fsaverage5", "--contrast", "aGtB=a - b",
            "--work-dir", str(tmp_path / "work"), "-q"]
    assert main(argv) == 0
    folder = out / "sub-01"
    mesh = load_fsaverage("fsaverage5")["pial"]

    def surface_image(stem: str, suffix: str) -> SurfaceImage:
        return SurfaceImage(mesh=mesh, data={
            part: _gifti(folder / surface_name(f"{stem}_{suffix}.nii.gz", hemi)).astype(float)
            for part, hemi in (("left", "L"), ("right", "R"))})

    runs = [f"{PREFIX}_run-{i}_space-fsaverage5" for i in (1, 2)]
    effects = [surface_image(f"{r}_contrast-aGtB", "stat-effect_statmap") for r in runs]
    variances = [surface_image(f"{r}_contrast-aGtB", "stat-variance_statmap") for r in runs]
    masks = [surface_image(r, "desc-brain_mask") for r in runs]
    inside = {part: np.logical_and(*(m.data.parts[part].squeeze() > 0 for m in masks))
              for part in ("left", "right")}
    dofs = [json.loads((folder / f"{r}_contrast-aGtB_statmap.json").read_text())
            ["DegreesOfFreedom"] for r in runs]
    with pytest.warns(RuntimeWarning, match="mask"):
        effect, variance, _, z = compute_fixed_effects(
            effects, variances, mask=SurfaceImage(mesh=mesh, data=inside),
            precision_weighted=False, dofs=dofs)
    combined = f"{PREFIX}_space-fsaverage5_contrast-aGtB"
    for name, theirs in (("z", z), ("effect", effect), ("variance", variance)):
        for part, hemi in (("left", "L"), ("right", "R")):
            ours = _gifti(folder / surface_name(f"{combined}_stat-{name}_statmap.nii.gz",
                                                hemi)).squeeze()
            expected = np.asarray(theirs.data.parts[part], dtype=float).squeeze()
            np.testing.assert_allclose(ours[inside[part]], expected[inside[part]],
                                       rtol=1e-6, atol=1e-6)
            assert not ours[~inside[part]].any()
    assert list(folder.glob("*contrast-aGtB_clusters.tsv"))  # the runs' and the subject's


@pytest.mark.parametrize("route", ["together", "bids-app"])
def test_group_equal_nilearn_second_level(tmp_path, route):
    """The group mean, with the participants (--group one-sample) or by the BIDS-App group
    call on the written GIFTI maps: per hemisphere, the group maps equal nilearn's
    SecondLevelModel on the subjects' written effect maps as SurfaceImages in the
    intersection of their masks (t: relative 1e-6, where it is large); the thresholded z
    map equals threshold_stats_img's on nilearn's z map (1e-6); the group report names the
    GIFTI z maps, the sidecars the GIFTI inputs."""
    subjects = ("01", "02", "03", "04")
    raw, derivatives = write_surface_study(tmp_path / "study", subjects=subjects, n_scans=60)
    out, work = tmp_path / "out", str(tmp_path / "work")
    common = ["--derivatives", str(derivatives), "--task", "tiny", "--space", "fsaverage5",
              "--contrast", "aGtB=a - b", "--work-dir", work, "-q", "--cluster-threshold", "0",
              "--height-control", "fpr", "--alpha", "0.01"]
    if route == "together":
        assert main(["--bids-dir", str(raw), "--output-dir", str(out), *common,
                     "--group", "one-sample"]) == 0
    else:
        assert main([str(raw), str(out), "participant", *common]) == 0
        assert main([str(raw), str(out), "group", "--task", "tiny", "--space", "fsaverage5",
                     "--group", "one-sample", "--work-dir", work, "-q",
                     "--cluster-threshold", "0", "--height-control", "fpr",
                     "--alpha", "0.01"]) == 0
    mesh = load_fsaverage("fsaverage5")["pial"]

    def surface_image(path_of_hemi) -> SurfaceImage:
        return SurfaceImage(mesh=mesh, data={part: _gifti(path_of_hemi(hemi)).astype(float)
                                             for part, hemi in (("left", "L"), ("right", "R"))})

    def subject_image(subject, suffix):
        name = f"sub-{subject}_task-tiny_space-fsaverage5_{suffix}.nii.gz"
        return surface_image(lambda hemi: out / f"sub-{subject}" / surface_name(name, hemi))

    effects = [subject_image(s, "contrast-aGtB_stat-effect_statmap") for s in subjects]
    masks = [subject_image(s, "desc-brain_mask") for s in subjects]
    inside = {part: np.all([m.data.parts[part].squeeze() > 0 for m in masks], axis=0)
              for part in ("left", "right")}
    masker = SurfaceMasker(SurfaceImage(mesh=mesh, data=inside)).fit()
    with pytest.warns(UserWarning, match="mask_img"):
        model = SecondLevelModel(mask_img=masker).fit(
            effects, design_matrix=pd.DataFrame({"intercept": np.ones(len(subjects))}))
    theirs = model.compute_contrast("intercept", output_type="all")
    group = out / "group"
    for ours_name, their_name in (("z", "z_score"), ("t", "stat"), ("effect", "effect_size"),
                                  ("variance", "effect_variance"), ("p", "p_value")):
        name = f"task-tiny_space-fsaverage5_contrast-aGtB_stat-{ours_name}_statmap.nii.gz"
        for part, hemi in (("left", "L"), ("right", "R")):
            ours = _gifti(group / surface_name(name, hemi)).squeeze()
            expected = np.asarray(theirs[their_name].data.parts[part], dtype=float).squeeze()
            np.testing.assert_allclose(ours[inside[part]], expected[inside[part]],
                                       rtol=1e-6, atol=1e-6, err_msg=ours_name)
            assert not ours[~inside[part]].any()
    assert not list(group.glob("*.nii.gz"))
    # the thresholded group map: nilearn's threshold_stats_img on its z map (same mask)
    stem = "task-tiny_space-fsaverage5_contrast-aGtB_stat-z_desc-thresholded_statmap"
    settings = json.loads((group / f"{stem}.json").read_text())
    thresholded, threshold = threshold_stats_img(
        theirs["z_score"], mask_img=SurfaceImage(mesh=mesh, data=inside),
        alpha=settings["Alpha"], height_control=settings["HeightControl"],
        cluster_threshold=0, two_sided=settings["TwoSided"])
    assert settings["ClusterThreshold"] == 0 and not settings["NoSurvivingVoxels"]
    assert settings["Threshold"] == pytest.approx(threshold, abs=1e-6)
    for part, hemi in (("left", "L"), ("right", "R")):
        ours = _gifti(group / surface_name(f"{stem}.nii.gz", hemi)).squeeze()
        np.testing.assert_allclose(ours, np.asarray(thresholded.data.parts[part]).squeeze(),
                                   rtol=1e-6, atol=1e-6)
    assert (group / "task-tiny_space-fsaverage5_contrast-aGtB_clusters.tsv").exists()
    assert "Surface maps: no volume figure" in (out / "group.html").read_text()
    sidecar = json.loads((group / "task-tiny_space-fsaverage5_contrast-aGtB_statmap.json")
                         .read_text())
    assert len(sidecar["Sources"]) == 2 * len(subjects)
    assert all(source.endswith(".func.gii") for source in sidecar["Sources"])


def test_permutations_refused_without_mesh_geometry(tmp_path, capsys):
    """Permutations need the mesh's faces (clusters, TFCE): on a mesh nilearn does not
    ship (fsaverage6) they are refused in one line, with the participants and by the
    BIDS-App group call on the written GIFTI maps."""
    raw, derivatives = write_surface_study(tmp_path / "s", n_scans=40, n_vertices=50,
                                           space="fsaverage6")
    argv = ["--bids-dir", str(raw), "--output-dir", str(tmp_path / "out"), "--derivatives",
            str(derivatives), "--task", "tiny", "--space", "fsaverage6",
            "--contrast", "aGtB=a - b", "--group", "one-sample", "--permutations", "100",
            "--work-dir", str(tmp_path / "work")]
    assert main(argv) != 0
    out, work = tmp_path / "out2", str(tmp_path / "work2")
    assert main([str(raw), str(out), "participant", "--derivatives", str(derivatives),
                 "--task", "tiny", "--space", "fsaverage6", "--contrast", "aGtB=a - b",
                 "--work-dir", work, "-q"]) == 0
    assert main([str(raw), str(out), "group", "--task", "tiny", "--space", "fsaverage6",
                 "--group", "one-sample", "--permutations", "100", "--work-dir", work]) != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 2
    assert all("--permutations 100" in line and "fsaverage5 only" in line for line in lines)


def test_permutations_on_the_mesh_through_the_command_line(tmp_path):
    """The BIDS-App group call with permutations on fsaverage5 (4 subjects, TFCE, two
    chunks): the vertex-level FWE map equals nilearn's non_parametric_inference on the
    subjects' written effect maps as SurfaceImages (same mask, seed, n_jobs=1) to the
    GIFTI's float32; the cluster-size, cluster-mass and TFCE FWE maps are written per
    hemisphere, their sidecar names the mesh and TFCE's parameters."""
    from nilearn.glm.second_level import non_parametric_inference

    subjects = ("01", "02", "03", "04")
    raw, derivatives = write_surface_study(tmp_path / "s", subjects=subjects, n_scans=40)
    out, work = tmp_path / "out", str(tmp_path / "work")
    assert main([str(raw), str(out), "participant", "--derivatives", str(derivatives),
                 "--task", "tiny", "--space", "fsaverage5", "--contrast", "aGtB=a - b",
                 "--work-dir", work, "-q"]) == 0
    assert main([str(raw), str(out), "group", "--task", "tiny", "--space", "fsaverage5",
                 "--group", "one-sample", "--permutations", "19", "--tfce",
                 "--permutation-chunks", "2", "--work-dir", work, "-q"]) == 0
    mesh = load_fsaverage("fsaverage5")["pial"]

    def surface_image(name) -> SurfaceImage:
        return SurfaceImage(mesh=mesh, data={
            part: _gifti(out / surface_name(name, hemi)).astype(float)
            for part, hemi in (("left", "L"), ("right", "R"))})

    prefix = "task-tiny_space-fsaverage5"
    effects = [surface_image(f"sub-{s}/sub-{s}_{prefix}_contrast-aGtB_stat-effect_statmap"
                             ".nii.gz") for s in subjects]
    masks = [surface_image(f"sub-{s}/sub-{s}_{prefix}_desc-brain_mask.nii.gz")
             for s in subjects]
    inside = {part: np.all([m.data.parts[part].squeeze() > 0 for m in masks], axis=0)
              for part in ("left", "right")}
    theirs = non_parametric_inference(
        effects, design_matrix=pd.DataFrame({"intercept": np.ones(len(subjects))}),
        second_level_contrast="intercept", mask=SurfaceImage(mesh=mesh, data=inside),
        n_perm=19, random_state=0, n_jobs=1)
    group = out / "group"
    settings = json.loads((group / f"{prefix}_contrast-aGtB_desc-permutations_statmap.json")
                          .read_text())
    assert settings["Seed"] == 0 and settings["Mesh"] == "fsaverage5"
    assert settings["TFCEParameters"]["E"] == 1 and len(settings["Chunks"]) == 2
    for part, hemi in (("left", "L"), ("right", "R")):
        name = f"{prefix}_contrast-aGtB_stat-logp_desc-voxelFWE_statmap.nii.gz"
        ours = _gifti(group / surface_name(name, hemi)).squeeze()
        expected = np.asarray(theirs.data.parts[part], dtype=float).squeeze()
        np.testing.assert_allclose(ours[inside[part]], expected[inside[part]], rtol=1e-6)
        for desc in ("clusterSizeFWE", "clusterMassFWE", "tfceFWE"):
            name = f"{prefix}_contrast-aGtB_stat-logp_desc-{desc}_statmap.nii.gz"
            assert (group / surface_name(name, hemi)).exists()


def test_folded_mesh_through_the_command_line(tmp_path):
    """A mesh larger than a NIfTI-1 axis (2 x 20000 vertices, packed as (20000, 2, 1, T))
    goes through the whole run level: its z map equals FirstLevelModel's on the
    SurfaceImage (a stand-in mesh of that size) to 1e-6."""
    from nilearn.surface import InMemoryMesh, PolyMesh

    n = 20000
    raw, derivatives = write_surface_study(tmp_path / "study", n_scans=40, n_vertices=n,
                                           space="fsaverage6")
    out = tmp_path / "out"
    assert main([str(raw), str(out), "participant", "--derivatives", str(derivatives),
                 "--task", "tiny", "--space", "fsaverage6", "--contrast", "aGtB=a - b",
                 "--work-dir", str(tmp_path / "work"), "-q"]) == 0
    func = derivatives / "sub-01" / "func"
    data = {part: _gifti(func / f"{PREFIX}_hemi-{hemi}_space-fsaverage6_bold.func.gii")
            for part, hemi in (("left", "L"), ("right", "R"))}
    half = InMemoryMesh(coordinates=np.zeros((n, 3)), faces=np.array([[0, 1, 2]]))
    mesh = PolyMesh(left=half, right=half)
    inside = {part: values.std(axis=1) > 0 for part, values in data.items()}
    model = FirstLevelModel(
        t_r=2.0, mask_img=SurfaceMasker(SurfaceImage(mesh=mesh, data=inside)).fit(),
        noise_model="ar1", hrf_model="spm", drift_model="cosine", high_pass=0.00625,
        slice_time_ref=0.0)
    model.fit(SurfaceImage(mesh=mesh, data=data),
              events=pd.read_csv(raw / "sub-01" / "func" / f"{PREFIX}_events.tsv", sep="\t"))
    theirs = model.compute_contrast("a - b", output_type="z_score")
    name = f"{PREFIX}_space-fsaverage6_contrast-aGtB_stat-z_statmap.nii.gz"
    for part, hemi in (("left", "L"), ("right", "R")):
        ours = _gifti(out / "sub-01" / surface_name(name, hemi)).squeeze()
        expected = np.asarray(theirs.data.parts[part], dtype=float).squeeze()
        np.testing.assert_allclose(ours[inside[part]], expected[inside[part]], atol=1e-6)
        assert not ours[~inside[part]].any()


def test_hemisphere_shape_from_headers(tmp_path):
    """The shape read from the XML attributes is nibabel's, for one array per volume and
    for one 2-D array; a file cut short is refused in one line."""
    from glm_workflows.core.surfaces import hemisphere_shape

    values = np.arange(30, dtype=np.float32).reshape(10, 3)
    per_volume = tmp_path / "a.func.gii"
    nb.save(nb.gifti.GiftiImage(darrays=[nb.gifti.GiftiDataArray(values[:, t])
                                         for t in range(3)]), str(per_volume))
    one_array = tmp_path / "b.func.gii"
    nb.save(nb.gifti.GiftiImage(darrays=[nb.gifti.GiftiDataArray(values)]), str(one_array))
    assert hemisphere_shape(per_volume) == _gifti(per_volume).shape == (10, 3)
    assert hemisphere_shape(one_array) == (10, 3)
    cut = tmp_path / "c.func.gii"
    cut.write_bytes(per_volume.read_bytes()[:200])
    with pytest.raises(InputError, match="not a readable GIFTI") as error:
        hemisphere_shape(cut)
    assert "\n" not in str(error.value)


def test_sessions_combined_per_hemisphere(tmp_path):
    """A subject's runs in two sessions are combined (fixed effects) as for volumes, their
    maps written per hemisphere."""
    raw, derivatives = write_surface_study(tmp_path / "study", n_scans=40, n_vertices=60,
                                           sessions=("1", "2"))
    out = tmp_path / "out"
    assert main([str(raw), str(out), "participant", "--derivatives", str(derivatives),
                 "--task", "tiny", "--space", "fsaverage5", "--contrast", "aGtB=a - b",
                 "--work-dir", str(tmp_path / "work"), "-q"]) == 0
    for folder, prefix in (("sub-01/ses-1", "sub-01_ses-1_task-tiny"),
                           ("sub-01/ses-2", "sub-01_ses-2_task-tiny"), ("sub-01", PREFIX)):
        names = {p.name for p in (out / folder).iterdir()}
        for hemi in "LR":
            assert (f"{prefix}_hemi-{hemi}_space-fsaverage5_contrast-aGtB_stat-z_statmap"
                    ".func.gii") in names
    combined = _gifti(out / "sub-01" / f"{PREFIX}_hemi-L_space-fsaverage5_contrast-aGtB"
                                         "_stat-z_statmap.func.gii")
    assert combined.shape == (60, 1)


def test_bids_filter_query_selects_surface_series(tmp_path):
    """A --bids-filter-file's bold query keeps or drops the GIFTI series by their entities;
    nothing kept: one line naming the query."""
    raw, derivatives = write_surface_study(tmp_path, n_scans=40, n_vertices=50,
                                           space="fsaverage", den="10k")
    keep = (("bold", (("den", ("10k",)),)),)
    runs = find_derivative_runs(raw, derivatives, "tiny", space="fsaverage", filters=keep)
    assert runs[0].surface == "fsaverage_den-10k"
    drop = (("bold", (("den", ("41k",)),)),)
    with pytest.raises(InputError, match="bids-filter-file") as error:
        find_derivative_runs(raw, derivatives, "tiny", space="fsaverage", filters=drop)
    assert "\n" not in str(error.value)


def test_three_level_model_file(tmp_path):
    """A BIDS Stats Models file (run -> subject fixed effects -> dataset) on surface runs:
    every level's maps per hemisphere."""
    from pathlib import Path

    model = Path(__file__).resolve().parents[1] / "examples" / "models" / "three_level_smdl.json"
    raw, derivatives = write_surface_study(tmp_path / "study", subjects=("01", "02", "03"),
                                           n_scans=40, n_vertices=60, runs=2)
    out = tmp_path / "out"
    assert main(["--bids-dir", str(raw), "--derivatives", str(derivatives),
                 "--space", "fsaverage5", "--model", str(model), "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "work"), "-q"]) == 0
    suffix = "space-fsaverage5_contrast-aMinusB_stat-z_statmap.func.gii"
    for hemi in "LR":
        assert (out / "sub-01" / f"{PREFIX}_run-1_hemi-{hemi}_{suffix}").is_file()
        assert (out / "sub-01" / f"{PREFIX}_hemi-{hemi}_{suffix}").is_file()
        assert (out / "group" / f"task-tiny_hemi-{hemi}_{suffix}").is_file()
