"""The design matrix, a contrast's weights and the regressors' correlations, composed as
pixels in the layout of nilearn's ``plot_design_matrix``, ``plot_contrast_matrix`` and
``plot_design_matrix_correlation``.

nilearn's functions draw through ``matplotlib.pyplot`` (imported: about 0.45 s) and take
0.1-0.27 s a figure (a third of the seed analysis' run time went into its four such
figures). Here each value is a block of pixels coloured through the same colour map and
scale as nilearn's, framed in black on white, with the column names above (rotated, as
nilearn writes them), written with matplotlib's font (:mod:`.glyphs`); Pillow saves the
PNG. A few milliseconds a figure.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from .glyphs import paint_text, text_bitmap

#: nilearn's colour maps: the design's values, and the weights and correlations.
DESIGN_CMAP, DIVERGING_CMAP = "viridis", "RdBu_r"
#: The rotation (degrees) of the column names: design, contrast, correlation (nilearn's).
DESIGN_LABEL_ANGLE, CONTRAST_LABEL_ANGLE, CORRELATION_LABEL_ANGLE = 60, 50, 45
#: The width of a design column, and the height of the design's scans together (pixels,
#: within these bounds: about nilearn's figure sizes).
DESIGN_COLUMN_PIXELS, DESIGN_HEIGHT_BOUNDS = 23, (250, 800)
#: A design's scans get this many pixels each, within DESIGN_HEIGHT_BOUNDS.
DESIGN_PIXELS_PER_SCAN = 8
#: The side of a contrast weight's square, and the width of all of them (pixels).
CONTRAST_CELL_BOUNDS, CONTRAST_WIDTH = (6, 36), 400
#: The side of a correlation's square, and the width of all of them (pixels).
CORRELATION_CELL_BOUNDS, CORRELATION_WIDTH = (8, 60), 240
#: The labels' size (points, at 100 dpi).
LABEL_POINTS = 10
#: Pixels around the figure, between an axis and its labels, of a tick, and of the colour
#: bar's width and its gap to the matrix.
MARGIN, LABEL_GAP, TICK_PIXELS, BAR_PIXELS, BAR_GAP = 8, 4, 3, 14, 12
#: At most about this many numbered scans on a design's side.
DESIGN_TICKS = 8
#: How many evenly spaced values label a colour bar.
BAR_TICKS = 5


@dataclass(frozen=True)
class _Scale:
    """A colour map over ``[vmin, vmax]``."""

    cmap: str
    vmin: float
    vmax: float

    def rgb(self, values: np.ndarray) -> np.ndarray:
        """``values`` as RGB (uint8); a value that is not finite is white (nilearn leaves it
        blank)."""
        from matplotlib import colormaps

        span = self.vmax - self.vmin
        fraction = ((values - self.vmin) / span if span > 0
                    else np.full(values.shape, 0.5))
        rgb = colormaps[self.cmap](np.clip(np.nan_to_num(fraction), 0.0, 1.0))[..., :3]
        rgb[~np.isfinite(values)] = 1.0
        return np.round(rgb * 255).astype(np.uint8)


def design_matrix_png(values: np.ndarray, names) -> bytes:
    """The design matrix (scans as rows, regressors as columns), each column divided by its
    norm (nilearn's ``rescale=True``), coloured over the matrix's range.

    Parameters
    ----------
    values : numpy.ndarray, shape (n_scans, n_regressors)
    names : sequence of str
        The regressors' names, written above their columns.

    Returns
    -------
    png : bytes
    """
    values = np.asarray(values, dtype=np.float64)
    scaled = values / np.maximum(1.0e-12, np.sqrt(np.sum(values**2, 0)))
    n_scans = scaled.shape[0]
    height = int(np.clip(DESIGN_PIXELS_PER_SCAN * n_scans, *DESIGN_HEIGHT_BOUNDS))
    rows = np.minimum((np.arange(height) + 0.5) * n_scans // height, n_scans - 1).astype(int)
    columns = np.repeat(np.arange(scaled.shape[1]), DESIGN_COLUMN_PIXELS)
    scale = _Scale(DESIGN_CMAP, float(scaled.min()), float(scaled.max()))
    cells = scale.rgb(scaled)[rows][:, columns]
    step = _tick_step(n_scans)
    ticks = [((scan + 0.5) * height / n_scans, str(scan)) for scan in range(0, n_scans, step)]
    return _figure(cells, names, DESIGN_LABEL_ANGLE, above=True, row_ticks=ticks,
                   row_title="scan number")


def contrast_matrix_png(weights: np.ndarray, names, title: str) -> bytes:
    """A contrast's weights (one row per contrast vector) over the design's columns,
    coloured symmetrically around 0 up to the largest ``|weight|``, with a colour bar.

    Parameters
    ----------
    weights : numpy.ndarray, shape (n_vectors, n_regressors) or (n_regressors,)
    names : sequence of str
        The design's column names, written above.
    title : str
        Written below (the contrast's name).

    Returns
    -------
    png : bytes
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    cell = int(np.clip(round(CONTRAST_WIDTH / max(weights.shape[1], 1)), *CONTRAST_CELL_BOUNDS))
    largest = float(np.max(np.abs(weights), initial=0.0))
    scale = _Scale(DIVERGING_CMAP, -largest, largest)
    cells = scale.rgb(weights).repeat(cell, axis=0).repeat(cell, axis=1)
    return _figure(cells, names, CONTRAST_LABEL_ANGLE, above=True, caption=title,
                   scale=scale)


def correlation_png(correlations: np.ndarray, names) -> bytes:
    """The regressors' correlations, coloured symmetrically around 0 up to the largest
    ``|correlation|`` off the diagonal (nilearn's scale), with a colour bar.

    Parameters
    ----------
    correlations : numpy.ndarray, shape (n, n)
    names : sequence of str
        The regressors, written below the columns and beside the rows.

    Returns
    -------
    png : bytes
    """
    matrix = np.asarray(correlations, dtype=np.float64)
    largest = float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 1.0
    if len(matrix) > 1:
        second_largest = np.partition(np.nan_to_num(matrix, nan=-np.inf), -2, axis=1)[:, -2]
        largest = max(abs(float(np.nanmin(matrix))), float(second_largest.max()))
    largest = largest if np.isfinite(largest) and largest > 0 else 1.0
    scale = _Scale(DIVERGING_CMAP, -largest, largest)
    cell = int(np.clip(round(CORRELATION_WIDTH / len(matrix)), *CORRELATION_CELL_BOUNDS))
    cells = scale.rgb(matrix).repeat(cell, axis=0).repeat(cell, axis=1)
    ticks = [((row + 0.5) * cell, str(name)) for row, name in enumerate(names)]
    return _figure(cells, names, CORRELATION_LABEL_ANGLE, above=False, row_ticks=ticks,
                   scale=scale)


def _tick_step(n: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... numbering at most :data:`DESIGN_TICKS` of
    ``n`` rows."""
    step = 1
    while -(-n // step) > DESIGN_TICKS:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2
    return step


def _tick_text(value: float, scale: _Scale) -> str:
    """A colour bar's label: three significant digits, 0 written as such (not ``-0`` or
    a rounding error's ``1e-17``)."""
    if abs(value) <= 1e-9 * max(abs(scale.vmin), abs(scale.vmax)):
        value = 0.0
    return f"{value + 0.0:.3g}"


def _figure(cells: np.ndarray, names, angle: float, *, above: bool, row_ticks=(),
            row_title: str | None = None, caption: str | None = None,
            scale: _Scale | None = None) -> bytes:
    """Frame ``cells`` (RGB) on white with the column names (rotated by ``angle``, above
    or below), the row ticks (``(pixel row, label)``) and their title on the left, a
    caption below and the colour bar of ``scale`` on the right; the PNG's bytes."""
    height, width = cells.shape[:2]
    n_columns = len(names)
    centres = [int((column + 0.5) * width / max(n_columns, 1)) for column in range(n_columns)]
    labels = [text_bitmap(str(name), LABEL_POINTS, angle) for name in names]
    label_rows = max((label.shape[0] for label in labels), default=0)
    ticks = [(row, text_bitmap(text, LABEL_POINTS)) for row, text in row_ticks]
    tick_width = max((bitmap.shape[1] for _, bitmap in ticks), default=0)
    title = text_bitmap(row_title, LABEL_POINTS, 90) if row_title else None
    under = text_bitmap(caption, LABEL_POINTS) if caption else None
    bar_labels = ([(value, text_bitmap(_tick_text(value, scale), LABEL_POINTS))
                   for value in np.linspace(scale.vmax, scale.vmin, BAR_TICKS)]
                  if scale is not None else [])

    left = MARGIN + (title.shape[1] + LABEL_GAP if title is not None else 0)
    left += tick_width + LABEL_GAP + TICK_PIXELS if ticks else 0
    if not above:  # names written leftwards from below their columns
        left = max(left, MARGIN + max((label.shape[1] - c for label, c in zip(
            labels, centres, strict=True)), default=0))
    top = MARGIN + (label_rows + LABEL_GAP if above else 0)
    right_edge = left + width + (BAR_GAP + BAR_PIXELS + LABEL_GAP + max(
        (bitmap.shape[1] for _, bitmap in bar_labels), default=0) if scale is not None else 0)
    if above:
        right_edge = max(right_edge, max((left + c + label.shape[1] for label, c in zip(
            labels, centres, strict=True)), default=0))
    bottom_edge = top + height + (LABEL_GAP + label_rows if not above else 0)
    bottom_edge += LABEL_GAP + under.shape[0] if under is not None else 0
    picture = np.full((bottom_edge + MARGIN, right_edge + MARGIN, 3), 255, dtype=np.uint8)

    picture[top:top + height, left:left + width] = cells
    _frame(picture, top, left, height, width)
    for label, centre in zip(labels, centres, strict=True):
        row = top - LABEL_GAP - label.shape[0] if above else top + height + LABEL_GAP
        column = left + centre if above else left + centre - label.shape[1]
        paint_text(picture, label, row, column, ink=0)
    for row, bitmap in ticks:
        middle = top + int(row)
        picture[middle, left - TICK_PIXELS:left] = 0
        paint_text(picture, bitmap, middle - bitmap.shape[0] // 2,
                   left - TICK_PIXELS - LABEL_GAP - bitmap.shape[1], ink=0)
    if title is not None:
        paint_text(picture, title, top + (height - title.shape[0]) // 2, MARGIN, ink=0)
    if under is not None:
        paint_text(picture, under, top + height + LABEL_GAP,
                   left + (width - under.shape[1]) // 2, ink=0)
    if scale is not None:
        _colour_bar(picture, scale, bar_labels, top, left + width + BAR_GAP, height)
    return _png(picture)


def _frame(picture: np.ndarray, top: int, left: int, height: int, width: int) -> None:
    """A black line around the ``height`` x ``width`` box at (``top``, ``left``)."""
    picture[top - 1, left - 1:left + width + 1] = 0
    picture[top + height, left - 1:left + width + 1] = 0
    picture[top - 1:top + height + 1, left - 1] = 0
    picture[top - 1:top + height + 1, left + width] = 0


def _colour_bar(picture: np.ndarray, scale: _Scale, labels, top: int, left: int,
                height: int) -> None:
    """The colour bar of ``scale`` (``vmax`` at the top), framed, its labels on the right."""
    height = max(height, 2)
    values = np.linspace(scale.vmax, scale.vmin, height)
    column = scale.rgb(values)
    picture[top:top + height, left:left + BAR_PIXELS] = column[:, None, :]
    _frame(picture, top, left, height, BAR_PIXELS)
    for value, bitmap in labels:
        fraction = ((scale.vmax - value) / (scale.vmax - scale.vmin)
                    if scale.vmax > scale.vmin else 0.5)
        row = top + round(fraction * (height - 1))
        picture[row, left + BAR_PIXELS:left + BAR_PIXELS + TICK_PIXELS] = 0
        paint_text(picture, bitmap, row - bitmap.shape[0] // 2,
                   left + BAR_PIXELS + TICK_PIXELS + LABEL_GAP, ink=0)


def _png(picture: np.ndarray) -> bytes:
    """``picture`` (RGB, uint8) as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()
