"""Leaf facts of the first-level design: nilearn's HRF models, the columns each makes of a
condition, and the frame times of a run.

Every design builder reads them (design.py, transformations.py, model_design.py) and the
BIDS Stats Models reader checks against them (stats_model.py); kept here, apart from any
builder, so that none of those modules needs another to know them.
"""

from __future__ import annotations

import numpy as np

#: The design columns nilearn makes of a condition, per HRF model: the condition's
#: name followed by each suffix (FIR: one delay, the default ``fir_delays=[0]``).
HRF_COLUMN_SUFFIXES = {
    "spm": ("",),
    "spm + derivative": ("", "_derivative"),
    "spm + derivative + dispersion": ("", "_derivative", "_dispersion"),
    "glover": ("",),
    "glover + derivative": ("", "_derivative"),
    "glover + derivative + dispersion": ("", "_derivative", "_dispersion"),
    "fir": ("_delay_0",),
}
HRF_MODELS = tuple(HRF_COLUMN_SUFFIXES)
#: Any of those suffixes but the condition's own column (FIR: any delay), as a regular
#: expression: the columns convolving a variable adds beside it.
CONVOLVED_SUFFIX = r"(_derivative|_dispersion|_delay_\d+)"


def frame_times(n_scans: int, t_r: float,
                slice_time_ref: float) -> np.ndarray:
    """Acquisition time of each scan, exactly as nilearn's FirstLevelModel computes it."""
    start = slice_time_ref * t_r
    end = (n_scans - 1 + slice_time_ref) * t_r
    return np.linspace(start, end, n_scans)
