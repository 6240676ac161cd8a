"""What this process may use of the machine: its CPUs and its memory limit.

A job of a cluster's scheduler (SLURM's ``--cpus-per-task`` and ``--mem``), ``taskset`` or a
container (``--cpuset-cpus``, ``--memory``) runs on fewer CPUs and within less memory than
the machine has. Nipype's MultiProc counts the machine's (``multiprocessing.cpu_count()``,
90 % of its total memory), so without ``--n-procs`` and ``--mem-gb`` a job given 4 of a
node's 64 CPUs started 64 processes, and ran more nodes at once than its memory limit holds
(the kernel then kills one). :func:`usable_cpus` and :func:`memory_limit_gb` read what the
process may use: its CPU affinity, and its control group's memory limit (cgroup v2
``memory.max``, v1 ``memory.limit_in_bytes``).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The share of the memory limit MultiProc may fill (Nipype's share of the machine's).
MEMORY_SHARE = 0.9


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this system
        return os.cpu_count() or 1


def memory_limit_gb(proc_cgroup: str | os.PathLike = "/proc/self/cgroup",
                    cgroup_root: str | os.PathLike = "/sys/fs/cgroup") -> float | None:
    """The memory limit of this process's control group in GB, or None without one.

    Parameters
    ----------
    proc_cgroup : path
        The process's ``cgroup`` file (lines ``ID:CONTROLLERS:PATH``).
    cgroup_root : path
        Where the control groups are mounted.

    Returns
    -------
    float or None
        The smallest limit found along the group's path (v2: ``memory.max`` of the group
        and its parents; v1: ``memory.limit_in_bytes`` of the memory controller's group),
        None when there is none ("max", or v1's "no limit" value above the machine's
        memory) or the files cannot be read.
    """
    root = Path(cgroup_root)
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.strip("/")
        if controllers == "":  # cgroup v2
            folders = [root / relative] + list((root / relative).parents)
            candidates += [folder / "memory.max" for folder in folders
                           if root in (folder, *folder.parents)]
        elif "memory" in controllers.split(","):  # cgroup v1
            memory = root / "memory"
            candidates += [memory / relative / "memory.limit_in_bytes",
                           memory / "memory.limit_in_bytes"]
    limits = [value for value in map(_bytes_in, candidates) if value is not None]
    limit = min(limits) if limits else None
    if limit is None or limit >= _machine_memory_bytes():
        return None
    return limit / 1024**3


def _bytes_in(path: Path) -> int | None:
    """The number of bytes a cgroup file holds; None for "max" or a file not readable."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _machine_memory_bytes() -> int:
    """The machine's memory (bytes)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
