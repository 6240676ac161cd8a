"""The output folder as a transaction: staged runs, atomic per-subject commits, root files.

A command-line run writes everything (maps, tables, sidecars, the analysis' record and
the subject's report) into a staging folder of its own inside the output folder. Only
when the whole run succeeded are the subjects it covers swapped in, one subject folder
(and its ``sub-<label>.html`` page) at a time, under a lock and a journal:

* a folder holds many analyses (:func:`~glm_workflows.core.analyses.analysis_label`: task,
  template, model), and files of other tools; each analysis' record in the folder
  (:func:`~glm_workflows.core.analyses.analysis_record`) lists, under ``Outputs``, the
  files it wrote there. A commit replaces the files this run wrote, deletes those the
  analysis' previous record lists that this run did not write (a contrast dropped from
  the command line disappears), and keeps every other file: under the lock, they are
  hard-linked into the staged folder, whose page is rewritten to show every analysis,
  before the staged folder is swapped in whole. A run that would replace a file its
  analysis' record does not list is refused (:func:`check_replaces_only_its_own`);
* the journal, written before the first swap, lets the next run in the same folder
  finish a commit that was cut short (power loss, SIGKILL), so a folder never stays
  half old, half new;
* SIGINT and SIGTERM are held back while the commit runs;
* files shared by every run at the folder's root (``dataset_description.json``,
  ``index.html``, ``provenance.json``) are rewritten atomically from what the subject
  folders hold, under the same lock, so concurrent runs all end up listed.

The group folder (``group/``) is committed the same way. Concurrent runs (e.g. one per
subject on a cluster) each stage in their own folder; a staging folder left by a process
that died on this host is removed by the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from ..core.analyses import (
    analysis_record,
    legacy_analysis,
    names_its_template,
    parse_analysis_record,
)
from ..core.derivatives import write_text_atomic
from ..core.errors import InputError
from ..core.naming import (
    GROUP_FOLDER,
    STAGING_PREFIX,
    parse_output_name,
    parse_session_folder,
    parse_subject_folder,
    report_page,
    subject_folder,
)

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
        try:
            if trash.exists() or trash.is_symlink():
                _remove(trash)
        except OSError as exc:  # rmtree's names a file in it, alone
            raise InputError(f"{trash}: the folder a commit replaced cannot be removed "
                             f"({exc.strerror}); make it and the folders in it writable, or "
                             "remove it, then run again") from None
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

    def commit(self, subjects, root_files, analysis: str, subject_page=None) -> list[Path]:
        """Merge each staged folder with what its target holds, swap it and the subject's
        page into place, then rewrite the root files.

        Parameters
        ----------
        subjects : iterable of str
            Subject labels the run covers (each has ``sub-<label>/`` staged).
        root_files : callable
            ``root_files(output_dir)`` rewrites the shared root files; called with the
            lock held, after the swaps.
        analysis : str
            The run's analysis (:func:`~glm_workflows.core.analyses.analysis_label`).
        subject_page : callable or None
            ``subject_page(staging, subject)`` rewrites a staged subject page; called,
            with the lock held, for each subject whose folder holds other analyses.

        Returns
        -------
        targets : list of pathlib.Path
            The subject folders and pages (and the group folder) now in place.

        Raises
        ------
        InputError
            If this run would replace a file that the analysis' record in the output
            folder does not list (nothing is changed).
        """
        subjects = list(subjects)
        names = [name for subject in subjects
                 for name in (subject_folder(subject), report_page(subject))]
        swaps = [[str(self.staging / name), str(self.output_dir / name),
                  str(self.output_dir / f"{TRASH_PREFIX}{self.staging.name}-{name}")]
                 for name in [*names, GROUP_FOLDER]  # the group level's folder, if staged
                 if (self.staging / name).exists()]
        journal = self.output_dir / f"{JOURNAL_PREFIX}{self.staging.name}.json"
        removed: list[Path] = []
        with signals_held(), output_lock(self.output_dir):
            for name in [*map(subject_folder, subjects), GROUP_FOLDER]:
                if not (self.staging / name).is_dir():
                    continue
                others = merge_folder(self.staging / name, self.output_dir / name, analysis,
                                      removed)
                subject = parse_subject_folder(name)
                if others and subject and subject_page is not None:
                    subject_page(self.staging, subject)
            write_text_atomic(journal, json.dumps({"Staging": str(self.staging),
                                                   "Swaps": swaps}, indent=1))
            replay_journal(journal)
            self.committed = True
            root_files(self.output_dir)
        if removed:  # e.g. a contrast left out this time
            print(f"glm-workflows: note: {len(removed)} file(s) of {analysis}'s previous run "
                  f"that this run does not write were removed, e.g. {removed[0]}",
                  file=sys.stderr)
        return [Path(target) for _, target, _ in swaps]


def recorded_outputs(folder, analysis: str) -> set[str]:
    """The files of ``folder`` that ``analysis`` wrote, as its record there lists them
    (empty without a record; an unreadable record lists nothing).

    A record under the analysis' :func:`~glm_workflows.core.analyses.legacy_analysis`
    label (an earlier glm-workflows') whose every file carries the analysis' template
    entities is its own too: its files and that record, which a commit then replaces.
    """
    own = _listed_outputs(folder, analysis)
    legacy = legacy_analysis(analysis)
    theirs = _listed_outputs(folder, legacy) if legacy else set()
    if theirs and all(names_its_template(name, analysis) for name in theirs):
        own |= theirs | {analysis_record(legacy)}
    return own


def _listed_outputs(folder, analysis: str) -> set[str]:
    """The ``Outputs`` of ``analysis``' record in ``folder`` (empty when unreadable)."""
    try:
        outputs = json.loads((Path(folder) / analysis_record(analysis)).read_text())["Outputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {name for name in outputs if isinstance(name, str)} if isinstance(outputs, list) \
        else set()


def folder_analyses(folder) -> list[str]:
    """The analyses with a record in ``folder`` (a subject or group folder), sorted."""
    folder = Path(folder)
    labels = (parse_analysis_record(p.name) for p in folder.iterdir()) if folder.is_dir() \
        else ()
    return sorted(label for label in labels if label)


def check_replaces_only_its_own(folder, analysis: str, writes) -> None:
    """Refuse a run of ``analysis`` that would replace a file in ``folder`` that no earlier
    run of the same analysis recorded writing.

    Parameters
    ----------
    folder : str or PathLike
        A subject, session or group folder of the output folder (it need not exist); a
        subject folder's session folders (``ses-<label>/``) are folders of their own,
        checked apart.
    analysis : str
        The run's analysis (:func:`~glm_workflows.core.analyses.analysis_label`).
    writes : callable
        ``writes(name)``: whether the run writes the file ``name`` into ``folder``.

    Raises
    ------
    InputError
        Naming the first such file and whose it is.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    own = recorded_outputs(folder, analysis) | {analysis_record(analysis)}
    for name in sorted(p.name for p in folder.iterdir()):
        if name in own or _is_session(folder / name) or not writes(name):
            continue
        owners = [label for label in folder_analyses(folder)
                  if name in recorded_outputs(folder, label)]
        whose = (f"analysis {owners[0]} wrote it" if owners else
                 "no run of it is recorded (another tool or an older glm-workflows wrote it)")
        raise InputError(f"{folder / name}: analysis {analysis} would replace it, but "
                         f"{whose}; move it away or use another --output-dir")


def _is_session(path: Path) -> bool:
    """Whether ``path`` is a session folder (``ses-<label>/``, in a subject's folder)."""
    return parse_session_folder(path.name) is not None and path.is_dir() \
        and not path.is_symlink()


def merge_folder(staged: Path, target: Path, analysis: str, removed=None) -> bool:
    """Make the staged folder what ``target`` is to become (call with the lock held).

    The analysis' staged record gets ``Outputs``: the files staged. Every file of
    ``target`` that this run does not write and that the analysis' previous record does
    not list (another analysis', another tool's) is hard-linked (copied where links
    fail) into ``staged``; the files the previous record lists and this run does not
    write are left out, so the swap deletes them. Session folders (``ses-<label>/``) are
    merged the same way, each as a folder of its own with its own record; one this run
    does not write into loses the analysis' files and record, and goes when nothing else
    is left in it. The files left out are added to the list ``removed`` when one is given.

    Returns
    -------
    others : bool
        Whether files of other analyses of this package were brought in.

    Raises
    ------
    InputError
        See :func:`check_replaces_only_its_own`; nothing is changed.
    """
    record = staged / analysis_record(analysis)
    written = sorted(p.name for p in staged.iterdir()
                     if p.name != record.name and not _is_session(p))
    if written or record.exists():
        try:
            content = json.loads(record.read_text())
        except OSError:
            content = {}
        record.write_text(json.dumps({**content, "Outputs": written}, indent=2, default=str))
    if target.is_dir():
        check_replaces_only_its_own(target, analysis, lambda name: (staged / name).exists())
    others = False
    for session in [p for p in staged.iterdir() if _is_session(p)]:
        others = merge_folder(session, target / session.name, analysis, removed) or others
    if not target.is_dir():
        return others
    dropped = recorded_outputs(target, analysis) | {record.name}
    for path in target.iterdir():
        if path.name in dropped and not (staged / path.name).exists():
            if removed is not None and path.name != record.name:
                removed.append(path)
            continue
        if _is_session(path) and not (staged / path.name).exists():
            (staged / path.name).mkdir()
            others = merge_folder(staged / path.name, path, analysis, removed) or others
            if not any((staged / path.name).iterdir()):
                (staged / path.name).rmdir()
            continue
        if (staged / path.name).exists():
            continue
        _link(path, staged / path.name)
        others = others or bool(parse_output_name(path.name)
                                or parse_analysis_record(path.name))
    return others


def _link(source: Path, target: Path) -> None:
    """``source`` (file, symbolic link or folder) at ``target`` too, its files hard-linked."""
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
    elif source.is_dir():
        shutil.copytree(source, target, symlinks=True, copy_function=_link_file)
    else:
        _link_file(source, target)


def _link_file(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)


def subject_folders(output_dir) -> list[str]:
    """Labels of the subjects whose folders the output folder holds, sorted."""
    labels = (parse_subject_folder(p.name) for p in Path(output_dir).iterdir() if p.is_dir())
    return sorted(label for label in labels if label)
