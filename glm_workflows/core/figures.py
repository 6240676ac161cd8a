"""Figures: design matrix, contrast matrix and thresholded maps (nilearn plotting)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from nilearn import plotting  # noqa: E402


def plot_design(design: pd.DataFrame, path) -> None:
    """Save the design matrix as a PNG (regressors as columns, scans as rows)."""
    ax = plotting.plot_design_matrix(design)
    ax.figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(ax.figure)


def plot_contrast(matrix, columns, title: str, path) -> None:
    """Save a contrast's weights over the design columns as a PNG."""
    design_like = pd.DataFrame(0.0, index=[0], columns=list(columns))
    ax = plotting.plot_contrast_matrix(matrix, design_like)
    ax.set_xlabel(title)
    ax.figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(ax.figure)


def plot_thresholded_map(stat_img, bg_img, threshold: float, title: str, path,
                         n_cuts: int = 3) -> None:
    """Save axial cuts of a thresholded map over the mean image, as in the nilearn tutorial."""
    display = plotting.plot_stat_map(stat_img, bg_img=bg_img, threshold=threshold,
                                     display_mode="z", cut_coords=n_cuts, black_bg=True,
                                     title=title)
    display.savefig(path, dpi=100)
    display.close()


def plot_design_correlation(design: pd.DataFrame, path) -> bool:
    """Save the regressors' correlation matrix (drifts and constant left out, as nilearn
    does) as a PNG; return False, writing nothing, if no other regressor is left."""
    kept = [c for c in design.columns
            if not (str(c).startswith("drift_") or c in ("constant", "intercept"))]
    size = min(2.5 + 0.4 * len(kept), 9.0)
    try:
        ax = plotting.plot_design_matrix_correlation(design, figure=(size, size * 0.85))
    except ValueError:
        return False
    ax.figure.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(ax.figure)
    return True


def plot_orthogonal_view(thresholded_img, bg_img, threshold: float, title: str, path) -> None:
    """Save sagittal, coronal and axial cuts through the peak of a thresholded map.

    The maps are in the run's own space (not a template), so the cuts go over the mean
    image rather than a template glass brain. An empty map gives the mean image alone.
    """
    img = nb.load(thresholded_img) if isinstance(thresholded_img, (str, bytes)) \
        else thresholded_img
    data = np.nan_to_num(np.asanyarray(img.dataobj, dtype=np.float64))
    peak = None
    if data.any():
        voxel = np.unravel_index(np.argmax(np.abs(data)), data.shape)
        peak = [float(v) for v in nb.affines.apply_affine(img.affine, voxel)]
    display = plotting.plot_stat_map(img, bg_img=bg_img, threshold=threshold,
                                     display_mode="ortho", cut_coords=peak, black_bg=True,
                                     title=title)
    display.savefig(path, dpi=100)
    display.close()
