"""A run's log file and what its console shows (:class:`RunLog`).

Everything a run prints (progress lines, notes, warnings, errors, the results; with
``-v``/``-vv`` Nipype's log too) is written to ``<output-dir>/logs/<analysis>_<UTC
time>.log`` (``_2``, ``_3``, ... when a run started in the same second has the name). The
folder is outside the subject folders the output transaction swaps, so a failed or
interrupted run keeps its log, and no commit touches it. The file is opened once the run's
checks have passed (bad input writes nothing anywhere); what was printed before is written
to it first.

The console follows ``ExecutionSettings.verbosity``: quiet (-1) shows errors and, once the
workflow has finished, the final result lines; 0 and up show everything as before.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from pathlib import Path

from .. import __version__
from ..settings import QUIET

#: The log folder, inside the output folder.
LOG_FOLDER = "logs"
#: Lines a quiet run still prints on stderr (errors and interruptions).
_ALWAYS_SHOWN = ("glm-workflows: error", "glm-workflows: interrupted")


def log_name(analysis: str, started: float, attempt: int = 1) -> str:
    """``<analysis>_<YYYYmmdd-HHMMSS, UTC>[_<attempt>].log``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    return f"{analysis}_{stamp}{'' if attempt == 1 else f'_{attempt}'}.log"


class ConsoleStream(io.TextIOBase):
    """A text stream in front of a console (``self._console``): flushed, a terminal and a
    file descriptor as the console is; subclasses say what ``write`` does."""

    def flush(self) -> None:
        self._console.flush()

    def isatty(self) -> bool:
        return self._console.isatty()

    def fileno(self) -> int:
        return self._console.fileno()

    @property
    def encoding(self):
        return getattr(self._console, "encoding", "utf-8")


class _Tee(ConsoleStream):
    """A stream written to the console (as the verbosity allows) and to the run's log."""

    def __init__(self, log: RunLog, console, errors: bool):
        self._log, self._console, self._errors = log, console, errors
        self._pending = ""  # quiet: the line being written, until it ends

    def write(self, text: str) -> int:
        self._log.record(text)
        if self._log.verbosity > QUIET:
            self._show(text)
            return len(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if self._log.shows(line, self._errors):
                self._show(line + "\n")
        return len(text)

    def _show(self, text: str) -> None:
        console_write(self._console, text)  # `| head`: the run goes on, its log keeps it all

    def flush(self) -> None:
        console_write(self._console, "", flush=True)
        self._log.flush()


def console_write(console, text: str, flush: bool = False) -> None:
    """Write ``text`` to ``console`` (and flush it); a console whose reader went away (``|
    head``) is pointed at ``/dev/null`` (Python's advice for a pipe closed early): later
    writes, and the flush at exit, then succeed."""
    try:
        console.write(text)
        if flush:
            console.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, console.fileno())
        os.close(devnull)


class RunLog:
    """Within ``with RunLog(verbosity):`` stdout and stderr (and Nipype's log handler) go
    through the log; :meth:`open` starts its file, :meth:`results` marks the final lines.

    Parameters
    ----------
    verbosity : int
        ``ExecutionSettings.verbosity``.
    """

    def __init__(self, verbosity: int):
        self.verbosity = verbosity
        self.path: Path | None = None
        self._file = None
        self._early = io.StringIO()  # what was printed before the file opened
        self._results = False
        self._shown = False  # quiet: a result line was shown

    # ------------------------------------------------------------------ the streams

    def __enter__(self) -> RunLog:
        self._saved = sys.stdout, sys.stderr
        sys.stdout = _Tee(self, sys.stdout, errors=False)
        sys.stderr = _Tee(self, sys.stderr, errors=True)
        self._handlers = [(handler, _set_stream(handler, sys.stdout))
                          for handler in logging.getLogger("nipype").handlers
                          if type(handler) is logging.StreamHandler]
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        for handler, stream in self._handlers:
            _set_stream(handler, stream)
        _release_handlers(self._saved[1])
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        sys.stdout, sys.stderr = self._saved
        if self._file is not None:
            if exc is not None and not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                self._file.write(f"glm-workflows: error: {type(exc).__name__}: {exc}\n")
            self._file.close()
            self._file = None

    def record(self, text: str) -> None:
        (self._file or self._early).write(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def shows(self, line: str, error_stream: bool) -> bool:
        """Quiet: whether the console shows ``line``."""
        if error_stream:
            return line.startswith(_ALWAYS_SHOWN)
        if not self._results or not (line or self._shown):
            return False  # nothing before the results, nor the blank line that opens them
        self._shown = True
        return True

    def results(self) -> None:
        """What follows on stdout is the run's final result (shown also when quiet)."""
        self._results = True

    # --------------------------------------------------------------------- the file

    def open(self, output_dir, analysis: str, started: float,
             command_line: list[str] | None = None) -> Path:
        """Create the log file in ``<output_dir>/logs/`` (a name no other run has) and
        write into it the header and what was printed so far."""
        folder = Path(output_dir).absolute() / LOG_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        attempt = 1
        while True:
            path = folder / log_name(analysis, started, attempt)
            try:  # O_APPEND: workers forked during the run append whole lines
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
                                     0o644)
                break
            except FileExistsError:
                attempt += 1
        self._file = os.fdopen(descriptor, "w", buffering=1, encoding="utf-8")
        self.path = path
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        command = " ".join(command_line) if command_line else " ".join(sys.argv)
        self._file.write(f"glm-workflows {__version__}, started {when} in {os.getcwd()}\n"
                         f"command: {command}\n")
        self._file.write(self._early.getvalue())
        self._early = io.StringIO()
        return path


def _release_handlers(stream) -> None:
    """Point every logging handler still writing into a run's streams (one Nipype created
    while the run was going, say) at ``stream``: after the run, a handler must not write
    into its log, or into a console the run wrapped and that may be closed now."""
    loggers = [logging.getLogger(), *(logger for logger in
                                      logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(getattr(handler, "stream", None), _Tee):
                _set_stream(handler, stream)


def _set_stream(handler: logging.StreamHandler, stream):
    """``handler.setStream(stream)`` (its previous stream returned), also when the previous
    stream is closed already (setStream flushes it first)."""
    try:
        return handler.setStream(stream)
    except ValueError:  # flushing a closed stream
        previous, handler.stream = handler.stream, stream
        return previous
