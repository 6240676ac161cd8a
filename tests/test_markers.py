"""The ``slow`` marker: ``-m "not slow"`` is a quick subset, the default run is everything."""

import ast
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Session fixtures that run a pipeline or need a cluster: a test using one is slow.
EXPENSIVE_FIXTURES = {"split_outputs", "split_bids_dir", "slurm_cluster"}


def _is_slow(node) -> bool:
    return "pytest.mark.slow" in ast.unparse(node)


def test_slow_marker_registered_and_not_deselected_by_default():
    """pyproject.toml registers ``slow`` (so ``--strict-markers`` accepts it) and its
    addopts do not deselect anything: ``python -m pytest -q tests`` runs every test."""
    import tomllib

    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    options = options["ini_options"]
    assert any(marker.split(":")[0].strip() == "slow" for marker in options["markers"])
    addopts = options.get("addopts", "")
    addopts = shlex.split(addopts) if isinstance(addopts, str) else list(addopts)
    assert not any(arg == "-m" or arg.startswith("-m") for arg in addopts)


def test_tests_of_expensive_session_fixtures_are_slow():
    """A quick test asking for a pipeline-running session fixture would make the quick
    subset pay for the pipeline: such tests carry the marker (or their module does)."""
    fast_users = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_slow = any(isinstance(node, ast.Assign) and _is_slow(node)
                          and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
                          for node in tree.body)
        for node in tree.body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            used = {arg.arg for arg in node.args.args} & EXPENSIVE_FIXTURES
            if used and not module_slow and not any(map(_is_slow, node.decorator_list)):
                fast_users.append(f"{path.name}::{node.name} ({', '.join(sorted(used))})")
    assert fast_users == []


def test_quick_subset_keeps_architecture_core_and_cli_refusals():
    """``-m "not slow"`` (strict markers) collects the architecture and settings tests
    (none of them slow), tests of every core/ module and the command line's refusals,
    and leaves out the SLURM tests."""
    unmarked = ["test_architecture.py", "test_settings.py", "test_core_naming.py"]
    for name in unmarked:
        assert "mark.slow" not in (ROOT / "tests" / name).read_text(), name
    core = sorted(p.name for p in (ROOT / "tests").glob("test_core_*.py"))
    files = sorted({*unmarked, *core, "test_cli.py", "test_slurm.py"})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--strict-markers",
         "-p", "no:cacheprovider", "-m", "not slow", *(f"tests/{f}" for f in files)],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    assert result.returncode == 0, result.stdout + result.stderr
    collected = {line.split("::")[0].rsplit("/", 1)[-1]
                 for line in result.stdout.splitlines() if "::" in line}
    assert collected == set(files) - {"test_slurm.py"}
    for refusal in ("test_bad_input_is_one_line_and_touches_nothing",
                    "test_flag_values_are_checked_before_any_data_is_read"):
        assert f"::{refusal}[" in result.stdout
