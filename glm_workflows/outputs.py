"""The output folder as a transaction: staged runs, atomic per-subject commits, root files.

A command-line run writes everything (maps, tables, sidecars, the subject's provenance
record and report) into a staging folder of its own inside the output folder. Only when
the whole run succeeded are the subjects it covers swapped in, one subject folder (and
its ``sub-<label>.html`` page) at a time, under a lock and a journal:

* the subject folder is **replaced**, not merged: after a run, ``sub-<label>/`` holds
  exactly that run's analysis of the subject (a contrast dropped from the command line
  disappears from the folder); subjects the run does not cover are left alone;
* the journal, written before the first swap, lets the next run in the same folder
  finish a commit that was cut short (power loss, SIGKILL), so a folder never stays
  half old, half new;
* SIGINT and SIGTERM are held back while the swaps run;
* files shared by every run at the folder's root (``dataset_description.json``,
  ``index.html``, ``provenance.json``) are rewritten atomically from what the subject
  folders hold, under the same lock, so concurrent runs for different subjects all end
  up listed.

Concurrent runs (e.g. one per subject on a cluster) each stage in their own folder; a
staging folder left by a process that died on this host is removed by the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path

from .core.derivatives import dataset_description, write_text_atomic
from .core.naming import (
    DESCRIPTION_FILE,
    GROUP_FOLDER,
    PROVENANCE_FILE,
    parse_subject_folder,
    report_page,
    subject_folder,
)

#: Staging folders: ``<prefix><host>-<pid>-<random>`` inside the output folder.
STAGING_PREFIX = ".glm-workflows-pending-"
#: Journal of a commit in progress: the swaps still to finish.
JOURNAL_PREFIX = ".glm-workflows-commit-"
#: Previous subject folders being replaced (removed when their commit ends).
TRASH_PREFIX = ".glm-workflows-replaced-"
#: Lock serialising commits and root-file updates of one output folder.
LOCK_FILE = ".glm-workflows.lock"


@contextlib.contextmanager
def output_lock(output_dir: Path):
    """Hold an exclusive ``flock`` on the output folder's lock file."""
    with open(Path(output_dir) / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM back until the block ends, then deliver them."""
    held = (signal.SIGINT, signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def replay_journal(journal: Path) -> None:
    """Finish the swaps a journal lists, from wherever they stopped; then delete it.

    Each entry ``[staged, target, trash]`` goes through three idempotent steps: the
    current ``target`` is renamed to ``trash``, ``staged`` is renamed to ``target``,
    ``trash`` is removed. Then the staging folder goes. The journal is written only once
    everything is staged, so a commit is always finished (rolled forward), never half
    undone.
    """
    entry = json.loads(journal.read_text())
    for staged, target, trash in entry["Swaps"]:
        staged, target, trash = Path(staged), Path(target), Path(trash)
        if staged.exists():
            if target.exists() and not trash.exists():
                os.rename(target, trash)
            os.rename(staged, target)
        if trash.exists() or trash.is_symlink():
            _remove(trash)
    shutil.rmtree(entry["Staging"], ignore_errors=True)
    journal.unlink()


def recover_commits(output_dir: Path) -> int:
    """Finish every commit whose process died half-way (call with the lock held)."""
    journals = sorted(Path(output_dir).glob(f"{JOURNAL_PREFIX}*.json"))
    for journal in journals:
        replay_journal(journal)
    return len(journals)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(output_dir: Path) -> None:
    """Remove staging folders left by processes of this host that no longer run."""
    host = socket.gethostname()
    for folder in Path(output_dir).glob(f"{STAGING_PREFIX}*"):
        owner = folder.name[len(STAGING_PREFIX):].rsplit("-", 2)
        if len(owner) == 3 and owner[0] == host and owner[1].isdigit() \
                and not _process_alive(int(owner[1])):
            shutil.rmtree(folder, ignore_errors=True)


class OutputTransaction:
    """A run's staged outputs, committed subject by subject into the output folder.

    Parameters
    ----------
    output_dir : str or PathLike
        The derivatives root (it must exist and be writable).

    Attributes
    ----------
    staging : pathlib.Path
        Where the run writes; it has the layout of the output folder.
    committed : bool
        Whether the staged subjects are in place.
    """

    committed = False

    def __init__(self, output_dir):
        self.output_dir = Path(output_dir).absolute()
        with output_lock(self.output_dir):
            recover_commits(self.output_dir)
            remove_stale_staging(self.output_dir)
        self.staging = Path(tempfile.mkdtemp(
            prefix=f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-",
            dir=self.output_dir))

    def discard(self) -> None:
        """Drop everything staged; the output folder stays as it was."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def commit(self, subjects, root_files) -> list[Path]:
        """Swap each subject's staged folder and report into place, then the root files.

        Parameters
        ----------
        subjects : iterable of str
            Subject labels the run covers (each has ``sub-<label>/`` staged).
        root_files : callable
            ``root_files(output_dir)`` rewrites the shared root files; called with the
            lock held, after the swaps.

        Returns
        -------
        targets : list of pathlib.Path
            The subject folders and pages (and the group folder) now in place.
        """
        swaps = []
        names = [name for subject in subjects
                 for name in (subject_folder(subject), report_page(subject))]
        for name in [*names, GROUP_FOLDER]:  # the group level's folder, if staged
            if (self.staging / name).exists():
                swaps.append([str(self.staging / name), str(self.output_dir / name),
                              str(self.output_dir / f"{TRASH_PREFIX}{self.staging.name}"
                                                    f"-{name}")])
        journal = self.output_dir / f"{JOURNAL_PREFIX}{self.staging.name}.json"
        with signals_held(), output_lock(self.output_dir):
            write_text_atomic(journal, json.dumps({"Staging": str(self.staging), "Swaps": swaps},
                                              indent=1))
            replay_journal(journal)
            self.committed = True
            root_files(self.output_dir)
        return [Path(target) for _, target, _ in swaps]


def subject_folders(output_dir) -> list[str]:
    """Labels of the subjects whose folders the output folder holds, sorted."""
    labels = (parse_subject_folder(p.name) for p in Path(output_dir).iterdir() if p.is_dir())
    return sorted(label for label in labels if label)


def write_root_files(output_dir, write_index) -> None:
    """Rewrite the root files from the subject folders present (call with the lock held).

    ``dataset_description.json``; ``provenance.json``, which lists each subject's
    provenance record (``sub-<label>/provenance.json``) with its date, command line and
    working directory; and, when the folder holds two or more subject reports,
    ``index.html`` through ``write_index(output_dir, subjects)``.
    """
    output_dir = Path(output_dir)
    write_description(output_dir)
    subjects = subject_folders(output_dir)
    listing = []
    for subject in subjects:
        record_path = output_dir / subject_folder(subject) / PROVENANCE_FILE
        try:
            generated = json.loads(record_path.read_text()).get("GeneratedBy", {})
        except (OSError, ValueError, AttributeError):
            generated = {}
        listing.append({"Subject": subject,
                        "Record": f"{subject_folder(subject)}/{PROVENANCE_FILE}",
                        "Date": generated.get("Date"),
                        "CommandLine": generated.get("CommandLine"),
                        "WorkingDirectory": generated.get("WorkingDirectory")})
    write_text_atomic(output_dir / PROVENANCE_FILE,
                  json.dumps({"Subjects": listing}, indent=2))
    with_reports = [s for s in subjects if (output_dir / report_page(s)).exists()]
    if len(with_reports) > 1:
        write_index(output_dir, with_reports)


def write_description(output_dir, replace: bool = True) -> None:
    """Write ``dataset_description.json`` (atomically); with ``replace`` False, only if
    the folder has none."""
    path = Path(output_dir) / DESCRIPTION_FILE
    if replace or not path.exists():
        write_text_atomic(path, json.dumps(dataset_description(), indent=2))
