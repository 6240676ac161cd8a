"""The command line: the parser (:mod:`.parser`), its one reader and the dispatcher
(:mod:`.command`: ``spec_from_args``, ``main``) and what SLURM array jobs run
(:mod:`.array_task`). ``glm-workflows`` and ``python -m glm_workflows.cli`` call
:func:`run`."""

from .command import main, run, spec_from_args

__all__ = ["main", "run", "spec_from_args"]
