"""Figures: design matrix, contrast matrix and thresholded maps (nilearn plotting)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from nilearn import plotting  # noqa: E402

from .inference import has_surviving_voxels  # noqa: E402


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
                         n_cuts: int = 3, centre_img=None) -> None:
    """Save axial cuts of a thresholded map over the mean image, as in the nilearn tutorial.

    An empty map (nothing survives) gives the mean image alone, cut at evenly spaced
    heights through the non-zero voxels of ``centre_img`` (e.g. the mask; by default
    ``bg_img``).
    """
    img = _load(stat_img)
    if not has_surviving_voxels(img):
        heights = _world_coords(_first_given(centre_img, bg_img, img))[:, 2]
        cuts = np.linspace(heights.min(), heights.max(), n_cuts + 2)[1:-1].tolist()
        display = _plot_background(_first_given(bg_img, img), "z", cuts, title)
    else:
        display = plotting.plot_stat_map(img, bg_img=bg_img, threshold=threshold,
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


def plot_orthogonal_view(thresholded_img, bg_img, threshold: float, title: str, path,
                         centre_img=None) -> None:
    """Save sagittal, coronal and axial cuts through the peak of a thresholded map.

    The maps are in the run's own space (not a template), so the cuts go over the mean
    image rather than a template glass brain. An empty map (nothing survives) gives the
    mean image alone, cut through the centre of the non-zero voxels of ``centre_img``
    (e.g. the mask; by default ``bg_img``).
    """
    img = _load(thresholded_img)
    if not has_surviving_voxels(img):
        centre = _world_coords(_first_given(centre_img, bg_img, img)).mean(axis=0).tolist()
        display = _plot_background(_first_given(bg_img, img), "ortho", centre, title)
    else:
        data = np.nan_to_num(np.asanyarray(img.dataobj, dtype=np.float64))
        voxel = np.unravel_index(np.argmax(np.abs(data)), data.shape)
        peak = [float(v) for v in nb.affines.apply_affine(img.affine, voxel)]
        display = plotting.plot_stat_map(img, bg_img=bg_img, threshold=threshold,
                                         display_mode="ortho", cut_coords=peak, black_bg=True,
                                         title=title)
    display.savefig(path, dpi=100)
    display.close()


def _load(img):
    """A nibabel image from a path or an image."""
    return nb.load(img) if isinstance(img, (str, bytes, os.PathLike)) else img


def _first_given(*imgs):
    """The first image that is not None."""
    return next(img for img in imgs if img is not None)


def _world_coords(img) -> np.ndarray:
    """World coordinates (mm) of a 3D image, one row per non-zero voxel; the grid's centre
    if it has none."""
    img = _load(img)
    data = np.nan_to_num(np.asanyarray(img.dataobj, dtype=np.float64))
    voxels = np.argwhere(data) if data.any() else (np.array([data.shape]) - 1) / 2
    return nb.affines.apply_affine(img.affine, voxels)


def _plot_background(bg_img, display_mode: str, cut_coords, title: str):
    """The background alone (no voxel to overlay), cut where asked, without the colour bar
    of its intensities (which would read as z values)."""
    return plotting.plot_anat(bg_img, display_mode=display_mode, cut_coords=cut_coords,
                              black_bg=True, title=title, colorbar=False)
