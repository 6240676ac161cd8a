"""Figures: design matrix, contrast matrix and thresholded maps (nilearn plotting)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
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
