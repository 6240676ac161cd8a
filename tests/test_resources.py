"""What a run may use of the machine (execution/resources.py): CPUs and memory limit, and
MultiProc's arguments taken from them when --n-procs and --mem-gb are not given."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from glm_workflows.execution.prepare import plugin_args
from glm_workflows.execution.resources import MEMORY_SHARE, memory_limit_gb, usable_cpus
from glm_workflows.settings import ExecutionSettings

GB = 1024**3


def test_usable_cpus_are_the_affinity():
    assert usable_cpus() == len(os.sched_getaffinity(0))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity")
def test_usable_cpus_of_a_process_pinned_to_one_cpu():
    """A process given one CPU (as taskset or a scheduler's cpuset does) counts one."""
    cpu = min(os.sched_getaffinity(0))
    code = ("import os; os.sched_setaffinity(0, {%d}); "
            "from glm_workflows.execution.resources import usable_cpus; print(usable_cpus())"
            % cpu)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "1"


def _cgroup_files(tmp_path, proc_line: str, files: dict) -> tuple:
    """A /proc/self/cgroup file and a cgroup mount holding ``files`` (path -> text)."""
    proc = tmp_path / "cgroup"
    proc.write_text(proc_line + "\n")
    root = tmp_path / "sys_fs_cgroup"
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return proc, root


def test_memory_limit_of_a_cgroup_v2_job(tmp_path):
    """v2: the smallest memory.max along the group's path (a SLURM job's step within its
    job's limit); 'max' is no limit."""
    proc, root = _cgroup_files(tmp_path, "0::/system.slice/slurmstepd.scope/job_7/step_0", {
        "system.slice/slurmstepd.scope/job_7/memory.max": str(4 * GB),
        "system.slice/slurmstepd.scope/job_7/step_0/memory.max": "max",
        "system.slice/memory.max": "max"})
    assert memory_limit_gb(proc, root) == 4.0


def test_memory_limit_of_a_cgroup_v1_job(tmp_path):
    proc, root = _cgroup_files(tmp_path, "4:memory:/slurm/uid_0/job_7\n3:cpuset:/", {
        "memory/slurm/uid_0/job_7/memory.limit_in_bytes": str(6 * GB)})
    assert memory_limit_gb(proc, root) == 6.0


@pytest.mark.parametrize("limit", ["max", "9223372036854771712"])
def test_no_memory_limit(tmp_path, limit):
    """'max' (v2), v1's 'no limit' value (above the machine's memory), no file: None."""
    proc, root = _cgroup_files(tmp_path, "0::/", {"memory.max": limit})
    assert memory_limit_gb(proc, root) is None
    assert memory_limit_gb(tmp_path / "absent", root) is None


def test_multiproc_takes_what_the_process_may_use():
    """MultiProc without --n-procs: the process's CPUs (Nipype would count the machine's);
    given ones are kept; Linear gets nothing added."""
    arguments = plugin_args(ExecutionSettings(plugin="MultiProc"))
    assert arguments["n_procs"] == len(os.sched_getaffinity(0))
    limit = memory_limit_gb()
    assert arguments.get("memory_gb") == (None if limit is None else MEMORY_SHARE * limit)
    given = plugin_args(ExecutionSettings(plugin="MultiProc", n_procs=1, mem_gb=2.0))
    assert given == {"n_procs": 1, "memory_gb": 2.0}
    assert plugin_args(ExecutionSettings(plugin="MultiProc",
                                         plugin_args=json.dumps({"n_procs": 3})))["n_procs"] == 3
    assert plugin_args(ExecutionSettings(plugin="Linear")) == {}


def test_a_node_above_the_default_memory_names_the_limit_not_the_flag():
    """MultiProc's default memory (from the control group's limit) below the largest node:
    the line says where the limit comes from, not a --mem-gb the user did not give."""
    from glm_workflows.core.errors import InputError
    from glm_workflows.inputs.folders import check_memory

    with pytest.raises(InputError, match=r"^the memory this process may use \(3\.6 GB, 90 % "
                                         r"of its control group's limit\): the largest node "
                                         r"needs an estimated 5 GB"):
        check_memory([{"fit": 5.0, "design": 0.25}], 3.6,
                     f"{100 * MEMORY_SHARE:g} % of its control group's limit")
    with pytest.raises(InputError, match=r"^--mem-gb 3\.6: the largest node"):
        check_memory([{"fit": 5.0}], 3.6)


def test_the_memory_check_counts_the_residuals_only_when_the_fit_writes_them():
    """The fit node writing the residuals needs the fit's estimate plus the residuals'
    (as the workflow asks for it); without them, the residuals' estimate is no node's.
    A 2 mm run of 300 scans: its float64 size d = 97*115*97*300*8 bytes; the fit 0.3 + d/2,
    the residuals 2d, the concatenation 0.3 + d (GB)."""
    from glm_workflows.core.errors import InputError
    from glm_workflows.inputs.folders import check_memory
    from glm_workflows.plan.study import estimate_memory_gb
    from glm_workflows.workflows.first_level import init_first_level_wf

    estimates = estimate_memory_gb(97 * 115 * 97, 300)
    data_gb = 97 * 115 * 97 * 300 * 8 / 1024**3
    fit, residuals = round(0.3 + 0.5 * data_gb, 2), round(2 * data_gb, 2)
    concatenate = round(0.3 + data_gb, 2)
    assert concatenate < residuals
    check_memory([estimates], concatenate)  # the largest node; no node needs the 2d alone
    check_memory([estimates], fit + residuals, save_residuals=True)
    with pytest.raises(InputError, match=rf"needs an estimated {fit + residuals:g} GB"):
        check_memory([estimates], fit + residuals - 0.01, save_residuals=True)
    workflow = init_first_level_wf(t_r=2.0, output_dir="out", subject="01", task="t",
                                   mem_gb=estimates, save_residuals=True)
    assert workflow.get_node("fit").mem_gb == pytest.approx(fit + residuals)
    # a run of 40x48x40 x 100 scans (d = 61 MB): its residuals image is compressed in one
    # call, from its bytes in memory, which holds about 3d more; the SPM auditory run's
    # (64^3 x 96, 201 MB) is written in steps
    small = 40 * 48 * 40 * 100 * 8 / 1024**3
    assert estimate_memory_gb(40 * 48 * 40, 100)["residuals"] == round(5 * small, 2)
    assert estimate_memory_gb(64**3, 96)["residuals"] == round(2 * 64**3 * 96 * 8 / 1024**3, 2)
