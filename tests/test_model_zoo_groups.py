"""The model zoo's FSL-style group models (``model-ds0005_altered_*``, copied into
tests/data/model_zoo) run as published on a small synthetic study shaped like the
"altered" ds005 (task ``mixedgamblestask``; events with ``gain``, ``loss`` and ``distance
from indifference``; participants.tsv with ``sex``, ``age``, ``fake_patient_grp`` and
``fake_task_pres``), equal to nilearn's SecondLevelModel fitted on the same subject maps
with the design built here, independently, with pandas from participants.tsv as each
model states it (Factor -> indicators, Demean -> minus the mean over the subjects
modelled, Product -> the row-wise product).

The design tables themselves are checked in milliseconds against hand-made pandas tables
(no images): :func:`test_zoo_design_tables_equal_pandas`.
"""

import json
import warnings
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.core.group import read_participants
from glm_workflows.core.group_variables import dataset_design
from glm_workflows.core.stats_model_read import read_stats_model
from glm_workflows.spec.bsm import check_node_chain

ZOO = Path(__file__).resolve().parent / "data" / "model_zoo"
TASK, CONTRAST = "mixedgamblestask", "negLossParametric"
SUBJECTS = [f"{i:02d}" for i in range(1, 17)]
T_R, N_SCANS, SHAPE = 2.0, 40, (8, 8, 8)
PARTICIPANTS = pd.DataFrame({  # every cell of the 2x4 and 2x2 designs has 2 or 4 subjects
    "participant_id": [f"sub-{s}" for s in SUBJECTS],
    "sex": ["M", "F"] * 8,
    "age": [23, 31, 45, 27, 38, 29, 52, 34, 41, 26, 36, 48, 30, 44, 25, 39],
    "fake_patient_grp": [1, 1, 2, 2, 3, 3, 4, 4] * 2,
    "fake_task_pres": [1, 1, 2, 2] * 4,
    "handedness": ["R", "n/a", "L", "R", "n/a", "R", "R", "L"] * 2,  # unused: n/a allowed
})


def _file(name):
    return ZOO / f"model-ds0005_altered_{name}_smdl.json"


def _expected_design(name, table):
    """The design each model states, built with pandas (columns named as the model's)."""
    sex = pd.get_dummies(table["sex"], prefix="sex", prefix_sep=".").astype(float)
    age = table["age"].astype(float)
    if name == "single_grp_avg":
        return pd.DataFrame({"intercept": 1.0}, index=table.index)
    if name == "single_grp_avg_w_covar":
        return pd.DataFrame({"intercept": 1.0, "age_dm": age - age.mean()})
    if name == "two_grp_diff":
        return sex[["sex.M", "sex.F"]]
    if name == "two_grp_diff_adj_age":
        return sex[["sex.M", "sex.F"]].assign(age_dm=age - age.mean())
    if name == "two_grp_by_age_interaction":
        return sex[["sex.M", "sex.F"]].assign(**{"age.M": sex["sex.M"] * age,
                                                 "age.F": sex["sex.F"] * age})
    if name == "one_factor_4_lev":
        return pd.get_dummies(table["fake_patient_grp"], prefix="fake_patient_grp",
                              prefix_sep=".").astype(float)
    if name == "two_by_two_bs_anova":
        task = table["fake_task_pres"]
        return pd.DataFrame({f"{s.lower()}_task{t}": ((table["sex"] == s) & (task == t))
                             .astype(float) for s in "MF" for t in (1, 2)})
    if name == "anova_2_by_4_cell_means":  # the Formula's a:b terms: products
        return pd.DataFrame({f"fake_patient_grp.{g}:sex.{x}": (
            (table["fake_patient_grp"] == g) & (table["sex"] == x)).astype(float)
            for g in (1, 2, 3, 4) for x in "MF"})
    raise KeyError(name)


#: Per model: (BIDS label of the group contrast or None for the mean, test, weights over
#: the expected design's columns), as each file's Contrasts state them.
CONTRASTS = {
    "single_grp_avg": [(None, "t", [1])],
    "single_grp_avg_w_covar": [("posAgeEffect", "t", [0, 1]), ("negAgeEffect", "t", [0, -1]),
                               ("meanGt0", "t", [1, 0]), ("meanLt0", "t", [-1, 0])],
    "two_grp_diff": [("femaleGtMale", "t", [-1, 1]), ("maleGtFemale", "t", [1, -1])],
    "two_grp_diff_adj_age": [("femaleGtMale", "t", [-1, 1, 0]),
                             ("maleGtFemale", "t", [1, -1, 0]),
                             ("ageGt0", "t", [0, 0, 1]), ("ageLt0", "t", [0, 0, -1])],
    "two_grp_by_age_interaction": [("slopeAgeMGtSlopeAgeF", "t", [0, 0, 1, -1]),
                                   ("slopeAgeFGtSlopeAgeM", "t", [0, 0, -1, 1])],
    "one_factor_4_lev": [("g1VsG4", "t", [1, 0, 0, -1]), ("g2VsG4", "t", [0, 1, 0, -1]),
                         ("g3VsG4", "t", [0, 0, 1, -1]),
                         ("anovaMainGroupEffect", "F", [[1, 0, 0, -1], [0, 1, 0, -1],
                                                        [0, 0, 1, -1]])],
    "two_by_two_bs_anova": [("mainSexEffectFTest", "F", [[1, 1, -1, -1]]),
                            ("mainTaskTypeEffectFTest", "F", [[1, -1, 1, -1]]),
                            ("interactionEffectFTest", "F", [[1, -1, -1, 1]])],
    "anova_2_by_4_cell_means": [
        ("mainSexEffectFTest", "F", [[1, -1, 1, -1, 1, -1, 1, -1]]),
        ("mainPatientGroupEffectFTest", "F", [[1, 1, 0, 0, 0, 0, -1, -1],
                                              [0, 0, 1, 1, 0, 0, -1, -1],
                                              [0, 0, 0, 0, 1, 1, -1, -1]]),
        ("InteractionEffectFTest", "F", [[1, -1, 0, 0, 0, 0, -1, 1],
                                         [0, 0, 1, -1, 0, 0, -1, 1],
                                         [0, 0, 0, 0, 1, -1, -1, 1]])],
}
MODELS = tuple(CONTRASTS)


def _participants(tmp_path):
    path = tmp_path / "participants.tsv"
    PARTICIPANTS.to_csv(path, sep="\t", index=False)
    return read_participants(path)


def _node_design(name, participants, subjects=SUBJECTS):
    model = read_stats_model(_file(name))
    _, dataset = check_node_chain(model)
    return dataset_design(subjects, participants, [x for x in dataset.x if x != 1],
                          intercept=1 in dataset.x, transformations=dataset.transformations,
                          where=dataset.path)


@pytest.mark.parametrize("name", MODELS)
def test_zoo_design_tables_equal_pandas(tmp_path, name):
    """Each model's Dataset design over participants.tsv equals the pandas table its
    formula states (also over a subset of subjects: Demean's mean is theirs)."""
    participants = _participants(tmp_path)
    table = PARTICIPANTS.assign(participant_id=SUBJECTS).set_index("participant_id")
    ours = _node_design(name, participants)
    expected = _expected_design(name, table)
    assert list(ours.columns) == list(expected.columns)
    np.testing.assert_array_equal(ours.to_numpy(), expected.to_numpy(dtype=float))
    if name in ("single_grp_avg_w_covar", "two_grp_diff_adj_age"):
        subset = SUBJECTS[:6]
        ours = _node_design(name, participants, subset)
        expected = _expected_design(name, table.loc[subset])
        np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(dtype=float),
                                   rtol=0, atol=1e-12)


def test_missing_value_in_a_used_column_is_refused_in_one_line(tmp_path):
    participants = _participants(tmp_path)
    participants.loc[["03", "06"], "age"] = np.nan
    with pytest.raises(InputError) as error:
        _node_design("two_grp_diff_adj_age", participants)
    assert str(error.value) == ("participants.tsv: column 'age' is n/a for sub-03, sub-06, "
                                "which the design uses (fill in the values or leave those "
                                "subjects out)")
    _node_design("two_grp_diff", participants)  # age unused there: n/a is fine


def test_unknown_design_column_names_the_node(tmp_path):
    participants = _participants(tmp_path).drop(columns="fake_task_pres")
    with pytest.raises(InputError, match=r"Nodes\[2\].Transformations.Instructions\[1\] "
                                         r"\(Factor\): no variable 'fake_task_pres'"):
        _node_design("two_by_two_bs_anova", participants)


# --------------------------------------------------------------------- through the CLI


def _write_study(root: Path) -> Path:
    """Sixteen subjects, one run each of 40 scans on an 8x8x8 grid."""
    rng = np.random.default_rng(5)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "ds005-shaped synthetic", "BIDSVersion": "1.8.0"}))
    (root / f"task-{TASK}_bold.json").write_text(json.dumps({"RepetitionTime": T_R}))
    PARTICIPANTS.to_csv(root / "participants.tsv", sep="\t", index=False)
    grid = np.indices(SHAPE) - 3.5
    brain = ((grid / 3.2) ** 2).sum(axis=0) < 1
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    onsets = np.arange(2.0, N_SCANS * T_R - 8, 6.0)
    for index, subject in enumerate(SUBJECTS):
        func = root / f"sub-{subject}" / "func"
        func.mkdir(parents=True)
        gain = rng.integers(10, 40, len(onsets)).astype(float)
        loss = rng.integers(5, 20, len(onsets)).astype(float)
        events = pd.DataFrame({"onset": onsets, "duration": 3.0, "gain": gain, "loss": loss,
                               "distance from indifference": np.abs(gain / 2 - loss)})
        stem = func / f"sub-{subject}_task-{TASK}"
        events.to_csv(f"{stem}_events.tsv", sep="\t", index=False)
        frame = np.arange(N_SCANS) * T_R
        signal = np.zeros(N_SCANS)
        for onset, value in zip(onsets, loss - loss.mean(), strict=True):
            signal[(frame >= onset) & (frame < onset + 6)] += value
        data = rng.normal(0, 5, SHAPE + (N_SCANS,))
        data[brain] += 800
        data[2:5, 2:6, 2:5] -= (1 + index % 4) * signal
        nb.Nifti1Image(data.astype(np.float32), affine).to_filename(f"{stem}_bold.nii.gz")
    return root


@pytest.fixture(scope="module")
def zoo_study(tmp_path_factory):
    return _write_study(tmp_path_factory.mktemp("ds005") / "bids")


@pytest.fixture(scope="module")
def zoo_runs(zoo_study, tmp_path_factory):
    """Each model through the CLI (one work folder: the first level is computed once)."""
    from glm_workflows.cli import main

    root = tmp_path_factory.mktemp("zoo_runs")
    outputs = {}
    for name in MODELS:
        out = root / name
        argv = ["--bids-dir", str(zoo_study), "--model", str(_file(name)),
                "--output-dir", str(out), "--work-dir", str(root / "work")]
        assert main(argv) == 0, name
        outputs[name] = out
    return outputs


def _group_file(out, group_contrast, stat):
    from glm_workflows.core.naming import GROUP_FOLDER, group_file, group_stem

    return out / GROUP_FOLDER / group_file(group_stem(TASK, CONTRAST, group_contrast),
                                           "z_maps" if stat == "z" else "stat_maps", stat)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_zoo_group_maps_equal_nilearn(zoo_runs, name):
    """z and t/F maps of every group contrast equal SecondLevelModel's on our subject maps,
    with the design built here from participants.tsv (max abs difference < 1e-10;
    measured: 0, identical)."""
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.masking import intersect_masks

    from glm_workflows.core.naming import GROUP_FOLDER, model_file

    out = zoo_runs[name]
    subjects = json.loads(_file(name).read_text())["Input"].get("subject", SUBJECTS)
    assert sorted(p.name for p in out.glob("sub-*") if p.is_dir()) == \
        [f"sub-{s}" for s in subjects]  # single_grp_avg's Input selects four subjects
    effects = [str(out / f"sub-{s}" / f"sub-{s}_task-{TASK}_contrast-{CONTRAST}"
                                      "_stat-effect_statmap.nii.gz") for s in subjects]
    mask = intersect_masks([str(out / f"sub-{s}" / model_file(f"sub-{s}_task-{TASK}",
                                                               "mask_file"))
                            for s in subjects], threshold=1)
    table = PARTICIPANTS.assign(participant_id=SUBJECTS).set_index("participant_id")
    design = _expected_design(name, table.loc[subjects])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SecondLevelModel(mask_img=mask).fit(effects, design_matrix=design)
    assert (out / GROUP_FOLDER).is_dir()
    for group_contrast, test, weights in CONTRASTS[name]:
        weights = np.asarray(weights, dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = model.compute_contrast(weights, second_level_stat_type=test,
                                            output_type="all")
        for stat, key in (("z", "z_score"), (test, "stat")):
            ours = nb.load(_group_file(out, group_contrast, stat)).get_fdata()
            expected = theirs[key].get_fdata()
            assert np.isfinite(ours).all()
            assert np.abs(ours - expected).max() < 1e-10, (name, group_contrast, stat)
