"""Thresholds and cluster tables of statistical maps (nilearn underneath).

nilearn's functions are imported when used: importing ``nilearn.glm`` loads scikit-learn
and takes about a second, which a run refused for its settings should not wait for.
"""

from __future__ import annotations

import os
import warnings

import nibabel as nb
import numpy as np

from .atlas_labels import REGION_COLUMN, atlas_description, peak_labels, unlabelled_reason
from .choices import HEIGHT_CONTROLS
from .clusters import cluster_size_threshold, clusters_table
from .errors import InputError
from .lazy import pandas as pd

#: Columns of a cluster table, as nilearn's :func:`~nilearn.reporting.get_clusters_table`.
CLUSTER_COLUMNS = ("Cluster ID", "X", "Y", "Z", "Peak Stat", "Cluster Size (mm3)")

#: A cluster table's columns as its JSON sidecar describes them (BIDS' TSV sidecars).
CLUSTER_COLUMN_DESCRIPTIONS = {
    "Cluster ID": {"Description": "The cluster's number; its sub-peaks (at least 8 mm "
                                  "apart) are numbered 1a, 1b, ..."},
    **{axis: {"Description": f"{axis} world coordinate of the peak, in the map's space",
              "Units": "mm"} for axis in "XYZ"},
    "Peak Stat": {"Description": "z value at the peak"},
    "Cluster Size (mm3)": {"Description": "The cluster's volume, on its first row only",
                           "Units": "mm^3"},
    REGION_COLUMN: {"Description": "AAL3 region of the atlas voxel nearest the peak; "
                                   "Undefined outside every region"},
}


def check_threshold_settings(height_control: str, alpha: float, threshold: float | None,
                             cluster_threshold: int) -> None:
    """Refuse settings :func:`threshold_map` cannot use, naming the field."""
    if height_control not in HEIGHT_CONTROLS:
        raise InputError(f"height_control: expected one of {', '.join(HEIGHT_CONTROLS)}, "
                         f"got {height_control!r}")
    if height_control != "none" and not 0 < alpha < 1:
        raise InputError(f"alpha: expected a number between 0 and 1, got {alpha!r}")
    if height_control == "none" and (threshold is None or not np.isfinite(threshold)):
        raise InputError("threshold: a finite z threshold is required when height_control "
                         "is 'none'")
    if int(cluster_threshold) != cluster_threshold or cluster_threshold < 0:
        raise InputError(f"cluster_threshold: expected a whole number of voxels >= 0, "
                         f"got {cluster_threshold!r}")


def threshold_map(z_img, *, mask_img=None,
                  height_control: str,
                  alpha: float,
                  threshold: float | None,
                  cluster_threshold: int,
                  two_sided: bool):
    """Threshold a z map by height (fpr, fdr, bonferroni or a fixed value) and cluster size.

    Parameters
    ----------
    z_img : str or nibabel image
        3D z map.
    mask_img : str, nibabel image or None
        Voxels over which fdr/bonferroni correct; by default nilearn's
        (the non-zero voxels of ``z_img``).
    height_control : {'fpr', 'fdr', 'bonferroni', 'none'}
        How the height threshold is chosen; ``'none'`` uses ``threshold`` as is.
        This and the following settings have no default here: callers pass them
        (:class:`~glm_workflows.settings.InferenceSettings` holds the defaults).
    alpha : float
        Error rate for fpr/fdr/bonferroni, in (0, 1).
    threshold : float or None
        Height threshold (z), used when ``height_control='none'`` (then it must be a
        finite number); ignored otherwise.
    cluster_threshold : int
        Clusters smaller than this many voxels are removed.
    two_sided : bool
        Threshold both tails (``|z|``) rather than positive values only.

    Returns
    -------
    thresholded : nibabel.Nifti1Image
        The z map with sub-threshold voxels set to 0; all zeros when nothing survives.
    z_threshold : float
        The height threshold used; ``inf`` when fdr finds no discovery.
    """
    check_threshold_settings(height_control, alpha, threshold, cluster_threshold)
    z_img, mask_img = (nb.load(img) if isinstance(img, (str, os.PathLike)) else img
                       for img in (z_img, mask_img))
    with warnings.catch_warnings():
        # A threshold above the map's maximum is a result (nothing survives), not a problem.
        warnings.filterwarnings("ignore", "The given float value must not exceed",
                                UserWarning)
        values = _values_in_mask(z_img, mask_img)
        if values is None:
            from nilearn.glm import threshold_stats_img

            thresholded, z_threshold = threshold_stats_img(
                z_img,
                mask_img=mask_img,
                alpha=alpha,
                threshold=threshold if height_control == "none" else None,
                height_control=None if height_control == "none" else height_control,
                cluster_threshold=0,
                two_sided=two_sided,
            )
        else:
            from nilearn.image import threshold_img

            z_threshold = _height_threshold(values, height_control, alpha, threshold,
                                            two_sided)
            thresholded = threshold_img(img=z_img, threshold=z_threshold, cluster_threshold=0,
                                        two_sided=two_sided, mask_img=mask_img, copy=True)
    # nilearn's cluster extent, vectorized (the same voxels; nilearn loops over clusters)
    cluster_size_threshold(np.asanyarray(thresholded.dataobj).reshape(thresholded.shape[:3]),
                           int(cluster_threshold))
    return thresholded, float(z_threshold)


def _values_in_mask(z_img, mask_img):
    """The map's values in ``mask_img`` (C order, the map's floating type, non-finite
    values 0), as nilearn's ``NiftiMasker`` gives them to ``threshold_stats_img``, when the
    mask is on the map's own grid and holds 0 and 1; None otherwise (no mask: nilearn
    computes one; another grid: it resamples; a map of integers), and nilearn's function
    does it all."""
    if mask_img is None:
        return None
    if mask_img.shape[:3] != z_img.shape[:3] or len(mask_img.shape) != 3 or \
            len(z_img.shape) != 3 or not np.allclose(mask_img.affine, z_img.affine):
        return None
    data = np.asanyarray(mask_img.dataobj)
    mask = data != 0
    if not mask.any() or mask.all() or not np.array_equal(data, mask):
        return None  # not a mask of 0 and 1: nilearn's checks and messages
    values = np.asanyarray(z_img.dataobj)[mask]
    if not np.issubdtype(values.dtype, np.floating):
        return None  # nilearn's masker converts other types its own way
    # the masker's values are finite (nilearn's apply_mask, ensure_finite: NaN, inf -> 0)
    return np.where(np.isfinite(values), values, values.dtype.type(0))


def _height_threshold(values: np.ndarray, height_control: str, alpha: float,
                      threshold: float | None, two_sided: bool) -> float:
    """``threshold_stats_img``'s height threshold from the map's values in the mask."""
    from nilearn.glm import fdr_threshold
    from scipy.stats import norm

    alpha_ = alpha / 2 if two_sided else alpha  # nilearn halves alpha for two tails
    if height_control == "none":
        return float(threshold)
    if height_control == "fpr":
        return norm.isf(alpha_)
    stats = np.abs(values) if two_sided else values
    if height_control == "fdr":
        return fdr_threshold(stats, alpha_)
    return norm.isf(alpha_ / np.size(stats))


def has_surviving_voxels(img) -> bool:
    """Whether a thresholded map has a non-zero voxel.

    Parameters
    ----------
    img : str or nibabel image
        A thresholded map (sub-threshold voxels set to 0).

    Returns
    -------
    survives : bool
        False when the map is all zeros (NaN counts as zero).
    """
    img = nb.load(img) if isinstance(img, (str, os.PathLike)) else img
    return bool(np.nan_to_num(np.asanyarray(img.dataobj, dtype=np.float64)).any())


def cluster_table(z_img, stat_threshold: float, *,
                  min_cluster_size: int,
                  two_sided: bool,
                  min_distance: float = 8.0) -> pd.DataFrame:
    """Clusters and their peaks (sub-peaks 1a, 1b, ... at least ``min_distance`` mm apart).

    Parameters
    ----------
    z_img : str or nibabel image
        3D z map; given the map :func:`threshold_map` wrote, the table lists exactly the
        clusters left in it (those of at least ``min_cluster_size`` voxels).
    stat_threshold : float
        Height threshold (z); ``inf`` (no voxel can pass) gives an empty table.
    min_cluster_size : int
        Clusters smaller than this many voxels are left out.
    two_sided : bool
        List negative clusters too.
    min_distance : float
        Smallest distance (mm) between the sub-peaks of a cluster.

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`CLUSTER_COLUMNS`, equal to nilearn's
        :func:`~nilearn.reporting.get_clusters_table` (computed by
        :func:`~glm_workflows.core.clusters.clusters_table`); sizes are given on the first row of
        each cluster only. No row when nothing survives.
    """
    if np.isnan(stat_threshold) or stat_threshold == -np.inf:
        raise InputError(f"stat_threshold: expected a number or inf, got {stat_threshold!r}")
    if stat_threshold == np.inf or not has_surviving_voxels(z_img):
        return pd.DataFrame(columns=list(CLUSTER_COLUMNS))
    with warnings.catch_warnings():  # no cluster that large: an empty table, not a problem
        warnings.filterwarnings("ignore", "No clusters found", UserWarning)
        return clusters_table(z_img, stat_threshold, cluster_threshold=int(min_cluster_size),
                              two_sided=two_sided, min_distance=min_distance)


def label_cluster_table(table: pd.DataFrame, space: str | None) -> tuple[pd.DataFrame, dict]:
    """A cluster table with its peaks' atlas labels, and its JSON sidecar.

    Parameters
    ----------
    table : pandas.DataFrame
        A table of :func:`cluster_table`.
    space : str or None
        The map's space (fMRIPrep's ``space-``). Adult MNI152 templates
        (:data:`~glm_workflows.core.atlas_labels.MNI152_TEMPLATES`) get the column
        :data:`~glm_workflows.core.atlas_labels.REGION_COLUMN`; any other space none.

    Returns
    -------
    table : pandas.DataFrame
        ``table``, with the region column last for an MNI152 space (a copy).
    sidecar : dict
        Each column's ``Description`` (and ``Units``), the ``Space``, and either
        ``Atlas`` (package, version, atlas, reference, method) or ``AtlasNotApplied``
        (the reason).
    """
    reason = unlabelled_reason(space)
    table = table.copy()
    if reason is None:
        table[REGION_COLUMN] = peak_labels(table[["X", "Y", "Z"]].to_numpy(dtype=float)) \
            if len(table) else pd.Series(dtype=object)
    sidecar = {column: CLUSTER_COLUMN_DESCRIPTIONS[column] for column in table.columns
               if column in CLUSTER_COLUMN_DESCRIPTIONS}
    sidecar["Space"] = space
    if reason is None:
        sidecar["Atlas"] = atlas_description()
    else:
        sidecar["AtlasNotApplied"] = reason
    return table, sidecar
