"""Group inputs that real studies get wrong: a subject's effect map not finite (NaN) in
part of the mask or in all of it, maps on another grid, truncated files; and no
third-party warning printed by a successful group run with permutations."""

import json
import os
import shutil
import warnings

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm import threshold_stats_img
from nilearn.glm.second_level import SecondLevelModel, non_parametric_inference
from nilearn.masking import intersect_masks
from threadpoolctl import threadpool_limits

from glm_workflows.cli import main
from glm_workflows.core.naming import (
    GROUP_FOLDER,
    contrast_file,
    group_file,
    group_stem,
    model_file,
)
from glm_workflows.synthetic import write_tiny_bids

pytestmark = pytest.mark.slow  # CLI first and group levels

SUBJECTS = [f"{i:02d}" for i in range(1, 7)]
CONTRAST = ["--contrast", "aMinusB=a - b"]
PERMUTATIONS = ["--permutations", "40", "--seed", "7", "--cluster-forming-p", "0.01",
                "--tfce"]
#: sub-02's effect map is NaN in these planes (part of the mask), sub-05's everywhere.
PART = (slice(None), slice(0, 5))


def _file(folder, subject, output):
    prefix = f"sub-{subject}_task-tiny"
    if output == "effect_maps":
        return folder / f"sub-{subject}" / contrast_file(prefix, "aMinusB", output)
    return folder / f"sub-{subject}" / model_file(prefix, output)


def _spoil(path, region):
    """Set ``region`` of an effect map to NaN (as a failed first-level fit leaves it)."""
    img = nb.load(path)
    data = img.get_fdata()
    data[region] = np.nan
    nb.Nifti1Image(data, img.affine, img.header).to_filename(path)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_tiny_bids(tmp_path_factory.mktemp("faults") / "bids", subjects=SUBJECTS)


@pytest.fixture(scope="module")
def first_level(study, tmp_path_factory):
    """The subject level of the study, without a group level."""
    tmp = tmp_path_factory.mktemp("first")
    assert main(["--bids-dir", str(study), "--task", "tiny", *CONTRAST, "--plugin", "Linear",
                 "--output-dir", str(tmp / "out"), "--work-dir", str(tmp / "work")]) == 0
    return tmp / "out"


@pytest.fixture(scope="module")
def spoiled(first_level, tmp_path_factory):
    """A copy of the subject level with sub-02's effect map NaN in part of the mask and
    sub-05's NaN everywhere."""
    folder = tmp_path_factory.mktemp("spoiled") / "derivatives"
    shutil.copytree(first_level, folder)
    _spoil(_file(folder, "02", "effect_maps"), PART)
    _spoil(_file(folder, "05", "effect_maps"), ...)
    return folder


def _group(folder, tmp_path, *extra):
    return main(["--from-derivatives", str(folder), "--task", "tiny", "--group", "one-sample",
                 *extra, "--plugin", "Linear", "--output-dir", str(tmp_path / "out"),
                 "--work-dir", str(tmp_path / "work")])


def _expected(folder, subjects):
    """Independently of the package: the intersection of the subjects' masks, the voxels
    where every effect map is finite in it, and each subject's non-finite voxels."""
    masks = [str(_file(folder, s, "mask_file")) for s in subjects]
    effects = [str(_file(folder, s, "effect_maps")) for s in subjects]
    mask_img = intersect_masks(masks, threshold=1)
    mask = mask_img.get_fdata() > 0
    finite = [np.isfinite(nb.load(f).get_fdata()) for f in effects]
    reduced = nb.Nifti1Image((mask & np.all(finite, axis=0)).astype(np.uint8), mask_img.affine)
    counts = {f"sub-{s}": int((mask & ~ok).sum()) for s, ok in zip(subjects, finite, strict=True)}
    return effects, reduced, int(mask.sum()), counts


def _group_map(out, output):
    return nb.load(out / GROUP_FOLDER / group_file(group_stem("tiny", "aMinusB"), output))


def test_subject_not_finite_in_most_of_the_mask_refused_before_any_work(spoiled, tmp_path,
                                                                        capsys):
    """sub-05's map is NaN everywhere: one line naming its file, exit 2, nothing created."""
    assert _group(spoiled, tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"glm-workflows: error: {_file(spoiled, '05', 'effect_maps')}: not finite (NaN or "
        "infinite) in "), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_non_finite_voxels_leave_the_group_mask(spoiled, tmp_path, capsys):
    """Without sub-05: the voxels where sub-02's map is NaN leave the group mask (one warning
    line, the sidecar's record); every map, the threshold and the permutation maps equal
    nilearn's given that reduced mask; no other line on stderr and no warning raised."""
    subjects = [s for s in SUBJECTS if s != "05"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        assert _group(spoiled, tmp_path, "--participant-label", *subjects, *PERMUTATIONS,
                      "--permutation-chunks", "2") == 0
    assert not [str(w.message) for w in caught]
    effects, reduced, n_given, counts = _expected(spoiled, subjects)
    n_voxels = int(reduced.get_fdata().sum())
    assert 0 < counts["sub-02"] < n_given / 2 and n_voxels == n_given - counts["sub-02"]
    assert capsys.readouterr().err.strip().splitlines() == [
        f"glm-workflows: warning: group aMinusB: {n_given - n_voxels} of the {n_given} voxels "
        f"of the subjects' masks left out (not finite in every subject's map; non-finite "
        f"voxels: sub-02 {counts['sub-02']})"]
    out = tmp_path / "out"
    record = json.loads((out / GROUP_FOLDER / group_file(group_stem("tiny", "aMinusB"),
                                                         "contrast_jsons")).read_text())
    assert (record["MaskVoxels"], record["SubjectMasksVoxels"], record["NonFiniteVoxels"]) \
        == (n_voxels, n_given, {"sub-02": counts["sub-02"]})
    design = pd.DataFrame({"intercept": np.ones(len(effects))})
    theirs = SecondLevelModel(mask_img=reduced).fit(effects, design_matrix=design) \
        .compute_contrast("intercept", output_type="all")
    for ours, name in (("effect_maps", "effect_size"), ("variance_maps", "effect_variance"),
                       ("stat_maps", "stat"), ("z_maps", "z_score"), ("p_maps", "p_value")):
        np.testing.assert_allclose(_group_map(out, ours).get_fdata(),
                                   theirs[name].get_fdata(), rtol=1e-10, atol=1e-10,
                                   err_msg=ours)
    _, threshold = threshold_stats_img(theirs["z_score"], mask_img=reduced, alpha=0.05,
                                       height_control="fdr", cluster_threshold=10,
                                       two_sided=False)
    meta = json.loads((out / GROUP_FOLDER / group_file(group_stem("tiny", "aMinusB"),
                                                       "threshold_jsons")).read_text())
    assert meta["Threshold"] == pytest.approx(threshold, rel=1e-10)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = non_parametric_inference(
            effects, design_matrix=design, second_level_contrast="intercept", mask=reduced,
            n_perm=40, random_state=7, n_jobs=1, threshold=0.01, tfce=True)
    for output in ("logp_max_t", "logp_max_size", "logp_max_mass", "logp_max_tfce"):
        assert np.array_equal(_group_map(out, output).get_fdata(),
                              reference[output].get_fdata()), output


def _truncate(path):
    """Cut a .nii.gz short (as an interrupted copy): its header still opens."""
    path.write_bytes(path.read_bytes()[:-20])


def _shift(path):
    img = nb.load(path)
    affine = img.affine.copy()
    affine[0, 3] += 1.5
    nb.Nifti1Image(np.asanyarray(img.dataobj), affine, img.header).to_filename(path)


def _crop(path):
    img = nb.load(path)
    nb.Nifti1Image(np.asanyarray(img.dataobj)[..., :-1], img.affine, img.header
                   ).to_filename(path)


@pytest.mark.parametrize("output, spoil, message", [
    ("effect_maps", _shift, "not on the grid of {reference} (its affine differs by up to 1.5)"),
    ("mask_file", _crop, "not on the grid of {reference} (shape (12, 14, 11), not "
                         "(12, 14, 12))"),
    ("effect_maps", _truncate, "cannot be inflated ("),
    ("mask_file", _truncate, "cannot be inflated ("),
    ("mean_file", _truncate, "cannot be inflated ("),
])
def test_maps_checked_before_any_work(first_level, tmp_path, capsys, output, spoil, message):
    """Another grid (shifted affine, other shape) or a truncated .nii.gz, of any map the
    group level reads: one line naming the file, exit 2, no output or work folder."""
    folder = tmp_path / "derivatives"
    shutil.copytree(first_level, folder)
    path = _file(folder, "04", output)
    spoil(path)
    assert _group(folder, tmp_path, *PERMUTATIONS) == 2
    err = capsys.readouterr().err.strip().splitlines()
    reference = _file(folder, "01", "mask_file")
    assert len(err) == 1 and err[0].startswith(
        f"glm-workflows: error: {path}: {message.format(reference=reference)}"), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_same_graph(study, tmp_path, capsys, monkeypatch):
    """In the graph that fits the subjects, the maps exist only at run time: voxels not
    finite in sub-02's map leave the group mask (warning line after the run, maps equal to
    SecondLevelModel given the reduced mask); sub-05's map NaN everywhere fails the group
    model's node, its one line naming sub-05's file."""
    from glm_workflows.interfaces import glm

    spoil = {"02": PART}
    compute = glm.compute_contrast

    def spoiled_contrast(*args, **kwargs):  # runs in the node's folder (Linear plugin)
        maps = compute(*args, **kwargs)
        for subject, region in spoil.items():
            if f"/sub_{subject}_task_tiny_wf/" in os.getcwd():
                data = maps["effect"].get_fdata()
                data[region] = np.nan
                maps["effect"] = nb.Nifti1Image(data, maps["effect"].affine)
        return maps

    monkeypatch.setattr(glm, "compute_contrast", spoiled_contrast)
    argv = ["--bids-dir", str(study), "--task", "tiny", *CONTRAST, "--group", "one-sample",
            "--plugin", "Linear", "--output-dir", str(tmp_path / "out"),
            "--work-dir", str(tmp_path / "work")]
    assert main(argv) == 0
    out = tmp_path / "out"
    effects, reduced, n_given, counts = _expected(out, SUBJECTS)
    assert 0 < counts["sub-02"] < n_given / 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"glm-workflows: warning: group aMinusB: {counts['sub-02']} of the "
                       f"{n_given} voxels of the subjects' masks left out (not finite in "
                       f"every subject's map; non-finite voxels: sub-02 {counts['sub-02']})")
    theirs = SecondLevelModel(mask_img=reduced).fit(
        effects, design_matrix=pd.DataFrame({"intercept": np.ones(len(effects))})
    ).compute_contrast("intercept", output_type="z_score")
    np.testing.assert_allclose(_group_map(out, "z_maps").get_fdata(), theirs.get_fdata(),
                               rtol=1e-10, atol=1e-10)
    spoil["05"] = ...
    assert main([*argv[:-4], "--output-dir", str(tmp_path / "out2"), "--work-dir",
                 str(tmp_path / "work2")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "group_aMinusB_wf.model_mean failed" in err[0] and \
        "(the effect map of sub-05): not finite (NaN or infinite) in " in err[0], err
