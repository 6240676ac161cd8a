"""Spatial smoothing of a run before its fit, as nilearn's ``FirstLevelModel(smoothing_fwhm=)``.

nilearn's masker smooths the whole 4D run (``nilearn.image.smooth_img``: integer data cast
to float32, non-finite samples set to 0, a Gaussian filter along each spatial axis), then
masks it; the mask is computed on (or given for) the unsmoothed run, and censored volumes
are dropped after smoothing. The filter never mixes volumes, so :func:`masked_run` smooths
one volume at a time with nilearn's own ``smooth_array``: the same numbers, bit for bit,
without a smoothed copy of the whole run in memory.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError


def smooths(fwhm) -> bool:
    """Whether ``fwhm`` asks for smoothing (None and 0 do not, as in nilearn)."""
    return fwhm is not None and fwhm != 0


def check_fwhm_value(fwhm, where: str) -> None:
    """Refuse a width that is not a finite number of millimetres above 0.

    Parameters
    ----------
    fwhm : float
        The width asked for (None: not checked).
    where : str
        What set it, for the message: a flag or a model file's JSON path.

    Raises
    ------
    InputError
        One line naming ``where``.
    """
    if fwhm is None:
        return
    if isinstance(fwhm, bool) or not isinstance(fwhm, (int, float)) or \
            not math.isfinite(fwhm) or fwhm <= 0:
        raise InputError(f"{where}: expected a smoothing width (FWHM) in mm > 0, got "
                         f"{fwhm!r} (leave it out for no smoothing)")


def voxel_sizes(affine) -> np.ndarray:
    """The voxel size along each array axis (mm), as nilearn's ``smooth_array`` reads it."""
    linear = np.asarray(affine)[:3, :3]
    return np.sqrt(np.sum(linear**2, axis=0))


def field_of_view(shape, affine) -> float:
    """The image's smallest extent (mm): voxels times voxel size, along each spatial axis."""
    return float(min(n * size for n, size in zip(shape[:3], voxel_sizes(affine), strict=True)))


def check_fwhm_fits(fwhm, shape, affine, where: str, name: str) -> None:
    """Refuse a width larger than the image's field of view (its smallest extent).

    Parameters
    ----------
    fwhm : float or None
        The width (mm); None or 0: nothing to check.
    shape : tuple of int
        The image's shape (its first three axes are spatial).
    affine : ndarray, shape (4, 4)
        The image's voxel-to-world transform.
    where : str
        What set the width (flag or JSON path), for the message.
    name : str
        The image, for the message.

    Raises
    ------
    InputError
        One line naming ``where``, the image and its field of view.
    """
    if not smooths(fwhm):
        return
    check_fwhm_value(fwhm, where)
    extent = field_of_view(shape, affine)
    if fwhm > extent:
        sizes = " x ".join(f"{n * s:g}" for n, s in zip(shape[:3], voxel_sizes(affine),
                                                          strict=True))
        raise InputError(f"{where}: {fwhm:g} mm is larger than the field of view of {name} "
                         f"({sizes} mm); expected a width up to {extent:g} mm")


def masked_run(data: np.ndarray, affine, mask: np.ndarray, fwhm=None,
               overwrite: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """The masked series of a run, smoothed first when ``fwhm`` asks for it.

    Parameters
    ----------
    data : ndarray, shape (x, y, z, n_scans)
        The run as stored (:func:`~glm_workflows.core.images.load_series`).
    affine : ndarray, shape (4, 4)
        Its voxel-to-world transform (the voxel sizes the kernel is scaled by).
    mask : ndarray of bool, shape (x, y, z)
        The voxels to keep (computed on the unsmoothed run, or given).
    fwhm : float or None
        Full width at half maximum of the Gaussian kernel (mm); None or 0: no smoothing.
    overwrite : bool
        Unsmoothed, the series may be written over ``data``
        (:func:`~glm_workflows.core.images.masked_series`).

    Returns
    -------
    series : ndarray, shape (n_scans, n_voxels)
        In storage order (:func:`~glm_workflows.core.images.masked_series`), in the type
        nilearn's masker gives (float32 for int16 data), non-finite samples set to 0.
    non_finite : (int, int)
        How many voxels of the mask, and volumes, held non-finite samples before they were
        set to 0 (smoothed: counted on the unsmoothed samples).
    """
    from .images import masked_series, series_dtype, zero_non_finite

    if not smooths(fwhm):
        series = masked_series(data, mask, overwrite)
        # integer samples are all finite: only a float run is checked
        return series, zero_non_finite(series) if data.dtype.kind == "f" else (0, 0)
    try:  # imported when used (the spec's checks above need no nilearn)
        from nilearn.image.image import smooth_array
    except ImportError:  # pragma: no cover  (nilearn < 0.11 names it with an underscore)
        from nilearn.image.image import _smooth_array as smooth_array

    n_scans = data.shape[3]
    index = np.flatnonzero(mask.ravel(order="F"))  # storage order, as masked_series
    in_c_order = np.ravel_multi_index(np.unravel_index(index, mask.shape, order="F"),
                                      mask.shape)  # the same voxels in a C-ordered volume
    series = np.empty((n_scans, index.size), dtype=series_dtype(data.dtype))
    bad_voxels = np.zeros(index.size, dtype=bool)
    bad_volumes = 0
    for scan in range(n_scans):
        # a C-ordered copy: the filter runs faster on it (its lines are the same numbers
        # whatever the layout), and smooth_array may then work in place
        volume = np.array(data[..., scan], order="C")
        if volume.dtype.kind == "f":
            bad = ~np.isfinite(np.take(volume.ravel(), in_c_order))
            if bad.any():
                bad_voxels |= bad
                bad_volumes += 1
        smoothed = smooth_array(volume, affine, fwhm=fwhm, ensure_finite=True, copy=False)
        series[scan] = np.take(smoothed.ravel(), in_c_order)
    return series, (int(bad_voxels.sum()), bad_volumes if bad_voxels.any() else 0)
