#!/usr/bin/env python
"""Run the first-level GLM workflow from the command line (see ``--help``)."""

import sys

from glm_workflows.cli import main
from glm_workflows.cli.command import exit_code

if __name__ == "__main__":
    sys.exit(exit_code(main()))
