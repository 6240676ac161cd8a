"""The error raised for bad user input, and keeping its message on one line."""

import os


class InputError(ValueError):
    """Bad user input: a file or field that is missing, unreadable or inconsistent.

    The message is one line naming the file or field and what was expected, so the
    command line can print it as it is.
    """


def one_line(text) -> str:
    """``text`` (or an exception's message) with every run of white space made one space."""
    return " ".join(str(text).split())


def not_found(path, what: str = "file") -> InputError:
    """The error for a missing ``path`` (``<path>: <what> not found``); a broken symbolic
    link is said to be one, as a DataLad/git-annex dataset whose content was not fetched
    has them."""
    if os.path.islink(path):
        return InputError(f"{path}: {what} not found: a broken symbolic link (to "
                          f"{os.readlink(path)}), its content is not here (a DataLad "
                          "dataset: `datalad get` it)")
    return InputError(f"{path}: {what} not found")
