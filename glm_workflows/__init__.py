"""First-level fMRI statistics (the General Linear Model) as Nipype workflows."""

import os

from ._moved import install as _install_moved_paths

__version__ = "0.1.0"

#: Exported lazily (PEP 562): ``import glm_workflows`` stays cheap and Nipype-free.
_LAZY = {"AnalysisSpec": "glm_workflows.spec.analysis",
         "read_model": "glm_workflows.spec.from_model",
         "spec_from_args": "glm_workflows.cli",
         "run_analysis": "glm_workflows.execution.analysis"}

_install_moved_paths()  # the import paths of release 0.1 (glm_workflows._moved)

# Nipype asks the network for its latest version (etelemetry) when the first interface is
# made, unless this is set: 0.1-0.2 s per run here, and a wait for the request's timeout on
# a cluster node without internet. fMRIPrep turns it off the same way.
os.environ.setdefault("NIPYPE_NO_ET", "1")


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'glm_workflows' has no attribute {name!r}")
