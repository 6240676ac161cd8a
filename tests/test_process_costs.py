"""The helpers that keep a command-line run's fixed costs down leave the process as they
found it: garbage collection's state (execution.garbage), sys.modules (lean_imports), and
core.lazy's stand-ins behave as the modules they name."""

from __future__ import annotations

import gc
import subprocess
import sys

from glm_workflows.core.lazy import LazyModule
from glm_workflows.execution.garbage import (
    collections_of_new_objects,
    collections_paused,
    freeze_new_objects,
)


def test_collections_paused_restores_the_state():
    assert gc.isenabled()
    with collections_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collections_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_collections_of_new_objects_freezes_then_unfreezes():
    frozen = gc.get_freeze_count()
    with collections_paused():
        with collections_of_new_objects():
            assert gc.isenabled()
            assert gc.get_freeze_count() > frozen
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_freeze_new_objects_only_within_a_block_of_new_objects():
    """Objects made within the block are left out of its collections once frozen, and
    collected again after it; outside such a block nothing is frozen."""
    freeze_new_objects()
    assert gc.get_freeze_count() == 0
    with collections_of_new_objects():
        before = gc.get_freeze_count()
        kept = [[index] for index in range(1000)]  # container objects: tracked by gc
        freeze_new_objects()
        assert gc.get_freeze_count() >= before + len(kept)
    assert gc.get_freeze_count() == 0


def test_lazy_module_is_the_module_once_used():
    import json

    lazy = LazyModule("json")
    assert lazy.dumps is json.dumps
    assert "dumps" in vars(lazy)  # kept: no second lookup
    assert repr(lazy) == "<lazy module 'json'>"


def test_a_cached_path_import_loads_neither_pandas_nor_ipython():
    code = ("import sys\n"
            "import glm_workflows.execution.plugins, glm_workflows.workflows.study\n"
            "import glm_workflows.execution.analysis\n"
            "print(sorted(m for m in ('pandas', 'scipy.linalg', 'IPython', 'sklearn')"
            " if sys.modules.get(m) is not None))\n"
            "print('IPython' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "False"  # the block left sys.modules as it found it
