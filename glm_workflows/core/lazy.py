"""pandas and scipy.linalg imported on first use.

A cached rerun builds the graph and imports every interface and core module, but runs no
node: pandas (about 0.3 s) and scipy.linalg (about 0.1 s) would be imported for nothing.
The core's modules name them through these stand-ins, which import the module on the first
attribute asked for and keep each attribute once found.
"""

from __future__ import annotations

import importlib


class LazyModule:
    """A module imported on first attribute access.

    Parameters
    ----------
    name : str
        The module's import name, e.g. ``"pandas"``.
    """

    def __init__(self, name: str):
        self._lazy_name = name

    def __getattr__(self, attr: str):
        if attr.startswith("__"):  # copy, pickle and inspect probes: not the module's
            raise AttributeError(attr)
        value = getattr(importlib.import_module(self._lazy_name), attr)
        setattr(self, attr, value)  # found once: a plain attribute from now on
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._lazy_name!r}>"


#: ``pandas``, imported on first use.
pandas = LazyModule("pandas")
#: ``scipy.linalg``, imported on first use.
scipy_linalg = LazyModule("scipy.linalg")
