"""A Session or Subject node with a design weighs each subject's maps: the model zoo's
``paired_difference`` and ``2_grp_2lev_per_sub`` (tests/data/model_zoo, as published),
on a synthetic study shaped like the "altered" ds005 (three runs per subject, each
subject's ``scans.tsv`` giving ``runnum``, as the zoo's README describes it).

The Session node (GroupBy subject and contrast, ``meta``, X ``[runs1_2, run3]`` from two
Thresholds of ``runnum``) estimates ``run3 - mean(run1, run2)``. Expected here,
independently: the effect ``e3 - (e1 + e2) / 2``, its variance ``v3 + (v1 + v2) / 4``,
t their ratio on the runs' summed degrees of freedom, z from t with scipy; the Dataset
node's maps with nilearn's SecondLevelModel on those subject maps.
"""

import json
import warnings
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from glm_workflows.core.errors import InputError
from glm_workflows.core.naming import GROUP_FOLDER, group_file, group_stem, model_file
from glm_workflows.core.within_subject import combination_weights, map_variables

ZOO = Path(__file__).resolve().parent / "data" / "model_zoo"
TASK, INCOMING, PAIRED = "mixedgamblestask", "negLossParametric", "run3MinusMeanRun1Run2"
SUBJECTS = [f"{i:02d}" for i in range(1, 9)]
SHORT = "08"  # two runs only: its paired difference cannot be estimated
T_R, N_SCANS, SHAPE = 2.0, 40, (8, 8, 8)
THRESHOLDS = [{"Name": "Threshold", "Input": "runnum", "Threshold": 2, "Binarize": True,
               "Above": False, "Output": "runs1_2"},
              {"Name": "Threshold", "Input": "runnum", "Threshold": 3, "Binarize": True,
               "Above": True, "Output": "run3"}]


def _file(name):
    return ZOO / f"model-ds0005_altered_{name}_smdl.json"


def _write_study(root: Path) -> Path:
    rng = np.random.default_rng(11)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "ds005-shaped, three runs", "BIDSVersion": "1.8.0"}))
    (root / f"task-{TASK}_bold.json").write_text(json.dumps({"RepetitionTime": T_R}))
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in SUBJECTS],
                  "sex": ["M", "F"] * 4}).to_csv(root / "participants.tsv", sep="\t",
                                                 index=False)
    grid = np.indices(SHAPE) - 3.5
    brain = ((grid / 3.2) ** 2).sum(axis=0) < 1
    onsets = np.arange(2.0, N_SCANS * T_R - 8, 6.0)
    for index, subject in enumerate(SUBJECTS):
        func = root / f"sub-{subject}" / "func"
        func.mkdir(parents=True)
        runs = (1, 2) if subject == SHORT else (1, 2, 3)
        scans = []
        for run in runs:
            gain = rng.integers(10, 40, len(onsets)).astype(float)
            loss = rng.integers(5, 20, len(onsets)).astype(float)
            events = pd.DataFrame({"onset": onsets, "duration": 3.0, "gain": gain,
                                   "loss": loss,
                                   "distance from indifference": np.abs(gain / 2 - loss)})
            name = f"sub-{subject}_task-{TASK}_run-{run:02d}"
            events.to_csv(func / f"{name}_events.tsv", sep="\t", index=False)
            frame = np.arange(N_SCANS) * T_R
            signal = np.zeros(N_SCANS)
            for onset, value in zip(onsets, loss - loss.mean(), strict=True):
                signal[(frame >= onset) & (frame < onset + 6)] += value
            data = rng.normal(0, 5, SHAPE + (N_SCANS,))
            data[brain] += 800
            data[2:5, 2:6, 2:5] -= (1 + (index % 3) * (run == 3)) * signal
            nb.Nifti1Image(data.astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0])
                           ).to_filename(func / f"{name}_bold.nii.gz")
            scans.append({"filename": f"func/{name}_bold.nii.gz", "runnum": run})
        pd.DataFrame(scans).to_csv(root / f"sub-{subject}" / f"sub-{subject}_scans.tsv",
                                   sep="\t", index=False)
    return root


@pytest.fixture(scope="module")
def paired_runs(tmp_path_factory):
    """Both zoo models through the CLI (one work folder: the runs are fitted once)."""
    from glm_workflows.cli import main

    root = tmp_path_factory.mktemp("paired")
    bids = _write_study(root / "bids")
    outputs = {}
    for name in ("paired_difference", "2_grp_2lev_per_sub"):
        out = root / name
        assert main(["--bids-dir", str(bids), "--model", str(_file(name)), "--output-dir",
                     str(out), "--work-dir", str(root / "work")]) == 0, name
        outputs[name] = out
    return outputs


def _run_map(out, subject, run, stat):
    return out / f"sub-{subject}" / (f"sub-{subject}_task-{TASK}_run-{run:02d}_contrast-"
                                     f"{INCOMING}_stat-{stat}_statmap.nii.gz")


def _subject_map(out, subject, stat):
    return out / f"sub-{subject}" / (f"sub-{subject}_task-{TASK}_contrast-{PAIRED}_stat-"
                                     f"{stat}_statmap.nii.gz")


def _mask(out, subject):
    return out / f"sub-{subject}" / model_file(f"sub-{subject}_task-{TASK}", "mask_file")


def _dof(out, subject, run):
    sidecar = out / f"sub-{subject}" / model_file(f"sub-{subject}_task-{TASK}_run-{run:02d}",
                                                  "model_json")
    return json.loads(sidecar.read_text())["DegreesOfFreedom"]


@pytest.mark.slow
def test_paired_difference_subject_maps_equal_the_formula(paired_runs):
    out = paired_runs["paired_difference"]
    for subject in SUBJECTS[:-1]:
        e1, e2, e3 = (nb.load(_run_map(out, subject, r, "effect")).get_fdata() for r in (1, 2, 3))
        v1, v2, v3 = (nb.load(_run_map(out, subject, r, "variance")).get_fdata()
                      for r in (1, 2, 3))
        inside = nb.load(_mask(out, subject)).get_fdata() > 0
        effect, variance = e3 - (e1 + e2) / 2, v3 + (v1 + v2) / 4
        t = effect / np.sqrt(variance)
        dof = sum(_dof(out, subject, r) for r in (1, 2, 3))
        z = -stats.norm.ppf(stats.t.sf(t, dof))
        for stat, expected in (("effect", effect), ("variance", variance), ("t", t), ("z", z)):
            ours = nb.load(_subject_map(out, subject, stat)).get_fdata()
            assert np.abs(ours[inside] - expected[inside]).max() < 1e-6, (subject, stat)
    assert not _subject_map(out, SHORT, "z").exists()  # no third run: left out


@pytest.mark.slow
@pytest.mark.parametrize("name, design, contrasts", [
    ("paired_difference", lambda sex: pd.DataFrame({"intercept": np.ones(len(sex))}),
     [(None, [1.0])]),
    ("2_grp_2lev_per_sub", lambda sex: pd.DataFrame({"sex.M": (sex == "M").astype(float),
                                                     "sex.F": (sex == "F").astype(float)}),
     [("MRunDiffFRunDiff", [1.0, -1.0]), ("FRunDiffMRunDiff", [-1.0, 1.0])]),
])
def test_group_maps_of_the_paired_differences_equal_nilearn(paired_runs, name, design,
                                                            contrasts):
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.masking import intersect_masks

    out = paired_runs[name]
    subjects = SUBJECTS[:-1]
    effects = [str(_subject_map(out, s, "effect")) for s in subjects]
    mask = intersect_masks([str(_mask(out, s)) for s in subjects], threshold=1)
    sex = pd.Series(["M", "F"] * 4)[:len(subjects)].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SecondLevelModel(mask_img=mask).fit(effects, design_matrix=design(sex))
    for group_contrast, weights in contrasts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = model.compute_contrast(np.asarray(weights), output_type="z_score")
        ours = out / GROUP_FOLDER / group_file(group_stem(TASK, PAIRED, group_contrast),
                                               "z_maps", "z")
        assert np.abs(nb.load(ours).get_fdata() - expected.get_fdata()).max() < 1e-6


# ------------------------------------------------------------------- the core, no images


def _rows(runnums, **columns):
    return [map_variables("01", TASK, None, f"{r:02d}", {}, {"runnum": str(r), **columns})
            for r in runnums]


def test_weights_are_the_least_squares_combination():
    weights = combination_weights(_rows((1, 2, 3)), ["runs1_2", "run3"],
                                  [(PAIRED, "t", ("-runs1_2 + run3",))], THRESHOLDS, "m")
    np.testing.assert_allclose(weights[PAIRED], [-0.5, -0.5, 1.0], atol=1e-12)
    mean = combination_weights(_rows((1, 2, 3, 4)), [1], [("mean", "t", ("intercept",))])
    np.testing.assert_allclose(mean["mean"], [0.25] * 4, atol=1e-12)  # fixed effects' mean


def test_the_run_entity_is_a_variable():
    weights = combination_weights(_rows((1, 2, 3, 4)), [1, "run"],
                                  [("slope", "t", ("run",))], [], "m")
    run = np.array([1, 2, 3, 4.0])
    np.testing.assert_allclose(weights["slope"], (run - run.mean()) / ((run - run.mean())
                                                                        ** 2).sum())


def test_a_contrast_a_subject_cannot_estimate_gives_the_reason():
    found = combination_weights(_rows((1, 2)), ["runs1_2", "run3"],
                                [(PAIRED, "t", ("-runs1_2 + run3",))], THRESHOLDS, "m")
    assert found == {PAIRED: "column 'run3' is zero in every map"}


def test_an_unknown_or_missing_variable_is_refused_in_one_line():
    with pytest.raises(InputError, match=r"^m: Model.X: no column 'runnumber' in "
                                         r"scans.tsv after the transformations"):
        combination_weights(_rows((1, 2)), ["runnumber"], [("a", "t", ("runnumber",))], [],
                            "m", "scans.tsv")
    rows = _rows((1, 2))
    rows[1]["runnum"] = None
    with pytest.raises(InputError, match=r"^scans.tsv: variable 'runnum' is n/a for map\(s\) "
                                         r"2 of 01, which m uses"):
        combination_weights(rows, ["runnum"], [("a", "t", ("runnum",))], [], "m",
                            "scans.tsv")


# ------------------------------------------- a paired pre/post design, written here


PAIRED_MODEL = Path(__file__).resolve().parents[1] / "examples" / "models" / \
    "paired_sessions_smdl.json"


@pytest.mark.slow
def test_a_subject_node_over_sessions_gives_post_minus_pre(tmp_path):
    """examples/models/paired_sessions_smdl.json: a Subject node over each subject's four
    runs (two per session) with X [session.pre, session.post] (Factor of the session
    entity) and the contrast post - pre: the mean of the post runs minus the mean of the
    pre runs, variance (sum of the four variances) / 4; the group maps SecondLevelModel's."""
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.masking import intersect_masks

    from glm_workflows.cli import main
    from glm_workflows.synthetic import write_tiny_bids

    subjects = ("01", "02", "03")
    bids = write_tiny_bids(tmp_path / "bids", subjects=subjects, runs=2,
                           sessions=("pre", "post"), n_scans=40)
    out = tmp_path / "out"
    assert main(["--bids-dir", str(bids), "--model", str(PAIRED_MODEL), "--output-dir",
                 str(out), "--work-dir", str(tmp_path / "work")]) == 0
    effects = []
    for subject in subjects:
        folder = out / f"sub-{subject}"

        def run_map(session, run, stat, folder=folder, subject=subject):
            return nb.load(folder / f"ses-{session}" / f"sub-{subject}_ses-{session}_task-tiny_"
                           f"run-{run}_contrast-aMinusB_stat-{stat}_statmap.nii.gz").get_fdata()

        effect = (run_map("post", 1, "effect") + run_map("post", 2, "effect")
                  - run_map("pre", 1, "effect") - run_map("pre", 2, "effect")) / 2
        variance = sum(run_map(s, r, "variance") for s in ("pre", "post") for r in (1, 2)) / 4
        stem = folder / f"sub-{subject}_task-tiny_contrast-postMinusPre"
        inside = nb.load(folder / model_file(f"sub-{subject}_task-tiny", "mask_file")
                         ).get_fdata() > 0
        for stat, expected in (("effect", effect), ("variance", variance),
                               ("t", effect / np.sqrt(variance))):
            ours = nb.load(f"{stem}_stat-{stat}_statmap.nii.gz").get_fdata()
            assert np.abs(ours[inside] - expected[inside]).max() < 1e-6, (subject, stat)
        effects.append(f"{stem}_stat-effect_statmap.nii.gz")
    mask = intersect_masks([str(out / f"sub-{s}" / model_file(f"sub-{s}_task-tiny",
                                                              "mask_file"))
                            for s in subjects], threshold=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = SecondLevelModel(mask_img=mask).fit(
            effects, design_matrix=pd.DataFrame({"intercept": np.ones(len(subjects))})
        ).compute_contrast("intercept", output_type="z_score")
    ours = out / GROUP_FOLDER / group_file(group_stem("tiny", "postMinusPre"), "z_maps", "z")
    assert np.abs(nb.load(ours).get_fdata() - expected.get_fdata()).max() < 1e-6
