"""Which command lines get a stamp after a successful run, and what it fingerprints
(:mod:`glm_workflows.execution.up_to_date`: a rerun with nothing changed is answered from
it)."""

from __future__ import annotations

import argparse
import os

from ..settings import GRAPH_PLUGINS, seed_data_dir


def stamped_command(args: argparse.Namespace, argv: list[str]) -> tuple | None:
    """``(argv, cwd, output_dir, work_dir, values)`` of a command whose successful run is
    stamped; None for a SLURM array submission (or a resubmission) and for a plugin that
    returns before the nodes finish.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (positional arguments not merged yet).
    argv : list of str
        The command line as given.

    Returns
    -------
    stamped : tuple or None
        ``values`` are the settings' string values, given or default (the input paths are
        among them), plus the seed analysis's data folder when no other input is given.
    """
    if args.slurm_array or args.resubmit_failed or args.plugin in GRAPH_PLUGINS:
        return None
    values = [value for value in vars(args).values()
              for value in (value if isinstance(value, (list, tuple)) else [value])
              if isinstance(value, str)]
    if not (args.bids_dir or args.bids_dir_arg or args.func):  # the seed analysis's data
        values.append(str(seed_data_dir(args.data_dir)))
    return (list(argv), os.getcwd(), args.output_dir_arg or args.output_dir, args.work_dir,
            values)
