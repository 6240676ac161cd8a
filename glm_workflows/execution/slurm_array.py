"""Past one machine: the participant level as SLURM array jobs, then one group job.

Nipype's SLURM plugins submit one job per node (13 for the seed run; tens of thousands
for a large study, above Slurm's ``MaxJobCount``). As BIDS Apps do, ``--slurm-array``
submits instead **array jobs** whose tasks each run the participant level of a batch
of participants (a MultiProc run of their own small graph, in a work directory of
their own), and **one group job** that starts when every task has ended (``afterany``),
checks that every participant finished, then runs the group level on their outputs.

Everything a submission needs is written first into ``<work-dir>/slurm-array/``:

* ``submission.json``: the command, the participants of each task, the sizes and the
  job ids (:class:`Submission`); ``spec.json`` and ``execution.json``: the analysis and
  how it runs, which every job reads (:mod:`glm_workflows.execution.submit`);
* ``array-<i>.sh``: one batch script per array (``MaxArraySize`` tasks at most), whose
  task ``k`` runs ``python -m glm_workflows.cli.array_task task <folder> <offset + k>``;
* ``group.sh``: the group job, ``python -m glm_workflows.cli.array_task group <folder>``;
* ``logs/`` (``array-<i>-task-<k>-job-<array job id>.log``), ``done/`` (one marker per
  task that succeeded) and ``task-<k>/``, the task's Nipype cache: a resubmitted task
  reuses it.

This module plans, writes and submits (``sbatch``); :mod:`glm_workflows.cli.array_task` is
what the jobs run.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.derivatives import write_text_atomic
from ..core.errors import InputError, one_line
from .slurm_graph import ACTIVE_JOB_STATES

#: Inside the work directory: the submission's scripts, record, logs and task caches.
SUBMISSION_FOLDER = "slurm-array"


SUBMISSION_FILE = "submission.json"


@dataclass
class Submission:
    """What ``submission.json`` records: enough for the jobs to run and for
    ``--resubmit-failed`` to find and resubmit what failed.

    Attributes
    ----------
    command : list of str
        The command line (without ``--resubmit-failed``), to recognise a resubmission.
    cwd : str
        Where the jobs run (relative paths of the command line hold there).
    python : str
        The interpreter the jobs run.
    output_dir : str
    tasks : list of list of str
        The participants of each task.
    task_argv, group_argv : list of str or None
        Only in the records of submissions made before ``spec.json`` (their jobs run
        these command lines): each task's command line but its ``--participant-label``
        and ``--work-dir``, the group level's (None: no group level).
    arrays : list of dict
        ``Offset``, ``Count``, ``Script`` and ``JobIds`` (one per submission) of each array.
    group : dict
        ``Script`` and ``JobIds`` of the group job.
    task_job, group_job : dict
        ``Name``, ``Cpus``, ``MemMB`` (and ``MemGB``, what its MultiProc run may use) of
        the array tasks (one size for all) and of the
        group job, written into their scripts.
    limits : dict
        The cluster's ``MaxArraySize`` and ``MaxJobCount`` the plan kept within, and
        their ``Source``.
    sbatch_args : list of str
        Extra sbatch options (``--plugin-args '{"sbatch_args": ...}'``).
    """

    command: list
    cwd: str
    python: str
    output_dir: str
    tasks: list
    task_job: dict
    group_job: dict
    limits: dict
    arrays: list = field(default_factory=list)
    group: dict = field(default_factory=dict)
    sbatch_args: list = field(default_factory=list)
    task_argv: list | None = None
    group_argv: list | None = None

    @property
    def folder(self) -> Path:
        return Path(self.group["Script"]).parent

    def task_work_dir(self, task: int) -> Path:
        return self.folder / f"task-{task:05d}"

    def task_command(self, task: int) -> list[str]:
        """Task ``task``'s command line (a record made before ``spec.json``)."""
        return [*self.task_argv, "--participant-label", *self.tasks[task],
                "--work-dir", str(self.task_work_dir(task))]

    def task_log(self, task: int) -> Path:
        """The log of the task's last attempt (``-job-*`` for the array job id if none)."""
        array = next(i for i, a in enumerate(self.arrays)
                     if a["Offset"] <= task < a["Offset"] + a["Count"])
        index = task - self.arrays[array]["Offset"]
        logs = sorted((self.folder / "logs").glob(f"array-{array:03d}-task-{index}-job-*.log"),
                      key=lambda path: path.stat().st_mtime)
        return logs[-1] if logs else \
            self.folder / "logs" / f"array-{array:03d}-task-{index}-job-*.log"

    def done_marker(self, task: int) -> Path:
        return self.folder / "done" / f"task-{task:05d}.json"

    def unfinished_tasks(self) -> list[int]:
        """Tasks without a done marker (failed, cancelled, or not yet run)."""
        return [k for k in range(len(self.tasks)) if not self.done_marker(k).exists()]

    def job_ids(self) -> list[str]:
        """Every job id this submission had (arrays and group jobs, resubmissions too)."""
        return [*(i for a in self.arrays for i in a["JobIds"]), *self.group["JobIds"]]

    def save(self) -> None:
        write_text_atomic(self.folder / SUBMISSION_FILE, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder) -> Submission:
        path = Path(folder) / SUBMISSION_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise InputError(f"{path}: no array submission here (submit first with "
                             "--slurm-array)") from None
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}: not a submission record ({one_line(exc)})") from None


def submission_folder(work_dir, dry_run: bool = False) -> Path:
    """``<work-dir>/slurm-array`` (a dry run's: ``slurm-array-dry-run``, so that it never
    touches a real submission)."""
    return Path(work_dir).absolute() / (SUBMISSION_FOLDER + ("-dry-run" if dry_run else ""))


def write_scripts(submission: Submission) -> None:
    """Write ``array-<i>.sh`` and ``group.sh`` (and the record) into the submission
    folder; each script runs :mod:`glm_workflows.cli.array_task` with the same Python."""
    folder = submission.folder
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "done").mkdir(exist_ok=True)
    entry = f"{shlex.quote(submission.python)} -m glm_workflows.cli.array_task"
    task, group = submission.task_job, submission.group_job
    for index, array in enumerate(submission.arrays):
        log = folder / "logs" / f"array-{index:03d}-task-%a-job-%A.log"
        write_text_atomic(Path(array["Script"]), _batch_script(
            name=task["Name"], cpus=task["Cpus"], mem_mb=task["MemMB"], log=log,
            cwd=submission.cwd,
            command=f'{entry} task {shlex.quote(str(folder))} '
                    f'$(( {array["Offset"]} + SLURM_ARRAY_TASK_ID ))'))
    write_text_atomic(Path(submission.group["Script"]), _batch_script(
        name=group["Name"], cpus=group["Cpus"], mem_mb=group["MemMB"],
        log=folder / "logs" / "group-%j.log", cwd=submission.cwd,
        command=f"{entry} group {shlex.quote(str(folder))}"))
    submission.save()


def _batch_script(*, name: str, cpus: int, mem_mb: int, log: Path, cwd: str,
                  command: str) -> str:
    return "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --cpus-per-task={cpus}",
        f"#SBATCH --mem={mem_mb}M",
        f"#SBATCH --output={shlex.quote(str(log))}",  # sbatch reads quoted paths
        f"#SBATCH --chdir={shlex.quote(str(cwd))}",
        "export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1",
        f"exec {command}",
        "",
    ])


def array_sbatch(submission: Submission, index: int, tasks: list[int] | None = None) -> list:
    """The sbatch command of array ``index``: all its tasks, or the given (global) ones."""
    array = submission.arrays[index]
    if tasks is None:
        indices = f"0-{array['Count'] - 1}"
    else:
        indices = ",".join(str(k - array["Offset"]) for k in tasks)
    return ["sbatch", "--parsable", f"--array={indices}", *submission.sbatch_args,
            array["Script"]]


def group_sbatch(submission: Submission, after: list[str]) -> list:
    """The group job's sbatch command, starting once the jobs ``after`` have all ended
    (whatever their outcome: the job itself checks that every participant finished)."""
    dependency = ["--dependency=afterany:" + ":".join(after)] if after else []
    return ["sbatch", "--parsable", *dependency, *submission.sbatch_args,
            submission.group["Script"]]


def sbatch(command: list[str]) -> str:
    """Submit; the job id (``sbatch --parsable``)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except OSError as exc:
        raise InputError(f"sbatch: cannot run ({one_line(exc)}); is this a SLURM "
                         "submission host?") from None
    if done.returncode != 0:
        raise InputError(f"sbatch {command[-1]}: {one_line(done.stderr) or 'failed'}")
    return done.stdout.strip().split(";")[0]


def active_jobs(job_ids) -> list[str]:
    """Those of ``job_ids`` (array jobs included) that squeue shows pending or running.

    Raises
    ------
    InputError
        If squeue fails (nothing can then be said of the jobs).
    """
    wanted = set(job_ids)
    if not wanted:
        return []
    try:
        listing = subprocess.run(["squeue", "--all", "-h", "-t", "all", "-o", "%F|%i|%T"],
                                 capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        listing = subprocess.CompletedProcess([], 1, "", one_line(exc))
    if listing.returncode != 0:
        raise InputError(f"squeue: cannot tell whether jobs {', '.join(sorted(wanted)[:3])}"
                         f"{', ...' if len(wanted) > 3 else ''} still run "
                         f"({one_line(listing.stderr) or 'failed'}); try again")
    active = []
    for line in listing.stdout.splitlines():
        parent, job, state = (line.split("|") + ["", "", ""])[:3]
        if state in ACTIVE_JOB_STATES and (parent in wanted or job in wanted):
            active.append(job)
    return active


def submit(submission: Submission, printer=print) -> None:
    """Submit every array and the group job (after all of them); record the job ids."""
    array_ids = []
    try:
        for index, array in enumerate(submission.arrays):
            job = sbatch(array_sbatch(submission, index))
            array["JobIds"].append(job)
            array_ids.append(job)
            submission.save()
            printer(f"  submitted array {job}: tasks {array['Offset']}-"
                    f"{array['Offset'] + array['Count'] - 1} ({Path(array['Script']).name})")
        job = sbatch(group_sbatch(submission, array_ids))
    except InputError as exc:
        if not array_ids:
            raise
        raise InputError(f"{exc}; array job(s) {', '.join(array_ids)} were submitted before: "
                         "scancel them, or, once they end, rerun the command with "
                         "--resubmit-failed (it submits what is missing)") from None
    submission.group["JobIds"].append(job)
    submission.save()
    printer(f"  submitted group job {job} (starts when every task has ended)")


def resubmit_failed(submission: Submission, printer=print) -> list[int]:
    """Resubmit the tasks with no done marker, in their arrays, and a new group job.

    Returns the tasks resubmitted (empty: nothing failed, nothing submitted).

    Raises
    ------
    InputError
        If jobs of the submission are still pending or running.
    """
    still = active_jobs(submission.job_ids())
    if still:
        raise InputError(f"--resubmit-failed: {len(still)} job(s) of the submission in "
                         f"{submission.folder} are still queued or running "
                         f"({', '.join(still[:5])}{', ...' if len(still) > 5 else ''}); "
                         "wait for them to end, or scancel them")
    failed = submission.unfinished_tasks()
    group_done = (submission.folder / "done" / "group.json").exists()
    if not failed and group_done:
        printer(f"Nothing to resubmit: all {len(submission.tasks)} task(s) and the group "
                "job finished.")
        return []
    new_ids = []
    for index, array in enumerate(submission.arrays):
        tasks = [k for k in failed if array["Offset"] <= k < array["Offset"] + array["Count"]]
        if tasks:
            job = sbatch(array_sbatch(submission, index, tasks))
            array["JobIds"].append(job)
            new_ids.append(job)
            submission.save()
            printer(f"  resubmitted {len(tasks)} task(s) of array {index} as job {job}: "
                    f"{', '.join(map(str, tasks))}")
    (submission.folder / "done" / "group.json").unlink(missing_ok=True)
    job = sbatch(group_sbatch(submission, new_ids))
    submission.group["JobIds"].append(job)
    submission.save()
    printer(f"  submitted group job {job} (starts when those tasks have ended)")
    return failed


def describe_follow(submission: Submission) -> list[str]:
    """How to follow a submission (printed after it)."""
    return [
        f"Follow: squeue -u {os.environ.get('USER', '$USER')}   "
        f"(task logs: {submission.folder / 'logs'})",
        "If a task fails or is cancelled, the group job stops and lists the participants "
        "missing; then rerun the same command with --resubmit-failed.",
    ]
