"""What figures composed as pixels share: labels rendered with matplotlib's own font
(FreeType, through matplotlib's ``ft2font``; no matplotlib figure is made, so
``matplotlib.pyplot`` is never imported), painted onto RGB arrays, and the picture saved as
PNG by Pillow.
"""

from __future__ import annotations

import functools
import io

import numpy as np

#: Rendered labels kept in a process (cut coordinates, column names, ticks recur in
#: figure after figure).
TEXT_CACHE_SIZE = 512


def _font():
    """matplotlib's own font (DejaVu Sans) as a FreeType face: matplotlib's ``get_font``
    keeps one per thread and opens it again in a forked process (a face read through a
    file shared with another process loads wrong glyphs)."""
    from matplotlib import font_manager

    return font_manager.get_font(_font_path())


@functools.cache
def _font_path() -> str:
    """The file of matplotlib's DejaVu Sans."""
    from matplotlib import font_manager

    return font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))


@functools.lru_cache(maxsize=TEXT_CACHE_SIZE)
def text_bitmap(text: str, points: float, angle: float = 0.0) -> np.ndarray:
    """``text`` rendered (anti-aliased) at ``points`` and 100 dpi.

    Parameters
    ----------
    text : str
        One line of text.
    points : float
        The font size.
    angle : float
        Counter-clockwise rotation in degrees (90: read from bottom to top).

    Returns
    -------
    bitmap : numpy.ndarray of uint8, shape (rows, columns)
        The text's coverage, 0-255, over its (rotated) bounding box; read-only: kept for
        the next figure with the same label.
    """
    font = _font()
    font.clear()
    font.set_size(points, 100)
    font.set_text(text, float(angle))
    font.draw_glyphs_to_bitmap(antialiased=True)
    bitmap = np.array(font.get_image())
    bitmap.flags.writeable = False
    return bitmap


def paint_text(picture: np.ndarray, bitmap: np.ndarray, row: int, column: int, *,
               ink: int, shade: float = 1.0) -> None:
    """Paint a text bitmap onto ``picture`` with its top left corner at (``row``,
    ``column``); what falls outside is cut off.

    Parameters
    ----------
    picture : numpy.ndarray of uint8, shape (rows, columns, 3)
        The RGB picture, changed in place.
    bitmap : numpy.ndarray of uint8
        A :func:`text_bitmap`.
    row, column : int
        Where the bitmap's top left corner goes (may lie outside the picture).
    ink : int
        The text's grey, 0 (black) to 255 (white).
    shade : float
        What is left of the picture's brightness under the text's box (1: unchanged; less
        darkens it, so that white text reads on bright pixels).
    """
    rows, columns = bitmap.shape
    top, left = max(row, 0), max(column, 0)
    bottom = min(row + rows, picture.shape[0])
    right = min(column + columns, picture.shape[1])
    if bottom <= top or right <= left:
        return
    alpha = bitmap[top - row:bottom - row, left - column:right - column, None] / 255.0
    region = picture[top:bottom, left:right]
    region[:] = np.round(region * shade * (1.0 - alpha) + ink * alpha).astype(np.uint8)


def png_bytes(picture: np.ndarray) -> bytes:
    """``picture`` (RGB, uint8, shape (rows, columns, 3)) as PNG bytes (Pillow's defaults)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()
