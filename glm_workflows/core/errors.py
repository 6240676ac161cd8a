"""The error raised for bad user input, and keeping its message on one line."""


class InputError(ValueError):
    """Bad user input: a file or field that is missing, unreadable or inconsistent.

    The message is one line naming the file or field and what was expected, so the
    command line can print it as it is.
    """


def one_line(text) -> str:
    """``text`` (or an exception's message) with every run of white space made one space."""
    return " ".join(str(text).split())
