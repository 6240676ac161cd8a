"""The model zoo's ds003 model (``model-001_smdl.json``, copied into tests/data/model_zoo as
``model-ds003_smdl.json``) run as published through the CLI: a Run node named
"subject" (one run per subject) feeding two Dataset nodes, "t-test" (a one-sample test of
each of ``task_vs_baseline`` and ``word_gt_pseudo``) and "F-test" (``GroupBy: []``: the
subjects' ``trial_type.word`` and ``trial_type.pseudoword`` maps, the contrast a
variable, and the F contrast ``any_words``).

The study is synthetic but shaped like ds003: bids-examples' 13 events files (the real
timings, copied into tests/data/ds003), 320 s runs at TR 2 s, tiny images with a word and
a pseudoword effect, and fMRIPrep-like derivatives with the confounds the model names
(framewise_displacement, trans_*, rot_*, a_comp_cor_00..05;
:func:`glm_workflows.synthetic.write_fmriprep_derivatives`). Every node's z maps equal
nilearn's: each run's FirstLevelModel with the design built here from the events and the
confounds (the words convolved with SPM's HRF, no drifts, the confounds' n/a as 0, the
intercept), and SecondLevelModel on our run maps with designs built here with pandas."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).resolve().parent / "data"
MODEL = DATA / "model_zoo" / "model-ds003_smdl.json"
TASK, T_R, N_SCANS, SHAPE, SPACE = "rhymejudgment", 2.0, 160, (8, 8, 8), "MNI152NLin2009cAsym"
SUBJECTS = [f"{i:02d}" for i in range(1, 14)]
CONFOUNDS = ["framewise_displacement", "trans_x", "trans_y", "trans_z", "rot_x", "rot_y",
             "rot_z", *[f"a_comp_cor_{k:02d}" for k in range(6)]]
#: Run-level contrasts: BIDS label -> weights over (word, pseudoword).
RUN_CONTRASTS = {"wordGtPseudo": [1, -1], "taskVsBaseline": [0.5, 0.5],
                 "trialTypeWord": [1, 0], "trialTypePseudoword": [0, 1]}
pytestmark = pytest.mark.slow


def _write_ds003(root: Path) -> Path:
    """Raw BIDS: 13 subjects, one 320 s run each, bids-examples' events."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "ds003-shaped synthetic", "BIDSVersion": "1.8.0"}))
    (root / f"task-{TASK}_bold.json").write_text(
        json.dumps({"RepetitionTime": T_R, "TaskName": "rhyme judgment"}))
    shutil.copy(DATA / "ds003" / "participants.tsv", root / "participants.tsv")
    grid = np.indices(SHAPE) - 3.5
    brain = ((grid / 3.4) ** 2).sum(axis=0) < 1
    frame_times = np.arange(N_SCANS) * T_R
    for index, subject in enumerate(SUBJECTS):
        func = root / f"sub-{subject}" / "func"
        func.mkdir(parents=True)
        events = DATA / "ds003" / f"sub-{subject}_task-{TASK}_events.tsv"
        shutil.copy(events, func / events.name)
        design = make_first_level_design_matrix(frame_times, pd.read_csv(events, sep="\t"),
                                                hrf_model="spm", drift_model=None)
        data = rng.normal(0, 4, SHAPE + (N_SCANS,))
        data[brain] += 600
        data[2:6, 2:6, 2:5] += (6 + index % 3) * design["word"].to_numpy() \
            + 3 * design["pseudoword"].to_numpy()
        data[2:6, 2:6, 5:7] += 4 * design["pseudoword"].to_numpy()
        nb.Nifti1Image(data.astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0])).to_filename(
            func / f"sub-{subject}_task-{TASK}_bold.nii.gz")
    return root


@pytest.fixture(scope="module")
def ds003(tmp_path_factory):
    """The synthetic ds003, its derivatives, and the model run through the CLI."""
    from glm_workflows.cli import main
    from glm_workflows.synthetic import write_fmriprep_derivatives

    root = tmp_path_factory.mktemp("ds003")
    bids = _write_ds003(root / "bids")
    fmriprep = write_fmriprep_derivatives(bids, root / "fmriprep", space=SPACE)
    out = root / "out"
    assert main(["--bids-dir", str(bids), "--derivatives", str(fmriprep), "--space", SPACE,
                 "--model", str(MODEL), "--output-dir", str(out),
                 "--work-dir", str(root / "work")]) == 0
    return bids, fmriprep, out


def _prefix(subject):
    return f"sub-{subject}_task-{TASK}"


def _run_map(out, subject, contrast, stat="effect"):
    # the outputs carry the space of the fMRIPrep image analysed
    return out / f"sub-{subject}" / (f"{_prefix(subject)}_space-{SPACE}_contrast-{contrast}"
                                     f"_stat-{stat}_statmap.nii.gz")


def _z(model, weights, test="t", level="first"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if level == "first":
            return model.compute_contrast(np.asarray(weights, dtype=float),
                                          stat_type=test, output_type="z_score").get_fdata()
        return model.compute_contrast(np.asarray(weights, dtype=float),
                                      second_level_stat_type=test,
                                      output_type="z_score").get_fdata()


def test_ds003_run_node_equals_first_level_model(ds003):
    """The Run node "subject": each run's z maps equal FirstLevelModel's on the design
    the node states, built here (measured max |dz| 5e-15)."""
    from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix

    bids, fmriprep, out = ds003
    worst = 0.0
    for subject in SUBJECTS:
        func = fmriprep / f"sub-{subject}" / "func"
        events = pd.read_csv(bids / f"sub-{subject}" / "func" /
                             f"{_prefix(subject)}_events.tsv", sep="\t")
        confounds = pd.read_csv(func / f"{_prefix(subject)}_desc-confounds_timeseries.tsv",
                                sep="\t", na_values=["n/a"])[CONFOUNDS].fillna(0)
        frame_times = np.arange(N_SCANS) * T_R
        design = make_first_level_design_matrix(frame_times, events, hrf_model="spm",
                                                drift_model=None)[["word", "pseudoword"]]
        design = pd.concat([design, confounds.set_index(design.index)], axis=1)
        design["constant"] = 1.0
        stem = func / f"{_prefix(subject)}_space-{SPACE}"
        model = FirstLevelModel(t_r=T_R, noise_model="ar1", minimize_memory=False,
                                mask_img=f"{stem}_desc-brain_mask.nii.gz")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(f"{stem}_desc-preproc_bold.nii.gz", design_matrices=[design])
        for contrast, weights in RUN_CONTRASTS.items():
            full = np.zeros(design.shape[1])
            full[:2] = weights
            ours = nb.load(_run_map(out, subject, contrast, "z")).get_fdata()
            worst = max(worst, float(np.abs(ours - _z(model, full)).max()))
    print(f"ds003 Run node: max |dz| = {worst:.3g}")
    assert worst < 1e-6


def _group_mask(out):
    from nilearn.masking import intersect_masks

    return intersect_masks([str(out / f"sub-{s}" / f"{_prefix(s)}_space-{SPACE}_desc-brain_"
                                                 "mask.nii.gz") for s in SUBJECTS], threshold=1)


def test_ds003_dataset_nodes_equal_second_level_model(ds003):
    """"t-test" (the model's first Dataset node: today's names) and "F-test" (named
    node-FTest): z maps equal SecondLevelModel's on our run maps (measured max |dz| 0 for
    each)."""
    from nilearn.glm.second_level import SecondLevelModel

    _, _, out = ds003
    group, mask = out / "group", _group_mask(out)
    worst = {}
    for contrast in ("taskVsBaseline", "wordGtPseudo"):
        model = SecondLevelModel(mask_img=mask).fit(
            [str(_run_map(out, s, contrast)) for s in SUBJECTS],
            design_matrix=pd.DataFrame({"intercept": np.ones(len(SUBJECTS))}))
        ours = nb.load(group / f"task-{TASK}_space-{SPACE}_contrast-{contrast}_stat-z_"
                               "statmap.nii.gz")
        worst[contrast] = float(np.abs(ours.get_fdata() - _z(model, [1], level="group")).max())
    rows = [(s, c) for s in SUBJECTS for c in ("trialTypeWord", "trialTypePseudoword")]
    design = pd.DataFrame({"trial_type.word": [float(c == "trialTypeWord") for _, c in rows],
                           "trial_type.pseudoword": [float(c == "trialTypePseudoword")
                                                     for _, c in rows]})
    model = SecondLevelModel(mask_img=mask).fit([str(_run_map(out, s, c)) for s, c in rows],
                                                design_matrix=design)
    ours = nb.load(group / f"task-{TASK}_space-{SPACE}_node-FTest_contrast-anyWords_stat-z_"
                           "statmap.nii.gz")
    assert np.isfinite(ours.get_fdata()).all()
    worst["anyWords"] = float(np.abs(ours.get_fdata()
                                     - _z(model, [[1, 0], [0, 1]], "F", "group")).max())
    print(f"ds003 Dataset nodes: max |dz| = {worst}")
    assert max(worst.values()) < 1e-6
    names = sorted(p.name for p in group.glob("*_stat-z_statmap.nii.gz"))
    assert names == [f"task-{TASK}_space-{SPACE}_contrast-taskVsBaseline_stat-z_statmap.nii.gz",
                     f"task-{TASK}_space-{SPACE}_contrast-wordGtPseudo_stat-z_statmap.nii.gz",
                     f"task-{TASK}_space-{SPACE}_node-FTest_contrast-anyWords_stat-z_statmap.nii.gz"]
    report = (out / "group.html").read_text()
    assert f"node FTest: task rhymejudgment, space {SPACE}, contrast anyWords" in report


def test_ds003_both_dataset_nodes_from_the_derivatives_alone(ds003, tmp_path):
    """The group level alone (``--from-derivatives`` of the first run's outputs) runs both
    Dataset nodes, "t-test" and the pooled "F-test", into a new folder: every group map
    identical to the full run's."""
    from glm_workflows.cli import main

    _, _, out = ds003
    again = tmp_path / "group_only"
    assert main(["--from-derivatives", str(out), "--task", TASK, "--model", str(MODEL),
                 "--output-dir", str(again), "--work-dir", str(tmp_path / "work")]) == 0
    names = sorted(p.name for p in (out / "group").glob("*_statmap.nii.gz"))
    assert any("node-FTest" in name for name in names)
    assert names == sorted(p.name for p in (again / "group").glob("*_statmap.nii.gz"))
    for name in names:
        np.testing.assert_array_equal(nb.load(again / "group" / name).get_fdata(),
                                      nb.load(out / "group" / name).get_fdata(), err_msg=name)
