"""Figures: design matrix, regressor correlations and contrast weights (composed as pixels
by :mod:`.matrix_figures` in nilearn's layout); cuts of thresholded maps (by
:mod:`.slice_figures`, cut where nilearn cuts: :mod:`.cut_slices`).

None of these imports ``matplotlib.pyplot``. The figures still drawn on matplotlib's axes
(framewise displacement, a permutation null distribution, a surface map) import it, with
the Agg backend set once, when the first of them is drawn. The figures drawn from a design
matrix or a contrast alone (design, regressor correlations, contrast weights) are drawn
once per process for identical inputs and their PNG bytes written again for the next run
that has them (the runs of a study often share their design, and always their contrasts'
columns); the bytes are those a new drawing gives.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections import OrderedDict
from pathlib import Path

import nibabel as nb
import numpy as np

from .cut_slices import find_cut_slices
from .inference import has_surviving_voxels
from .inflate import stored_data
from .lazy import pandas as pd
from .matrix_figures import contrast_matrix_png, correlation_png, design_matrix_png
from .slice_figures import Colours, SliceFigure, draw_cuts

#: PNG bytes (None: no figure) of the last design and contrast figures drawn, by input.
_DRAWN: OrderedDict = OrderedDict()
#: How many of them are kept.
DRAWN_KEPT = 32
#: The colour map of one-sided thresholded maps: red at the threshold to yellow.
ONE_SIDED_CMAP = "autumn"
#: Evenly spaced colour-bar labels closer than this fraction of the scale to a threshold's
#: label are left out.
TICK_GAP = 0.06
#: The name of the colour map of two-sided thresholded maps (:func:`two_sided_cmap`).
TWO_SIDED_CMAP = "cold_hot_from_threshold"


@functools.cache
def _plotting():
    """``(matplotlib.pyplot, nilearn.plotting)``, imported on first use with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nilearn import plotting

    return plt, plotting


def _png(figure, **savefig_kwargs) -> bytes:
    """A matplotlib figure as PNG bytes at 100 dpi; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, **savefig_kwargs)
    _plotting()[0].close(figure)
    return buffer.getvalue()


def _drawn_once(key: tuple, draw) -> bytes | None:
    """``draw()``'s PNG bytes (or None), drawn only if no figure with ``key`` is kept."""
    if key not in _DRAWN:
        _DRAWN[key] = draw()
        if len(_DRAWN) > DRAWN_KEPT:
            _DRAWN.popitem(last=False)
    _DRAWN.move_to_end(key)
    return _DRAWN[key]


def _frame_key(frame: pd.DataFrame) -> tuple:
    """What a figure of ``frame`` can depend on: its column types and a digest of its CSV
    text (column names, index, and values written exactly)."""
    text = frame.to_csv()
    return tuple(map(str, frame.dtypes)), hashlib.sha256(text.encode()).hexdigest()


def plot_design(design: pd.DataFrame, path) -> None:
    """Save the design matrix as a PNG (regressors as columns, scans as rows)."""
    png = _drawn_once(("design", _frame_key(design)), lambda: _design_png(design))
    Path(path).write_bytes(png)


def _design_png(design: pd.DataFrame) -> bytes:
    """The design matrix figure, drawn."""
    return design_matrix_png(design.to_numpy(dtype=np.float64), list(map(str, design.columns)))


def plot_contrast(matrix, columns, title: str, path) -> None:
    """Save a contrast's weights over the design columns as a PNG."""
    weights = np.asarray(matrix, dtype=np.float64)
    key = ("contrast", weights.tobytes(), weights.shape, tuple(map(str, columns)), title)
    png = _drawn_once(key, lambda: _contrast_png(matrix, columns, title))
    Path(path).write_bytes(png)


def _contrast_png(matrix, columns, title: str) -> bytes:
    """The contrast weights figure, drawn."""
    return contrast_matrix_png(matrix, list(map(str, columns)), title)


def plot_thresholded_map(stat_img, bg_img, threshold: float, title: str, path,
                         n_cuts: int = 3, centre_img=None, *, two_sided: bool) -> SliceFigure:
    """Save axial cuts of a thresholded map over the mean image, as in the nilearn tutorial.

    Parameters
    ----------
    stat_img : str, PathLike or nibabel image
        The thresholded z map (sub-threshold voxels 0).
    bg_img : str, PathLike, nibabel image or None
        The background (the mean image).
    threshold : float
        The z threshold the map was cut at (inf when nothing survives).
    title : str
        The figure's title.
    path : str or PathLike
        The PNG written.
    n_cuts : int
        How many axial cuts: where nilearn's ``plot_stat_map`` puts them
        (``find_cut_slices``).
    centre_img : str, PathLike, nibabel image or None
        Where an empty map's cuts go: evenly spaced heights through its non-zero voxels
        (e.g. the mask; by default ``bg_img``).
    two_sided : bool
        Whether the map was thresholded on ``|z|``: colours as :func:`stat_map_colours`.

    Returns
    -------
    figure : SliceFigure
        The cuts and colours drawn (:mod:`.slice_figures`); an empty map (nothing
        survives) gives the mean image alone, without a colour bar (colours None).
    """
    img, bg_img = in_memory_image(stat_img), _in_memory_image_or_none(bg_img)
    if not has_surviving_voxels(img):
        heights = _world_coords(_first_given(centre_img, bg_img, img))[:, 2]
        heights = np.linspace(heights.min(), heights.max(), n_cuts + 2)[1:-1]
        return draw_cuts(img, bg_img, [("z", h) for h in heights], title, path, None)
    heights = find_cut_slices(img, "z", n_cuts)
    return draw_cuts(img, bg_img, [("z", h) for h in heights], title, path,
                     stat_map_colours(img, threshold, two_sided))


def stat_map_colours(img, threshold: float, two_sided: bool) -> Colours:
    """The colours of a thresholded z map.

    nilearn's defaults (``RdBu_r`` with ``symmetric_cbar='auto'``) start the scale of a
    positive map at 0, so positive z just above the threshold is drawn pale blue, which
    reads as a deactivation. Instead, a one-sided map goes from red at the threshold to
    yellow at its maximum (:data:`ONE_SIDED_CMAP`, FSL's red-yellow) and a two-sided map
    is symmetric around 0: red to yellow above the threshold, blue to light blue below
    minus the threshold (:func:`two_sided_cmap`). The colour bar is labelled at five
    evenly spaced values and at the threshold (``±`` it for a two-sided map; labels too
    close to it, and those between ``±`` it, are left out).

    Parameters
    ----------
    img : nibabel image
        The thresholded map (at least one voxel survives).
    threshold : float
        Its z threshold (finite).
    two_sided : bool
        Whether the map was thresholded on ``|z|``.

    Returns
    -------
    colours : Colours
    """
    from matplotlib import colormaps

    data = np.nan_to_num(np.asanyarray(img.dataobj, dtype=np.float64))
    threshold = max(float(threshold), 0.0)
    if two_sided:
        vmax = max(float(np.abs(data).max()), threshold)
        cmap, vmin, marks = two_sided_cmap(threshold, vmax), -vmax, (-threshold, threshold)
    else:
        vmax = max(float(data.max()), threshold)
        cmap, vmin, marks = colormaps[ONE_SIDED_CMAP], threshold, (threshold,)
    close = TICK_GAP * (vmax - vmin)
    even = [tick for tick in np.linspace(vmin, vmax, 5)
            if abs(tick) >= threshold and all(abs(tick - mark) > close for mark in marks)]
    ticks = tuple(sorted({*even, *marks}))
    return Colours(cmap, vmin, vmax, ticks, threshold)


def two_sided_cmap(threshold: float, vmax: float):
    """The colour map of a two-sided z map over ``[-vmax, vmax]``, named
    :data:`TWO_SIDED_CMAP`: light blue at ``-vmax`` to blue at ``-threshold``, red at
    ``threshold`` to yellow at ``vmax`` (as :data:`ONE_SIDED_CMAP`); what lies between
    is below the threshold, never drawn.

    Parameters
    ----------
    threshold : float
        The z threshold, between 0 and ``vmax``.
    vmax : float
        The largest ``|z|`` of the map (> 0).

    Returns
    -------
    cmap : matplotlib.colors.LinearSegmentedColormap
    """
    from matplotlib.colors import LinearSegmentedColormap

    edge = 0.5 * (1.0 - min(threshold / vmax, 1.0)) if vmax > 0 else 0.5
    return LinearSegmentedColormap.from_list(
        TWO_SIDED_CMAP, [(0.0, (0.0, 1.0, 1.0)), (edge, (0.0, 0.0, 1.0)),
                         (1.0 - edge, (1.0, 0.0, 0.0)), (1.0, (1.0, 1.0, 0.0))])


def plot_design_correlation(design: pd.DataFrame, path) -> bool:
    """Save the regressors' correlation matrix (drifts and constant left out, as nilearn
    does) as a PNG; return False, writing nothing, if no other regressor is left."""
    png = _drawn_once(("correlation", _frame_key(design)), lambda: _correlation_png(design))
    if png is None:
        return False
    Path(path).write_bytes(png)
    return True


def _correlation_png(design: pd.DataFrame) -> bytes | None:
    """The regressors' correlation figure, drawn; None if no regressor is left."""
    kept = [c for c in design.columns
            if not (str(c).startswith("drift_") or c in ("constant", "intercept"))]
    if not kept:
        return None
    return correlation_png(design[kept].corr().to_numpy(), list(map(str, kept)))


def plot_orthogonal_view(thresholded_img, bg_img, threshold: float, title: str, path,
                         centre_img=None, *, two_sided: bool) -> SliceFigure:
    """Save sagittal, coronal and axial cuts through the peak of a thresholded map.

    The maps are in the run's own space (not a template), so the cuts go over the mean
    image rather than a template glass brain. An empty map (nothing survives) gives the
    mean image alone, cut through the centre of the non-zero voxels of ``centre_img``
    (e.g. the mask; by default ``bg_img``). The parameters and the figure returned are
    :func:`plot_thresholded_map`'s (without ``n_cuts``).
    """
    img, bg_img = in_memory_image(thresholded_img), _in_memory_image_or_none(bg_img)
    if not has_surviving_voxels(img):
        centre = _world_coords(_first_given(centre_img, bg_img, img)).mean(axis=0)
        colours = None
    else:
        data = np.nan_to_num(np.asanyarray(img.dataobj, dtype=np.float64))
        voxel = np.unravel_index(np.argmax(np.abs(data)), data.shape)
        centre = nb.affines.apply_affine(img.affine, voxel)
        colours = stat_map_colours(img, threshold, two_sided)
    return draw_cuts(img, bg_img, list(zip("xyz", centre, strict=True)), title, path, colours)


def plot_framewise_displacement(fd, censored, path, fd_threshold: float | None = None,
                                title: str = "") -> None:
    """Save a run's framewise displacement trace (mm) with its censored volumes marked.

    Parameters
    ----------
    fd : array-like, shape (n_scans,)
        fMRIPrep's ``framewise_displacement`` column (its first value, ``n/a``, as NaN).
    censored : sequence of int
        Indices of the censored volumes (shaded).
    path : str or PathLike
        The PNG written.
    fd_threshold : float or None
        The scrubbing threshold, drawn as a dashed line.
    title : str
        The figure's title (e.g. the run's name).
    """
    plt = _plotting()[0]
    fd = np.asarray(fd, dtype=np.float64)
    figure, ax = plt.subplots(figsize=(8, 2.2))
    ax.plot(np.arange(len(fd)), fd, color="black", linewidth=1, label="FD")
    for index, volume in enumerate(censored):
        ax.axvspan(volume - 0.5, volume + 0.5, color="tab:red", alpha=0.3, linewidth=0,
                   label="censored" if index == 0 else None)
    if fd_threshold is not None:
        ax.axhline(fd_threshold, color="tab:red", linestyle="--", linewidth=1,
                   label=f"threshold {fd_threshold:g} mm")
    ax.set_xlim(-0.5, len(fd) - 0.5)
    ax.set_xlabel("volume")
    ax.set_ylabel("FD (mm)")
    ax.set_title(title or f"Framewise displacement: {len(censored)} of {len(fd)} volumes "
                          "censored", fontsize=9)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    Path(path).write_bytes(_png(figure, bbox_inches="tight"))


def plot_null_distribution(max_statistics, threshold: float, path) -> None:
    """Save the permutation null distribution of the max statistic, with the 5 % FWE
    threshold (its 95th percentile) marked."""
    plt = _plotting()[0]
    figure, ax = plt.subplots(figsize=(6, 2.6))
    ax.hist(np.asarray(max_statistics, dtype=np.float64), bins=50, color="0.6")
    ax.axvline(threshold, color="tab:red", linestyle="--",
               label=f"5 % FWE threshold: {threshold:.3f}")
    ax.set_xlabel("max statistic over the mask, per permutation")
    ax.set_ylabel("permutations")
    ax.legend(fontsize=8, frameon=False)
    Path(path).write_bytes(_png(figure, bbox_inches="tight"))


def _load(img):
    """A nibabel image from a path or an image."""
    return nb.load(img) if isinstance(img, (str, bytes, os.PathLike)) else img


def in_memory_image(img):
    """``img`` (a path or an image) with its data read once into memory, as float64 and
    finite (NaN and infinities 0, as nilearn's plotting draws them), a trailing axis of
    one volume dropped (a figure reads the data several times)."""
    img = _load(img)
    data = np.asarray(stored_data(img), dtype=np.float64)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    return nb.Nifti1Image(np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0), img.affine)


def _in_memory_image_or_none(img):
    """:func:`in_memory_image`, or None."""
    return None if img is None else in_memory_image(img)


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
