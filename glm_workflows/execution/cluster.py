"""The cluster's limits and the size of array jobs: ``MaxArraySize`` and
``MaxJobCount`` read from ``scontrol``, participants split into tasks, each task's CPUs
and memory from the plan's estimates."""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass

from ..core.errors import InputError

#: The share of the cluster's ``MaxJobCount`` one submission may fill (tasks + group job);
#: the rest stays for other work.
QUEUE_SHARE = 0.5


#: Slurm's defaults, used when ``scontrol show config`` cannot be read (a dry run on a
#: machine without Slurm).
DEFAULT_MAX_ARRAY_SIZE = 1001


DEFAULT_MAX_JOB_COUNT = 10000


#: Processes per task when ``--n-procs`` is not given: one per run of the largest task,
#: at most this many.
MAX_DEFAULT_CPUS = 4


#: Memory of the task's own process (Nipype, nilearn, the scheduler), beyond its nodes'.
PROCESS_GB = 1.0


@dataclass(frozen=True)
class ClusterLimits:
    """The limits of the cluster that bound a submission.

    Attributes
    ----------
    max_array_size : int
        ``MaxArraySize``: array task indices run from 0 to this minus 1.
    max_job_count : int
        ``MaxJobCount``: jobs the controller holds at once; each array task counts.
    source : str
        Where they were read.
    node_cpus, node_mem_mb : int or None
        The most CPUs and memory (MB) of a node (``sinfo``; None if unknown).
    """

    max_array_size: int
    max_job_count: int
    source: str
    node_cpus: int | None = None
    node_mem_mb: int | None = None

    def check_job(self, size: JobSize, what: str) -> None:
        """Refuse a job no node can hold."""
        if self.node_cpus and size.cpus > self.node_cpus:
            raise InputError(f"{what}: {size.cpus} CPUs per job, but the largest node has "
                             f"{self.node_cpus} (sinfo); give a smaller --n-procs")
        if self.node_mem_mb and size.mem_mb > self.node_mem_mb:
            raise InputError(f"{what}: {size.mem_mb} MB per job, but the largest node has "
                             f"{self.node_mem_mb} MB (sinfo); use fewer --n-procs or "
                             "--participants-per-task")


def read_cluster_limits(partition: str | None = None) -> ClusterLimits:
    """``MaxArraySize`` and ``MaxJobCount`` from ``scontrol show config``; Slurm's defaults
    (said so in ``source``) if scontrol is missing or fails. The node sizes are those of
    ``partition`` (every partition's if None)."""
    try:
        shown = subprocess.run(["scontrol", "show", "config"], capture_output=True,
                               text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        shown = None
    if shown is None or shown.returncode != 0:
        return ClusterLimits(DEFAULT_MAX_ARRAY_SIZE, DEFAULT_MAX_JOB_COUNT,
                             "Slurm's defaults (scontrol show config failed)")
    values = {}
    for line in shown.stdout.splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()

    def number(key: str, default: int) -> int:
        try:
            return int(values[key].split()[0])
        except (KeyError, ValueError, IndexError):
            return default

    cpus, mem_mb = _largest_node(partition)
    return ClusterLimits(number("MaxArraySize", DEFAULT_MAX_ARRAY_SIZE),
                         number("MaxJobCount", DEFAULT_MAX_JOB_COUNT), "scontrol show config",
                         cpus, mem_mb)


def _largest_node(partition: str | None = None) -> tuple[int | None, int | None]:
    """The most CPUs and memory (MB) of the nodes (of ``partition``), from sinfo (None:
    unknown)."""
    where = ["-p", partition] if partition else []
    try:
        shown = subprocess.run(["sinfo", "-h", *where, "-o", "%c %m"], capture_output=True,
                               text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    sizes = []
    for line in shown.stdout.splitlines():
        try:
            cpus, mem = line.split()
            sizes.append((int(cpus.rstrip("+")), int(mem.rstrip("+"))))
        except ValueError:
            continue
    if shown.returncode != 0 or not sizes:
        return None, None
    return max(c for c, _ in sizes), max(m for _, m in sizes)


def plan_tasks(participants: list[str], limits: ClusterLimits,
               per_task: int | None = None) -> list[list[str]]:
    """Batches of participants, one per array task, in the order given.

    With ``per_task`` None, the fewest participants per task such that the tasks and the
    group job fill at most :data:`QUEUE_SHARE` of ``MaxJobCount`` (one each below that).

    Raises
    ------
    InputError
        If ``per_task`` is not a positive number, or gives more tasks than that.
    """
    budget = max(1, int(limits.max_job_count * QUEUE_SHARE) - 1)
    fewest = max(1, math.ceil(len(participants) / budget))
    if per_task is None:
        per_task = fewest
    elif per_task < 1:
        raise InputError(f"--participants-per-task: expected a number >= 1, got {per_task}")
    elif per_task < fewest:
        raise InputError(
            f"--participants-per-task {per_task}: {math.ceil(len(participants) / per_task)} "
            f"array tasks would fill more than {QUEUE_SHARE:.0%} of the cluster's "
            f"MaxJobCount ({limits.max_job_count}, from {limits.source}); give at least "
            f"{fewest}")
    return [participants[i:i + per_task] for i in range(0, len(participants), per_task)]


def sbatch_partition(sbatch_args) -> str | None:
    """The partition the extra sbatch options name (``-p P``, ``--partition P`` or
    ``--partition=P``), or None."""
    for index, arg in enumerate(sbatch_args):
        if arg.startswith("--partition="):
            return arg.split("=", 1)[1]
        if arg.startswith("-p") and len(arg) > 2:
            return arg[2:]
        if arg in ("-p", "--partition") and index + 1 < len(sbatch_args):
            return sbatch_args[index + 1]
    return None


def split_arrays(n_tasks: int, max_array_size: int) -> list[tuple[int, int]]:
    """``(offset, count)`` of each array: task indices ``0 .. count - 1`` stay below
    ``MaxArraySize``."""
    size = max(1, max_array_size)
    return [(offset, min(size, n_tasks - offset)) for offset in range(0, n_tasks, size)]


@dataclass(frozen=True)
class JobSize:
    """What a job asks SLURM for and gives MultiProc.

    Attributes
    ----------
    cpus : int
        ``--cpus-per-task``, and MultiProc's ``n_procs``.
    memory_gb : float
        MultiProc's ``memory_gb``: what the nodes running at once may use.
    """

    cpus: int
    memory_gb: float

    @property
    def mem_mb(self) -> int:
        """``--mem`` in MB: the nodes' memory and the process's own."""
        return math.ceil((self.memory_gb + PROCESS_GB) * 1024)


def task_size(run_estimates: list[dict], n_procs: int | None = None,
              node_cpus: int | None = None) -> JobSize:
    """The size of a participant task from its runs' per-node memory estimates
    (:func:`~glm_workflows.plan.study.estimate_memory_gb`): ``n_procs`` processes (if
    None, one per run, at most :data:`MAX_DEFAULT_CPUS` and ``node_cpus``) and memory for
    the largest nodes that many processes can run at once."""
    cpus = n_procs or max(1, min(MAX_DEFAULT_CPUS, node_cpus or MAX_DEFAULT_CPUS,
                                 len(run_estimates)))
    largest = sorted((max(estimates.values()) for estimates in run_estimates), reverse=True)
    return JobSize(cpus, round(sum(largest[:cpus]), 2))


def group_size(n_subjects: int, n_voxels: int, n_procs: int | None = None) -> JobSize:
    """The size of the group job: per process, the subjects' maps as float64 a few times
    over (the model, the permutations' shuffles), and at least the 1 GB its nodes declare."""
    cpus = n_procs or 1
    maps_gb = n_subjects * n_voxels * 8 / 1024**3
    return JobSize(cpus, round(cpus * max(1.0, 0.5 + 4 * maps_gb), 2))
