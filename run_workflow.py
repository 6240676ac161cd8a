#!/usr/bin/env python
"""Run the first-level GLM workflow from the command line (see ``--help``)."""

import sys

from glm_workflows.cli import main

if __name__ == "__main__":
    sys.exit(main())
