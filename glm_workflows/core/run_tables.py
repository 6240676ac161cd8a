"""A run's tables read strictly: its events (``onset``, ``duration``, ``trial_type``;
late events dropped with a warning, absent conditions explained), its confounds, its
repetition time and the design matrix as a TSV file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .errors import InputError, not_found
from .hrf import frame_times
from .lazy import pandas as pd
from .tables import read_tsv

REQUIRED_EVENT_COLUMNS = ("onset", "duration", "trial_type")
#: The values an events file marks missing: BIDS's ``n/a``, an empty cell and NumPy's
#: ``nan`` as a table written from Python has it; not pandas's other defaults (``null``,
#: ``NA``, ``None``, ... are trial types, such as null trials).
EVENTS_MISSING = ["n/a", "", "nan", "NaN"]
#: How an events file is read: those values missing, a trial type as its text ('01' is no 1).
EVENTS_READ = {"na_values": EVENTS_MISSING, "keep_default_na": False,
               "dtype": {"trial_type": str}}


class EventsWarning(UserWarning):
    """A note about a run's events that changes nothing but the design (e.g. events
    dropped after the last frame); its message names the events file."""


def read_events(path: str | os.PathLike, n_scans: int, t_r: float,
                slice_time_ref: float) -> pd.DataFrame:
    """Read and check a BIDS events.tsv file; drop the events after the last frame.

    Events that start after the last frame (``frame_times[-1] = (n_scans - 1 +
    slice_time_ref) * t_r``) cannot shape the design; they are dropped with one
    :class:`EventsWarning` saying how many.

    Parameters
    ----------
    path : str or PathLike
        Tab-separated file with columns ``onset``, ``duration``, ``trial_type``
        (seconds from the first scan) and an optional numeric ``modulation``.
    n_scans : int
        Number of scans in the run.
    t_r : float
        Repetition time in seconds.
    slice_time_ref : float
        Time of the reference slice, as a fraction of the TR.

    Returns
    -------
    events : pandas.DataFrame
        Columns ``onset``, ``duration``, ``trial_type`` (and ``modulation`` if given).

    Raises
    ------
    InputError
        Naming the file and the missing column, a value that is not a finite number,
        or an empty table. A condition whose events all start after the last frame is
        left out (absent from the run), with the warning.
    """
    path = Path(path)
    if not path.exists():
        raise not_found(path, "events file")
    try:
        events = read_tsv(path, **EVENTS_READ)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a readable tab-separated events file ({exc})") from None
    missing = [col for col in REQUIRED_EVENT_COLUMNS if col not in events.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(REQUIRED_EVENT_COLUMNS)} (tab-separated), "
            f"found {', '.join(map(str, events.columns))}"
        )
    if events.empty:
        raise InputError(f"{path}: no events")
    numeric = ["onset", "duration"] + (["modulation"] if "modulation" in events else [])
    for col in numeric:
        values = pd.to_numeric(events[col], errors="coerce")
        finite = np.isfinite(values.to_numpy(dtype=np.float64))
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0]) + 2
            raise InputError(f"{path}: column '{col}' line {row}: expected a finite number, "
                             f"got {_shown_value(events[col].iloc[row - 2])}")
        events[col] = values.astype(float)
    if events["trial_type"].isna().any():
        row = int(np.flatnonzero(events["trial_type"].isna().to_numpy())[0]) + 2
        raise InputError(f"{path}: column 'trial_type' line {row}: empty trial type")
    events["trial_type"] = events["trial_type"].astype(str)
    _check_spelled_alike(events["trial_type"], path)
    if (events["duration"] < 0).any():
        raise InputError(f"{path}: column 'duration': durations must be >= 0")
    events = _drop_late_events(events, path, frame_times(n_scans, t_r, slice_time_ref)[-1])
    return events[[c for c in (*REQUIRED_EVENT_COLUMNS, "modulation") if c in events]]


def _check_spelled_alike(trial_types: pd.Series, path: Path) -> None:
    """Refuse two trial types that differ only by spaces at their ends (``'a '`` and
    ``'a'``): nilearn makes them two conditions, and a contrast naming ``a`` cannot tell
    which one it means."""
    first: dict = {}
    for row, name in enumerate(trial_types, start=2):
        other, other_row = first.setdefault(name.strip(), (name, row))
        if other != name:
            raise InputError(f"{path}: column 'trial_type' line {row}: {name!r} and {other!r} "
                             f"(line {other_row}) differ only by spaces at their ends; write "
                             "one condition one way")


def run_conditions(path, n_scans: int, t_r: float, slice_time_ref: float,
                   sample_mask=None) -> set:
    """The conditions with an event in the run's acquired, uncensored frames.

    Events after the last frame are dropped, as :func:`read_events` drops them. With a
    ``sample_mask`` (the kept volumes), an event counts only if a kept frame time falls
    within it: in ``[onset, onset + duration)``, at least one TR long (an impulse event
    counts if the frame at or just after its onset is kept).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EventsWarning)
        events = read_events(path, n_scans, t_r, slice_time_ref)
    if sample_mask is None:
        return set(events["trial_type"])
    kept_times = frame_times(n_scans, t_r, slice_time_ref)[np.asarray(sample_mask)]
    onsets = events["onset"].to_numpy()[:, None]
    ends = onsets + np.maximum(events["duration"].to_numpy(), t_r)[:, None]
    covered = ((kept_times >= onsets) & (kept_times < ends)).any(axis=1)
    return set(events.loc[covered, "trial_type"])


def absence_reason(path, condition: str, n_scans: int, t_r: float,
                   slice_time_ref: float, sample_mask=None) -> str:
    """Why ``condition`` has no event in a run's acquired, uncensored frames, for messages.

    Returns
    -------
    str
        ``''`` when the events file has no event of ``condition`` (plain absence, as
        runs that differ have); ``every event starts after the run's last frame (T s,
        first onset O s[; onsets in milliseconds?])``; or ``its events fall in censored
        volumes``.
    """
    events = pd.read_csv(path, sep="\t", usecols=["onset", "trial_type"], **EVENTS_READ)
    onsets = pd.to_numeric(events.loc[events["trial_type"].astype(str) == condition, "onset"],
                           errors="coerce")
    if onsets.empty:
        return ""
    last_frame = frame_times(n_scans, t_r, slice_time_ref)[-1]
    if (onsets > last_frame).all():
        in_seconds = onsets.max() / 1000
        hint = "; onsets in milliseconds?" \
            if onsets.max() > 10 * last_frame and in_seconds <= last_frame + t_r else ""
        return (f"every event starts after the run's last frame ({last_frame:g} s, first "
                f"onset {onsets.min():g} s{hint})")
    return "its events fall in censored volumes" if sample_mask is not None \
        else "no event within the run"


def _shown_value(value) -> str:
    """A table cell for a message: text quoted, a missing value as ``n/a``."""
    if isinstance(value, str):
        return repr(value)
    return "n/a" if pd.isna(value) else str(float(value))


def _drop_late_events(events: pd.DataFrame, path: Path, last_frame: float) -> pd.DataFrame:
    """The events that start by ``last_frame``; a warning if some do not."""
    late = events["onset"].to_numpy() > last_frame
    if not late.any():
        return events
    absent = sorted(set(events["trial_type"]) - set(events.loc[~late, "trial_type"]))
    note = (f"; condition(s) {', '.join(absent)} left without events (absent from this run)"
            if absent else "")
    warnings.warn(f"{path}: {int(late.sum())} event(s) start after the last frame "
                  f"({last_frame:g} s) and are dropped{note}", EventsWarning, stacklevel=3)
    return events[~late].reset_index(drop=True)


#: The longest repetition time (s) taken as seconds: a BOLD TR is seconds long, so a value
#: above it is milliseconds written where BIDS wants seconds (2000 for 2 s).
MAX_REPETITION_TIME = 100.0


def check_repetition_time(t_r, source="TR") -> float:
    """Return ``t_r`` as a float, refusing values that are not positive numbers, or above
    :data:`MAX_REPETITION_TIME` (milliseconds)."""
    try:
        if isinstance(t_r, bool):  # JSON's true is no TR of 1 s
            raise TypeError
        value = float(t_r)
    except (TypeError, ValueError):
        raise InputError(f"{source}: expected a positive number of seconds, got {t_r!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{source}: expected a positive number of seconds, got {t_r!r}")
    if value > MAX_REPETITION_TIME:
        raise InputError(f"{source}: expected seconds, got {t_r!r} (more than "
                         f"{MAX_REPETITION_TIME:g} s: milliseconds?)")
    return value


def read_confounds(path: str | os.PathLike, n_scans: int) -> pd.DataFrame:
    """Read a confounds TSV (one row per scan, one numeric column per regressor)."""
    path = Path(path)
    if not path.exists():
        raise not_found(path, "confounds file")
    try:
        confounds = read_tsv(path, na_values=["n/a"])
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a readable tab-separated confounds file ({exc})") from None
    if len(confounds) != n_scans:
        raise InputError(f"{path}: {len(confounds)} rows, expected one per scan ({n_scans})")
    bad = [str(c) for c in confounds if not pd.api.types.is_numeric_dtype(confounds[c])]
    if bad:
        raise InputError(f"{path}: column(s) {', '.join(bad)} must be numeric without n/a")
    values = confounds.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise InputError(f"{path}: column '{confounds.columns[col]}' line {row + 2}: expected "
                         f"a finite number, got {_shown_value(values[row, col])}")
    return confounds.astype(float)


def save_design_matrix(design: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a design matrix as TSV with exact (round-trip) floats and no index."""
    design.to_csv(path, sep="\t", index=False, float_format=None)


def load_design_matrix(path: str | os.PathLike) -> pd.DataFrame:
    """Read a design-matrix TSV written by :func:`save_design_matrix`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: design matrix file not found")
    design = pd.read_csv(path, sep="\t", float_precision="round_trip")
    if design.empty or not all(pd.api.types.is_numeric_dtype(design[c]) for c in design):
        raise InputError(f"{path}: expected a numeric design matrix with named columns")
    return design
