"""Cluster-extent thresholding and cluster tables, vectorized, equal to nilearn's.

nilearn 0.14's ``_apply_cluster_size_threshold`` compares the whole label map with each
cluster in a Python loop (``np.sum(labels == c)``, thousands of times on an F map), and
``get_clusters_table`` filters, labels and takes centres of mass over the whole volume for
every cluster, then pares its sub-peaks pairwise. The functions here give the same results
bit for bit (``tests/test_clusters.py`` compares them on many random maps) with one
``np.bincount`` over the labels, work on each cluster's bounding box (plus one voxel), and
pare the sub-peaks in one pass:

* nilearn's pairwise loop sets ``keep[j] = dist(i, j) > min_distance`` for every kept
  ``i < j``, so the last kept ``i`` before ``j`` decides; ``i = 0`` is always kept;
* only the peak and 3 sub-peaks are reported, so the pass stops at the fourth kept one;
* centres of mass are sums in raster order of the cluster's voxels times their volume
  coordinates, as :func:`scipy.ndimage.center_of_mass` adds them (``np.bincount``).
"""

from __future__ import annotations

import warnings
from string import ascii_lowercase

import numpy as np

#: 6-connectivity ("faces"), nilearn's clusters.
_FACES = np.array([[[0, 0, 0], [0, 1, 0], [0, 0, 0]],
                   [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                   [[0, 0, 0], [0, 1, 0], [0, 0, 0]]], dtype=bool)

#: Columns of nilearn's volume cluster table.
_COLUMNS = ["Cluster ID", "X", "Y", "Z", "Peak Stat", "Cluster Size (mm3)"]

#: Reported peaks per cluster (the peak and 3 sub-peaks), as nilearn.
_MAX_PEAKS = 4


def cluster_size_threshold(arr: np.ndarray, cluster_threshold: int) -> np.ndarray:
    """Zero the clusters smaller than ``cluster_threshold`` voxels, in place.

    Equal to nilearn's ``image._apply_cluster_size_threshold(arr, cluster_threshold,
    copy=False)``: clusters of each sign (6-connectivity) separately.

    Parameters
    ----------
    arr : numpy.ndarray
        3D voxel-thresholded array (finite values).
    cluster_threshold : int
        Smallest cluster kept, in voxels.

    Returns
    -------
    arr : numpy.ndarray
        ``arr`` itself, its small clusters set to 0.
    """
    from scipy.ndimage import label

    if cluster_threshold <= 0:
        return arr
    for binarized in (arr < 0, arr > 0):
        labels, n_clusters = label(binarized, _FACES)
        if not n_clusters:
            continue
        small = np.bincount(labels.ravel(), minlength=n_clusters + 1) < cluster_threshold
        small[0] = False
        if small.any():
            arr[small[labels]] = 0
    return arr


def _box(slices: tuple, shape: tuple) -> tuple:
    """A bounding box grown by one voxel on each side, within the volume."""
    return tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n))
                 for s, n in zip(slices, shape, strict=True))


def _centres_of_mass(data: np.ndarray, labeled: np.ndarray, n_labels: int,
                     origin: tuple) -> np.ndarray:
    """:func:`scipy.ndimage.center_of_mass` of labels 1..n in volume coordinates (the box
    starting at ``origin``): the same sums, in the same order."""
    flat = labeled.ravel()
    normalizer = np.bincount(flat, weights=data.ravel())[1:n_labels + 1]
    grids = np.ogrid[[slice(start, start + n) for start, n in zip(origin, data.shape,
                                                                  strict=True)]]
    return np.array([np.bincount(flat, weights=(data * grid.astype(float)).ravel())
                     [1:n_labels + 1] / normalizer for grid in grids]).T


def _nearest_in_cluster(ijk: np.ndarray, label_ids: np.ndarray, labeled: np.ndarray,
                        origin: np.ndarray) -> np.ndarray:
    """nilearn's ``_cluster_nearest_neighbor``, in volume coordinates."""
    labels = labeled[labeled > 0]
    voxels = np.array(labeled.nonzero()).T + origin
    nearest = np.zeros_like(ijk)
    for row, (lab, point) in enumerate(zip(label_ids, ijk, strict=True)):
        candidates = voxels[labels == lab]
        nearest[row] = candidates[np.argmin(np.linalg.norm(candidates - point, axis=1))]
    return nearest


def _subpeaks(data: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """nilearn's ``_identify_subpeaks`` on one cluster's box (zero outside the cluster):
    the local maxima (volume indices) and their values."""
    from scipy.ndimage import label, maximum_filter, minimum_filter

    data_max = maximum_filter(data, 3)
    maxima = data == data_max
    zero_mask = data == 0
    maxima[zero_mask] = 0
    inside = data[~zero_mask]
    if not np.isclose(inside.max(), inside.min()):
        diff = (data_max - minimum_filter(data, 3)) > 0
        maxima[diff == 0] = 0
    labeled, n_subpeaks = label(maxima)
    label_ids = np.arange(1, n_subpeaks + 1)
    ijk = np.round(_centres_of_mass(data, labeled, n_subpeaks, tuple(origin))).astype(int)
    local = ijk - origin
    outside = np.zeros(n_subpeaks, dtype=bool)
    valid = np.all((local >= 0) & (local < data.shape), axis=1)
    outside[~valid] = True
    outside[valid] = labeled[tuple(local[valid].T)] != label_ids[valid]
    if outside.any():
        warnings.warn("Attention: At least one of the (sub)peaks falls outside of the "
                      "cluster body. Identifying the nearest in-cluster voxel.", stacklevel=2)
        ijk[outside] = _nearest_in_cluster(ijk[outside], label_ids[outside], labeled, origin)
    local = ijk - origin
    return ijk, data[tuple(local.T)]


def _peaks(data: np.ndarray, origin: np.ndarray, affine: np.ndarray,
           min_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """nilearn's ``_local_max`` (sorted, pared sub-peaks), its first 4 rows."""
    from nibabel.affines import apply_affine

    ijk, vals = _subpeaks(data, origin)
    order = (-vals).argsort()
    vals, ijk = vals[order], ijk[order, :]
    xyz = apply_affine(affine, ijk)
    kept, last = [0], 0
    for j in range(1, len(vals)):
        if len(kept) == _MAX_PEAKS:
            break
        if np.linalg.norm(xyz[last, :] - xyz[j, :]) > min_distance:
            kept.append(j)
            last = j
    return ijk[kept, :], vals[kept]


def clusters_table(stat_img, stat_threshold: float, *, cluster_threshold: int,
                   two_sided: bool, min_distance: float = 8.0):
    """nilearn's :func:`~nilearn.reporting.get_clusters_table` of a volume, vectorized.

    Parameters
    ----------
    stat_img : str or nibabel image
        3D statistical map.
    stat_threshold : float
        Cluster-forming threshold; a negative one is passed to nilearn unchanged.
    cluster_threshold : int
        Smallest cluster listed, in voxels.
    two_sided : bool
        List the clusters of negative values too.
    min_distance : float
        Smallest distance between the sub-peaks of a cluster, in mm.

    Returns
    -------
    table : pandas.DataFrame
        The rows, values and types of nilearn's table (with its warnings).
    """
    import pandas as pd
    from nilearn.image import threshold_img
    from nilearn.image.resampling import coord_transform
    from scipy.ndimage import find_objects, label, maximum

    if stat_threshold < 0 or min_distance <= 0:
        from nilearn.reporting import get_clusters_table

        return get_clusters_table(stat_img, stat_threshold, cluster_threshold,
                                  two_sided=two_sided, min_distance=min_distance)
    img = threshold_img(stat_img, threshold=stat_threshold, cluster_threshold=0,
                        two_sided=two_sided)
    affine, shape = img.affine, img.shape[:3]
    stat_map = np.asanyarray(img.dataobj).reshape(shape)  # a 4D map of one volume: 3D
    cluster_size_threshold(stat_map, cluster_threshold)
    voxel_size = np.prod(img.header.get_zooms())
    rows: list = []
    found = False
    for sign in ([1, -1] if two_sided else [1]):
        offset = len(rows)
        temp_stat_map = stat_map * sign
        binarized = temp_stat_map > stat_threshold
        if not binarized.any():
            warnings.warn(f"No clusters found with stat {'higher' if sign == 1 else 'lower'} "
                          f"than {stat_threshold * sign}", UserWarning, stacklevel=2)
            continue
        label_map, n_clusters = label(binarized.astype(int), _FACES)
        clust_ids = np.arange(1, n_clusters + 1)
        peak_vals = np.asarray(maximum(temp_stat_map, label_map, clust_ids))
        sizes = np.bincount(label_map.ravel(), minlength=n_clusters + 1)
        boxes = find_objects(label_map)
        for c_id, c_val in enumerate(clust_ids[(-peak_vals).argsort()]):
            box = _box(boxes[c_val - 1], shape)
            origin = np.array([s.start for s in box])
            masked = temp_stat_map[box] * (label_map[box] == c_val)
            cluster_size_mm = int(sizes[c_val] * voxel_size)
            ijk, vals = _peaks(masked, origin, affine, min_distance)
            vals *= sign
            xyz = np.asarray(coord_transform(ijk[:, 0], ijk[:, 1], ijk[:, 2], affine)).T
            for peak in range(min(len(vals), _MAX_PEAKS)):
                name = c_id + offset + 1 if peak == 0 else \
                    f"{c_id + offset + 1}{ascii_lowercase[peak - 1]}"
                rows.append([name, xyz[peak, 0], xyz[peak, 1], xyz[peak, 2], vals[peak],
                             cluster_size_mm if peak == 0 else ""])
        found = True
    return pd.DataFrame(columns=_COLUMNS, data=rows) if found else pd.DataFrame(
        columns=_COLUMNS)
