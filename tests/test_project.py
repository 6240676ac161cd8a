"""Project checks: CI runs the README's test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    """The command under README's 'Tests' heading is the last command of .ci/run."""
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"## Tests\s+```bash\n(.+?)\n```", readme).group(1).strip()
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    assert ci_lines[-1] == command == "python -m pytest -q -n 2 --dist loadfile tests"


def test_every_package_is_installed_and_interfaces_sit_under_the_package():
    """pyproject.toml lists every package of the checkout, with interfaces/ mapped to
    glm_workflows.interfaces (no top-level ``interfaces`` module in site-packages)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(init.parent.relative_to(ROOT).parts)
               for init in (ROOT / "glm_workflows").rglob("__init__.py")}
    assert set(config["packages"]) == on_disk | {"glm_workflows.interfaces"}
    assert config["package-dir"] == {"glm_workflows.interfaces": "interfaces"}
