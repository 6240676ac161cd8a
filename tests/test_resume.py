"""A multi-subject run killed (SIGKILL) during a fit resumes from Nipype's cache."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

pytestmark = pytest.mark.slow  # a killed CLI run resumed


def test_killed_run_resumes_with_identical_outputs(split_bids_dir, split_outputs, tmp_path):
    """Kill the CLI while sub-02's first fit runs; the rerun reuses every node that had
    finished (sub-01's included), recomputes the rest, and writes the outputs an
    uninterrupted run writes."""
    work, out = tmp_path / "work", tmp_path / "out"
    argv = [sys.executable, "-m", "glm_workflows.cli", "--bids-dir", str(split_bids_dir),
            "--task", "auditory", "--output-dir", str(out), "--work-dir", str(work)]
    fit_dir = work / "glm_workflows_wf" / "sub_02_task_auditory_run_1_wf" / "fit"
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while not fit_dir.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    printed, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, printed
    assert "done    sub_01_task_auditory_run_1_wf.fit" in printed  # finished before the kill
    assert not (fit_dir / "result_fit.pklz").exists()  # killed inside the fit

    rerun = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert "cached  sub_01_task_auditory_run_1_wf.fit" in rerun.stdout
    assert "cached  sub_01_task_auditory_run_2_wf.fit" in rerun.stdout
    assert "done    sub_02_task_auditory_run_1_wf.fit" in rerun.stdout

    expected = sorted(p.relative_to(split_outputs) for p in split_outputs.rglob("sub-*/*"))
    assert sorted(p.relative_to(out) for p in out.rglob("sub-*/*")) == expected
    for name in expected:
        ours, reference = out / name, split_outputs / name
        if name.suffix == ".gz":
            np.testing.assert_array_equal(nb.load(ours).get_fdata(),
                                          nb.load(reference).get_fdata(), err_msg=str(name))
        elif name.suffix in (".tsv",):
            assert ours.read_text() == reference.read_text(), name
    assert not list(Path(out).glob(".staging-*"))
