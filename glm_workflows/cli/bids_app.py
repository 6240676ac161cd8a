"""The command line as a BIDS App's (fMRIPrep, MRIQC, FitLins): the positional
``bids_dir output_dir {participant,group}`` merged into the flags they stand for, and
``--bids-filter-file`` read (:func:`glm_workflows.core.bids_filter.read_filter_file`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..core.bids_filter import check_filters, read_filter_file
from ..core.errors import InputError
from ..inputs.folders import check_output_outside_derivatives
from .parser import POSITIONALS


def merge_positionals(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with each positional argument given stored as its flag's value, and a
    leading ``~`` in its paths (:data:`PATH_FLAGS`) expanded to the home folder; the
    output folder checked to be none of the ``--derivatives`` folders.

    Raises
    ------
    InputError
        A positional argument and its flag given with different values (paths compare
        as paths: ``out/`` is ``out``).
    """
    values = vars(expand_home(args))
    given = values.pop("given_flags", frozenset()) or frozenset()
    _check_lists_before_positionals(values)
    for positional, flag in POSITIONALS.items():
        value = values.pop(positional, None)
        if value is None:
            continue
        option = f"--{flag.replace('_', '-')}"
        other = values[flag]
        if flag in given and other != value and (flag == "analysis_level"
                                                 or Path(other) != Path(value)):
            raise InputError(f"{option} {other}: the positional {flag} is {value} (give "
                             "one of them)")
        values[flag] = value
    check_output_outside_derivatives(values["output_dir"], values["derivatives"])
    return argparse.Namespace(**values)


#: The flags (dest) that hold paths: a leading ``~`` in them is the user's home folder, as
#: a shell expands it (``--output-dir=~/out`` reaches the command unexpanded: it made a
#: folder named ``~``).
PATH_FLAGS = ("bids_dir_arg", "output_dir_arg", "bids_dir", "output_dir", "work_dir",
              "derivatives", "model", "bids_filter_file", "from_derivatives", "data_dir",
              "mask", "templateflow_home", "func", "events", "confounds")


def expand_home(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with a leading ``~`` in its paths (:data:`PATH_FLAGS`) expanded to the
    home folder, as a shell expands it."""
    return argparse.Namespace(**{key: _expand_home(value) if key in PATH_FLAGS else value
                                 for key, value in vars(args).items()})


def _expand_home(value):
    """``value`` (a path, a list of them or None) with a leading ``~`` expanded."""
    if isinstance(value, list):
        return [_expand_home(item) for item in value]
    return os.path.expanduser(value) if isinstance(value, str) else value


#: The list flags (dest, option) whose values the positional arguments may follow.
LIST_FLAGS = (("subject", "--participant-label"), ("session", "--session"), ("run", "--run"),
              ("space", "--space"), ("derivatives", "--derivatives"))


def _check_lists_before_positionals(values: dict) -> None:
    """Refuse a list flag whose values end with an analysis level while no positional
    argument was given: ``--participant-label 01 BIDS_DIR OUT participant`` took the
    positional arguments as labels (and then looked for the seed's data)."""
    if any(values.get(positional) is not None for positional in POSITIONALS):
        return
    for flag, option in LIST_FLAGS:
        listed = values.get(flag) or []
        if listed and listed[-1] in ("participant", "group"):
            raise InputError(f"{option} {' '.join(listed)}: ends with the analysis level "
                             f"'{listed[-1]}': the positional arguments were taken as its "
                             "values; put BIDS_DIR OUTPUT_DIR LEVEL first, or end the list "
                             "with --")


def bids_filters(args) -> tuple:
    """The ``--bids-filter-file``'s normalized queries (() without one), checked against
    the inputs given (its ``space``, ``res``, ``den``, ``desc`` need ``--derivatives``)."""
    if args.bids_filter_file is None:
        return ()
    where = f"--bids-filter-file {args.bids_filter_file}"
    if args.func:
        raise InputError(f"{where}: not with --func (it selects the runs of --bids-dir)")
    filters = read_filter_file(args.bids_filter_file)
    if args.from_derivatives is None:
        check_filters(filters, where, derivatives=bool(args.derivatives))
    return filters


def given_spaces(args) -> list:
    """The ``--space`` values, each space its own analysis (``[None]`` without
    ``--space``).

    Raises
    ------
    InputError
        A space given twice, or several spaces with ``--slurm-array`` (one space a
        submission).
    """
    spaces = list(args.space or [None])
    if len(set(spaces)) < len(spaces):
        raise InputError(f"--space {' '.join(spaces)}: a space given twice")
    if len(spaces) > 1 and args.slurm_array:
        raise InputError(f"--space {' '.join(spaces)}: one space with --slurm-array (submit "
                         "each space in turn)")
    return spaces
