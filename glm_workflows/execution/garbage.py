"""Garbage collection around a command-line run.

What a run allocates before its first node (imported modules, the plan, the Nipype graph)
lives until the process ends, so a full collection finds nothing there, and with nilearn,
Nipype and matplotlib loaded each one scans several hundred thousand objects (about 0.1 s).
The command line therefore pauses automatic collections while it checks the analysis and
builds its graph (:func:`collections_paused`), runs the nodes with collections of what the
run allocates only (:func:`collections_of_new_objects`; the graph the plugin runs, made
within, is left out of them too: :func:`freeze_new_objects`), and freezes everything before
the interpreter exits (:func:`freeze_for_exit`), whose collections then have nothing to scan.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def collections_paused():
    """No automatic collection within the block (the previous state restored after)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def collections_of_new_objects():
    """Automatic collections on within the block, of the objects allocated within it: those
    alive before are frozen (left out of every collection) until the block ends. No full
    collection before freezing: the few cycles left by imports stay, as they would at
    exit."""
    global _NEW_OBJECTS_BLOCKS
    enabled = gc.isenabled()
    gc.freeze()
    gc.enable()
    _NEW_OBJECTS_BLOCKS += 1
    try:
        yield
    finally:
        _NEW_OBJECTS_BLOCKS -= 1
        gc.unfreeze()
        if not enabled:
            gc.disable()


#: How many :func:`collections_of_new_objects` blocks are open.
_NEW_OBJECTS_BLOCKS = 0


def freeze_new_objects() -> None:
    """Within a :func:`collections_of_new_objects` block: leave the objects alive now out of
    its collections too, until the block ends (the execution graph, millions of objects
    made at once and kept for the whole run: the next young collection would scan them
    all, about a second at 1,000 runs). Outside such a block: nothing."""
    if _NEW_OBJECTS_BLOCKS:
        gc.freeze()


def freeze_for_exit() -> None:
    """Leave every live object out of the interpreter's collections at exit (call last)."""
    gc.disable()
    gc.freeze()
