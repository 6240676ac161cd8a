"""Session nodes (issue 24): Run -> Session (meta: each session's runs combined) -> Subject
(meta: the sessions' maps combined) -> Dataset, read, written back, refused where this
project cannot run them, and run through the CLI on a synthetic study of two sessions of
two runs per subject, every node's z maps compared with nilearn's
``compute_fixed_effects`` and ``SecondLevelModel`` computed here from the maps of the
node before."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import nibabel as nb
import nipype  # noqa: F401  (its loggers' handlers made now, not on a test's captured stream)
import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.spec.from_model import read_model, spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "models" / "session_smdl.json"
SUBJECTS = ("01", "02", "03", "04")
SESSIONS = ("post", "pre")  # in file order (runs are found sorted by name)
#: sub-04 keeps only its pre session: its Subject-level maps are that session's.
ONE_SESSION = "04"


def session_model() -> dict:
    return json.loads(MODEL.read_text())


def test_session_graph_reads_and_round_trips(tmp_path):
    from glm_workflows.spec.serialize import from_json, to_bids_stats_model, to_json

    spec = read_model(MODEL, bids_dir="/data")
    assert [(n.level, n.name) for n in spec.nodes] == [
        ("Run", "run"), ("Session", "session"), ("Subject", "subject"), ("Dataset", "dataset")]
    assert spec.session_node.group_by == ("contrast", "session", "subject")
    assert [(e.source, e.destination) for e in spec.edges] == [
        ("run", "session"), ("session", "subject"), ("subject", "dataset")]
    path = tmp_path / "again_smdl.json"
    path.write_text(json.dumps(to_bids_stats_model(spec)))
    assert read_model(path, bids_dir="/data") == spec
    assert from_json(to_json(spec)) == spec and hash(from_json(to_json(spec))) == hash(spec)


def _glm_subject(m):
    m["Nodes"][2]["Model"]["X"] = ["session.pre", "session.post"]
    m["Nodes"][2]["Model"]["Type"] = "glm"
    m["Nodes"][2].pop("DummyContrasts")
    m["Nodes"][2]["Contrasts"] = [{"Name": "postMinusPre", "ConditionList":
                                   ["session.pre", "session.post"], "Weights": [-1, 1],
                                   "Test": "t"}]


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m["Nodes"][1]["Model"].update(Type="glm"),
     "s.json: Nodes[1].Model.Type: 'glm' at the Session level is not supported; use 'meta' "
     "(fixed effects over the session's runs)"),
    (lambda m: m["Nodes"][1].update(GroupBy=["subject", "contrast"]),
     "s.json: Nodes[2]: the Session node 'session' is grouped by subject, so each subject "
     "has one map: nothing left to combine"),
    (lambda m: m["Nodes"][1]["Model"].update(X=[1, "runnum"]),
     "s.json: Nodes[1]: a design (Model.X other than [1], or contrasts) is supported at the "
     "node after the Run node that feeds the Dataset nodes; here only X [1] and the "
     "intercept's DummyContrasts"),
    (_glm_subject,
     "s.json: Nodes[2].Model.Type: 'glm' at the Subject level is not supported; use 'meta' "
     "(fixed effects over the sessions' maps): a glm over a subject's session maps has no "
     "residual degrees of freedom (one map per session)"),
    (lambda m: m["Nodes"].pop(2) and m.update(Edges=[
        {"Source": "run", "Destination": "session"},
        {"Source": "session", "Destination": "dataset"}]),
     "s.json: Nodes[1]: a Session node grouped by session feeds a Subject node (each "
     "subject's sessions combined before the Dataset level); add one, or group the Session "
     "node by ['subject', 'contrast']"),
    (lambda m: m.update(Edges=[{"Source": "run", "Destination": "subject"},
                               {"Source": "run", "Destination": "session"},
                               {"Source": "subject", "Destination": "dataset"}]),
     "s.json: Edges: Subject node 'subject' is fed by run; expected one edge from the "
     "Session node 'session' (Run -> [Session ->] [Subject ->] Dataset nodes)"),
])
def test_session_graphs_this_project_cannot_run_are_refused_in_one_line(mutate, message):
    model = session_model()
    mutate(model)
    with pytest.raises(InputError) as raised:
        spec_from_dict(model, "s.json", bids_dir="/data")
    assert str(raised.value) == message


def test_a_session_node_on_runs_without_sessions_is_refused_before_any_work(tmp_path, capsys):
    from glm_workflows.cli import main
    from glm_workflows.synthetic import write_tiny_bids

    bids = write_tiny_bids(tmp_path / "bids", subjects=("01", "02"), runs=2, n_scans=20)
    out = tmp_path / "out"
    code = main(["--bids-dir", str(bids), "--model", str(MODEL), "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "work")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert (f"{MODEL}: Nodes[1] (session): a Session node combines each session's runs, but "
            "these runs have no session entity (ses-): sub-01_task-tiny_run-1, "
            "sub-01_task-tiny_run-2, sub-02_task-tiny_run-1, sub-02_task-tiny_run-2; "
            "sessions found: none") in err[0], err
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())
    assert not out.exists() or not any(out.glob("sub-*"))


# --------------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def session_run(tmp_path_factory):
    from glm_workflows.cli import main
    from glm_workflows.synthetic import write_tiny_bids

    root = tmp_path_factory.mktemp("sessions")
    bids = write_tiny_bids(root / "bids", subjects=SUBJECTS, runs=2, sessions=SESSIONS,
                           n_scans=40)
    shutil.rmtree(bids / f"sub-{ONE_SESSION}" / "ses-post")
    out = root / "out"
    assert main(["--bids-dir", str(bids), "--model", str(MODEL), "--output-dir", str(out),
                 "--work-dir", str(root / "work"), "-q"]) == 0
    return out


def _folder(out, prefix):
    """BIDS-Derivatives: ``sub-<s>/ses-<t>/`` for a prefix with a session, else ``sub-<s>/``."""
    subject, maybe_session = prefix.split("_")[:2]
    return out / subject / (maybe_session if maybe_session.startswith("ses-") else "")


def _file(out, prefix, kind):
    if kind == "mask":
        return str(_folder(out, prefix) / f"{prefix}_desc-brain_mask.nii.gz")
    return str(_folder(out, prefix) / f"{prefix}_contrast-aMinusB_stat-{kind}_statmap.nii.gz")


def _dof(out, prefix) -> float:
    sidecar = _folder(out, prefix) / f"{prefix}_contrast-aMinusB_statmap.json"
    return float(json.loads(sidecar.read_text())["DegreesOfFreedom"])


def _sessions(subject):
    return ("pre",) if subject == ONE_SESSION else SESSIONS


def _nilearn_ffx(out, parts, mask):
    """nilearn's compute_fixed_effects of the parts' effect and variance maps (their
    degrees of freedom from the sidecars): its z map's data."""
    from nilearn.glm.contrasts import compute_fixed_effects

    *_, z_map = compute_fixed_effects(
        [_file(out, p, "effect") for p in parts], [_file(out, p, "variance") for p in parts],
        mask=mask, precision_weighted=False, dofs=[_dof(out, p) for p in parts])
    return z_map.get_fdata()


def _max_dz(ours_path, theirs, mask) -> float:
    inside = np.asanyarray(mask.dataobj) > 0
    ours = nb.load(ours_path).get_fdata()
    assert np.isfinite(ours[inside]).all()
    return float(np.abs(ours[inside] - theirs[inside]).max())


@pytest.mark.slow
def test_session_and_subject_nodes_equal_nilearn_fixed_effects(session_run):
    """Each session's runs, then each subject's sessions, combined: z maps equal
    nilearn's compute_fixed_effects on the maps of the node before (measured max |dz|:
    0 at the Session and at the Subject node); one set of outputs per session
    (``sub-<s>_ses-<t>_task-tiny_...``), the subject's without ``ses-``; a subject with
    one session has no Subject-level outputs of its own (its session's are its maps)."""
    from nilearn.masking import intersect_masks

    out, worst = session_run, {}
    for subject in SUBJECTS:
        for session in _sessions(subject):
            prefix = f"sub-{subject}_ses-{session}_task-tiny"
            runs = [f"{prefix}_run-{r}" for r in (1, 2)]
            mask = intersect_masks([_file(out, r, "mask") for r in runs], threshold=1,
                                   connected=False)
            assert Path(_file(out, prefix, "z")).exists()
            assert _dof(out, prefix) == sum(_dof(out, r) for r in runs)
            worst[prefix] = _max_dz(_file(out, prefix, "z"),
                                    _nilearn_ffx(out, runs, mask), mask)
        sessions = [f"sub-{subject}_ses-{s}_task-tiny" for s in _sessions(subject)]
        subject_prefix = f"sub-{subject}_task-tiny"
        if len(sessions) == 1:
            assert not Path(_file(out, subject_prefix, "z")).exists()
            continue
        mask = intersect_masks([_file(out, s, "mask") for s in sessions], threshold=1,
                               connected=False)
        worst[subject_prefix] = _max_dz(_file(out, subject_prefix, "z"),
                                        _nilearn_ffx(out, sessions, mask), mask)
    assert len(worst) == len(SUBJECTS) * 2 - 1 + len(SUBJECTS) - 1
    assert max(worst.values()) <= 1e-6, worst


@pytest.mark.slow
def test_dataset_node_after_sessions_equals_second_level_model(session_run):
    """The Dataset node takes each subject's Subject-level maps (sub-04: its one
    session's): z equal to nilearn's SecondLevelModel (measured max |dz| 0)."""
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.masking import intersect_masks

    out = session_run
    maps = [f"sub-{s}_ses-pre_task-tiny" if s == ONE_SESSION else f"sub-{s}_task-tiny"
            for s in SUBJECTS]
    mask = intersect_masks([_file(out, m, "mask") for m in maps], threshold=1)
    model = SecondLevelModel(mask_img=mask).fit(
        [_file(out, m, "effect") for m in maps],
        design_matrix=pd.DataFrame({"intercept": np.ones(len(maps))}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = model.compute_contrast([1.0], output_type="z_score").get_fdata()
    ours = out / "group" / "task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz"
    assert _max_dz(str(ours), theirs, mask) <= 1e-6
    sidecar = json.loads((out / "sub-01" / "sub-01_task-tiny_contrast-aMinusB_statmap.json")
                         .read_text())
    assert sidecar["FixedEffectsOf"] == ["sub-01_ses-post_task-tiny", "sub-01_ses-pre_task-tiny"]


@pytest.mark.slow
def test_outputs_placed_in_session_folders(session_run):
    """BIDS-Derivatives placement: a run's and a session's outputs in ``sub-<s>/ses-<t>/``,
    the subject's fixed effects over sessions in ``sub-<s>/``; each folder has its own
    analysis record listing exactly the files beside it; the root listing, the subject's
    report and the index read them there."""
    out = session_run
    listing = json.loads((out / "provenance.json").read_text())
    records = {entry["Record"] for entry in listing["Subjects"]}
    for subject in SUBJECTS:
        folder = out / f"sub-{subject}"
        assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(
            f"ses-{s}" for s in _sessions(subject))
        for session in _sessions(subject):
            where = folder / f"ses-{session}"
            names = sorted(p.name for p in where.iterdir())
            record = [n for n in names if n.endswith("_provenance.json")]
            assert len(record) == 1, names
            assert f"sub-{subject}/ses-{session}/{record[0]}" in records
            files = [n for n in names if n not in record]
            assert all(n.startswith(f"sub-{subject}_ses-{session}_task-tiny_") for n in files)
            stem = f"sub-{subject}_ses-{session}_task-tiny"
            for run in ("_run-1", "_run-2", ""):  # the runs, then the session's combined
                assert f"{stem}{run}_contrast-aMinusB_stat-z_statmap.nii.gz" in files
                assert f"{stem}{run}_desc-brain_mask.nii.gz" in files
            assert json.loads((where / record[0]).read_text())["Outputs"] == files
        files = sorted(p.name for p in folder.iterdir() if p.is_file())
        assert not any("_ses-" in name for name in files), files
        with_subject_level = len(_sessions(subject)) > 1
        assert (f"sub-{subject}_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz"
                in files) == with_subject_level
        record = [n for n in files if n.endswith("_provenance.json")]
        assert len(record) == 1 and f"sub-{subject}/{record[0]}" in records
        outputs = json.loads((folder / record[0]).read_text())["Outputs"]
        assert outputs == [n for n in files if n not in record]
    page = (out / "sub-01.html").read_text()
    for prefix in ("sub-01_ses-pre_task-tiny_run-1", "sub-01_ses-post_task-tiny",
                   "sub-01_task-tiny"):
        assert f'id="{prefix}"' in page
    index = (out / "index.html").read_text()
    assert "sub-01_ses-pre_task-tiny_run-2" in index and "no results found" not in index
