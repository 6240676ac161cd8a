"""Checks of a run before it is fitted (:func:`~glm_workflows.core.glm.fit_glm`): the
censoring sample mask, a series that does not vary, and the warning line for non-finite
samples."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def check_sample_mask(sample_mask, n_scans: int, n_regressors: int, name: str) -> np.ndarray:
    """The kept volumes' indices (given as indices or as a boolean mask over the volumes),
    checked: integers in ``[0, n_scans)``, none twice, and
    more kept volumes than regressors (else there is no residual to estimate noise from).

    Raises
    ------
    InputError
        Naming the run and the counts.
    """
    kept = np.asarray(sample_mask)
    if kept.dtype.kind == "b" and kept.shape == (n_scans,):
        kept = np.flatnonzero(kept)
    if kept.ndim != 1 or kept.dtype.kind not in "iu" or (
            kept.size and (kept.min() < 0 or kept.max() >= n_scans)) or \
            len(np.unique(kept)) != kept.size:
        raise InputError(f"{name}: sample mask: expected distinct volume indices in "
                         f"[0, {n_scans}), got {kept.tolist()[:10]}")
    if kept.size <= n_regressors:
        raise InputError(f"{name}: {kept.size} of {n_scans} volumes kept after censoring, "
                         f"not more than the {n_regressors} regressors of the design")
    return kept


def non_finite_warnings(name: str, n_voxels: int, n_volumes: int) -> list[str]:
    """The warning line for a run with non-finite samples; none for a finite run."""
    if not n_voxels:
        return []
    return [f"{name}: {n_voxels} voxel(s) of the mask in {n_volumes} volume(s) had "
            "non-finite samples (NaN/Inf); set to 0, as nilearn does"]


def check_varies_over_time(series: np.ndarray, name: str, n_non_finite: int = 0, *,
                           chunk_voxels: int) -> None:
    """Refuse a run none of whose masked voxels varies over time.

    A voxel varies if its raw series is not exactly equal to its first sample; the
    chunks are compared until one varying voxel is found, so a real run costs one
    chunk. A few constant voxels are fitted, as nilearn fits them.

    Parameters
    ----------
    series : ndarray, shape (n_scans, n_voxels)
        Raw masked series, non-finite samples already set to 0.
    name : str
        The run's file, for the message.
    n_non_finite : int
        How many of the voxels held non-finite samples, said in the message.
    chunk_voxels : int
        Voxels compared at a time (the fit's chunk).

    Raises
    ------
    InputError
        Naming the run, if every voxel's series is constant (an all-zero run, say).
    """
    for start in range(0, series.shape[1], chunk_voxels):
        block = series[:, start:start + chunk_voxels]
        if (block[1:] != block[0]).any():
            return
    detail = f" ({n_non_finite} held non-finite samples, set to 0)" if n_non_finite else ""
    raise InputError(f"{name}: none of the {series.shape[1]} voxels in the mask varies "
                     f"over time{detail}; there is nothing to fit")
