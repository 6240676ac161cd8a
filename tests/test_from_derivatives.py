"""``--from-derivatives DIR``: the group level alone, on the subject maps of an earlier
output folder: maps equal to nilearn's SecondLevelModel and to the group level run with
the study, the subject folders of DIR untouched when it is also the output folder, the
subject-level maps chosen by name (fixed effects over runs), bad input refused."""

import hashlib
import json
import os
import shlex
import shutil

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.second_level import SecondLevelModel
from nilearn.masking import intersect_masks

from glm_workflows.cli import main, spec_from_args
from glm_workflows.core.analyses import analysis_record
from glm_workflows.core.naming import (
    GROUP_FOLDER,
    contrast_file,
    group_file,
    group_stem,
    model_file,
)
from glm_workflows.execution.prepare import prepare
from glm_workflows.synthetic import write_tiny_bids

SUBJECTS = [f"{i:02d}" for i in range(1, 7)]
CONTRAST = ["--contrast", "aMinusB=a - b"]
MAPS = ("effect_maps", "variance_maps", "stat_maps", "z_maps", "p_maps")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Six tiny subjects (one run each) and a participants.tsv with two groups."""
    root = write_tiny_bids(tmp_path_factory.mktemp("fromderiv") / "bids", subjects=SUBJECTS)
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in SUBJECTS],
                  "group": ["patient", "control"] * 3}).to_csv(
        root / "participants.tsv", sep="\t", index=False)
    return root


def _cli(tmp_path, *argv, out="out"):
    out = tmp_path / out
    assert main([*argv, "--plugin", "Linear", "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "work")]) == 0
    return out


@pytest.fixture(scope="module")
def first_level(study, tmp_path_factory):
    """The subject level of the study, without a group level."""
    return _cli(tmp_path_factory.mktemp("first"), "--bids-dir", str(study), "--task", "tiny",
                *CONTRAST)


@pytest.fixture(scope="module")
def with_study(study, tmp_path_factory):
    """The study and its one-sample group level in one run."""
    return _cli(tmp_path_factory.mktemp("whole"), "--bids-dir", str(study), "--task", "tiny",
                *CONTRAST, "--group", "one-sample")


def _group_map(out, output, group_contrast=None):
    stem = group_stem("tiny", "aMinusB", group_contrast)
    return nb.load(out / GROUP_FOLDER / group_file(stem, output)).get_fdata()


def _digests(folder):
    """sha256 of every file of the subject folders and pages of an output folder."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("sub-*/**/*")) + sorted(folder.glob("sub-*.html"))
            if p.is_file()}


@pytest.mark.slow
def test_one_sample_equals_nilearn_and_the_run_with_the_study(first_level, with_study,
                                                              tmp_path):
    """The group maps from the derivatives equal SecondLevelModel on the subjects' effect
    maps in the intersection of their masks (1e-10), and the group maps of the run that
    fitted the study (identical numbers)."""
    out = _cli(tmp_path, "--from-derivatives", str(first_level), "--task", "tiny",
               "--group", "one-sample", out="group_only")
    assert not list(out.glob("sub-*"))  # the group level only
    folders = [first_level / f"sub-{s}" for s in SUBJECTS]
    effects = [str(f / contrast_file(f"{f.name}_task-tiny", "aMinusB", "effect_maps"))
               for f in folders]
    mask = intersect_masks([str(f / model_file(f"{f.name}_task-tiny", "mask_file"))
                            for f in folders], threshold=1)
    theirs = SecondLevelModel(mask_img=mask).fit(
        effects, design_matrix=pd.DataFrame({"intercept": np.ones(len(effects))})
    ).compute_contrast("intercept", output_type="all")
    for ours, name in (("z_maps", "z_score"), ("stat_maps", "stat"),
                       ("effect_maps", "effect_size"), ("variance_maps", "effect_variance")):
        np.testing.assert_allclose(_group_map(out, ours), theirs[name].get_fdata(),
                                   rtol=1e-10, atol=1e-10, err_msg=ours)
    for output in (*MAPS, "thresholded_maps"):
        np.testing.assert_array_equal(_group_map(out, output), _group_map(with_study, output),
                                      err_msg=output)
    design = json.loads((out / GROUP_FOLDER / group_file(group_stem("tiny", "aMinusB"),
                                                         "design_json")).read_text())
    assert json.dumps(design).count("sub-0") >= len(SUBJECTS)  # the subjects used
    record = json.loads((out / GROUP_FOLDER / analysis_record("task-tiny")).read_text())
    assert {item["path"] for item in record["Inputs"]} >= set(effects)
    assert all(len(item["sha256"]) == 64 for item in record["Inputs"])
    assert record["Parameters"]["from_derivatives"] == str(first_level)
    assert shlex.split(record["GeneratedBy"]["CommandLine"]) == [
        "glm-workflows", "--from-derivatives", str(first_level), "--task", "tiny", "--group",
        "one-sample", "--plugin", "Linear", "--output-dir", str(out),
        "--work-dir", str(tmp_path / "work")]  # main's argv, through glm-workflows
    assert record["GeneratedBy"]["WorkingDirectory"] == os.getcwd()


@pytest.mark.slow
def test_output_dir_may_be_the_derivatives_folder(first_level, study, tmp_path, capsys):
    """Into DIR itself: only group/ (and the root files) change, subject folders and pages
    stay byte for byte; a second model replaces group/ entirely."""
    folder = tmp_path / "derivatives"
    shutil.copytree(first_level, folder)
    before = _digests(folder)
    assert before
    common = ["--from-derivatives", str(folder), "--task", "tiny", "--plugin", "Linear",
              "--output-dir", str(folder), "--work-dir", str(tmp_path / "work")]
    assert main([*common, "--group", "one-sample"]) == 0
    assert (folder / GROUP_FOLDER / group_file(group_stem("tiny", "aMinusB"),
                                               "z_maps")).is_file()
    assert _digests(folder) == before
    assert main([*common, "--group", "two-sample", "--group-column", "group",
                 "--bids-dir", str(study)]) == 0
    names = {p.name for p in (folder / GROUP_FOLDER).iterdir()}
    assert group_file(group_stem("tiny", "aMinusB"), "z_maps") not in names  # replaced
    assert group_file(group_stem("tiny", "aMinusB", "controlMinuspatient"), "z_maps") in names
    assert _digests(folder) == before
    assert not list(folder.glob(".glm-workflows-pending-*"))
    assert "controlMinuspatient" in capsys.readouterr().out  # the summary


def _fake_subject(folder, prefix, contrasts, stat_types=None):
    """Files named as the sink names them: mask, mean and, per contrast, the effect map
    (tiny images of ones, read by the checks before any work) and the sidecar
    (StatisticType)."""
    folder.mkdir(parents=True, exist_ok=True)
    ones = nb.Nifti1Image(np.ones((2, 2, 2), dtype=np.uint8), np.eye(4))
    for output in ("mask_file", "mean_file"):
        ones.to_filename(folder / model_file(prefix, output))
    for contrast in contrasts:
        ones.to_filename(folder / contrast_file(prefix, contrast, "effect_maps"))
        stat_type = (stat_types or {}).get(contrast, "t")
        (folder / contrast_file(prefix, contrast, "contrast_jsons")).write_text(json.dumps(
            {"ContrastName": contrast, "StatisticType": stat_type, "ContrastRows": ["a"]}))


def test_subject_maps_chosen_by_name(tmp_path, capsys):
    """Several runs: the fixed-effects maps (the prefix without run); one run: its maps
    (run entity and all); F contrasts found but not taken to the group level; a subject
    without a contrast left out with one warning line."""
    root = tmp_path / "derivatives"
    for run in ("1", "2"):  # sub-01: two runs and its fixed effects
        _fake_subject(root / "sub-01", f"sub-01_task-tiny_acq-x_run-{run}", ["c", "d", "e"],
                      {"e": "F"})
    _fake_subject(root / "sub-01", "sub-01_task-tiny_acq-x", ["c", "d", "e"], {"e": "F"})
    _fake_subject(root / "sub-02", "sub-02_task-tiny_run-3", ["c", "d", "e"], {"e": "F"})
    _fake_subject(root / "sub-03" / "ses-1", "sub-03_ses-1_task-tiny", ["c"])
    _fake_subject(root / "sub-03" / "ses-1", "sub-03_ses-1_task-other", ["d"])  # another task
    argv = ["--from-derivatives", str(root), "--task", "tiny", "--group", "one-sample",
            "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]
    plan = prepare(*spec_from_args(argv))
    maps = {m.subject: m for m in plan.subject_maps}
    assert maps["01"].prefix == "sub-01_task-tiny_acq-x"
    assert maps["01"].effect_maps["c"].endswith(
        "sub-01/sub-01_task-tiny_acq-x_contrast-c_stat-effect_statmap.nii.gz")
    assert maps["01"].mask_file.endswith("sub-01/sub-01_task-tiny_acq-x_desc-brain_mask.nii.gz")
    assert maps["02"].prefix == "sub-02_task-tiny_run-3"
    assert maps["03"].mean_file.endswith(
        "sub-03/ses-1/sub-03_ses-1_task-tiny_desc-mean_bold.nii.gz")
    plans = {group.name: group.subjects for group in plan.group_plans}
    assert plans == {"c": ("01", "02", "03"), "d": ("01", "02")}  # e: an F contrast
    assert capsys.readouterr().err.strip().splitlines() == [
        "glm-workflows: warning: group d: sub-03 left out (no map of contrast d)"]
    plan = prepare(*spec_from_args([*argv, "--contrast", "c", "--participant-label",
                                    "01", "sub-03"]))
    assert [(p.name, p.subjects) for p in plan.group_plans] == [("c", ("01", "03"))]


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", [
    (["--from-derivatives", "{tmp}/missing", "--group", "one-sample"], "folder not found"),
    (["--from-derivatives", "{tmp}/empty", "--group", "one-sample"],
     "no subject results of task tiny"),
    (["--from-derivatives", "{first}", "--task", "other", "--group", "one-sample"],
     "tasks found: tiny"),
    (["--from-derivatives", "{first}"], "--from-derivatives: needs --group"),
    (["--from-derivatives", "{first}", "--group", "one-sample", "--func", "x.nii"],
     "--func: not with --from-derivatives"),
    (["--from-derivatives", "{first}", "--group", "one-sample", "--derivatives", "{tmp}"],
     "--derivatives: not with --from-derivatives"),
    (["--from-derivatives", "{first}", "--group", "one-sample", "--contrast", "nope"],
     "--contrast nope: no subject of {first} has it (found: aMinusB)"),
    (["--from-derivatives", "{first}", "--group", "one-sample", "--contrast", "aMinusB=b - a"],
     "the maps of {first} are of 'a - b'"),
])
def test_bad_input_refused_before_any_work(first_level, tmp_path, capsys, argv, message):
    """One line, exit code 2, no output or work folder created."""
    (tmp_path / "empty" / "sub-01").mkdir(parents=True)
    values = {"tmp": tmp_path, "first": first_level}
    argv = [a.format(**values) for a in argv]
    if "--task" not in argv:
        argv += ["--task", "tiny"]
    assert main([*argv, "--output-dir", str(tmp_path / "out"),
                 "--work-dir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message.format(**values) in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()
