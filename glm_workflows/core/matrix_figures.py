"""The design matrix, a contrast's weights and the regressors' correlations, composed as
pixels in the layout of nilearn's ``plot_design_matrix``, ``plot_contrast_matrix`` and
``plot_design_matrix_correlation``.

nilearn's functions draw through ``matplotlib.pyplot`` (imported: about 0.45 s) and take
0.1-0.27 s a figure (with the import, a quarter of the seed analysis' cold run went into
its four such figures). Here each value is a block of pixels coloured through the same
colour map and scale as nilearn's, framed in black on white, with the column names
(rotated, as nilearn writes them) in matplotlib's font, saved as PNG (:mod:`.pixels`). A
few milliseconds a figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pixels import paint_text, png_bytes, text_bitmap

#: nilearn's colour maps: the design's values, and the weights and correlations.
DESIGN_CMAP, DIVERGING_CMAP = "viridis", "RdBu_r"
#: Where a scale of no width puts every value (matplotlib's ``imshow`` of a constant design
#: draws the colour map's bottom; a colour bar widens equal limits around their value).
DESIGN_FLAT_FRACTION, DIVERGING_FLAT_FRACTION = 0.0, 0.5
#: The rotation (degrees) of the column names: design, contrast, correlation (nilearn's;
#: nilearn tilts the correlation's row names by 10 degrees, written level here).
DESIGN_LABEL_ANGLE, CONTRAST_LABEL_ANGLE, CORRELATION_LABEL_ANGLE = 60, 50, 50
#: The width of a design column, and the height of the design's scans together (pixels,
#: within these bounds: about nilearn's figure sizes).
DESIGN_COLUMN_PIXELS, DESIGN_HEIGHT_BOUNDS = 23, (250, 800)
#: A design's scans get this many pixels each, within DESIGN_HEIGHT_BOUNDS.
DESIGN_PIXELS_PER_SCAN = 8
#: The side of a contrast weight's square (pixels, within the bounds), and of all of them
#: side by side.
CONTRAST_CELL_BOUNDS, CONTRAST_WIDTH = (18, 40), 400
#: The side of a correlation's square (pixels, within the bounds: its tilted name needs
#: about 15 beside the next), of all of them side by side, and at most.
CORRELATION_CELL_BOUNDS, CORRELATION_WIDTH, CORRELATION_MAX_WIDTH = (16, 60), 240, 2400
#: The labels' size (points, at 100 dpi), and the correlation's (nilearn's are smaller).
LABEL_POINTS, CORRELATION_LABEL_POINTS = 10, 8
#: Pixels around the figure, between an axis and its labels, of a tick, and of the colour
#: bar's width and its gap to the matrix.
MARGIN, LABEL_GAP, TICK_PIXELS, BAR_PIXELS, BAR_GAP = 8, 4, 3, 14, 12
#: The colour bar is at least this high (pixels; a contrast of one row is a thin strip).
BAR_MIN_PIXELS = 100
#: At most about this many numbered scans on a design's side.
DESIGN_TICKS = 8
#: How many evenly spaced values label a colour bar.
BAR_TICKS = 5
#: A colour bar's label this close to 0 (relative to the scale) is written 0.
ZERO_LABEL = 1e-9


@dataclass(frozen=True)
class _Scale:
    """A colour map over ``[vmin, vmax]``; ``flat``: the colour map's fraction for every
    value when ``vmin == vmax``."""

    cmap: str
    vmin: float
    vmax: float
    flat: float

    def fraction(self, values: np.ndarray) -> np.ndarray:
        """Where ``values`` fall on the scale, 0 to 1 (clipped)."""
        span = self.vmax - self.vmin
        if not span > 0:
            return np.full(np.shape(values), self.flat)
        return np.clip((np.asarray(values) - self.vmin) / span, 0.0, 1.0)

    def rgb(self, values: np.ndarray) -> np.ndarray:
        """``values`` as RGB (uint8); a value that is not finite is white (nilearn leaves it
        blank)."""
        from matplotlib import colormaps

        rgb = colormaps[self.cmap](np.nan_to_num(self.fraction(values)))[..., :3]
        rgb[~np.isfinite(values)] = 1.0
        return np.round(rgb * 255).astype(np.uint8)


@dataclass(frozen=True)
class _Labels:
    """What is written around a matrix of pixels: the column names (bitmaps, at their
    centres' pixel columns, above or below), the row ticks (``(pixel row, bitmap)``) with
    their title on the left, a caption below and the colour bar's ``(value, bitmap)``."""

    columns: tuple
    centres: tuple
    above: bool
    ticks: tuple = ()
    title: np.ndarray | None = None
    caption: np.ndarray | None = None
    bar: tuple = ()


def design_matrix_png(values: np.ndarray, names) -> bytes:
    """The design matrix (scans as rows, regressors as columns), each column divided by its
    norm (nilearn's ``rescale=True``), coloured over the matrix's range.

    Parameters
    ----------
    values : numpy.ndarray, shape (n_scans, n_regressors)
        The design matrix.
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
    scale = _Scale(DESIGN_CMAP, float(scaled.min()), float(scaled.max()), DESIGN_FLAT_FRACTION)
    cells = scale.rgb(scaled)[rows][:, columns]
    ticks = tuple(((scan + 0.5) * height / n_scans, text_bitmap(str(scan), LABEL_POINTS))
                  for scan in range(0, n_scans, _tick_step(n_scans)))
    labels = _column_labels(names, cells.shape[1], LABEL_POINTS, DESIGN_LABEL_ANGLE,
                            above=True, ticks=ticks,
                            title=text_bitmap("scan number", LABEL_POINTS, 90))
    return _figure(cells, labels)


def contrast_matrix_png(weights: np.ndarray, names, title: str) -> bytes:
    """A contrast's weights (one row per contrast vector) over the design's columns,
    coloured symmetrically around 0 up to the largest ``|weight|``, with a colour bar.

    Parameters
    ----------
    weights : numpy.ndarray, shape (n_vectors, n_regressors) or (n_regressors,)
        The contrast's weights, one row per vector (finite).
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
    scale = _Scale(DIVERGING_CMAP, -largest, largest, DIVERGING_FLAT_FRACTION)
    cells = scale.rgb(weights).repeat(cell, axis=0).repeat(cell, axis=1)
    labels = _column_labels(names, cells.shape[1], LABEL_POINTS, CONTRAST_LABEL_ANGLE,
                            above=True, caption=text_bitmap(title, LABEL_POINTS),
                            bar=_bar_labels(scale))
    return _figure(cells, labels, scale)


def correlation_png(correlations: np.ndarray, names) -> bytes:
    """The regressors' correlations, coloured symmetrically around 0 up to the largest
    ``|correlation|`` off the diagonal (nilearn's scale), with a colour bar.

    Parameters
    ----------
    correlations : numpy.ndarray, shape (n, n)
        The correlation matrix (NaN where a regressor is constant: drawn blank).
    names : sequence of str
        The regressors, written below the columns and beside the rows.

    Returns
    -------
    png : bytes
    """
    matrix = np.asarray(correlations, dtype=np.float64)
    largest = _correlation_scale(matrix)
    scale = _Scale(DIVERGING_CMAP, -largest, largest, DIVERGING_FLAT_FRACTION)
    cell = int(np.clip(round(CORRELATION_WIDTH / len(matrix)), *CORRELATION_CELL_BOUNDS))
    cell = max(min(cell, CORRELATION_MAX_WIDTH // len(matrix)), 1)
    cells = scale.rgb(matrix).repeat(cell, axis=0).repeat(cell, axis=1)
    ticks = tuple(((row + 0.5) * cell, text_bitmap(str(name), CORRELATION_LABEL_POINTS))
                  for row, name in enumerate(names))
    labels = _column_labels(names, cells.shape[1], CORRELATION_LABEL_POINTS,
                            CORRELATION_LABEL_ANGLE, above=False, ticks=ticks,
                            bar=_bar_labels(scale))
    return _figure(cells, labels, scale)


def _correlation_scale(matrix: np.ndarray) -> float:
    """nilearn's limit of a correlation figure's scale: the largest of ``|min|`` and each
    row's second largest value (the diagonal's 1 left out); 1 for one regressor, or when
    no correlation is defined."""
    finite = np.isfinite(matrix)
    if not finite.any():
        return 1.0
    largest = float(np.max(np.abs(matrix[finite])))
    if len(matrix) > 1:
        second_largest = np.partition(np.where(finite, matrix, -np.inf), -2, axis=1)[:, -2]
        largest = max(abs(float(matrix[finite].min())), float(second_largest.max()))
    return largest if np.isfinite(largest) and largest > 0 else 1.0


def _tick_step(n: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... numbering at most :data:`DESIGN_TICKS` of
    ``n`` rows."""
    step = 1
    while -(-n // step) > DESIGN_TICKS:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2
    return step


def _column_labels(names, width: int, points: float, angle: float, **labels) -> _Labels:
    """The column names rendered at ``points``, rotated by ``angle``, each at the centre of
    its share of ``width`` pixels; the other ``labels`` as given."""
    n_columns = len(names)
    return _Labels(
        columns=tuple(text_bitmap(str(name), points, angle) for name in names),
        centres=tuple(int((column + 0.5) * width / max(n_columns, 1))
                      for column in range(n_columns)),
        **labels)


def _bar_labels(scale: _Scale) -> tuple:
    """A colour bar's :data:`BAR_TICKS` evenly spaced values, top down (one for a scale of
    no width), with their text (three significant digits; 0 written as such, not ``-0`` or
    a rounding error)."""
    labels = []
    count = BAR_TICKS if scale.vmax > scale.vmin else 1
    for value in np.linspace(scale.vmax, scale.vmin, count):
        if abs(value) <= ZERO_LABEL * max(abs(scale.vmin), abs(scale.vmax)):
            value = 0.0
        labels.append((float(value), text_bitmap(f"{value + 0.0:.3g}", LABEL_POINTS)))
    return tuple(labels)


def _figure(cells: np.ndarray, labels: _Labels, scale: _Scale | None = None) -> bytes:
    """``cells`` (RGB) framed in black on white with its ``labels`` and the colour bar of
    ``scale``; the PNG's bytes."""
    top, left, shape = _layout(cells.shape[:2], labels, scale is not None)
    picture = np.full(shape, 255, dtype=np.uint8)
    height, width = cells.shape[:2]
    picture[top:top + height, left:left + width] = cells
    _frame(picture, top, left, height, width)
    for bitmap, centre in zip(labels.columns, labels.centres, strict=True):
        if labels.above:  # the name's box starts at its column, above the matrix
            paint_text(picture, bitmap, top - LABEL_GAP - bitmap.shape[0], left + centre, ink=0)
        else:  # ... ends at its column, below
            paint_text(picture, bitmap, top + height + LABEL_GAP,
                       left + centre - bitmap.shape[1], ink=0)
    for row, bitmap in labels.ticks:
        middle = top + int(row)
        picture[middle, left - TICK_PIXELS:left] = 0
        paint_text(picture, bitmap, middle - bitmap.shape[0] // 2,
                   left - TICK_PIXELS - LABEL_GAP - bitmap.shape[1], ink=0)
    if labels.title is not None:
        paint_text(picture, labels.title, top + (height - labels.title.shape[0]) // 2, MARGIN,
                   ink=0)
    if labels.caption is not None:
        paint_text(picture, labels.caption, top + height + LABEL_GAP,
                   left + (width - labels.caption.shape[1]) // 2, ink=0)
    if scale is not None:
        _colour_bar(picture, scale, labels.bar, top, left + width + BAR_GAP,
                    max(height, BAR_MIN_PIXELS))
    return png_bytes(picture)


def _layout(size: tuple, labels: _Labels, bar: bool) -> tuple[int, int, tuple]:
    """Where the matrix of ``size`` (rows, columns of pixels) goes (its top and left) and
    the picture's shape, so that every label and the colour bar fit."""
    height, width = size
    column_rows = max((bitmap.shape[0] for bitmap in labels.columns), default=0)
    left = MARGIN
    if labels.title is not None:
        left += labels.title.shape[1] + LABEL_GAP
    if labels.ticks:
        left += max(bitmap.shape[1] for _, bitmap in labels.ticks) + LABEL_GAP + TICK_PIXELS
    right = left + width
    if labels.above:
        right = max([right, *(left + centre + bitmap.shape[1] for bitmap, centre in zip(
            labels.columns, labels.centres, strict=True))])
    else:  # names end at their columns: room on the left for the longest reaching left
        left = max([left, *(MARGIN + bitmap.shape[1] - centre for bitmap, centre in zip(
            labels.columns, labels.centres, strict=True))])
        right = max(right, left + width)
    top = MARGIN + (column_rows + LABEL_GAP if labels.above else 0)
    bottom = top + height + (0 if labels.above else LABEL_GAP + column_rows)
    if labels.caption is not None:
        bottom += LABEL_GAP + labels.caption.shape[0]
    if bar:
        bar_width = max((bitmap.shape[1] for _, bitmap in labels.bar), default=0)
        right = max(right, left + width + BAR_GAP + BAR_PIXELS + TICK_PIXELS + LABEL_GAP
                    + bar_width)
        bottom = max(bottom, top + max(height, BAR_MIN_PIXELS) + LABEL_GAP)
    return top, left, (bottom + MARGIN, right + MARGIN, 3)


def _frame(picture: np.ndarray, top: int, left: int, height: int, width: int) -> None:
    """A black line around the ``height`` x ``width`` box at (``top``, ``left``)."""
    picture[top - 1, left - 1:left + width + 1] = 0
    picture[top + height, left - 1:left + width + 1] = 0
    picture[top - 1:top + height + 1, left - 1] = 0
    picture[top - 1:top + height + 1, left + width] = 0


def _colour_bar(picture: np.ndarray, scale: _Scale, labels, top: int, left: int,
                height: int) -> None:
    """The colour bar of ``scale`` (``vmax`` at the top), ``height`` pixels, framed, its
    labels (``(value, bitmap)``) on the right."""
    values = np.linspace(scale.vmax, scale.vmin, height)
    picture[top:top + height, left:left + BAR_PIXELS] = scale.rgb(values)[:, None, :]
    _frame(picture, top, left, height, BAR_PIXELS)
    for value, bitmap in labels:
        row = top + round((1.0 - float(scale.fraction(value))) * (height - 1))
        picture[row, left + BAR_PIXELS:left + BAR_PIXELS + TICK_PIXELS] = 0
        paint_text(picture, bitmap, row - bitmap.shape[0] // 2,
                   left + BAR_PIXELS + TICK_PIXELS + LABEL_GAP, ink=0)

