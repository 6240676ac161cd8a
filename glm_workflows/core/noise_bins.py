"""The whitened least-squares fit of :func:`~glm_workflows.core.glm.fit_glm`: nilearn's
AR(1) prewhitening, the voxels grouped by noise bin (one model per distinct AR value, as
nilearn's ``run_glm`` fits one per label), and the chunks of voxels the fit works on.
"""

from __future__ import annotations

import numpy as np

from .images import reorder_columns
from .lazy import scipy_linalg as spl

#: Voxels processed together; bounds the float64 temporaries (~CHUNK_VOXELS * n_scans * 8 B).
CHUNK_VOXELS = 2048


def whiten(values: np.ndarray, rho: float, out: np.ndarray | None = None) -> np.ndarray:
    """AR(1) prewhitening along the first axis: ``w[t] = v[t] - rho v[t-1]``, ``w[0] = v[0]``.

    Computed in float64 whatever the input type, as nilearn's ``ARModel.whiten``; into
    ``out`` if given (a float64 array of ``values``' shape).
    """
    whitened = np.empty(values.shape, dtype=np.float64) if out is None else out
    whitened[0] = values[0]
    np.multiply(values[:-1], rho, out=whitened[1:], dtype=np.float64)
    np.subtract(values[1:], whitened[1:], out=whitened[1:], dtype=np.float64)
    return whitened


def noise_groups(ar1: np.ndarray):
    """The fit's noise bins: ``values`` (the distinct AR(1) values, sorted), ``order`` (the
    voxels grouped by value, in their order within a value) and ``bounds`` (where each
    value's group starts and ends in ``order``)."""
    values, inverse = np.unique(ar1, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(values)))])
    return values, order, bounds


def fit_per_noise_bin(series, X, values, order, bounds, whiten_values, observer):
    """Whitened least squares, one model per noise bin (:func:`noise_groups`), voxels in
    chunks (:func:`bin_chunks`: a large bin's voxels split, small bins' voxels together);
    each chunk shown to ``observer`` (if any), as
    :func:`~glm_workflows.core.glm.fit_glm` says.

    The voxels of ``series`` are regrouped by bin in place, one row at a time (a row's
    worth of temporary, where a regrouped copy would be the series' size), so that each
    model reads contiguous columns; ``series`` is left regrouped. Returns betas and
    dispersion in that grouped order, and the noise bins.
    """
    n_scans, n_voxels = series.shape
    reorder_columns(series, order)
    betas = np.empty((X.shape[1], n_voxels))
    dispersion = np.empty(n_voxels)
    models, noise_bins = [], []
    for value in values:
        wX = whiten_values(X, value)
        calc_beta = spl.pinv(wX)
        models.append((wX, calc_beta))
        noise_bins.append((float(value), calc_beta @ calc_beta.T))
    if observer is not None:
        observer.noise_bins(models)
    # the whitened series and fitted values of a chunk, allocated once: every chunk writes
    # into them in place (BLAS takes the strides), so no chunk pays for fresh pages
    buffers = np.empty((2, n_scans, min(CHUNK_VOXELS, n_voxels)))
    for columns, parts in bin_chunks(bounds, CHUNK_VOXELS):
        Y = series[:, columns]
        wY, fitted = buffers[:, :, :Y.shape[1]]
        for index, part in parts:
            wX, calc_beta = models[index]
            voxels = slice(columns.start + part.start, columns.start + part.stop)
            whiten_values(Y[:, part], values[index], wY[:, part])
            np.matmul(calc_beta, wY[:, part], out=betas[:, voxels])
            np.matmul(wX, betas[:, voxels], out=fitted[:, part])
        if observer is not None:
            observer.chunk(columns, parts, Y, wY, fitted)
        wY -= fitted
        dispersion[columns] = np.einsum("ij,ij->j", wY, wY)
    dispersion /= n_scans - X.shape[1]
    return betas, dispersion, noise_bins


def bin_chunks(bounds: np.ndarray, size: int):
    """The chunks :func:`fit_per_noise_bin` fits, from :func:`noise_groups`' ``bounds``:
    ``(columns, parts)``, ``columns`` a slice of at most ``size`` grouped columns and
    ``parts`` its ``(bin index, slice within the chunk)``. A bin wider than ``size`` is
    split into chunks of its own; smaller bins share chunks, each bin whole."""
    start, parts = 0, []
    for index, (first, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if parts and stop - start > size:
            yield slice(start, first), parts
            start, parts = first, []
        if stop - first > size:
            for begin in range(first, stop, size):
                end = min(begin + size, stop)
                yield slice(begin, end), [(index, slice(0, end - begin))]
            start = stop
        elif stop > first:
            parts.append((index, slice(first - start, stop - start)))
    if parts:
        yield slice(start, int(bounds[-1])), parts


def voxel_chunks(n: int):
    """Slices covering ``range(n)`` in steps of :data:`CHUNK_VOXELS`."""
    return (slice(start, min(start + CHUNK_VOXELS, n)) for start in range(0, n, CHUNK_VOXELS))
