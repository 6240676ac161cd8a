"""Tab-separated tables read from users' folders (events, confounds, participants).

pandas renames a repeated column name (``trans_x``, ``trans_x.1``), so the first column
would silently win, or the renamed copy would enter a design through a wildcard. Every
table a user gives is therefore checked here, on its header line, before pandas (or
nilearn's loader) reads it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from .errors import InputError, one_line
from .lazy import pandas as pd


def header_columns(path: str | os.PathLike) -> list[str]:
    """The column names of a TSV's header line, as written (no renaming).

    Raises
    ------
    InputError
        If the file cannot be read.
    """
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            line = handle.readline()
    except OSError as exc:
        raise InputError(f"{os.fspath(path)}: cannot be read ({exc.strerror})") from None
    return line.lstrip("\ufeff").rstrip("\r\n").split("\t") if line else []


def check_unique_columns(path: str | os.PathLike) -> None:
    """Refuse a TSV whose header names a column more than once.

    Raises
    ------
    InputError
        ``<path>: column 'trans_x' appears 2 times in the header; ...``.
    """
    repeated = [(name, n) for name, n in Counter(header_columns(path)).items() if n > 1]
    if repeated:
        name, count = repeated[0]
        more = f" (and {len(repeated) - 1} other repeated name(s))" if len(repeated) > 1 else ""
        raise InputError(f"{os.fspath(path)}: column {name!r} appears {count} times in the "
                         f"header{more}; each column name must be unique")


def read_tsv(path: str | os.PathLike, **read_csv_kwargs) -> pd.DataFrame:
    """:func:`pandas.read_csv` of a tab-separated file whose column names are unique
    (:func:`check_unique_columns`)."""
    check_unique_columns(path)
    return pd.read_csv(path, sep="\t", **read_csv_kwargs)


def text_columns(path: str | os.PathLike) -> list[str]:
    """The columns of a TSV holding a value that is neither a number nor ``n/a``
    (named in the refusal nilearn's confounds loader would give as a ``TypeError``)."""
    table = read_tsv(path, na_values=["n/a"])
    return [str(name) for name in table.columns
            if not pd.api.types.is_numeric_dtype(table[name])]


def loader_error(path: str | os.PathLike, exc: Exception, what: str) -> str:
    """The one line for an exception of nilearn's confounds loader reading the TSV ``path``
    (``what``: the flag and strategy): its JSON sidecar that does not parse (named), a
    missing column, text in a numeric column (named), else the exception's own line."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{Path(path).with_suffix('.json')}: not valid JSON ({exc.msg}, line {exc.lineno})"
    if isinstance(exc, KeyError):
        message = f"missing column {one_line(exc)}"
    elif isinstance(exc, TypeError):  # nilearn's np.isnan on a column of text
        message = f"column(s) {', '.join(text_columns(path))} must be numeric (or n/a)"
    else:
        message = one_line(exc)
    return f"{os.fspath(path)}: {what}: {message}"


def tables_digest(*paths) -> str:
    """The SHA-1 of the bytes of ``paths`` (None, and paths that are no file, skipped), in
    order: a cache key for small text inputs that does not trust their size and
    modification time."""
    from hashlib import sha1

    digest = sha1()
    for path in paths:
        if path and Path(path).is_file():
            digest.update(Path(path).read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()
