"""The command line a run records in its provenance (``GeneratedBy.CommandLine``)."""

from __future__ import annotations

import os
import sys


def invocation(argv=None) -> list[str]:
    """The command that runs :func:`glm_workflows.cli.main` with ``argv``, as the
    provenance records it.

    Parameters
    ----------
    argv : list of str or None
        :func:`~glm_workflows.cli.main`'s arguments; None: the process's
        (``sys.argv[1:]``).

    Returns
    -------
    command : list of str
        :func:`entry_point` and the process's arguments; for ``argv`` given in-process (a
        test), ``glm-workflows`` and ``argv``. ``shlex.join`` of it, run from the same
        working directory, runs the same analysis.
    """
    if argv is not None:
        return ["glm-workflows", *argv]
    return [*entry_point(), *sys.argv[1:]]


def entry_point() -> list[str]:
    """How this process was started, without its arguments.

    Returns
    -------
    command : list of str
        ``[sys.executable, "-m", module]`` for ``python -m module``;
        ``[sys.executable, script]`` for a ``.py`` script (e.g. ``run_workflow.py``, as
        given: relative paths are from the working directory); for a console script, its
        name if it is the one the ``PATH`` finds, else its path; ``["glm-workflows"]`` when
        neither is known (``python -c``).
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return [sys.executable, "-m", spec.name.removesuffix(".__main__")]
    script = sys.argv[0] if sys.argv else ""
    if not script or script == "-c":
        return ["glm-workflows"]
    if script.endswith(".py"):
        return [sys.executable, script]
    import shutil

    name = os.path.basename(script)
    found = shutil.which(name)
    same = found is not None and os.path.exists(script) and os.path.samefile(found, script)
    return [name if same else script]
