"""Thresholds and cluster tables of surface z maps: heights as for volumes (nilearn's
``threshold_stats_img``), clusters as connected vertices of the mesh (:mod:`.mesh`).

A surface map travels packed (:mod:`glm_workflows.core.surfaces`); these functions take
the packed values, the model's mask and the layout, and work hemisphere by hemisphere.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .inference import check_threshold_settings
from .lazy import pandas as pd
from .mesh import AREA_SURFACE, label_clusters
from .surfaces import unpack

#: Columns of a surface cluster table.
SURFACE_CLUSTER_COLUMNS = ("Cluster ID", "Hemisphere", "Peak Vertex", "Peak Stat",
                           "Cluster Size (vertices)", "Cluster Area (mm2)")

#: A surface cluster table's columns as its JSON sidecar describes them.
SURFACE_CLUSTER_DESCRIPTIONS = {
    "Cluster ID": {"Description": "The cluster's number: positive clusters first, then "
                                  "(two-sided) negative ones; left hemisphere, then right"},
    "Hemisphere": {"Description": "The hemisphere of the cluster (hemi- label: L or R)"},
    "Peak Vertex": {"Description": "The peak's vertex index in its hemisphere's mesh "
                                   "(0-based, the GIFTI files' order)"},
    "Peak Stat": {"Description": "z value at the peak (the cluster's largest |z|)"},
    "Cluster Size (vertices)": {"Description": "The cluster's number of vertices "
                                               "(connected through the mesh's faces)"},
    "Cluster Area (mm2)": {"Description": f"The sum of the cluster's vertex areas, on the "
                                          f"{AREA_SURFACE}", "Units": "mm^2"},
}


def height_threshold(z_values: np.ndarray, *, height_control: str, alpha: float,
                     threshold: float | None, two_sided: bool) -> float:
    """The height threshold (z) of the in-mask values, as nilearn's ``threshold_stats_img``.

    Parameters
    ----------
    z_values : ndarray, shape (n,)
        The z values of the mask's vertices (fdr and bonferroni correct over them).
    height_control : {'fpr', 'fdr', 'bonferroni', 'none'}
    alpha : float
        Halved when ``two_sided``.
    threshold : float or None
        Used as is when ``height_control='none'``.
    two_sided : bool
        fdr on ``|z|``.

    Returns
    -------
    z_threshold : float
        ``inf`` when fdr finds no discovery.
    """
    if height_control == "none":
        return float(threshold)
    from nilearn.glm import fdr_threshold
    from scipy.stats import norm  # imported when used: scipy.stats takes ~1 s

    alpha_ = alpha / 2 if two_sided else alpha
    if height_control == "fpr":
        return float(norm.isf(alpha_))
    if height_control == "bonferroni":
        return float(norm.isf(alpha_ / np.size(z_values)))
    stats = np.abs(z_values) if two_sided else z_values
    return float(fdr_threshold(np.ravel(stats), alpha_))


def _signed_clusters(values: np.ndarray, hemisphere, signs):
    """``[(sign, labels, n_clusters)]`` of one hemisphere's thresholded values."""
    return [(sign, *label_clusters(sign * values > 0, hemisphere.adjacency))
            for sign in signs]


def threshold_surface(z_packed: np.ndarray, mask_packed: np.ndarray, layout: dict,
                      geometry, *, height_control: str, alpha: float,
                      threshold: float | None, cluster_threshold: int,
                      two_sided: bool) -> tuple[np.ndarray, float]:
    """Threshold a packed surface z map by height, over the mask's vertices, and by the
    size of its clusters of connected vertices.

    Parameters
    ----------
    z_packed : ndarray, shape ``PackedShape``
    mask_packed : ndarray, shape ``PackedShape``
        The model's mask: fdr and bonferroni correct over its vertices; outside it, 0.
    layout : dict
        :func:`~glm_workflows.core.surfaces.surface_layout`.
    geometry : dict or None
        :func:`~glm_workflows.core.mesh.geometry_for`; None (a mesh nilearn does not
        ship) only with ``cluster_threshold=0``.
    height_control, alpha, threshold, two_sided
        As :func:`~glm_workflows.core.inference.threshold_map`.
    cluster_threshold : int
        Clusters of fewer vertices are removed; positive and negative clusters are
        connected components of their own sign.

    Returns
    -------
    thresholded : ndarray, shape ``PackedShape``
        The z map, 0 below the threshold, outside the mask and in small clusters.
    z_threshold : float
        ``inf`` when fdr finds no discovery.
    """
    check_threshold_settings(height_control, alpha, threshold, cluster_threshold)
    if cluster_threshold and geometry is None:
        raise InputError(f"mesh {layout['Mesh']}: no geometry (its mesh files were not found: "
                         "docs/surfaces.md, Mesh sources), so no cluster extent can be applied")
    z = np.nan_to_num(np.asarray(z_packed, dtype=np.float64), nan=0.0, posinf=0.0,
                      neginf=0.0)
    mask = np.asarray(mask_packed) != 0
    z_threshold = height_threshold(z[mask], height_control=height_control, alpha=alpha,
                                   threshold=threshold, two_sided=two_sided)
    out = np.where(mask, z, 0.0)
    keep = np.abs(out) >= z_threshold if two_sided else out >= z_threshold
    out[~keep] = 0.0
    if cluster_threshold:
        halves = {hemi: values.copy() for hemi, values in unpack(out, layout).items()}
        for hemi, values in halves.items():
            for _, labels, _ in _signed_clusters(values, geometry[hemi],
                                                 (1, -1) if two_sided else (1,)):
                small = np.bincount(labels) < cluster_threshold
                small[0] = False
                values[small[labels]] = 0.0
        out = repack(halves, layout)
    return out, z_threshold


def repack(halves: dict, layout: dict) -> np.ndarray:
    """The inverse of :func:`~glm_workflows.core.surfaces.unpack` for a 3-D map: the
    hemispheres' values on the packed grid (padding 0)."""
    shape = tuple(layout["PackedShape"])
    flat = np.zeros(int(np.prod(shape)), dtype=np.float64)
    start = 0
    for hemi, count in zip(layout["Hemispheres"], layout["Vertices"], strict=True):
        flat[start:start + count] = halves[hemi]
        start += count
    return flat.reshape(shape, order="F")


def surface_cluster_table(thresholded: np.ndarray, layout: dict, geometry, *,
                          min_cluster_size: int, two_sided: bool) -> pd.DataFrame:
    """The clusters of a thresholded packed surface map, and their peaks.

    Parameters
    ----------
    thresholded : ndarray, shape ``PackedShape``
        A map of :func:`threshold_surface` (0 below the threshold).
    layout : dict
    geometry : dict or None
        :func:`~glm_workflows.core.mesh.geometry_for`; None (no mesh): no row.
    min_cluster_size : int
        Clusters of fewer vertices are left out.
    two_sided : bool
        Negative clusters too (after the positive ones).

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`SURFACE_CLUSTER_COLUMNS`, one row per cluster; clusters ordered
        by sign (positive first), hemisphere (L, R), then their lowest vertex (nilearn's
        ``get_clusters_table`` on a ``SurfaceImage`` orders them so). The peak is the
        vertex of largest ``|z|`` (the first such vertex on a tie).
    """
    rows = []
    halves = unpack(np.asarray(thresholded, dtype=np.float64), layout)
    for sign in ((1, -1) if two_sided else (1,)) if geometry is not None else ():
        for hemi, values in halves.items():
            labels, n_clusters = label_clusters(sign * values > 0, geometry[hemi].adjacency)
            for cluster in range(1, n_clusters + 1):
                members = np.flatnonzero(labels == cluster)
                if members.size < min_cluster_size:
                    continue
                peak = members[np.argmax(sign * values[members])]
                rows.append({"Hemisphere": hemi, "Peak Vertex": int(peak),
                             "Peak Stat": float(values[peak]),
                             "Cluster Size (vertices)": int(members.size),
                             "Cluster Area (mm2)": float(geometry[hemi].areas[members].sum())})
    table = pd.DataFrame(rows, columns=list(SURFACE_CLUSTER_COLUMNS[1:]))
    table.insert(0, "Cluster ID", np.arange(1, len(table) + 1))
    return table


def surface_table_sidecar(table: pd.DataFrame, space: str | None) -> dict:
    """A surface cluster table's JSON sidecar: its columns, the space and the area's
    surface."""
    sidecar = {column: SURFACE_CLUSTER_DESCRIPTIONS[column] for column in table.columns}
    sidecar["Space"] = space
    sidecar["AreaSurface"] = AREA_SURFACE
    sidecar["AtlasNotApplied"] = "surface map: peaks are given as vertices"
    return sidecar
