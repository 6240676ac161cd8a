"""Import paths of release 0.1 that the README documented keep working for one release,
with a DeprecationWarning naming the new path (glm_workflows._moved)."""

import importlib
import subprocess
import sys

import pytest

from glm_workflows._moved import MOVED_MODULES, MOVED_NAMES


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_an_old_module_path_is_the_new_module_with_a_warning(old):
    new = importlib.import_module(MOVED_MODULES[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=MOVED_MODULES[old]):
        module = importlib.import_module(old)
    assert module is new
    assert new.__spec__.name == MOVED_MODULES[old]  # its relative imports do not warn


@pytest.mark.parametrize("package, name", [(package, name) for package, names in
                                           sorted(MOVED_NAMES.items()) for name in names])
def test_an_old_name_of_a_module_now_a_package_still_imports(package, name):
    holder = importlib.import_module(MOVED_NAMES[package][name])
    with pytest.warns(DeprecationWarning, match=f"{MOVED_NAMES[package][name]}.{name}"):
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(holder, name)


def test_the_readme_examples_of_release_0_1_import():
    """The 0.1 README's "From Python" imports, as written then."""
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n    from glm_workflows.execution import run_workflow\n"
            "except DeprecationWarning as w:\n    print(w)\n")
    assert "glm_workflows.execution.plugins.run_workflow" in subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    with pytest.warns(DeprecationWarning):
        from glm_workflows.first_level import init_first_level_wf  # noqa: F401
        from glm_workflows.study import init_glm_wf  # noqa: F401

        from glm_workflows.inputs import find_bids_runs  # noqa: F401


def test_an_unknown_name_is_an_attribute_error():
    import glm_workflows.inputs

    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        glm_workflows.inputs.nothing_here  # noqa: B018


def test_python_m_of_an_old_path_runs_the_new_module():
    """SLURM jobs submitted by 0.1 run ``python -m glm_workflows.array_task``."""
    done = subprocess.run([sys.executable, "-m", "glm_workflows.array_task"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "usage: python -m glm_workflows.cli.array_task" in done.stderr
    assert "DeprecationWarning" not in done.stdout
