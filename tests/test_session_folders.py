"""Sessions in ``sub-<s>/ses-<t>/`` folders (BIDS-Derivatives): a session folder is a
folder of its own, with each analysis' record listing what it wrote there, so a rerun of
one analysis replaces and removes exactly its own files in every session folder and in
the subject's, and keeps another analysis' files byte for byte; the group level alone
finds the subject maps again."""

import hashlib
import json
from pathlib import Path

import pytest
from test_analyses_coexist import add_task

from glm_workflows.cli import main
from glm_workflows.synthetic import write_tiny_bids

pytestmark = pytest.mark.slow  # several CLI runs into one folder

SUBJECTS = ("01", "02")
SESSIONS = ("post", "pre")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two subjects, two sessions of one run each, tasks ``tiny`` and ``other``."""
    root = tmp_path_factory.mktemp("session_folders")
    bids = write_tiny_bids(root / "bids", SUBJECTS, sessions=SESSIONS, n_scans=40)
    return add_task(bids, "other"), root / "work"


def run(study, task, out, *contrasts, extra=()) -> int:
    bids, work = study
    return main(["--bids-dir", str(bids), "--task", task, "--output-dir", str(out),
                 "--work-dir", str(work), "-q",
                 *(arg for c in contrasts for arg in ("--contrast", c)), *extra])


def digests(out: Path, task: str) -> dict:
    """Every file of ``task`` under the subject folders (its records too): path -> sha256."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.glob("sub-*/**/*")) if p.is_file() and f"task-{task}" in p.name}


def folders(out: Path, subject: str) -> list[Path]:
    return [out / f"sub-{subject}", *(out / f"sub-{subject}" / f"ses-{s}" for s in SESSIONS)]


def test_rerun_replaces_its_own_files_in_session_folders(study, tmp_path):
    out = tmp_path / "out"
    assert run(study, "tiny", out, "aMinusB=a - b", "aPlusB=a + b") == 0
    assert run(study, "other", out, "aMinusB=a - b") == 0
    other_before = digests(out, "other")
    for subject in SUBJECTS:  # the runs in their session's folder, their fixed effects not
        for session in SESSIONS:
            z = f"sub-{subject}_ses-{session}_task-other_contrast-aMinusB_stat-z_statmap.nii.gz"
            assert f"sub-{subject}/ses-{session}/{z}" in other_before
        z = f"sub-{subject}_task-other_contrast-aMinusB_stat-z_statmap.nii.gz"
        assert f"sub-{subject}/{z}" in other_before
        assert f"sub-{subject}/ses-pre/task-other_provenance.json" in other_before
    assert any("aPlusB" in path for path in digests(out, "tiny"))

    assert run(study, "tiny", out, "aMinusB=a - b") == 0  # aPlusB dropped
    assert digests(out, "other") == other_before
    tiny = digests(out, "tiny")
    assert not any("aPlusB" in path for path in tiny)
    for subject in SUBJECTS:
        for folder in folders(out, subject):
            present = sorted(p.name for p in folder.iterdir()
                             if p.is_file() and "task-tiny" in p.name)
            record = json.loads((folder / "task-tiny_provenance.json").read_text())
            assert record["Outputs"] == [n for n in present if n != "task-tiny_provenance.json"]
            assert any("contrast-aMinusB_stat-z" in name for name in present)
    listing = json.loads((out / "provenance.json").read_text())
    assert sorted(e["Record"] for e in listing["Subjects"]) == sorted(
        f"{folder.relative_to(out)}/task-{task}_provenance.json"
        for subject in SUBJECTS for folder in folders(out, subject) for task in ("other", "tiny"))

    # the group level alone reads each subject's maps (its fixed effects over sessions)
    assert main(["--from-derivatives", str(out), "--task", "tiny", "--group", "one-sample",
                 "--output-dir", str(out), "--work-dir", str(study[1]), "-q"]) == 0
    record = json.loads((out / "group" / "task-tiny_provenance.json").read_text())
    assert sorted({item["path"] for item in record["Inputs"] if item["role"] == "mask"}) == [
        str(out / f"sub-{s}" / f"sub-{s}_task-tiny_desc-brain_mask.nii.gz") for s in SUBJECTS]
    assert digests(out, "other") == other_before
