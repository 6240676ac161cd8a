"""The model zoo's NARPS model (``model-narps_smdl.json``, copied verbatim into
tests/data/model_zoo) run as published: its ``Input`` value is a string (``"task":
"MGT"``) and its Dataset nodes have no ``Model.Type``, both read as pybids reads them (a
one-element list; ``glm``); "positive" and "negative-loss" are grouped by contrast and
the participants.tsv column ``group`` (a model per level); "between-groups" is the
formula ``0 + C(group)`` with contrasts naming ``C(group)[T.<level>]``.

The study is synthetic and NARPS-like: eight subjects, four per group
(``equalIndifference``, ``equalRange``), task MGT, two runs each with gain, loss and RT
per trial, tiny images with a gain effect and a loss effect three times larger in
equalRange. Every node's z maps equal nilearn's, computed here: FirstLevelModel with the
Run node's design built with nilearn from the events; compute_fixed_effects of each
subject's runs; SecondLevelModel per group (one-sample) and with formulaic's
``0 + C(group)`` design."""

import json
import warnings
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.contrasts import contrast_matrix
from glm_workflows.core.errors import InputError
from glm_workflows.core.group import read_participants
from glm_workflows.core.group_variables import dataset_design
from glm_workflows.core.stats_model_read import stats_model
from glm_workflows.spec.bsm import dataset_contrasts

ZOO = Path(__file__).resolve().parent / "data" / "model_zoo"
MODEL = ZOO / "model-narps_smdl.json"
TASK = "MGT"
GROUPS = ("equalIndifference", "equalRange")
SUBJECTS = [f"{i:03d}" for i in range(1, 9)]
#: Four subjects per group, interleaved (the design's rows follow the subjects' order).
PARTICIPANTS = pd.DataFrame({"participant_id": [f"sub-{s}" for s in SUBJECTS],
                             "group": [GROUPS[i % 2] for i in range(len(SUBJECTS))],
                             "age": [23, 31, 45, 27, 38, 29, 52, 34]})


def _published():
    return json.loads(MODEL.read_text())


def _read(published=None):
    """The published model (or ``published``, a changed copy), read and checked."""
    return stats_model(published or _published(), str(MODEL))


def test_input_string_is_a_one_element_list():
    """``"task": "MGT"`` is ``["MGT"]``, as pybids passes it to the layout's query; a
    list stays as written."""
    published = _published()
    assert published["Input"] == {"task": TASK}  # the file as the zoo has it
    assert _read().input == {"task": [TASK]}
    listed = _read({**published, "Input": {"task": [TASK], "run": 1}})
    assert listed.input == {"task": [TASK], "run": [1]}


def test_model_without_type_is_a_glm():
    """The Dataset nodes have no ``Model.Type``: ``glm``, pybids's default
    (``node.model.get('type', 'glm')``)."""
    published = _published()
    assert [("Type" in n["Model"]) for n in published["Nodes"]] == [True, True, False,
                                                                    False, False]
    model = _read()
    assert [n.model_type for n in model.nodes] == ["glm", "meta", "glm", "glm", "glm"]


def _between_groups(model):
    return next(n for n in model.nodes if n.name == "between-groups")


def _design(node, tmp_path, subjects=SUBJECTS):
    path = tmp_path / "participants.tsv"
    PARTICIPANTS.to_csv(path, sep="\t", index=False)
    return dataset_design(subjects, read_participants(path), [x for x in node.x if x != 1],
                          intercept=1 in node.x, transformations=node.transformations,
                          where=node.path)


@pytest.mark.parametrize("subjects", [SUBJECTS, SUBJECTS[1:6]])
def test_cell_means_design_equals_formulaic(tmp_path, subjects):
    """``Formula: 0 + C(group)`` over ``X: [1, "group"]``: formulaic's design (the
    library pybids builds a Formula with) -- one indicator per level, levels sorted, no
    intercept -- with its columns ``C(group)[<level>]`` named ``group.<level>``."""
    from formulaic import model_matrix

    node = _between_groups(_read())
    assert node.x == ("C(group)",)
    ours = _design(node, tmp_path, subjects)
    table = PARTICIPANTS.assign(participant_id=SUBJECTS).set_index("participant_id")
    theirs = model_matrix("0 + C(group)", table.loc[subjects])
    assert list(theirs.columns) == [f"C(group)[{g}]" for g in GROUPS]
    assert list(ours.columns) == [f"group.{g}" for g in GROUPS]
    np.testing.assert_array_equal(ours.to_numpy(), np.asarray(theirs, dtype=float))


@pytest.mark.parametrize("spelling", ["C(group)[T.{}]", "C(group)[{}]", "group.{}"])
def test_level_names_in_either_spelling(tmp_path, spelling):
    """The contrast names the levels as the published file does (``C(group)[T.level]``,
    treatment coding's spelling), as formulaic names the cell-means columns
    (``C(group)[level]``) or as Factor does (``group.level``): the same weights,
    equalRange - equalIndifference over the design's columns."""
    published = _published()
    contrast = published["Nodes"][4]["Contrasts"][0]
    contrast["ConditionList"] = [spelling.format("equalRange"),
                                 spelling.format("equalIndifference")]
    node = _between_groups(_read(published))
    ((label, row),) = dataset_contrasts(node)
    assert label == "rangeVsIndiference"
    columns = list(_design(node, tmp_path).columns)
    np.testing.assert_array_equal(contrast_matrix([row], columns, "t"), [[-1.0, 1.0]])


def test_level_no_column_has_is_refused_listing_the_columns(tmp_path):
    published = _published()
    published["Nodes"][4]["Contrasts"][0]["ConditionList"][0] = "C(group)[T.equalWidth]"
    node = _between_groups(_read(published))
    ((_, row),) = dataset_contrasts(node)
    with pytest.raises(InputError) as error:
        contrast_matrix([row], list(_design(node, tmp_path).columns), "t")
    assert str(error.value) == ("contrast 'group.equalWidth - group.equalIndifference': "
                                "unknown column 'group.equalWidth'; available columns: "
                                "group.equalIndifference, group.equalRange")


@pytest.mark.parametrize("formula", ["C(group)", "1 + C(group)", "0 + C(group) + C(sex)"])
def test_categorical_term_with_intercept_is_refused(formula):
    published = _published()
    published["Nodes"][4]["Model"]["Formula"] = formula
    published["Nodes"][4]["Model"]["X"] = [1, "group", "sex"]
    with pytest.raises(InputError) as error:
        _read(published)
    assert str(error.value) == (
        f"{MODEL}: Nodes[4].Model.Formula: C(group) is supported as the only categorical "
        "term of a formula without the intercept ('0 + C(group)': a column per level, the "
        "cell means)")


def test_categorical_column_missing_from_participants_is_refused(tmp_path):
    node = _between_groups(_read())
    path = tmp_path / "participants.tsv"
    PARTICIPANTS.drop(columns="group").to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError) as error:
        dataset_design(SUBJECTS, read_participants(path), list(node.x), intercept=False,
                       where=node.path)
    assert str(error.value) == (f"{MODEL}: Nodes[4]: Model.Formula: no column 'group' in "
                                "participants.tsv for C(group) (columns: age)")


def test_spec_written_back_reads_the_same(tmp_path):
    """The spec written as a model file (``to_bids_stats_model``) reads back the same:
    the grouping by ``group`` and the cell-means design (``X: ["C(group)"]``) kept."""
    from glm_workflows.spec.from_model import read_model, spec_from_dict
    from glm_workflows.spec.serialize import to_bids_stats_model

    spec = read_model(MODEL, bids_dir=str(tmp_path))
    written = to_bids_stats_model(spec)
    assert [n["GroupBy"] for n in written["Nodes"][2:]] == [["contrast", "group"]] * 2 + [
        ["contrast"]]
    again = spec_from_dict(json.loads(json.dumps(written)), "again.json", bids_dir=str(tmp_path))
    assert again.nodes == spec.nodes and again.edges == spec.edges


# --------------------------------------------------------------------- through the CLI

T_R, N_SCANS, SHAPE, RUNS = 2.0, 50, (7, 7, 7), (1, 2)


def _events(rng) -> pd.DataFrame:
    """A run's mixed-gambles trials: onset, duration, gain, loss, RT (NARPS's columns)."""
    onsets = np.arange(4.0, N_SCANS * T_R - 12, 5.0) + rng.uniform(0, 1.5)
    return pd.DataFrame({"onset": onsets, "duration": 4.0,
                         "gain": rng.integers(10, 41, len(onsets)).astype(float),
                         "loss": rng.integers(5, 21, len(onsets)).astype(float),
                         "RT": rng.uniform(0.8, 2.5, len(onsets)).round(3)})


def _run_design(events: pd.DataFrame) -> pd.DataFrame:
    """The Run node's design as the model states it, built with nilearn: ``trials``
    (gain > 0: every trial), gain, loss and RT demeaned over the run's trials, each
    convolved with SPM's HRF, no drifts, the intercept."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    columns = {"trials": (events["gain"] > 0).astype(float),
               "gain": events["gain"] - events["gain"].mean(),
               "loss": events["loss"] - events["loss"].mean(),
               "demeaned_RT": events["RT"] - events["RT"].mean()}
    table = pd.concat([pd.DataFrame({"onset": events["onset"], "duration": events["duration"],
                                     "trial_type": name, "modulation": values})
                       for name, values in columns.items()])
    design = make_first_level_design_matrix(np.arange(N_SCANS) * T_R, table,
                                            hrf_model="spm", drift_model=None)
    return design[list(columns) + ["constant"]]


def _write_narps(root: Path) -> Path:
    """Eight subjects (four per group), task MGT, two runs each; a loss effect that
    differs by group and a gain effect."""
    rng = np.random.default_rng(44)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "NARPS-shaped synthetic", "BIDSVersion": "1.8.0"}))
    (root / f"task-{TASK}_bold.json").write_text(json.dumps({"RepetitionTime": T_R}))
    PARTICIPANTS.to_csv(root / "participants.tsv", sep="\t", index=False)
    grid = np.indices(SHAPE) - 3.0
    brain = ((grid / 3.2) ** 2).sum(axis=0) < 1
    for index, subject in enumerate(SUBJECTS):
        func = root / f"sub-{subject}" / "func"
        func.mkdir(parents=True)
        loss_effect = -1.5 if PARTICIPANTS["group"][index] == "equalRange" else -0.5
        for run in RUNS:
            stem = func / f"sub-{subject}_task-{TASK}_run-{run}"
            events = _events(rng)
            events.to_csv(f"{stem}_events.tsv", sep="\t", index=False)
            design = _run_design(events)
            data = rng.normal(0, 3, SHAPE + (N_SCANS,))
            data[brain] += 700
            data[1:4, 1:5, 1:4] += 4 * design["trials"].to_numpy() \
                + 0.5 * design["gain"].to_numpy() + loss_effect * design["loss"].to_numpy()
            nb.Nifti1Image(data.astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0])) \
                .to_filename(f"{stem}_bold.nii.gz")
    return root


@pytest.fixture(scope="module")
def narps(tmp_path_factory):
    """The synthetic study and the published model run through the CLI."""
    from glm_workflows.cli import main

    root = tmp_path_factory.mktemp("narps")
    bids = _write_narps(root / "bids")
    out = root / "out"
    assert main(["--bids-dir", str(bids), "--model", str(MODEL), "--output-dir", str(out),
                 "--work-dir", str(root / "work"), "-q"]) == 0
    return bids, out


#: The Run node's contrasts (DummyContrasts): BIDS label -> weights over the design.
RUN_CONTRASTS = {"trials": [1, 0, 0, 0, 0], "gain": [0, 1, 0, 0, 0], "loss": [0, 0, 1, 0, 0]}


def _map(out, prefix, contrast, stat):
    subject = prefix.split("_")[0]
    return out / subject / f"{prefix}_contrast-{contrast}_stat-{stat}_statmap.nii.gz"


def _mask(out, prefix):
    return out / prefix.split("_")[0] / f"{prefix}_desc-brain_mask.nii.gz"


def _dz(ours, theirs, mask=None) -> float:
    ours = nb.load(ours).get_fdata()
    inside = np.ones(ours.shape, bool) if mask is None else np.asanyarray(
        nb.load(mask).dataobj if isinstance(mask, (str, Path)) else mask.dataobj) > 0
    assert np.isfinite(ours[inside]).all()
    return float(np.abs(ours[inside] - theirs[inside]).max())


@pytest.mark.slow
def test_narps_run_node_equals_first_level_model(narps):
    """The Run node: each run's z maps of trials, gain and loss equal FirstLevelModel's
    (AR(1)) on the design the node states, built here with nilearn from the events
    (measured max |dz| printed)."""
    from nilearn.glm.first_level import FirstLevelModel

    bids, out = narps
    worst = 0.0
    for subject in SUBJECTS:
        for run in RUNS:
            prefix = f"sub-{subject}_task-{TASK}_run-{run}"
            stem = bids / f"sub-{subject}" / "func" / prefix
            design = _run_design(pd.read_csv(f"{stem}_events.tsv", sep="\t"))
            model = FirstLevelModel(t_r=T_R, noise_model="ar1", minimize_memory=False,
                                    mask_img=str(_mask(out, prefix)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(f"{stem}_bold.nii.gz", design_matrices=[design])
                for contrast, weights in RUN_CONTRASTS.items():
                    theirs = model.compute_contrast(np.asarray(weights, float), stat_type="t",
                                                    output_type="z_score").get_fdata()
                    worst = max(worst, _dz(_map(out, prefix, contrast, "z"), theirs))
    print(f"NARPS Run node: max |dz| = {worst:.3g}")
    assert worst < 1e-6


@pytest.mark.slow
def test_narps_subject_node_equals_fixed_effects(narps):
    """The Subject node (meta): each subject's z maps equal nilearn's
    compute_fixed_effects of its two runs' effect and variance maps, degrees of freedom
    from the runs' sidecars."""
    from nilearn.glm.contrasts import compute_fixed_effects
    from nilearn.masking import intersect_masks

    _, out = narps
    worst = 0.0
    for subject in SUBJECTS:
        runs = [f"sub-{subject}_task-{TASK}_run-{r}" for r in RUNS]
        mask = intersect_masks([str(_mask(out, r)) for r in runs], threshold=1,
                               connected=False)
        for contrast in RUN_CONTRASTS:
            dofs = [json.loads((out / f"sub-{subject}" / f"{r}_contrast-{contrast}"
                                "_statmap.json").read_text())["DegreesOfFreedom"]
                    for r in runs]
            *_, z_map = compute_fixed_effects(
                [str(_map(out, r, contrast, "effect")) for r in runs],
                [str(_map(out, r, contrast, "variance")) for r in runs],
                mask=mask, precision_weighted=False, dofs=dofs)
            worst = max(worst, _dz(_map(out, f"sub-{subject}_task-{TASK}", contrast, "z"),
                                   z_map.get_fdata(), mask))
    print(f"NARPS Subject node: max |dz| = {worst:.3g}")
    assert worst < 1e-6


def _second_level(out, subjects, contrast, design, weights):
    """nilearn's SecondLevelModel on the subjects' maps of ``contrast``: z map data."""
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.masking import intersect_masks

    prefixes = [f"sub-{s}_task-{TASK}" for s in subjects]
    mask = intersect_masks([str(_mask(out, p)) for p in prefixes], threshold=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SecondLevelModel(mask_img=mask).fit(
            [str(_map(out, p, contrast, "effect")) for p in prefixes], design_matrix=design)
        return model.compute_contrast(np.asarray(weights, float), second_level_stat_type="t",
                                      output_type="z_score").get_fdata()


def _group_z(out, node, contrast, group_contrast=None):
    plus = f"+{group_contrast}" if group_contrast else ""
    return out / "group" / (f"task-{TASK}_node-{node}_contrast-{contrast}{plus}"
                            "_stat-z_statmap.nii.gz")


@pytest.mark.slow
def test_narps_dataset_nodes_equal_second_level_model(narps):
    """Each Dataset node's z maps equal SecondLevelModel's with the design the node
    describes: "positive" (GroupBy contrast and group) a one-sample test of each
    contrast within each group's four subjects; "negative-loss" the same of loss with
    weight -1; "between-groups" formulaic's ``0 + C(group)`` design over all eight
    subjects' loss maps, contrast equalRange - equalIndifference. Named by node and level
    (``node-positiveGroupEqualRange``), nothing else in the group folder."""
    from formulaic import model_matrix

    _, out = narps
    worst, expected = {}, []
    for group in GROUPS:
        members = list(PARTICIPANTS["participant_id"][PARTICIPANTS["group"] == group]
                       .str[4:])
        one = pd.DataFrame({"intercept": np.ones(len(members))})
        level = group[:1].upper() + group[1:]
        for contrast in RUN_CONTRASTS:
            ours = _group_z(out, f"positiveGroup{level}", contrast)
            worst[ours.name] = _dz(ours, _second_level(out, members, contrast, one, [1]))
            expected.append(ours.name)
        ours = _group_z(out, f"negativeLossGroup{level}", "loss", "negative")
        worst[ours.name] = _dz(ours, _second_level(out, members, "loss", one, [-1]))
        expected.append(ours.name)
    table = PARTICIPANTS.assign(participant_id=SUBJECTS).set_index("participant_id")
    design = model_matrix("0 + C(group)", table)
    assert list(design.columns) == ["C(group)[equalIndifference]", "C(group)[equalRange]"]
    ours = _group_z(out, "betweenGroups", "loss", "rangeVsIndiference")
    theirs = _second_level(out, SUBJECTS, "loss", pd.DataFrame(np.asarray(design, float),
                                                               columns=list(design.columns)),
                           [-1, 1])
    worst[ours.name] = _dz(ours, theirs)
    expected.append(ours.name)
    print(f"NARPS Dataset nodes: max |dz| = {max(worst.values()):.3g}")
    assert max(worst.values()) < 1e-6, worst
    assert sorted(p.name for p in (out / "group").glob("*_stat-z_statmap.nii.gz")) == \
        sorted(expected)
    # the effect planted: loss lowers the signal three times as much in equalRange
    region = (slice(2, 4), slice(2, 5), slice(2, 4))  # inside the brain mask
    assert nb.load(ours).get_fdata()[region].mean() < -2


@pytest.mark.slow
def test_narps_group_level_alone_gives_the_same_maps(narps, tmp_path):
    """The group level alone (``--from-derivatives`` of the first run's outputs, the
    raw dataset's participants.tsv for the levels) runs every Dataset node and level:
    every group map identical to the full run's."""
    from glm_workflows.cli import main

    bids, out = narps
    again = tmp_path / "group_only"
    assert main(["--from-derivatives", str(out), "--bids-dir", str(bids), "--task", TASK,
                 "--model", str(MODEL), "--output-dir", str(again),
                 "--work-dir", str(tmp_path / "work"), "-q"]) == 0
    names = sorted(p.name for p in (out / "group").glob("*_statmap.nii.gz"))
    assert len([n for n in names if n.endswith("_stat-z_statmap.nii.gz")]) == 9
    assert names == sorted(p.name for p in (again / "group").glob("*_statmap.nii.gz"))
    for name in names:
        np.testing.assert_array_equal(nb.load(again / "group" / name).get_fdata(),
                                      nb.load(out / "group" / name).get_fdata(), err_msg=name)


def _refused_before_work(narps, tmp_path, capsys, participants, message):
    """The study with ``participants`` as its participants.tsv: exit 2, one line
    holding ``message``, no output or work folder."""
    import shutil

    from glm_workflows.cli import main

    bids = tmp_path / "bids"
    shutil.copytree(narps[0], bids)
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    assert main(["--bids-dir", str(bids), "--model", str(MODEL), "--output-dir",
                 str(tmp_path / "out"), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("glm-workflows: error: "), err
    assert message.format(bids=bids) in err[0], err
    assert not (tmp_path / "w").exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_group_level_missing_is_refused_before_any_work(narps, tmp_path, capsys):
    with_na = PARTICIPANTS.assign(group=PARTICIPANTS["group"].where(
        PARTICIPANTS["participant_id"] != "sub-003"))
    _refused_before_work(
        narps, tmp_path, capsys, with_na,
        "{bids}/participants.tsv: column 'group' (node 'positive', GroupBy ['contrast', "
        "'group']): n/a for sub-003 (each subject modelled needs a level)")


@pytest.mark.slow
def test_group_column_missing_is_refused_before_any_work(narps, tmp_path, capsys):
    _refused_before_work(
        narps, tmp_path, capsys, PARTICIPANTS.drop(columns="group"),
        "{bids}/participants.tsv: column 'group' (node 'positive', GroupBy ['contrast', "
        "'group']): no such column (columns: age)")


@pytest.mark.parametrize("group_by", [["contrast", "subject"], ["contrast", "group", "age"],
                                      ["group"]])
def test_other_dataset_groupings_are_refused(group_by):
    from glm_workflows.spec.from_model import spec_from_dict

    published = _published()
    published["Nodes"][2]["GroupBy"] = group_by
    with pytest.raises(InputError) as error:
        spec_from_dict(published, str(MODEL), bids_dir="/nonexistent")
    assert str(error.value) == (
        f"{MODEL}: Nodes[2].GroupBy: expected ['contrast'] (a model per incoming contrast), "
        "['contrast', <participants.tsv column>] (a model per incoming contrast and level "
        f"of the column) or [] (the contrasts as a variable), got {group_by}")
