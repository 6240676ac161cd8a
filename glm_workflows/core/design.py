"""Events, confounds and the first-level design matrix (nilearn underneath)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from nilearn.glm.first_level import make_first_level_design_matrix

from .errors import InputError

REQUIRED_EVENT_COLUMNS = ("onset", "duration", "trial_type")
HRF_MODELS = ("spm", "spm + derivative", "spm + derivative + dispersion",
              "glover", "glover + derivative", "glover + derivative + dispersion", "fir")
DRIFT_MODELS = ("cosine", "polynomial", "none")


def check_repetition_time(t_r, source="TR") -> float:
    """Return ``t_r`` as a float, refusing values that are not positive numbers."""
    try:
        value = float(t_r)
    except (TypeError, ValueError):
        raise InputError(f"{source}: expected a positive number of seconds, got {t_r!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{source}: expected a positive number of seconds, got {t_r!r}")
    return value


def read_events(path: str | os.PathLike, n_scans: int, t_r: float) -> pd.DataFrame:
    """Read and check a BIDS events.tsv file.

    Parameters
    ----------
    path : str or PathLike
        Tab-separated file with columns ``onset``, ``duration``, ``trial_type``
        (seconds from the first scan) and an optional numeric ``modulation``.
    n_scans : int
        Number of scans in the run.
    t_r : float
        Repetition time in seconds.

    Returns
    -------
    events : pandas.DataFrame
        Columns ``onset``, ``duration``, ``trial_type`` (and ``modulation`` if given).

    Raises
    ------
    InputError
        Naming the file and the missing column, non-numeric value, empty table or
        onset beyond the end of the run.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: events file not found")
    try:
        events = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=True)
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
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0]) + 2
            raise InputError(f"{path}: column '{col}' line {row}: expected a number, "
                             f"got {events[col].iloc[row - 2]!r}")
        events[col] = values.astype(float)
    if events["trial_type"].isna().any():
        row = int(np.flatnonzero(events["trial_type"].isna().to_numpy())[0]) + 2
        raise InputError(f"{path}: column 'trial_type' line {row}: empty trial type")
    events["trial_type"] = events["trial_type"].astype(str)
    if (events["duration"] < 0).any():
        raise InputError(f"{path}: column 'duration': durations must be >= 0")
    run_end = n_scans * t_r
    late = events["onset"] >= run_end
    if late.any():
        onset = events.loc[late, "onset"].iloc[0]
        raise InputError(
            f"{path}: onset {onset:g} s is beyond the end of the run "
            f"({n_scans} scans x TR {t_r:g} s = {run_end:g} s)"
        )
    return events[[c for c in (*REQUIRED_EVENT_COLUMNS, "modulation") if c in events]]


def read_confounds(path: str | os.PathLike, n_scans: int) -> pd.DataFrame:
    """Read a confounds TSV (one row per scan, one numeric column per regressor)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: confounds file not found")
    try:
        confounds = pd.read_csv(path, sep="\t", na_values=["n/a"])
    except Exception as exc:
        raise InputError(f"{path}: not a readable tab-separated confounds file ({exc})") from None
    if len(confounds) != n_scans:
        raise InputError(f"{path}: {len(confounds)} rows, expected one per scan ({n_scans})")
    bad = [c for c in confounds if not pd.api.types.is_numeric_dtype(confounds[c])
           or confounds[c].isna().any()]
    if bad:
        raise InputError(f"{path}: column(s) {', '.join(bad)} must be numeric without n/a")
    return confounds.astype(float)


def frame_times(n_scans: int, t_r: float, slice_time_ref: float = 0.0) -> np.ndarray:
    """Acquisition time of each scan, exactly as nilearn's FirstLevelModel computes it."""
    start = slice_time_ref * t_r
    end = (n_scans - 1 + slice_time_ref) * t_r
    return np.linspace(start, end, n_scans)


def make_design_matrix(
    events: pd.DataFrame,
    n_scans: int,
    t_r: float,
    *,
    hrf_model: str = "spm",
    drift_model: str = "cosine",
    high_pass: float = 0.01,
    drift_order: int = 1,
    slice_time_ref: float = 0.0,
    confounds: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """First-level design matrix, one row per scan, from checked events.

    A thin layer over :func:`nilearn.glm.first_level.make_first_level_design_matrix`,
    with the frame times FirstLevelModel uses, so the result equals the design
    nilearn would build inside ``FirstLevelModel.fit``.

    Returns
    -------
    design : pandas.DataFrame
        Shape ``(n_scans, n_regressors)``, indexed by frame time in seconds.
    """
    t_r = check_repetition_time(t_r)
    if hrf_model not in HRF_MODELS:
        raise InputError(f"hrf_model: expected one of {', '.join(HRF_MODELS)}, got {hrf_model!r}")
    if drift_model not in DRIFT_MODELS:
        raise InputError(f"drift_model: expected one of {', '.join(DRIFT_MODELS)}, "
                         f"got {drift_model!r}")
    if not 0 <= slice_time_ref <= 1:
        raise InputError(f"slice_time_ref: expected a number in [0, 1], got {slice_time_ref!r}")
    if drift_model == "cosine" and not 0 < high_pass < 1 / (2 * t_r):
        raise InputError(f"high_pass: expected a frequency between 0 and the Nyquist "
                         f"frequency {1 / (2 * t_r):g} Hz, got {high_pass!r}")
    return make_first_level_design_matrix(
        frame_times(n_scans, t_r, slice_time_ref),
        events,
        hrf_model=hrf_model,
        drift_model=None if drift_model == "none" else drift_model,
        high_pass=high_pass,
        drift_order=drift_order,
        add_regs=None if confounds is None else confounds.to_numpy(),
        add_reg_names=None if confounds is None else list(confounds.columns),
    )


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
