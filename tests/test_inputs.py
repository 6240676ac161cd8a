"""Finding runs: BIDS layout, sidecar inheritance, selections (no Nipype)."""

import json

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.inputs.bids import find_bids_runs, find_spm_auditory
from glm_workflows.inputs.runs import file_list_run

EVENTS = "onset\tduration\ttrial_type\n0\t10\ta\n"


@pytest.fixture
def bids(tmp_path):
    """Two subjects; sub-02 has two sessions of two runs; a TR override for one run."""
    (tmp_path / "task-tap_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    layout = ["sub-01/func/sub-01_task-tap",
              *[f"sub-02/ses-{s}/func/sub-02_ses-{s}_task-tap_run-{r}"
                for s in ("a", "b") for r in ("1", "2")]]
    for stem in layout:
        path = tmp_path / f"{stem}_bold.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nb.Nifti1Image(np.zeros((4, 4, 4, 10), np.int16), np.eye(4)).to_filename(path)
        (tmp_path / f"{stem}_events.tsv").write_text(EVENTS)
    (tmp_path / "sub-02/ses-b/func/sub-02_ses-b_task-tap_run-2_bold.json").write_text(
        json.dumps({"RepetitionTime": 1.5}))
    return tmp_path


def test_all_runs_with_inherited_tr(bids):
    """Every run is found; the most specific sidecar wins."""
    runs = find_bids_runs(bids, "tap")
    assert [r.label for r in runs] == [
        "sub_01_task_tap", "sub_02_ses_a_task_tap_run_1", "sub_02_ses_a_task_tap_run_2",
        "sub_02_ses_b_task_tap_run_1", "sub_02_ses_b_task_tap_run_2"]
    assert [r.t_r for r in runs] == [2.0, 2.0, 2.0, 2.0, 1.5]
    assert all(r.events_file.endswith("_events.tsv") for r in runs)


def test_selections(bids):
    """--subject/--session/--run keep only what they name (prefixes allowed)."""
    runs = find_bids_runs(bids, "tap", subjects=["sub-02"], sessions=["b"], runs=["1"])
    assert [r.label for r in runs] == ["sub_02_ses_b_task_tap_run_1"]
    with pytest.raises(InputError, match="no task-tap run for sub-03"):
        find_bids_runs(bids, "tap", subjects=["01", "03"])
    with pytest.raises(InputError, match="use letters and digits only"):
        find_bids_runs(bids, "tap", subjects=["../01"])


def test_index_entities_compare_as_numbers(bids):
    """--run 1 selects run-01 (and run-1): BIDS index entities are numbers."""
    for path in sorted(bids.glob("sub-02/ses-a/func/*_run-*")):
        path.rename(path.with_name(path.name.replace("_run-", "_run-0")))
    runs = find_bids_runs(bids, "tap", subjects=["02"], runs=["1"])
    assert [(r.session, r.run) for r in runs] == [("a", "01"), ("b", "1")]
    runs = find_bids_runs(bids, "tap", subjects=["02"], runs=["001", "2"])
    assert [(r.session, r.run) for r in runs] == [("a", "01"), ("a", "02"), ("b", "1"),
                                                  ("b", "2")]


def test_selection_matching_nothing_lists_what_exists(bids):
    """A selection that matches nothing names the values found."""
    with pytest.raises(InputError, match="no task-tap run for run-3; run values found: 1, 2"):
        find_bids_runs(bids, "tap", runs=["3"])
    with pytest.raises(InputError, match="ses values found: a, b"):
        find_bids_runs(bids, "tap", sessions=["c"])
    with pytest.raises(InputError, match="sub values found: 01, 02"):
        find_bids_runs(bids, "tap", subjects=["7"])
    with pytest.raises(InputError, match="tasks found: tap"):
        find_bids_runs(bids, "rest")


def test_missing_tr_and_events(bids):
    """A run without TR or without events is refused, naming the file."""
    (bids / "task-tap_bold.json").unlink()
    with pytest.raises(InputError, match="sub-01_task-tap_bold.nii.gz: no RepetitionTime"):
        find_bids_runs(bids, "tap", subjects=["01"])
    (bids / "sub-01/func/sub-01_task-tap_events.tsv").unlink()
    with pytest.raises(InputError, match="sub-01_task-tap_events.tsv: events file not found"):
        find_bids_runs(bids, "tap", subjects=["01"])


def test_unknown_task(bids):
    """A task with no bold file says so."""
    with pytest.raises(InputError, match=r"no sub-\*/func/\*_task-rest_bold"):
        find_bids_runs(bids, "rest")


def test_spm_auditory_found_locally(data_dir):
    """The local SPM auditory copy is found without any download."""
    run = find_spm_auditory(data_dir)
    assert len(run.bold_files) == 96 and run.t_r == 7.0 and run.subject == "01"


def test_file_list_paths_are_absolute(tmp_path, monkeypatch):
    """Relative paths are made absolute (nodes run in their own folders)."""
    (tmp_path / "s.nii").write_bytes(b"")
    (tmp_path / "e.tsv").write_text(EVENTS)
    monkeypatch.chdir(tmp_path)
    run = file_list_run(["s.nii"], "e.tsv", 2.0)
    assert run.bold_files == [str(tmp_path / "s.nii")]
    assert run.events_file == str(tmp_path / "e.tsv")


def test_synthetic_study_command_writes_a_study_with_participants(tmp_path):
    """``python -m glm_workflows.synthetic DIR --subjects 3``: a BIDS study the CLI finds,
    with a participants.tsv row per subject."""
    import pandas as pd

    from glm_workflows import synthetic
    from glm_workflows.inputs.bids import find_bids_runs

    synthetic.main([str(tmp_path / "ds"), "--subjects", "3"])
    assert [r.subject for r in find_bids_runs(tmp_path / "ds", "tiny")] == ["01", "02", "03"]
    participants = pd.read_csv(tmp_path / "ds" / "participants.tsv", sep="\t")
    assert participants["participant_id"].tolist() == ["sub-01", "sub-02", "sub-03"]
    assert participants["group"].tolist() == ["patient", "control", "patient"]
