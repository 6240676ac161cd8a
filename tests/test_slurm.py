"""The seed workflow on a real SLURM cluster, through Nipype's SLURM and SLURMGraph plugins.

Needs a running cluster (``.ci/slurm-up.sh`` starts a single-node one; CI does). Without
one these tests are skipped locally and fail in CI.
"""

import shutil
import subprocess
import threading
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.cli import main
from glm_workflows.core.entities import bids_prefix
from glm_workflows.core.naming import contrast_file

PREFIX = bids_prefix("01", "auditory")
SBATCH = '{"sbatch_args": "-p debug --mem=1G -t 00:10:00"}'
#: Seconds the test waits for SLURM to forget finished jobs (it purges them about once a
#: minute, MinJobAge seconds after they ended).
PURGE_TIMEOUT = 240
COMPARED = [contrast_file(PREFIX, c, output) for c in ("activeMinusRest", "effectsOfInterest")
            for output in ("z_maps", "thresholded_maps", "cluster_tables")]


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]


@pytest.fixture(scope="module")
def linear_outputs(seed_cli):
    """The seed analysis' outputs with the Linear plugin (run once per session)."""
    root, _, _ = seed_cli
    return root / "out" / "sub-01"


def _assert_same_outputs(folder: Path, reference: Path):
    for name in COMPARED:
        if name.endswith(".tsv"):
            assert (folder / name).read_text() == (reference / name).read_text(), name
        else:
            np.testing.assert_array_equal(nb.load(folder / name).get_fdata(),
                                          nb.load(reference / name).get_fdata(), err_msg=name)


@pytest.mark.parametrize("plugin", ["SLURM", "SLURMGraph"])
def test_slurm_plugins_give_the_linear_outputs(plugin, linear_outputs, data_dir, tmp_path,
                                               capsys):
    """Every node runs as a SLURM job; z maps, thresholded maps and tables are identical."""
    argv = ["--data-dir", str(data_dir), "--output-dir", str(tmp_path / "out"),
            "--work-dir", str(tmp_path / "work"), "--plugin", plugin, "--plugin-args", SBATCH]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    if plugin == "SLURM":
        assert f"({N_JOBS} node(s) run, 0 cached)" in printed
    else:  # the CLI waited for all the jobs before reading the results
        assert f"waiting for {N_JOBS} SLURM job(s) submitted by SLURMGraph" in printed
        assert printed.count("  done    ") == N_JOBS
    assert "activeMinusRest: fdr alpha=0.05 -> z > 2.931, 5 cluster(s)" in printed
    _assert_same_outputs(tmp_path / "out" / "sub-01", linear_outputs)
    if plugin == "SLURMGraph":  # a rerun submits only the sinks: every other node is complete
        assert main(argv) == 0
        printed = capsys.readouterr().out
        assert "(3 SLURM job(s);" in printed and "_wf_sink (job" in printed
        assert "_wf_sink_activeMinusRest (job" in printed


def test_slurmgraph_failure_is_reported(data_dir, spm_scans, spm_events, tmp_path, capsys):
    """A job that fails (truncated scan) makes the CLI exit 1 naming the node and its crash
    file (written by the job); its dependents never run and nothing is written."""
    scans = []
    for scan in spm_scans:
        for suffix in (".img", ".hdr"):
            source = Path(scan).with_suffix(suffix)
            shutil.copy(source, tmp_path / source.name)
        scans.append(str(tmp_path / Path(scan).name))
    # gzipped, cut short but ending in gzip's record of the whole size (the checks before
    # any work read that record): fails when read, in the job
    truncated = Path(scans[5]).with_suffix(".nii.gz")
    nb.save(nb.Nifti1Image(np.asanyarray(nb.load(scans[5]).dataobj), nb.load(scans[5]).affine),
            truncated)
    whole = truncated.read_bytes()
    truncated.write_bytes(whole[:1000] + whole[-4:])
    scans[5] = str(truncated)
    code = main(["--func", *scans, "--events", spm_events, "--tr", "7",
                 "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work"),
                 "--plugin", "SLURMGraph", "--plugin-args", SBATCH])
    assert code == 1
    err = capsys.readouterr().err
    assert "error: node glm_workflows_wf.sub_01_task_auditory_wf.concatenate failed" in err
    assert "crash file: " in err and str(tmp_path / "work" / "crash") in err
    assert not (tmp_path / "out" / "sub-01").exists()


#: Jobs of the seed analysis: 4 model nodes (concatenate, design, fit (it writes the mean
#: image and the diagnostics too), sink) and 4 per contrast (estimate, threshold, table, sink).
N_JOBS = 12


def _run_jobs(work_dir: Path) -> dict[str, str]:
    """``job id -> job name`` of the jobs squeue shows whose batch script is in ``work_dir``."""
    listing = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%j|%o"],
                             capture_output=True, text=True, check=True).stdout
    rows = (line.split("|", 2) for line in listing.splitlines())
    return {job_id: name for job_id, name, command in rows if command.startswith(f"{work_dir}/")}


def _hold_sink_until_others_forgotten(work_dir: Path, run_done: threading.Event,
                                      seen: dict) -> None:
    """Hold the run's sink job until squeue has forgotten all the run's other jobs, then
    release it. ``seen["jobs"]`` gets every job of the run squeue showed, ``seen["gone"]``
    those it no longer showed while the sink was held (so before the run could finish)."""
    deadline = time.monotonic() + PURGE_TIMEOUT
    while len(seen["jobs"]) < N_JOBS and not run_done.is_set() and time.monotonic() < deadline:
        seen["jobs"] = {**seen["jobs"], **_run_jobs(work_dir)}
        time.sleep(0.1)
    # the last sink submitted waits for its contrast's table: still pending, so holdable
    sinks = sorted((job for job, name in seen["jobs"].items() if "sink" in name), key=int)
    if not sinks or subprocess.run(["scontrol", "hold", sinks[-1]],
                                   capture_output=True).returncode != 0:
        return
    sink = sinks[-1]
    try:
        while time.monotonic() < deadline:
            queued = _run_jobs(work_dir)
            seen["gone"] = set(seen["jobs"]) - set(queued)
            if set(queued) == {sink}:
                break
            time.sleep(1)
    finally:
        subprocess.run(["scontrol", "release", sink], check=True, capture_output=True)


def test_slurmgraph_waits_for_jobs_slurm_forgot(linear_outputs, data_dir, tmp_path, capsys):
    """SLURM forgets finished jobs ``MinJobAge`` seconds after they end (2 s on the CI
    cluster, short as on a busy one): the run still sees every job done, from the node
    files. The sink job is held until squeue no longer shows the run's other jobs."""
    work_dir = tmp_path / "work"
    run_done, seen = threading.Event(), {"jobs": {}, "gone": set()}
    helper = threading.Thread(target=_hold_sink_until_others_forgotten,
                              args=(work_dir, run_done, seen))
    helper.start()
    try:
        code = main(["--data-dir", str(data_dir), "--output-dir", str(tmp_path / "out"),
                     "--work-dir", str(work_dir), "--plugin", "SLURMGraph",
                     "--plugin-args", SBATCH])
    finally:
        run_done.set()
        helper.join()
    printed = capsys.readouterr().out
    assert len(seen["jobs"]) == N_JOBS
    assert len(seen["gone"]) == N_JOBS - 1, \
        "squeue still showed jobs of the run while the sink was held"
    assert code == 0
    assert f"waiting for {N_JOBS} SLURM job(s) submitted by SLURMGraph" in printed
    for job_id, name in seen["jobs"].items():
        assert f"(job {job_id})" in printed, name
    assert printed.count("  done    ") == N_JOBS
    _assert_same_outputs(tmp_path / "out" / "sub-01", linear_outputs)
