"""``Convolve``: nilearn's regressor(s) of a variable, exactly as
``make_first_level_design_matrix`` convolves a condition (oversampling 50, ``min_onset``
-24 s)."""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .lazy import pandas as pd
from .variables import _is_sparse, _values

#: nilearn's convolution settings of ``make_first_level_design_matrix``.
OVERSAMPLING = 50


MIN_ONSET = -24.0


def convolve(variable, name: str, hrf_model: str, times: np.ndarray, *, t_r: float,
             fir_delays=None, where: str = "Convolve") -> dict:
    """nilearn's regressor(s) of a variable, as ``make_first_level_design_matrix`` makes
    a condition's.

    Parameters
    ----------
    variable : pandas.DataFrame or pandas.Series
        Events (``onset``, ``duration``, ``amplitude``) or values at the frame times
        (then each scan is an event of one TR from its frame time).
    name : str
        The condition name the columns are named after.
    hrf_model : str
        One of nilearn's HRF models (:data:`glm_workflows.core.hrf.HRF_MODELS`).
    times : numpy.ndarray
        Frame times (s).
    t_r : float
        Repetition time (s).
    fir_delays : sequence of int or None
        FIR delays in scans (``[0]`` if None).
    where : str
        Names the instruction in messages.

    Returns
    -------
    dict
        Column name (nilearn's: ``name``, ``name_derivative``, ``name_dispersion``,
        ``name_delay_<d>``) to a :class:`pandas.Series` over the frames.
    """
    from nilearn.glm.first_level.hemodynamic_models import compute_regressor

    if _is_sparse(variable):
        onsets = variable["onset"].to_numpy(dtype=float)
        durations = variable["duration"].to_numpy(dtype=float)
    else:
        onsets = np.asarray(times, dtype=float)
        durations = np.full(len(onsets), float(t_r))
    amplitudes = _values(variable).to_numpy(dtype=float)
    if not np.isfinite(amplitudes).all():
        raise InputError(f"{where}: variable {name!r} has missing (n/a) values; drop them "
                         "with DropNA or replace them first")
    if fir_delays is None and hrf_model == "fir":
        fir_delays = [0]
    regressors, names = compute_regressor(
        np.vstack([onsets, durations, amplitudes]), hrf_model, np.asarray(times, dtype=float),
        con_id=name, oversampling=OVERSAMPLING, fir_delays=fir_delays, min_onset=MIN_ONSET)
    return {column: pd.Series(regressors[:, i], name=column)
            for i, column in enumerate(names)}
