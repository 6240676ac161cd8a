"""The array route on a real SLURM cluster: participant tasks as one array job and one
group job after them; a task cancelled with scancel is resubmitted alone with
``--resubmit-failed``, finishes from its cache, and the new group job completes.

Needs a running cluster (``.ci/slurm-up.sh``; CI starts one). Jobs are counted from the
cluster's job completion log (``JobCompLoc`` of ``scontrol show config``), which records
every job and array task that ended.
"""

import re
import subprocess
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.cli import main
from glm_workflows.core.naming import GROUP_FOLDER, group_file, group_stem
from glm_workflows.execution.slurm_array import Submission, submission_folder
from glm_workflows.synthetic import write_tiny_bids

SUBJECTS = ["01", "02", "03", "04"]
STUDY = ["--task", "tiny", "--contrast", "aMinusB=a - b", "--group", "one-sample"]
Z_MAP = "sub-{0}/sub-{0}_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz"
TIMEOUT = 300

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]


def _job_completion_log() -> Path:
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                            check=True).stdout
    return Path(re.search(r"^JobCompLoc\s*=\s*(\S+)", config, re.M).group(1))


def _ended_jobs(work_dir: Path) -> list[dict]:
    """The jobs run from ``work_dir`` that the completion log records, as dicts."""
    jobs = []
    for line in _job_completion_log().read_text().splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("WorkDir") == str(work_dir):
            jobs.append(fields)
    return jobs


def _wait(condition, what: str):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _wait_for_group_job(work_dir: Path, submission_count: int) -> dict:
    """The completion-log record of the submission's ``submission_count``-th group job."""
    folder = submission_folder(work_dir / "work")

    def ended():
        ids = Submission.load(folder).group["JobIds"]
        done = {job["JobId"] for job in _ended_jobs(work_dir)}
        return len(ids) == submission_count and ids[-1] in done

    _wait(ended, "the group job")
    group_id = Submission.load(folder).group["JobIds"][-1]
    return next(job for job in _ended_jobs(work_dir) if job["JobId"] == group_id)


def test_array_route_with_a_cancelled_task(tmp_path, monkeypatch, capsys):
    study = write_tiny_bids(tmp_path / "bids", SUBJECTS)
    linear = tmp_path / "linear"
    assert main(["--bids-dir", str(study), *STUDY, "--output-dir", str(linear),
                 "--work-dir", str(tmp_path / "linear-work")]) == 0
    monkeypatch.chdir(tmp_path)
    argv = ["--bids-dir", "bids", *STUDY, "--output-dir", "out", "--work-dir", "work",
            "--slurm-array", "--participants-per-task", "2", "--n-procs", "1",
            "--plugin-args", '{"sbatch_args": "-p debug -t 00:10:00"}']
    capsys.readouterr()
    assert main(argv) == 0  # returns once submitted
    printed = capsys.readouterr().out
    assert "4 participant(s) in 2 task(s) of up to 2, 1 array(s) + 1 group job" in printed
    folder = submission_folder(tmp_path / "work")
    submission = Submission.load(folder)
    array_id = submission.arrays[0]["JobIds"][0]
    assert f"submitted array {array_id}: tasks 0-1" in printed

    # cancel task 1 once it has finished a node (so that it has a cache to reuse)
    task_cache = submission.task_work_dir(1)
    _wait(lambda: any(task_cache.rglob("result_*.pklz")), "task 1's first node")
    subprocess.run(["scancel", f"{array_id}_1"], check=True)
    group = _wait_for_group_job(tmp_path, 1)
    assert group["JobState"] == "FAILED"
    log = next((folder / "logs").glob(f"group-{group['JobId']}.log")).read_text()
    assert "2 of 4 participant(s) did not finish: 03, 04 (task(s) 1;" in log
    assert not (tmp_path / "out" / GROUP_FOLDER).exists()
    first = _ended_jobs(tmp_path)
    assert len(first) == len(submission.tasks) + 1  # two array tasks and the group job
    states = {job.get("ArrayTaskId"): job["JobState"] for job in first}
    assert states["0"] == "COMPLETED" and states["1"] == "CANCELLED"

    assert main([*argv, "--resubmit-failed"]) == 0
    printed = capsys.readouterr().out
    assert "resubmitted 1 task(s) of array 0 as job" in printed
    group = _wait_for_group_job(tmp_path, 2)
    assert group["JobState"] == "COMPLETED", (folder / "logs").iterdir()
    second = _ended_jobs(tmp_path)[len(first):]
    assert len(second) == 1 + 1  # the failed task, alone, and a new group job
    resubmitted_id = Submission.load(folder).arrays[0]["JobIds"][-1]
    resubmitted = (folder / "logs" / f"array-000-task-1-job-{resubmitted_id}.log").read_text()
    assert re.search(r"cached  sub_03_task_tiny_wf\.\w+", resubmitted), resubmitted

    for subject in SUBJECTS:
        np.testing.assert_array_equal(
            nb.load(tmp_path / "out" / Z_MAP.format(subject)).get_fdata(),
            nb.load(linear / Z_MAP.format(subject)).get_fdata())
    stem = group_stem("tiny", "aMinusB")
    np.testing.assert_array_equal(
        nb.load(tmp_path / "out" / GROUP_FOLDER / group_file(stem, "z_maps")).get_fdata(),
        nb.load(linear / GROUP_FOLDER / group_file(stem, "z_maps")).get_fdata())
    assert main([*argv, "--resubmit-failed"]) == 0
    assert "Nothing to resubmit: all 2 task(s) and the group job finished." in \
        capsys.readouterr().out


def test_array_route_runs_every_dataset_node(tmp_path, monkeypatch, capsys):
    """examples/models/graph_smdl.json (a Dataset node grouped by contrast and an F-test
    node grouped by nothing) as array tasks and one group job: every group map identical
    to the same model run in one process."""
    model = Path(__file__).resolve().parents[1] / "examples" / "models" / "graph_smdl.json"
    study = write_tiny_bids(tmp_path / "bids", SUBJECTS[:3], runs=2, n_scans=40)
    linear = tmp_path / "linear"
    assert main(["--bids-dir", str(study), "--model", str(model), "--output-dir",
                 str(linear), "--work-dir", str(tmp_path / "linear-work")]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["--bids-dir", "bids", "--model", str(model), "--output-dir", "out",
                 "--work-dir", "work", "--slurm-array", "--participants-per-task", "2",
                 "--n-procs", "1",
                 "--plugin-args", '{"sbatch_args": "-p debug -t 00:10:00"}']) == 0
    group = _wait_for_group_job(tmp_path, 1)
    folder = submission_folder(tmp_path / "work")
    assert group["JobState"] == "COMPLETED", sorted((folder / "logs").iterdir())
    names = sorted(p.name for p in (linear / GROUP_FOLDER).glob("*_statmap.nii.gz"))
    assert any("node-FTest" in name for name in names)
    assert names == sorted(p.name for p in (tmp_path / "out" / GROUP_FOLDER).glob(
        "*_statmap.nii.gz"))
    for name in names:
        np.testing.assert_array_equal(
            nb.load(tmp_path / "out" / GROUP_FOLDER / name).get_fdata(),
            nb.load(linear / GROUP_FOLDER / name).get_fdata(), err_msg=name)
