"""What the jobs of a ``--slurm-array`` submission run (:mod:`glm_workflows.execution.slurm_array`).

``python -m glm_workflows.cli.array_task task FOLDER K``
    Task ``K``: the participant level of its participants
    (:func:`~glm_workflows.execution.analysis.run_analysis` of the submission's ``spec.json`` and
    ``execution.json``, :func:`~glm_workflows.execution.submit.task_analysis`: MultiProc, in its
    own work directory); on success a marker ``done/task-<K>.json``.
``python -m glm_workflows.cli.array_task group FOLDER``
    The group job: if a task did not finish, exit 1 naming the participants missing and
    their tasks' logs (it runs after every task has ended, whatever their outcome);
    else the group level (:func:`~glm_workflows.execution.submit.group_analysis`) or, without a
    group level, the output folder's root files (index, provenance listing).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..core.derivatives import write_text_atomic
from ..core.errors import InputError
from ..execution.analysis import run_analysis
from ..execution.slurm_array import Submission
from ..execution.submit import group_analysis, task_analysis
from ..outputs.folders import output_lock
from ..outputs.publish import root_files

#: Participants named in full in the group job's error line.
SHOWN_MISSING = 20


def run_task(folder, task: int) -> int:
    """Run array task ``task`` of the submission in ``folder``; its exit code."""
    submission = Submission.load(folder)
    marker = submission.done_marker(task)
    marker.unlink(missing_ok=True)
    participants = submission.tasks[task]
    print(f"Task {task}: participant(s) {' '.join(participants)}", flush=True)
    if submission.task_argv is not None:  # submitted before spec.json: its command line
        from . import main

        code = main(submission.task_command(task))
    else:
        code = _run(*task_analysis(submission, task))
    if code == 0:
        write_text_atomic(marker, json.dumps({
            "Participants": participants,
            "Finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
    return code


def run_group(folder) -> int:
    """Run the group job of the submission in ``folder``; its exit code."""
    submission = Submission.load(folder)
    missing = submission.unfinished_tasks()
    if missing:
        labels = [label for task in missing for label in submission.tasks[task]]
        shown = ", ".join(labels[:SHOWN_MISSING]) + (", ..." if len(labels) > SHOWN_MISSING
                                                     else "")
        logs = ", ".join(str(submission.task_log(task)) for task in missing[:3])
        print(f"glm-workflows: error: {len(labels)} of {sum(map(len, submission.tasks))} "
              f"participant(s) did not finish: {shown} (task(s) "
              f"{', '.join(map(str, missing))}; logs: {logs}{', ...' if len(missing) > 3 else ''}"
              "). The group level did not run: rerun the submission's command with "
              "--resubmit-failed.", file=sys.stderr, flush=True)
        return 1
    if submission.task_argv is not None:  # submitted before spec.json: its command line
        from . import main

        code = main([*submission.group_argv, "--work-dir", str(submission.folder / "group")]) \
            if submission.group_argv is not None else None
    else:
        analysis = group_analysis(submission)
        code = _run(*analysis) if analysis is not None else None
    if code is None:
        with output_lock(Path(submission.output_dir)):
            root_files(submission.output_dir)
        print(f"All {len(submission.tasks)} task(s) finished; outputs in "
              f"{submission.output_dir}", flush=True)
        code = 0
    if code == 0:
        write_text_atomic(submission.folder / "done" / "group.json", json.dumps({
            "Finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
    return code


def _run(spec, execution) -> int:
    """:func:`~glm_workflows.execution.analysis.run_analysis`; bad input: one line, exit code 2."""
    try:
        return run_analysis(spec, execution)
    except InputError as exc:
        if execution.debug:
            raise
        print(f"glm-workflows: error: {exc}", file=sys.stderr)
        return 2


def run(argv=None) -> int:
    """``task FOLDER K`` or ``group FOLDER``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "task":
        return run_task(argv[1], int(argv[2]))
    if len(argv) == 2 and argv[0] == "group":
        return run_group(argv[1])
    print("usage: python -m glm_workflows.cli.array_task task FOLDER K | group FOLDER",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(run())
