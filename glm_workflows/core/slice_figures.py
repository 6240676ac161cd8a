"""Cuts of a thresholded map over a background image, composed as pixels.

nilearn's ``plot_stat_map`` builds a matplotlib axes per cut, each with its image layers,
ticks and a colour bar axes, and draws them: 0.12-0.18 s a figure, half the time of a study
of small runs (two figures a run). Here each cut is sampled in world coordinates (the
nearest voxel, one sample per voxel of the background's grid, each drawn as a square of
pixels) into an RGB array: the background in grey, the surviving voxels in the map's
colours. The labels (title, cut coordinates, ``L``/``R``, the colour bar's values) are
written with matplotlib's own font (FreeType; no matplotlib figure is made) and Pillow saves
the picture as PNG: 25-30 ms a figure of the seed analysis. The layout is nilearn's: black
background, cuts side by side (sagittal, coronal, axial for an orthogonal view),
neurological orientation (the subject's left on the left; anterior up in axial cuts and to
the right in sagittal ones), each cut's coordinate in its corner, the colour bar on the
right.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np

from .pixels import paint_text, png_bytes, text_bitmap

#: About the height (pixels) of the tallest cut: each voxel of the background's grid (its
#: smallest voxel size) is drawn as a square of the same whole number of pixels.
PANEL_PIXELS = 220
#: Pixels between cuts, above them (the title) and for the colour bar with its labels.
GAP_PIXELS, TITLE_PIXELS, COLOURBAR_PIXELS = 4, 22, 64
#: The sizes (points, at 100 dpi) of the title and of the other labels.
TITLE_POINTS, LABEL_POINTS = 10, 8
#: What is left of the picture's brightness under a label's box (the label reads on it).
LABEL_SHADE = 0.3
#: The background's grey scale spans these percentiles of its non-zero voxels.
BACKGROUND_PERCENTILES = (1.0, 99.5)
#: The grey of the background's brightest voxels (1 is white): dimmed, as nilearn dims it
#: on black, so that white labels and the map's colours stand out.
BRIGHTEST_GREY = 0.8
#: The grey of a background of one value (a mask).
FLAT_GREY = 0.6
#: At most about this many background voxels (every n-th) give its percentiles.
PERCENTILE_SAMPLE = 50_000
#: For each cut direction: the world axes shown horizontally and vertically.
PANEL_AXES = {"x": (1, 2), "y": (0, 2), "z": (0, 1)}
#: The colour of the part of a two-sided colour bar below the threshold (never drawn).
BELOW_THRESHOLD_GREY = (0.5, 0.5, 0.5)
#: The colour bar's tick labels (the threshold among them), as in the figures' titles.
TICK_FORMAT = "%.2f"


@dataclass(frozen=True)
class Colours:
    """How a thresholded map's values are coloured: ``cmap`` over ``[vmin, vmax]``, and
    the labelled values of the colour bar (the threshold among them)."""

    cmap: object
    vmin: float
    vmax: float
    ticks: tuple
    threshold: float


@dataclass(frozen=True)
class SliceFigure:
    """What was drawn: the cuts (``(direction, mm)``) and the colours (None: the
    background alone, nothing survived)."""

    cuts: tuple
    colours: Colours | None


def draw_cuts(stat_img, bg_img, cuts, title: str, path, colours: Colours | None) -> SliceFigure:
    """Save the cuts of ``stat_img`` over ``bg_img`` as a PNG.

    Parameters
    ----------
    stat_img : nibabel image
        The thresholded map (0 where nothing survives); drawn where non-zero when
        ``colours`` is given. Its data and the background's are read as they are: finite
        float64 in memory, as ``figures.in_memory_image`` gives them.
    bg_img : nibabel image or None
        The background (the mean image); None: black.
    cuts : sequence of (str, float)
        Each cut's direction (``"x"``, ``"y"`` or ``"z"``) and world coordinate (mm).
    title : str
        Written above the cuts.
    path : str or PathLike
        The PNG written.
    colours : Colours or None
        The map's colours; None draws the background alone, without a colour bar.

    Returns
    -------
    figure : SliceFigure

    Notes
    -----
    The cuts span the non-zero voxels of the background and, when drawn, of the map
    (nilearn's extent), sampled at the background's smallest voxel size.
    """
    grid_img = bg_img if bg_img is not None else stat_img
    low, high = _bounding_box(grid_img)
    if colours is not None:  # the map's voxels are drawn even where the background is 0
        map_low, map_high = _bounding_box(stat_img)
        low, high = np.minimum(low, map_low), np.maximum(high, map_high)
    voxel_mm = float(np.sqrt((grid_img.affine[:3, :3] ** 2).sum(axis=0)).min())
    tallest = max(high[PANEL_AXES[d][1]] - low[PANEL_AXES[d][1]] for d, _ in cuts)
    scale = max(int(round(PANEL_PIXELS * voxel_mm / tallest)), 1)
    background = _background(bg_img)
    stat = np.asanyarray(stat_img.dataobj)
    panels = [_panel(direction, float(coord), low, high, voxel_mm, stat, stat_img.affine,
                     background, colours).repeat(scale, axis=0).repeat(scale, axis=1)
              for direction, coord in cuts]
    _save(panels, [(d, float(c)) for d, c in cuts], title, colours, path)
    return SliceFigure(tuple((d, float(c)) for d, c in cuts), colours)


def _bounding_box(img) -> tuple[np.ndarray, np.ndarray]:
    """The world bounding box (mm) of the non-zero voxels of ``img`` (all voxels if none),
    half a voxel beyond their centres."""
    data = np.asanyarray(img.dataobj)
    data = data.reshape(data.shape[:3] + (-1,))[..., 0] if data.ndim > 3 else data
    nonzero = data != 0
    first, last = np.zeros(3), np.array(data.shape[:3], dtype=np.float64) - 1
    for axis in range(3) if nonzero.any() else ():
        present = np.flatnonzero(nonzero.any(axis=tuple(a for a in range(3) if a != axis)))
        first[axis], last[axis] = present[0], present[-1]
    corners = np.array([[a, b, c] for a in (first[0] - 0.5, last[0] + 0.5)
                        for b in (first[1] - 0.5, last[1] + 0.5)
                        for c in (first[2] - 0.5, last[2] + 0.5)])
    world = nb.affines.apply_affine(img.affine, corners)
    return world.min(axis=0), world.max(axis=0)


def _background(bg_img):
    """``(grey values in [0, 1], affine)`` of the background, or None. Its non-zero voxels
    span the grey scale (black to :data:`BRIGHTEST_GREY`) between two percentiles (from 0
    for a background without negative values); a background of one value (a mask) is
    drawn in :data:`FLAT_GREY` where it is not 0."""
    if bg_img is None:
        return None
    data = np.asanyarray(bg_img.dataobj)
    data = data.reshape(data.shape[:3] + (-1,))[..., 0] if data.ndim > 3 else data
    values = data[data != 0]
    if values.size == 0:
        return np.zeros_like(data), bg_img.affine
    low, high = np.percentile(values[::max(values.size // PERCENTILE_SAMPLE, 1)],
                              BACKGROUND_PERCENTILES)
    if values.min() >= 0:  # an intensity image: black is 0, dim tissue stays grey
        low = 0.0
    if high <= low:
        return np.where(data != 0, FLAT_GREY, 0.0), bg_img.affine
    return BRIGHTEST_GREY * np.clip((data - low) / (high - low), 0.0, 1.0), bg_img.affine


def _voxels(affine: np.ndarray, shape, origin, step_across, step_up, n_rows, n_columns):
    """The voxel indices (rows, columns, 3) nearest to a panel's pixels, and where they
    fall inside a grid of ``shape``. A pixel's world point is ``origin + column *
    step_across + row * step_up``, so its voxel coordinates are linear in row and column."""
    inverse = np.linalg.inv(affine)
    start = inverse[:3, :3] @ origin + inverse[:3, 3]
    across, up = inverse[:3, :3] @ step_across, inverse[:3, :3] @ step_up
    ijk = (start + np.arange(n_rows)[:, None, None] * up
           + np.arange(n_columns)[None, :, None] * across)
    ijk = np.rint(ijk).astype(np.int64)
    inside = np.all((ijk >= 0) & (ijk < np.array(shape[:3])), axis=-1)
    return ijk, inside


def _sample(data: np.ndarray, voxels) -> np.ndarray:
    """``data`` at the given voxels (:func:`_voxels`); 0 outside its grid."""
    ijk, inside = voxels
    values = np.zeros(inside.shape)
    values[inside] = data[tuple(ijk[inside].T)]
    return values


def _panel(direction, coord, low, high, mm_per_pixel, stat, stat_affine, background,
           colours) -> np.ndarray:
    """One cut as an RGB array (uint8), a pixel every ``mm_per_pixel``: rows top to bottom,
    columns left to right."""
    across, up = PANEL_AXES[direction]
    n_columns = max(int(np.ceil((high[across] - low[across]) / mm_per_pixel)), 1)
    n_rows = max(int(np.ceil((high[up] - low[up]) / mm_per_pixel)), 1)
    origin = np.zeros(3)
    origin["xyz".index(direction)] = coord
    origin[across] = low[across] + 0.5 * mm_per_pixel
    origin[up] = high[up] - 0.5 * mm_per_pixel
    step_across, step_up = np.zeros(3), np.zeros(3)
    step_across[across], step_up[up] = mm_per_pixel, -mm_per_pixel
    grid = (origin, step_across, step_up, n_rows, n_columns)
    rgb = np.zeros((n_rows, n_columns, 3))
    stat_voxels = _voxels(stat_affine, stat.shape, *grid)
    if background is not None:
        values, affine = background
        same_grid = values.shape[:3] == stat.shape[:3] and np.allclose(affine, stat_affine)
        voxels = stat_voxels if same_grid else _voxels(affine, values.shape, *grid)
        rgb[:] = _sample(values, voxels)[..., None]
    if colours is not None:
        values = _sample(stat, stat_voxels)
        shown = values != 0
        rgb[shown] = colours.cmap(_scaled(values[shown], colours))[:, :3]
    return np.round(rgb * 255).astype(np.uint8)


def _scaled(values: np.ndarray, colours: Colours) -> np.ndarray:
    """``values`` on the colour scale, 0 at ``vmin`` to 1 at ``vmax`` (clipped); all 1
    when the scale is one value (every surviving voxel at the threshold)."""
    span = colours.vmax - colours.vmin
    if not span > 0:
        return np.ones(np.shape(values))
    return np.clip((values - colours.vmin) / span, 0.0, 1.0)


def _colour_bar(colours: Colours, height: int, width: int = 14) -> np.ndarray:
    """The colour bar as an RGB array (uint8), ``vmax`` at the top; the band between minus
    and plus the threshold of a two-sided scale grey."""
    values = np.linspace(colours.vmax, colours.vmin, height)
    rgb = colours.cmap(_scaled(values, colours))[:, :3]
    if colours.vmin < 0 < colours.vmax:
        rgb[np.abs(values) < colours.threshold] = BELOW_THRESHOLD_GREY
    return np.round(np.repeat(rgb[:, None, :], width, axis=1) * 255).astype(np.uint8)


def _save(panels, cuts, title: str, colours: Colours | None, path) -> None:
    """Lay the panels side by side under the title, the colour bar on the right, write
    the labels, and save the picture as PNG."""
    height = max(panel.shape[0] for panel in panels)
    width = sum(panel.shape[1] for panel in panels) + GAP_PIXELS * (len(panels) + 1)
    width += COLOURBAR_PIXELS if colours is not None else 0
    title_bitmap = text_bitmap(title, TITLE_POINTS)
    width = max(width, title_bitmap.shape[1] + 2 * GAP_PIXELS)
    picture = np.zeros((height + TITLE_PIXELS + GAP_PIXELS, width, 3), dtype=np.uint8)
    _write(picture, title_bitmap, 4, GAP_PIXELS)
    left = GAP_PIXELS
    for panel, (direction, coord) in zip(panels, cuts, strict=True):
        top = TITLE_PIXELS + (height - panel.shape[0]) // 2
        picture[top:top + panel.shape[0], left:left + panel.shape[1]] = panel
        label = text_bitmap(f"{direction}={coord:.0f}", LABEL_POINTS)
        _write(picture, label, top + panel.shape[0] - label.shape[0] - 2, left + 3)
        if direction in ("y", "z"):
            _write(picture, text_bitmap("L", LABEL_POINTS), top + 2, left + 3)
            right = text_bitmap("R", LABEL_POINTS)
            _write(picture, right, top + 2, left + panel.shape[1] - right.shape[1] - 3)
        left += panel.shape[1] + GAP_PIXELS
    if colours is not None:
        bar = _colour_bar(colours, height - 10)
        top = TITLE_PIXELS + 5
        picture[top:top + bar.shape[0], left + 4:left + 4 + bar.shape[1]] = bar
        for tick in colours.ticks:
            fraction = 1.0 - _scaled(np.array([tick]), colours)[0]
            label = text_bitmap(TICK_FORMAT % tick, LABEL_POINTS)
            row = top + round(fraction * (bar.shape[0] - 1)) - label.shape[0] // 2
            _write(picture, label, row, left + 8 + bar.shape[1])
    Path(path).write_bytes(png_bytes(picture))


def _write(picture: np.ndarray, bitmap: np.ndarray, row: int, column: int) -> None:
    """Paint a label white onto ``picture`` at (``row``, ``column``), over its box darkened
    (:data:`LABEL_SHADE`) so that it reads on bright voxels."""
    paint_text(picture, bitmap, row, column, ink=255, shade=LABEL_SHADE)
