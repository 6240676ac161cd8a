"""Confound regressors and censored volumes from fMRIPrep outputs (nilearn underneath).

Two ways to choose the regressors of a run:

- a denoising strategy (``simple``, ``scrubbing``, ``compcor``): nilearn's
  :func:`~nilearn.interfaces.fmriprep.load_confounds_strategy` does all the work,
  with the options the strategy accepts (:data:`STRATEGY_OPTIONS`);
- shell-style column patterns (``trans_*``, ``cosine??``): the TSV is read with
  nilearn's loader and the chosen columns go through nilearn's own last step, so
  the first row's ``n/a`` of derivative columns is filled from the second row,
  the regressors are demeaned over the kept volumes and the non-steady-state
  outlier columns become the sample mask, as with a strategy.

Options are checked (:func:`check_confound_options`) before any file is read; an
option that does not apply to the chosen strategy is refused (nilearn only warns).
nilearn is imported inside the functions: ``nilearn.interfaces`` takes about a
second to import and the command line imports this module early.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from .errors import InputError, not_found, one_line
from .lazy import pandas as pd
from .tables import check_unique_columns, loader_error

#: nilearn's preset strategies, without ``ica_aroma`` (it needs the
#: ``desc-smoothAROMAnonaggr_bold`` outputs fMRIPrep no longer writes).
CONFOUND_STRATEGIES = ("simple", "scrubbing", "compcor")

STRATEGY_FLAG = "--confounds-strategy"
COLUMNS_FLAG = "--confounds-columns"

#: Options that are not strategy-specific: they apply to column patterns too.
_COMMON_OPTIONS = ("demean",)
_MODEL_OPTIONS = ("motion", "wm_csf", "global_signal")
_POSITIVE_NUMBER_OPTIONS = ("fd_threshold", "std_dvars_threshold")
_SHOWN_COLUMNS = 8

_strategy_options_cache: dict[str, tuple[str, ...]] | None = None


def strategy_options() -> dict[str, tuple[str, ...]]:
    """The ``load_confounds`` parameters each strategy accepts, read from nilearn.

    Derived from ``preset_strategies`` in
    :mod:`nilearn.interfaces.fmriprep.load_confounds_strategy` the way
    :func:`~nilearn.interfaces.fmriprep.load_confounds_strategy` reads it: every
    key of the preset except ``strategy`` (and ``ica_aroma``, which it ignores).

    Returns
    -------
    options : dict of str to tuple of str
        For each name in :data:`CONFOUND_STRATEGIES`, its option names, e.g.
        ``("motion", "wm_csf", "global_signal", "demean")`` for ``simple``.
    """
    global _strategy_options_cache
    if _strategy_options_cache is None:
        from nilearn.interfaces.fmriprep.load_confounds_strategy import preset_strategies

        _strategy_options_cache = {
            name: tuple(key for key in preset_strategies[name]
                        if key not in ("strategy", "ica_aroma"))
            for name in CONFOUND_STRATEGIES
        }
    return dict(_strategy_options_cache)


def __getattr__(name):
    # STRATEGY_OPTIONS is read from nilearn on first use, not when this module loads.
    if name == "STRATEGY_OPTIONS":
        return strategy_options()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def option_flag(name: str) -> str:
    """The command-line flag of an option: ``fd_threshold`` -> ``--fd-threshold``."""
    return "--" + name.replace("_", "-")


def check_confound_options(strategy=None, columns=(), options=None) -> None:
    """Refuse confound settings nilearn would reject, ignore or only warn about.

    Parameters
    ----------
    strategy : str or None
        One of :data:`CONFOUND_STRATEGIES`, or None.
    columns : sequence of str
        Shell-style patterns of confound columns (:func:`fnmatch.fnmatchcase`).
    options : dict or None
        Option name (a ``load_confounds`` parameter, see :data:`STRATEGY_OPTIONS`)
        to value; None means "not given".

    Raises
    ------
    InputError
        One line naming the flag and what was expected: an unknown strategy, a
        strategy together with column patterns, an option given without a
        strategy or that the strategy does not use, or a value out of range.
    """
    given = {name: value for name, value in (options or {}).items() if value is not None}
    columns = _as_patterns(columns)
    if strategy is not None and columns:
        raise InputError(f"{STRATEGY_FLAG} and {COLUMNS_FLAG}: choose one")
    for name in _COMMON_OPTIONS:
        if name in given:
            _check_value(name, given[name])
    specific = {name: value for name, value in given.items() if name not in _COMMON_OPTIONS}
    if strategy is None and not specific:
        return  # nothing that needs nilearn's tables (nor the second importing them takes)
    table = strategy_options()
    if strategy is not None and strategy not in table:
        hint = (" (ica_aroma needs outputs fMRIPrep no longer writes)"
                if strategy == "ica_aroma" else "")
        raise InputError(f"{STRATEGY_FLAG}: expected one of {', '.join(CONFOUND_STRATEGIES)}, "
                         f"got {strategy!r}{hint}")
    known = {option for names in table.values() for option in names}
    for name, value in specific.items():
        if name not in known:
            raise InputError(f"{option_flag(name)}: not a confound option; known: "
                             f"{', '.join(option_flag(o) for o in sorted(known))}")
        users = ", ".join(s for s in CONFOUND_STRATEGIES if name in table[s])
        if strategy is None:
            raise InputError(f"{option_flag(name)}: needs {STRATEGY_FLAG} "
                             f"(it applies to: {users})")
        if name not in table[strategy]:
            raise InputError(f"{option_flag(name)}: does not apply to {STRATEGY_FLAG} "
                             f"{strategy} (it applies to: {users})")
        _check_value(name, value)


def _as_patterns(columns) -> tuple[str, ...]:
    if columns is None:
        return ()
    if isinstance(columns, str):
        columns = (columns,)
    columns = tuple(columns)
    for pattern in columns:
        if not isinstance(pattern, str) or not pattern.strip():
            raise InputError(f"{COLUMNS_FLAG}: expected column names or shell-style "
                             f"patterns, got {pattern!r}")
    return columns


def _check_value(name: str, value) -> None:
    """Refuse one option value that nilearn would refuse or misuse later."""
    flag = option_flag(name)
    if name in _MODEL_OPTIONS or name == "compcor":
        from nilearn.interfaces.fmriprep.load_confounds import COMPCOR_TYPES, CONFOUND_MODEL

        allowed = COMPCOR_TYPES if name == "compcor" else CONFOUND_MODEL
        if value not in allowed:
            raise InputError(f"{flag}: expected one of {', '.join(allowed)}, got {value!r}")
    elif name == "n_compcor":
        if value != "all" and not (_integer(value) or 0) > 0:
            raise InputError(f"{flag}: expected a positive integer or 'all', got {value!r}")
    elif name in _POSITIVE_NUMBER_OPTIONS:
        if not (_number(value) or 0) > 0:
            raise InputError(f"{flag}: expected a positive number, got {value!r}")
    elif name == "scrub":
        if _integer(value) is None or _integer(value) < 0:
            raise InputError(f"{flag}: expected an integer >= 0 (the shortest run of kept "
                             f"volumes between outliers; 0 keeps every one), got {value!r}")
    elif name == "demean":
        if not isinstance(value, (bool, np.bool_)):
            raise InputError(f"{flag}: expected true or false, got {value!r}")


def _integer(value) -> int | None:
    """``value`` as an int if it is one (or its decimal text), else None; bools are not."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    return None


def _number(value) -> float | None:
    """``value`` as a finite float if it is a number (or its text), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _normalised(options: dict) -> dict:
    """The given options (None dropped) with numbers given as text made numbers."""
    given = {}
    for name, value in options.items():
        if value is None:
            continue
        if name in ("n_compcor", "scrub") and value != "all":
            value = _integer(value)
        elif name in _POSITIVE_NUMBER_OPTIONS:
            value = _number(value)
        elif name == "demean":
            value = bool(value)
        given[name] = value
    return given


def select_confounds(bold_file, confounds_file=None, *, strategy=None, columns=(),
                     demean=True, n_scans=None, **options):
    """Confound regressors over all volumes of a run, and the volumes to keep.

    Parameters
    ----------
    bold_file : str or os.PathLike
        fMRIPrep's preprocessed bold (``..._desc-preproc_bold.nii.gz``); with a
        strategy nilearn finds the confounds TSV and JSON beside it.
    confounds_file : str, os.PathLike or None
        The run's confounds TSV. With a strategy it must be the one nilearn finds
        beside ``bold_file``; None lets nilearn find it.
    strategy : str or None
        One of :data:`CONFOUND_STRATEGIES`.
    columns : sequence of str
        Shell-style patterns (:func:`fnmatch.fnmatchcase`) of the columns to use
        instead of a strategy: ``trans_*`` also matches ``trans_x_derivative1``,
        ``trans_[xyz]`` does not. Columns keep the TSV's order.
    demean : bool, default=True
        Subtract each regressor's mean over the kept volumes.
    n_scans : int or None
        Volumes in the run; when given, the TSV must have as many rows.
    **options
        The strategy's options (:data:`STRATEGY_OPTIONS`), e.g. ``fd_threshold``,
        ``scrub``, ``n_compcor``; None means "not given" (nilearn's default).

    Returns
    -------
    confounds : pandas.DataFrame or None
        One row per volume (censored ones included); None without a strategy
        or column patterns.
    sample_mask : numpy.ndarray or None
        Indices of the volumes kept, as nilearn returns it; None if none is
        censored (non-steady-state volumes and, with scrubbing, motion outliers).

    Raises
    ------
    InputError
        One line naming the flag or the confounds file.
    """
    options = {**options, "demean": demean}
    check_confound_options(strategy, columns, options)
    columns = _as_patterns(columns)
    if strategy is None and not columns:
        return None, None
    if strategy is not None:
        confounds_file, confounds, sample_mask = _strategy_confounds(
            bold_file, confounds_file, strategy, _normalised(options))
        _check_rows(confounds_file, len(confounds), n_scans)
    else:
        if confounds_file is None:
            confounds_file = _find_confounds_file(bold_file)
        confounds, sample_mask = _column_confounds(confounds_file, columns, bool(demean),
                                                   n_scans)
    _check_result(confounds_file, confounds, sample_mask)
    return confounds, sample_mask


def _find_confounds_file(bold_file) -> str:
    """The confounds TSV nilearn uses for ``bold_file``."""
    from nilearn.interfaces.fmriprep.load_confounds_utils import get_confounds_file

    try:
        return get_confounds_file(str(bold_file), flag_full_aroma=False, flag_tedana=False)
    except ValueError as exc:
        raise InputError(f"{bold_file}: nilearn finds no fMRIPrep confounds file for this "
                         f"bold ({one_line(exc)})") from None


def _strategy_confounds(bold_file, confounds_file, strategy, options):
    """nilearn's ``load_confounds_strategy`` for one run, errors made one line."""
    from nilearn.interfaces.fmriprep import load_confounds_strategy
    from nilearn.interfaces.fmriprep.load_confounds_utils import MissingConfoundError

    found = _find_confounds_file(bold_file)
    if confounds_file is None:
        confounds_file = found
    elif Path(found).resolve() != Path(confounds_file).resolve():
        raise InputError(f"{confounds_file}: {STRATEGY_FLAG} {strategy} reads the confounds "
                         f"file beside {bold_file}, which is {found}")
    check_unique_columns(confounds_file)
    try:
        with warnings.catch_warnings():  # every volume censored: _check_result's one line
            warnings.filterwarnings("ignore", "All volumes were marked as motion outliers")
            confounds, sample_mask = load_confounds_strategy(str(bold_file), strategy, **options)
    except (ValueError, LookupError, OSError, MissingConfoundError, TypeError) as exc:
        raise InputError(loader_error(confounds_file, exc, f"{STRATEGY_FLAG} {strategy}")) \
            from None
    return str(confounds_file), confounds, sample_mask


def _column_confounds(confounds_file, patterns, demean, n_scans):
    """The columns matching ``patterns``, prepared as nilearn prepares a strategy's."""
    from nilearn.interfaces.fmriprep.load_confounds_utils import (
        find_confounds,
        load_confounds_file_as_dataframe,
        prepare_output,
    )

    path = os.fspath(confounds_file)
    if not Path(path).is_file():
        raise not_found(path, "confounds file")
    check_unique_columns(path)
    try:
        table = load_confounds_file_as_dataframe(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable fMRIPrep confounds file "
                         f"({one_line(exc)})") from None
    _check_rows(path, len(table), n_scans)
    available = [str(c) for c in table.columns]
    for pattern in patterns:
        if not any(fnmatchcase(c, pattern) for c in available):
            shown = ", ".join(available[:_SHOWN_COLUMNS])
            more = f", ... ({len(available)} in all)" if len(available) > _SHOWN_COLUMNS else ""
            raise InputError(f"{COLUMNS_FLAG} {pattern!r}: matches no column of {path}; "
                             f"columns: {shown}{more}")
    outliers = set(find_confounds(table, ["non_steady_state"]))
    selected = [c for c in available
                if c in outliers or any(fnmatchcase(c, p) for p in patterns)]
    bad = [c for c in selected if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise InputError(f"{path}: column(s) {', '.join(bad)} must be numeric (or n/a)")
    sample_mask, confounds = prepare_output(table[selected].copy(), demean)
    # nilearn sorts the columns by name; give them back in the TSV's order.
    confounds = confounds[[c for c in selected if c in confounds.columns]]
    return confounds, sample_mask


def _check_rows(confounds_file, n_rows: int, n_scans) -> None:
    if n_scans is not None and n_rows != n_scans:
        raise InputError(f"{confounds_file}: {n_rows} rows, expected one per volume of the "
                         f"run ({n_scans})")


def _check_result(confounds_file, confounds, sample_mask) -> None:
    """Refuse a run with every volume censored, or regressors with ``n/a`` left in them."""
    if sample_mask is not None and len(sample_mask) == 0:
        raise InputError(f"{confounds_file}: every volume is censored (non-steady-state or "
                         "motion outliers); relax the scrubbing thresholds")
    if confounds is not None and confounds.size:
        missing = [str(c) for c in confounds.columns if confounds[c].isna().any()]
        if missing:
            shown = ", ".join(missing[:_SHOWN_COLUMNS])
            more = f", ... ({len(missing)} in all)" if len(missing) > _SHOWN_COLUMNS else ""
            raise InputError(f"{confounds_file}: n/a values beyond the first row in column(s) "
                             f"{shown}{more} (only the first row's are filled, from the "
                             "second)")


def censoring_summary(sample_mask, n_scans: int) -> list[int]:
    """The censored volumes: indices in ``range(n_scans)`` not in ``sample_mask``.

    Parameters
    ----------
    sample_mask : array-like of int or None
        Indices of the kept volumes (None: every volume kept).
    n_scans : int
        Volumes in the run.

    Returns
    -------
    censored : list of int
        Sorted indices, for sidecars.
    """
    if sample_mask is None:
        return []
    kept = np.asarray(sample_mask, dtype=np.int64)
    return [int(i) for i in np.setdiff1d(np.arange(n_scans), kept)]


def framewise_displacement(confounds_file) -> np.ndarray | None:
    """fMRIPrep's ``framewise_displacement`` column of a confounds TSV (its first value,
    ``n/a``, as NaN); None without a file or without that column."""
    if not confounds_file:
        return None
    column = pd.read_csv(confounds_file, sep="\t", na_values=["n/a"],
                         usecols=lambda name: name == "framewise_displacement")
    if "framewise_displacement" not in column:
        return None
    return column["framewise_displacement"].to_numpy(dtype=np.float64)
