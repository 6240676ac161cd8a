"""The group level through the command line: maps equal to nilearn's SecondLevelModel and
non_parametric_inference, permutations identical whatever the chunks and the plugin, a
known effect found and the null region clean, and bad group settings refused."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.second_level import SecondLevelModel, non_parametric_inference
from nilearn.masking import intersect_masks
from threadpoolctl import threadpool_limits

from glm_workflows.cli import main
from glm_workflows.core.naming import GROUP_FOLDER, group_file, group_stem, model_file
from glm_workflows.synthetic import write_tiny_bids

SUBJECTS = [f"{i:02d}" for i in range(1, 9)]
CONTRAST = ["--contrast", "aMinusB=a - b"]
#: The block of voxels write_tiny_bids gives a true a - b effect.
EFFECT = (slice(4, 8), slice(4, 9), slice(4, 8))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Eight tiny subjects (one run each, a true effect in a block), with a
    participants.tsv holding a group and an age column."""
    root = write_tiny_bids(tmp_path_factory.mktemp("group") / "bids", subjects=SUBJECTS)
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in SUBJECTS],
                  "group": ["patient", "control"] * 4,
                  "age": [20, 31, 42, 25, 37, 29, 51, 33]}).to_csv(
        root / "participants.tsv", sep="\t", index=False)
    return root


def _run(study, tmp_path, *extra, plugin=("--plugin", "Linear")):
    out = tmp_path / "out"
    argv = ["--bids-dir", str(study), "--task", "tiny", *CONTRAST, *extra, *plugin,
            "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]
    assert main(argv) == 0
    return out


def _subject_inputs(out):
    """The subjects' effect maps and the intersection of their masks, from our outputs."""
    effects = [str(out / f"sub-{s}" / f"sub-{s}_task-tiny_contrast-aMinusB_stat-effect_statmap"
                                      ".nii.gz") for s in SUBJECTS]
    mask = intersect_masks([str(out / f"sub-{s}" / model_file(f"sub-{s}_task-tiny",
                                                               "mask_file"))
                            for s in SUBJECTS], threshold=1)
    return effects, mask


def _group_map(out, output, group_contrast=None):
    stem = group_stem("tiny", "aMinusB", group_contrast)
    return nb.load(out / GROUP_FOLDER / group_file(stem, output)).get_fdata()


MULTIPROC = ("--plugin", "MultiProc", "--n-procs", "2")


@pytest.fixture(scope="module")
def permuted(study, tmp_path_factory):
    """One-sample with 60 permutations (cluster inference and TFCE), as K = 1 and 3 chunks
    with Linear and K = 3 and 8 with MultiProc(2)."""
    runs = {}
    for name, chunks, plugin in (("k1", 1, ("--plugin", "Linear")),
                                 ("k3", 3, ("--plugin", "Linear")),
                                 ("k3mp", 3, MULTIPROC), ("k8mp", 8, MULTIPROC)):
        runs[name] = _run(study, tmp_path_factory.mktemp(name), "--group", "one-sample",
                          "--permutations", "60", "--seed", "7", "--tfce",
                          "--permutation-chunks", str(chunks), "--cluster-forming-p", "0.01",
                          plugin=plugin)
    return runs


@pytest.mark.slow
def test_one_sample_maps_equal_nilearn(permuted):
    """t, z, p, effect and variance equal SecondLevelModel on the subjects' effect maps in
    the intersection of their masks, to 1e-10; the true effect is found, the rest clean."""
    out = permuted["k1"]
    effects, mask = _subject_inputs(out)
    model = SecondLevelModel(mask_img=mask).fit(
        effects, design_matrix=pd.DataFrame({"intercept": np.ones(len(effects))}))
    theirs = model.compute_contrast("intercept", output_type="all")
    for ours, name in (("stat_maps", "stat"), ("z_maps", "z_score"), ("p_maps", "p_value"),
                       ("effect_maps", "effect_size"), ("variance_maps", "effect_variance")):
        np.testing.assert_allclose(_group_map(out, ours), theirs[name].get_fdata(),
                                   rtol=1e-10, atol=1e-10, err_msg=ours)
    thresholded = _group_map(out, "thresholded_maps")
    inside = np.zeros(thresholded.shape, bool)
    inside[EFFECT] = True
    assert (thresholded[inside] > 0).mean() > 0.5  # most of the true effect survives FDR
    assert not (thresholded[~inside] > 0).any()  # and nothing outside it


@pytest.mark.slow
def test_permutations_identical_whatever_chunks_and_plugin_and_equal_nilearn(permuted):
    """Voxel, cluster-size, cluster-mass and TFCE FWE maps: identical for K = 1, 3 (Linear)
    and 3, 8 (MultiProc), and equal to non_parametric_inference(n_jobs=1, random_state=7)."""
    outputs = ("logp_max_t", "logp_max_size", "logp_max_mass", "logp_max_tfce")
    reference = {output: _group_map(permuted["k1"], output) for output in outputs}
    for name in ("k3", "k3mp", "k8mp"):
        for output in outputs:
            assert np.array_equal(_group_map(permuted[name], output), reference[output]), \
                (name, output)
    effects, mask = _subject_inputs(permuted["k1"])
    with threadpool_limits(limits=1):
        theirs = non_parametric_inference(
            effects, design_matrix=pd.DataFrame({"intercept": np.ones(len(effects))}),
            second_level_contrast="intercept", mask=mask, n_perm=60, random_state=7,
            n_jobs=1, threshold=0.01, tfce=True)
    for output in outputs:
        assert np.array_equal(reference[output], theirs[output].get_fdata()), output
    record = json.loads((permuted["k3"] / GROUP_FOLDER / group_file(
        group_stem("tiny", "aMinusB"), "permutation_json")).read_text())
    assert record["Chunks"] == [[0, 20], [20, 40], [40, 60]] and record["Seed"] == 7


@pytest.mark.slow
def test_two_sample_with_a_covariate_equals_nilearn(study, tmp_path):
    """Two groups from participants.tsv plus a demeaned age covariate: the default group
    contrast (the groups' difference) equals SecondLevelModel with the same design."""
    out = _run(study, tmp_path, "--group", "two-sample", "--group-column", "group",
               "--group-covariates", "age", "--demean")
    effects, mask = _subject_inputs(out)
    groups = np.array(["patient", "control"] * 4)
    age = np.array([20, 31, 42, 25, 37, 29, 51, 33], float)
    design = pd.DataFrame({"control": (groups == "control") * 1.0,
                           "patient": (groups == "patient") * 1.0, "age": age - age.mean()})
    model = SecondLevelModel(mask_img=mask).fit(effects, design_matrix=design)
    theirs = model.compute_contrast([1.0, -1.0, 0.0], output_type="all")
    np.testing.assert_allclose(_group_map(out, "z_maps", "controlMinuspatient"),
                               theirs["z_score"].get_fdata(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("extra, message", [
    (["--group", "two-sample"], "--group two-sample: needs --group-column"),
    (["--group", "two-sample", "--group-column", "site"], "site"),
    (["--group", "one-sample", "--permutations", "10"], "19"),
    (["--group", "paired", "--pair", "aMinusB,x"], "--pair: expected two different"),
    (["--permutations", "100"], "--permutations: needs --group"),
    (["--group", "one-sample", "--group-contrast", "g=intercept - age"], "age"),
])
def test_bad_group_settings_are_one_line_before_any_work(study, tmp_path, capsys, extra,
                                                         message):
    argv = ["--bids-dir", str(study), "--task", "tiny", *CONTRAST, *extra,
            "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "w")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("glm-workflows: error: ") and message in err[-1]
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_paired_is_the_one_sample_test_of_differences(study, tmp_path):
    """--group paired --pair aOnly,bOnly equals SecondLevelModel's one-sample test of the
    subjects' aOnly - bOnly effect differences (named contrast-aOnlyMinusbOnly)."""
    out = tmp_path / "out"
    argv = ["--bids-dir", str(study), "--task", "tiny", "--contrast", "aOnly=a",
            "--contrast", "bOnly=b", "--group", "paired", "--pair", "aOnly,bOnly",
            "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]
    assert main(argv) == 0
    _, mask = _subject_inputs_of(out, "aOnly")
    differences = [nb.Nifti1Image(
        nb.load(a).get_fdata() - nb.load(b).get_fdata(), nb.load(a).affine)
        for a, b in zip(_subject_inputs_of(out, "aOnly")[0], _subject_inputs_of(out, "bOnly")[0],
                        strict=True)]
    model = SecondLevelModel(mask_img=mask).fit(
        differences, design_matrix=pd.DataFrame({"intercept": np.ones(len(differences))}))
    theirs = model.compute_contrast("intercept", output_type="all")["z_score"].get_fdata()
    stem = group_stem("tiny", "aOnlyMinusbOnly")
    ours = nb.load(out / GROUP_FOLDER / group_file(stem, "z_maps")).get_fdata()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def _subject_inputs_of(out, contrast):
    effects = [str(out / f"sub-{s}" / f"sub-{s}_task-tiny_contrast-{contrast}_stat-effect"
                                      "_statmap.nii.gz") for s in SUBJECTS]
    return effects, _subject_inputs(out)[1]
