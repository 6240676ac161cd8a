"""A rerun with nothing changed (:mod:`glm_workflows.execution.up_to_date`): the recorded
results printed without Nipype; anything changed (an input, an output, a flag) runs the
workflow as always."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.cli import main
from glm_workflows.core.naming import STAGING_PREFIX
from glm_workflows.execution.up_to_date import STAMP_FOLDER, output_state, result_lines
from glm_workflows.synthetic import write_tiny_bids

pytestmark = pytest.mark.slow

Z_MAP = "sub-01_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz"


def _run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _outputs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "logs" not in p.relative_to(folder).parts}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A one-subject tiny study run once: ``(root, argv, printed)``."""
    root = tmp_path_factory.mktemp("up_to_date")
    write_tiny_bids(root / "bids", ("01",))
    argv = ["--bids-dir", str(root / "bids"), "--task", "tiny", "--contrast", "aMinusB=a - b",
            "--output-dir", str(root / "out"), "--work-dir", str(root / "work")]
    code, printed, _ = _run(argv)
    assert code == 0
    return root, argv, printed


def test_an_identical_rerun_prints_the_recorded_results_without_nipype(study):
    """The same command again: the first run's result lines, every output untouched, and
    neither Nipype nor nilearn imported (a fresh interpreter)."""
    root, argv, printed = study
    before = _outputs(root / "out")
    code = ("import sys, contextlib, io\nfrom glm_workflows.cli import main\n"
            f"code = main({argv!r})\n"
            "print(code, *(name in sys.modules for name in ('nipype', 'nilearn', 'pandas')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    *shown, last = done.stdout.splitlines(keepends=True)
    assert last.strip() == "0 False False False"
    assert shown[0].startswith("Up to date: ")
    assert shown[1:] == result_lines(printed)
    assert "Outputs in " in "".join(shown) and "contrast aMinusB" in "".join(shown)
    assert _outputs(root / "out") == before


def test_an_edited_input_runs_the_workflow_again(study, tmp_path):
    """Events changed (same size, a and b swapped): the workflow runs and the z map is
    the new events' (the first one negated)."""
    root, argv, _ = study
    copy = tmp_path / "bids"
    shutil.copytree(root / "bids", copy)
    moved = {str(root / name): str(tmp_path / name) for name in ("bids", "out", "work")}
    argv = [moved.get(a, a) for a in argv]
    assert _run(argv)[0] == 0
    first = nb.load(tmp_path / "out" / "sub-01" / Z_MAP).get_fdata()
    events_file = next(copy.glob("sub-01/func/*_events.tsv"))
    events = pd.read_csv(events_file, sep="\t")
    events["trial_type"] = events["trial_type"].map({"a": "b", "b": "a"})  # a and b swapped
    events.to_csv(events_file, sep="\t", index=False)
    code, printed, _ = _run(argv)
    assert code == 0 and "Up to date" not in printed and "Finished in" in printed
    second = nb.load(tmp_path / "out" / "sub-01" / Z_MAP).get_fdata()
    np.testing.assert_allclose(second, -first, atol=1e-10)
    code, printed, _ = _run(argv)  # and now it is up to date again
    assert printed.startswith("Up to date: ")


def test_a_deleted_output_is_written_again(study):
    """An output deleted: the workflow runs (its nodes cached) and writes it again with the
    same data; then the command is up to date again."""
    root, argv, _ = study
    z_map = root / "out" / "sub-01" / Z_MAP
    data = nb.load(z_map).get_fdata()
    z_map.unlink()
    code, printed, _ = _run(argv)
    assert code == 0 and "Finished in" in printed and "cached  sub_01_task_tiny_wf.fit" in printed
    np.testing.assert_array_equal(nb.load(z_map).get_fdata(), data)
    assert _run(argv)[1].startswith("Up to date: ")


def test_recheck_and_another_flag_run_the_workflow(study):
    """``--recheck`` lets Nipype check every node (all cached but the sinks); a changed
    flag is another command, whose first run runs the workflow."""
    root, argv, _ = study
    code, printed, _ = _run([*argv, "--recheck"])
    assert code == 0 and "cached  sub_01_task_tiny_wf.fit" in printed
    code, printed, _ = _run([*argv, "--alpha", "0.01"])
    assert code == 0 and "Finished in" in printed and "Up to date" not in printed


def test_a_failed_run_leaves_no_stamp(tmp_path):
    """Bad input (exit 2) records nothing: the next run checks everything again."""
    root = write_tiny_bids(tmp_path / "bids", ("01",))
    argv = ["--bids-dir", str(root), "--task", "nothere", "--output-dir",
            str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]
    assert _run(argv)[0] == 2
    assert not (tmp_path / "work" / STAMP_FOLDER).exists()


def test_output_state_leaves_out_logs_and_other_runs_staging(tmp_path, monkeypatch):
    """Another run writing into the same folder stages files in a hidden folder and moves
    them: those, the logs, and a file removed while the folder is listed are not outputs."""
    (tmp_path / "sub-01").mkdir()
    (tmp_path / "sub-01" / "map.nii.gz").write_bytes(b"12345")
    for folder in ("logs", STAGING_PREFIX + "host-1-abc"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "file").write_bytes(b"1")
    (tmp_path / "gone.tsv").write_bytes(b"1")
    real_stat = os.stat

    def stat_after_removal(path, *args, **kwargs):
        if str(path).endswith("gone.tsv"):
            raise FileNotFoundError(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_after_removal)
    state = output_state(tmp_path)
    assert list(state) == [str(Path("sub-01", "map.nii.gz"))]
    assert state[str(Path("sub-01", "map.nii.gz"))][0] == 5
