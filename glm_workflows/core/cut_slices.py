"""Where nilearn's ``plot_stat_map`` cuts a map: nilearn's ``find_cut_slices``, step for
step, without ``nilearn.plotting`` (whose import loads ``matplotlib.pyplot``, about 0.45 s
of a process that draws its figures as pixels). ``tests/test_cut_slices.py`` compares it
with nilearn's on many random maps.
"""

from __future__ import annotations

import numpy as np

#: The neighbourhood of a cut keeps this fraction of its values (nilearn's: not zeroed, so
#: that many cuts in a small map take several passes).
NEIGHBOURHOOD_KEPT = 1.0e-3


def find_cut_slices(img, direction: str, n_cuts: int) -> np.ndarray:
    """World coordinates of ``n_cuts`` cuts across ``direction`` through a map's peaks.

    Parameters
    ----------
    img : nibabel image
        A 3D map, its data in memory.
    direction : {"x", "y", "z"}
        The axis the cuts cross.
    n_cuts : int
        How many cuts (at least 1).

    Returns
    -------
    cut_coords : numpy.ndarray of float, shape (n_cuts,)
        Sorted, in mm; every slice's when the map has no more than ``n_cuts`` of them.

    Notes
    -----
    nilearn's algorithm (0.14): the absolute map, smoothed (``fwhm="fast"``); the slice of
    the largest value is a cut, its neighbourhood (``spacing = max(int(0.5 / n_cuts *
    n_slices), 1)`` slices either side) is scaled down, ``n_cuts`` times; duplicates are
    replaced by the heaviest of the slices two beyond the ends and the middle of the
    widest gap. A map whose affine has a zero on its diagonal is reordered to the
    closest diagonal one (nearest neighbour), as nilearn does.
    """
    from nilearn.image import reorder_img
    from nilearn.image.image import smooth_array

    if n_cuts < 1:
        raise ValueError(f"n_cuts must be at least 1, not {n_cuts}")
    axis = "xyz".index(direction)
    if not np.all(np.diag(img.affine)[:3]):
        img = reorder_img(img, resample="nearest")
    affine = img.affine
    magnitude = np.abs(np.asanyarray(img.dataobj))
    n_slices = magnitude.shape[axis]
    if n_cuts > n_slices:
        return _world(np.arange(n_slices), axis, affine)
    data = magnitude.copy()
    if data.dtype.kind in ("i", "u"):
        data = data.astype(np.float64)
    data = smooth_array(data, affine, fwhm="fast")
    spacing = max(int(0.5 / n_cuts * data.shape[axis]), 1)
    window = [slice(None)] * 3
    cuts = []
    for _ in range(n_cuts):
        peak = np.unravel_index(np.abs(data).argmax(), data.shape)[axis]
        window[axis] = slice(max(0, peak - spacing), peak + spacing)
        data[tuple(window)] *= NEIGHBOURHOOD_KEPT
        cuts.append(peak)
    cuts = np.unique(cuts).tolist()
    while len(cuts) < n_cuts:
        cuts = np.unique([*cuts, _heaviest_candidate(cuts, magnitude, axis)]).tolist()
    return _world(np.sort(np.array(cuts)), axis, affine)


def _heaviest_candidate(cuts: list, magnitude: np.ndarray, axis: int) -> int:
    """The next cut when the peaks gave too few: of the slice two above the highest cut,
    the middle of the widest gap (if not a cut) and the slice two below the lowest (if
    any), the one of the largest summed magnitude (a slice beyond the map weighs 0; the
    first of equal weights)."""
    candidates = [max(cuts) + 2]
    if len(cuts) > 1:
        widest = int(np.argmax(np.diff(cuts)))
        middle = int(0.5 * (cuts[widest] + cuts[widest + 1]))
        if middle not in cuts:
            candidates.append(middle)
    if min(cuts) - 2 >= 0:
        candidates.append(min(cuts) - 2)
    best, best_weight = None, -10  # nilearn's start: below any weight (sums of |values|)
    for candidate in candidates:
        weight = (0 if candidate >= magnitude.shape[axis]
                  else np.sum(np.moveaxis(magnitude, axis, 0)[candidate]))
        if weight > best_weight:
            best, best_weight = candidate, weight
    return best


def _world(indices: np.ndarray, axis: int, affine: np.ndarray) -> np.ndarray:
    """Slice indices along ``axis`` as world coordinates along the same axis (the other
    voxel coordinates 0, as nilearn's ``coord_transform`` gives them)."""
    voxels = np.zeros((len(indices), 3))
    voxels[:, axis] = indices
    return np.atleast_1d((voxels @ affine[:3, :3].T + affine[:3, 3])[:, axis])
