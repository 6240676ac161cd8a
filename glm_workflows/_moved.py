"""Import paths of release 0.1 that moved when the modules were grouped into packages:
they keep working for one release, with a :class:`DeprecationWarning` naming the new path.

``import glm_workflows.first_level`` (and ``python -m glm_workflows.cli.array_task``, which
SLURM jobs submitted by 0.1 run) gives the module at its new path; ``from
glm_workflows.inputs import find_bids_runs`` (a module then, a package now) gives the
function from the module that holds it now.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: Old module -> its new path.
MOVED_MODULES = {
    "glm_workflows.array_task": "glm_workflows.cli.array_task",
    "glm_workflows.first_level": "glm_workflows.workflows.first_level",
    "glm_workflows.fixed_effects": "glm_workflows.workflows.fixed_effects",
    "glm_workflows.from_derivatives": "glm_workflows.inputs.derivatives",
    "glm_workflows.group": "glm_workflows.workflows.group",
    "glm_workflows.inference": "glm_workflows.workflows.inference",
    "glm_workflows.interrupts": "glm_workflows.execution.interrupts",
    "glm_workflows.provenance": "glm_workflows.outputs.provenance",
    "glm_workflows.slurm_array": "glm_workflows.execution.slurm_array",
    "glm_workflows.study": "glm_workflows.workflows.study",
    "glm_workflows.summary": "glm_workflows.report.summary",
    "glm_workflows.validation": "glm_workflows.inputs.checks",
}

#: Old module that is a package now -> {name: the module that holds it now}.
MOVED_NAMES = {
    "glm_workflows.inputs": {
        "RunInputs": "glm_workflows.inputs.runs",
        "file_list_run": "glm_workflows.inputs.runs",
        "slice_time_reference": "glm_workflows.inputs.runs",
        "find_bids_runs": "glm_workflows.inputs.bids",
        "find_spm_auditory": "glm_workflows.inputs.bids",
        "find_derivative_runs": "glm_workflows.inputs.fmriprep",
    },
    "glm_workflows.execution": {
        "run_workflow": "glm_workflows.execution.plugins",
        "configure_workflow": "glm_workflows.execution.plugins",
        "MultiProcPlugin": "glm_workflows.execution.plugins",
        "NodeRecord": "glm_workflows.execution.progress",
    },
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; the old path goes in the next release",
                  DeprecationWarning, stacklevel=3)


def moved_attribute(package: str, name: str):
    """``package.name`` for a name of the module ``package`` was: from its new module,
    with a deprecation warning; an :class:`AttributeError` for any other name."""
    module_name = MOVED_NAMES.get(package, {}).get(name)
    if module_name is not None:
        _warn(f"{package}.{name}", f"{module_name}.{name}")
        return getattr(importlib.import_module(module_name), name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        _warn(spec.name, self.new)
        module = importlib.import_module(self.new)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module):
        # the module at its new path is already executed; the import system has just set
        # its ``__spec__`` to the old path's, which would make its relative imports at run
        # time warn ("__package__ != __spec__.parent"): it gets its own back
        module.__spec__ = self.own_spec

    def get_code(self, fullname):
        """``python -m <old path>``: run the module at its new path as ``__main__``."""
        return compile(f"import runpy; runpy.run_module({self.new!r}, run_name='__main__', "
                       "alter_sys=True)", f"<moved to {self.new}>", "exec")


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED_MODULES:
            return importlib.util.spec_from_loader(fullname, _MovedLoader(
                MOVED_MODULES[fullname]))
        return None


def install() -> None:
    """Put the finder of moved modules on :data:`sys.meta_path` (once)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
