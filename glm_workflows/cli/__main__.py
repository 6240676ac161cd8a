"""``python -m glm_workflows.cli``: the ``glm-workflows`` command."""

from . import run

run()
