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
#: The process that installed the handlers: a process forked from it (a worker of a
#: Nipype plugin's pool that sets no signal handling of its own, e.g. LegacyMultiProc)
#: inherits them, and must end on SIGTERM as a worker does, not raise.
_owner: list[int] = []


def _raise_interrupted(signum, _frame):
    if _owner and os.getpid() != _owner[-1]:  # a forked worker: the default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _received.append(signum)
    raise RunInterrupted(signum)


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
