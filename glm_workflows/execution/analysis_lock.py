"""One process at a time per analysis and work directory.

The same command started twice at once (two terminals, a job submitted twice) ran the
same Nipype nodes in the same work directory together, and one of them failed inside
Nipype (``FileNotFoundError: ..._unfinished.json``, exit code 1). Now the second waits,
with one note, for the first to finish, then runs from its cache. Runs of other
analyses (other participants, flags or spaces) are not held back.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sys
import tempfile
from pathlib import Path


def lock_path(spec, execution) -> Path:
    """The lock of ``spec`` run with ``execution``'s work and output folders from the
    working directory: in the system's temporary folder, so that taking it creates no
    folder before the input checks (bad input leaves no work directory behind)."""
    key = hashlib.sha256("\0".join([
        os.getcwd(), str(Path(execution.work_dir).absolute()),
        str(Path(execution.output_dir).absolute()), spec.to_json()]).encode()).hexdigest()
    return Path(tempfile.gettempdir()) / f"glm-workflows-{key[:32]}.lock"


@contextlib.contextmanager
def analysis_lock(spec, execution):
    """Hold the analysis' lock while the block runs; wait (one note) while another
    process holds it. The lock file is removed on release (no file is left behind): a
    waiter that locked a removed file locks the path anew."""
    path, noted = lock_path(spec, execution), False
    while True:
        handle = open(path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not noted:
                print("glm-workflows: note: the same analysis is running in another process "
                      f"(work directory {Path(execution.work_dir).absolute()}); waiting for "
                      "it to finish", file=sys.stderr, flush=True)
                noted = True
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break  # the path's current file: ours
        except FileNotFoundError:
            pass
        handle.close()  # its holder removed it: lock the path's new file
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()  # releases the lock
