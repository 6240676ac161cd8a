"""BIDS inheritance of events: an events.tsv at the dataset root or subject level applies
to every run below it (pybids and FitLins read it so); the most specific file wins."""

import shutil

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.inputs.bids import find_bids_runs
from glm_workflows.synthetic import write_tiny_bids


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """The same tiny study twice: events beside every run, and the same events given once
    at the root (``task-tiny_events.tsv``), except sub-02's, given at its subject level."""
    root = tmp_path_factory.mktemp("inheritance")
    beside = write_tiny_bids(root / "beside", ("01", "02", "03"))
    inherited = root / "inherited"
    shutil.copytree(beside, inherited)
    events = sorted(inherited.glob("sub-*/func/*_events.tsv"))
    shared = pd.read_csv(events[0], sep="\t")
    for path in events:
        path.unlink()
    shared.to_csv(inherited / "task-tiny_events.tsv", sep="\t", index=False)
    own = shared.assign(onset=shared["onset"] + 2.0)
    own.to_csv(inherited / "sub-02" / "sub-02_task-tiny_events.tsv", sep="\t", index=False)
    for path in sorted(beside.glob("sub-*/func/*_events.tsv")):
        (own if "sub-02" in path.name else shared).to_csv(path, sep="\t", index=False)
    return beside, inherited


def test_root_and_subject_events_apply_to_the_runs_below(studies):
    _, inherited = studies
    runs = {run.subject: run.events_file for run in find_bids_runs(inherited, "tiny")}
    assert runs == {"01": str(inherited / "task-tiny_events.tsv"),
                    "02": str(inherited / "sub-02" / "sub-02_task-tiny_events.tsv"),
                    "03": str(inherited / "task-tiny_events.tsv")}


@pytest.mark.slow
def test_inherited_events_give_the_maps_of_events_beside_each_run(studies, tmp_path):
    """z maps equal whether the events sit beside each run or are inherited."""
    from glm_workflows.cli import main

    for name, study in zip(("beside", "inherited"), studies, strict=True):
        assert main(["--bids-dir", str(study), "--task", "tiny", "--contrast",
                     "aMinusB=a - b", "--output-dir", str(tmp_path / name),
                     "--work-dir", str(tmp_path / f"work-{name}")]) == 0
    for subject in ("01", "02", "03"):
        name = f"sub-{subject}_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz"
        ours, theirs = (nb.load(tmp_path / folder / f"sub-{subject}" / name).get_fdata()
                        for folder in ("inherited", "beside"))
        np.testing.assert_array_equal(ours, theirs)


def test_no_events_anywhere_is_one_line(studies, tmp_path):
    _, inherited = studies
    bare = tmp_path / "bare"
    shutil.copytree(inherited, bare)
    (bare / "task-tiny_events.tsv").unlink()
    with pytest.raises(InputError, match=r"sub-01_task-tiny_events.tsv: events file not "
                                         r"found for sub-01_task-tiny_bold.nii.gz \(nor an "
                                         r"inherited task-tiny_events.tsv"):
        find_bids_runs(bare, "tiny")
