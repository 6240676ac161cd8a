"""Imports that cost time and serve nothing: Nipype's plugin package imports IPython
(about 0.4 s) only to offer its IPython plugin, which also needs ``ipyparallel``."""

from __future__ import annotations

import contextlib
import importlib.util
import sys


@contextlib.contextmanager
def without_unusable_ipython():
    """Within the block, ``import IPython`` fails when ``ipyparallel`` is not installed
    (Nipype's IPython plugin then cannot run: ``nipype.pipeline.plugins.ipython`` catches
    the failure, as it would catch the missing ``ipyparallel``). Nothing changes when
    IPython is already imported, ``ipyparallel`` is installed or Nipype's plugins are
    already imported; the block is left as it was found."""
    block = ("IPython" not in sys.modules and "nipype.pipeline.plugins" not in sys.modules
             and importlib.util.find_spec("ipyparallel") is None)
    if block:
        sys.modules["IPython"] = None  # import IPython -> ImportError
    try:
        yield
    finally:
        if block and "IPython" in sys.modules and sys.modules["IPython"] is None:
            del sys.modules["IPython"]
