"""SIGINT and SIGTERM during a run: raised as one exception the command line reports."""

from __future__ import annotations

import contextlib
import os
import signal


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM arrived during a run (a BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` in Nipype mistakes it for a node failure)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.signame = signal.Signals(signum).name


#: Signals received within :func:`interrupts_raise`, newest last.
_received: list[int] = []
#: The processes within :func:`interrupts_raise` (its handlers installed), innermost last.
_owner: list[int] = []


def _raise_interrupted(signum, _frame):
    _received.append(signum)
    raise RunInterrupted(signum)


def _default_signals_in_child() -> None:
    """In a process forked within :func:`interrupts_raise` (a worker of a Nipype plugin's
    pool that sets no signal handling of its own, e.g. LegacyMultiProc), SIGINT and
    SIGTERM take their default action again, before the child runs anything.

    Inherited, the Python handler ran only between bytecodes: a SIGTERM from the pool's
    shutdown that arrived just before the worker blocked on the pool's queue lock was
    never acted on, and the run waited for that worker forever.
    """
    if not _owner:
        return
    _owner.clear()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the child's main thread
            signal.signal(sig, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_signals_in_child)


def received_interrupt() -> int | None:
    """The signal received within the current :func:`interrupts_raise` block, if any.

    Code that catches every exception (Nipype rebuilds a node's exception as its own)
    can turn a :class:`RunInterrupted` into an ordinary error; this tells it apart.
    """
    return _received[-1] if _received else None


@contextlib.contextmanager
def interrupts_raise():
    """Within the block, SIGINT and SIGTERM raise :class:`RunInterrupted`."""
    _received.clear()
    _owner.append(os.getpid())
    previous = {sig: signal.signal(sig, _raise_interrupted)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _owner.pop()


def worker_initializer(cwd):
    """Start a MultiProc worker: Nipype's set-up, and default signal handling.

    A worker leaves SIGINT (Ctrl-C reaches the whole process group) to the main
    process, which stops the workers itself; SIGTERM ends a worker quietly.
    """
    from nipype.pipeline.plugins.multiproc import process_initializer

    process_initializer(cwd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
