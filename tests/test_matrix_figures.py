"""The design, contrast and correlation figures composed as pixels
(``core.matrix_figures``): inside the black frame, each value's block has the colour
nilearn's ``plot_design_matrix`` / ``plot_contrast_matrix`` /
``plot_design_matrix_correlation`` give it (their colour maps over their scales), and no
``matplotlib.pyplot`` is imported to draw them."""

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib import colormaps
from PIL import Image

from glm_workflows.core import figures


def _rgb(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _longest_runs(black: np.ndarray) -> np.ndarray:
    """The longest run of black pixels along each row of ``black``."""
    longest = np.zeros(black.shape[0], dtype=int)
    for row, line in enumerate(black):
        run = 0
        for pixel in line:
            run = run + 1 if pixel else 0
            longest[row] = max(longest[row], run)
    return longest


def _cells(picture: np.ndarray) -> np.ndarray:
    """What the matrix's frame (the widest black rectangle) holds."""
    black = (picture == 0).all(axis=2)
    rows = np.flatnonzero(_longest_runs(black) == _longest_runs(black).max())
    top, bottom = rows[0], rows[-1]
    columns = np.flatnonzero(black[top + 1:bottom].all(axis=0))
    return picture[top + 1:bottom, columns[0] + 1:columns[1]]


def _block_colours(cells: np.ndarray, n_rows: int, n_columns: int) -> np.ndarray:
    """The colour at the centre of each value's block."""
    height, width = cells.shape[:2]
    centre_rows = ((np.arange(n_rows) + 0.5) * height / n_rows).astype(int)
    centre_columns = ((np.arange(n_columns) + 0.5) * width / n_columns).astype(int)
    return cells[centre_rows][:, centre_columns]


def _expected(values: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    fraction = np.clip((values - vmin) / (vmax - vmin), 0, 1)
    return np.round(colormaps[cmap](fraction)[..., :3] * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def design():
    rng = np.random.default_rng(3)
    n_scans = 70
    frame = pd.DataFrame({
        "faces": np.convolve(rng.integers(0, 2, n_scans), np.ones(3), "same"),
        "houses": rng.standard_normal(n_scans),
        "rt": rng.standard_normal(n_scans) * 40 + 300,
        "drift_1": np.cos(np.linspace(0, np.pi, n_scans)),
        "constant": np.ones(n_scans)})
    return frame


def test_design_blocks_have_nilearns_colours(design):
    values = design.to_numpy()
    scaled = values / np.maximum(1e-12, np.sqrt(np.sum(values**2, 0)))  # nilearn's rescale
    figure = _rgb(figures._design_png(design))
    colours = _block_colours(_cells(figure), *values.shape)
    assert np.array_equal(colours, _expected(scaled, "viridis", scaled.min(), scaled.max()))


def test_contrast_blocks_are_symmetric_around_zero(design):
    weights = np.array([[1.0, -0.5, 0, 0, 0], [0, 0, 2.0, 0, 0]])
    figure = _rgb(figures._contrast_png(weights, design.columns, "two rows"))
    colours = _block_colours(_cells(figure), *weights.shape)
    assert np.array_equal(colours, _expected(weights, "RdBu_r", -2.0, 2.0))


def test_correlation_blocks_leave_out_drifts_and_use_nilearns_scale(design):
    kept = design[["faces", "houses", "rt"]]
    correlations = kept.corr().to_numpy()
    second_largest = np.partition(correlations, -2, axis=1)[:, -2]
    vmax = max(abs(correlations.min()), second_largest.max())  # nilearn's, diagonal left out
    figure = _rgb(figures._correlation_png(design))
    colours = _block_colours(_cells(figure), 3, 3)
    assert np.array_equal(colours, _expected(correlations, "RdBu_r", -vmax, vmax))
    assert figures._correlation_png(design[["drift_1", "constant"]]) is None


def test_a_constant_regressors_undefined_correlations_are_blank(design):
    frame = design.assign(flat=1.0)[["faces", "houses", "flat"]]
    colours = _block_colours(_cells(_rgb(figures._correlation_png(frame))), 3, 3)
    assert (colours[2] == 255).all() and (colours[:, 2] == 255).all()
    assert not (colours[:2, :2] == 255).all(axis=2).any()


def test_drawing_them_does_not_import_pyplot(design, tmp_path):
    design.to_csv(tmp_path / "design.tsv", sep="\t", index=False)
    code = ("import sys, numpy as np, pandas as pd\n"
            "from glm_workflows.core import figures\n"
            f"d = pd.read_csv({str(tmp_path / 'design.tsv')!r}, sep='\\t')\n"
            f"figures.plot_design(d, {str(tmp_path / 'd.png')!r})\n"
            f"figures.plot_design_correlation(d, {str(tmp_path / 'c.png')!r})\n"
            f"figures.plot_contrast(np.eye(1, 5), d.columns, 'c', {str(tmp_path / 'w.png')!r})\n"
            "print('matplotlib.pyplot' in sys.modules, 'nilearn.plotting' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["False", "False"]


def test_scales_of_no_width_colour_as_nilearn_does():
    """A design of one value everywhere (a one-sample group design: its intercept) is the
    colour map's bottom, as matplotlib's ``imshow`` draws it; a contrast of zeros is the
    middle of its diverging map, as nilearn's colour bar widens equal limits."""
    intercept = pd.DataFrame({"intercept": np.ones(12)})
    colours = _block_colours(_cells(_rgb(figures._design_png(intercept))), 12, 1)
    assert (colours == _expected(np.zeros(1), "viridis", 0.0, 1.0)).all()
    colours = _block_colours(_cells(_rgb(figures._contrast_png(np.zeros((1, 3)), "abc", "z"))),
                             1, 3)
    assert (colours == _expected(np.zeros(1), "RdBu_r", -1.0, 1.0)).all()


def test_a_one_row_contrasts_colour_bar_is_tall_enough_to_label():
    """The colour bar of a t contrast (one row: a thin strip) is high enough for its five
    labels one above the other."""
    from glm_workflows.core.matrix_figures import BAR_TICKS, LABEL_POINTS
    from glm_workflows.core.pixels import text_bitmap

    picture = _rgb(figures._contrast_png(np.array([[1.0, -1.0, 0.0]]), "abc", "t"))
    black = (picture == 0).all(axis=2)
    label_height = text_bitmap("-0.5", LABEL_POINTS).shape[0]
    assert _longest_runs(black.T).max() >= BAR_TICKS * label_height  # the bar's framed side
