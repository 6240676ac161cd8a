"""The error raised for bad user input."""


class InputError(ValueError):
    """Bad user input: a file or field that is missing, unreadable or inconsistent.

    The message is one line naming the file or field and what was expected, so the
    command line can print it as it is.
    """
