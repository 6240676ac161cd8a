"""The thresholded maps' figures (core/slice_figures.py): each cut shows the map's voxels
where they are, in neurological orientation, coloured by their values."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image
from scipy import ndimage

from glm_workflows.core.figures import plot_orthogonal_view, plot_thresholded_map

#: An oblique-free affine with unequal voxel sizes and an offset origin.
AFFINE = np.array([[2.0, 0, 0, -20.0], [0, 3.0, 0, -33.0], [0, 0, 2.5, -10.0], [0, 0, 0, 1]])
SHAPE = (20, 22, 16)
#: The map's voxels: an asymmetric shape in one axial plane (so a flip shows), its
#: largest value at PEAK.
PEAK = (6, 15, 9)


@pytest.fixture(scope="module")
def study_map():
    """A thresholded map (an L shape of values 3.5..6 in plane k = 9, its peak 6 at PEAK)
    and a uniform background (white once drawn), as images."""
    z = np.zeros(SHAPE)
    z[4:13, 15, 9] = np.linspace(3.5, 5.5, 9)
    z[4, 15:20, 9] = 4.0
    z[PEAK] = 6.0
    background = nb.Nifti1Image(np.full(SHAPE, 100.0), AFFINE)
    return nb.Nifti1Image(z, AFFINE), background


def _panels(png) -> list[np.ndarray]:
    """The cuts of a figure (and its colour bar, last): the picture's non-black column runs
    over its cut rows."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    rows = slice(30, rgb.shape[0] - 5)
    lit = (rgb[rows] > 40).any(axis=2).sum(axis=0) > 0.5 * (rgb.shape[0] - 35)
    edges = np.flatnonzero(np.diff(np.r_[0, lit.astype(int), 0]))
    panels = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        block = rgb[:, start:stop]
        filled = np.flatnonzero((block > 40).any(axis=2).all(axis=1))
        panels.append(block[filled[0]:filled[-1] + 1])
    return panels


def _overlay(panel: np.ndarray) -> np.ndarray:
    """Where a panel is coloured (not grey/white: the map, not the background)."""
    return (panel.max(axis=2) - panel.min(axis=2)) > 60


def _downsampled(mask: np.ndarray, shape) -> np.ndarray:
    """A pixel mask read back at ``shape`` (each voxel a square of pixels), its centres."""
    rows = ((np.arange(shape[0]) + 0.5) * mask.shape[0] / shape[0]).astype(int)
    columns = ((np.arange(shape[1]) + 0.5) * mask.shape[1] / shape[1]).astype(int)
    return mask[np.ix_(rows, columns)]


def test_orthogonal_view_shows_the_voxels_where_they_are(study_map, tmp_path):
    """Through the peak: the axial cut shows plane k = 9 with x to the right and y up; the
    coronal cut row j = 15 with z up; the sagittal cut column i = 6 with y to the right.
    The peak's pixels have the colour of the scale's top (yellow)."""
    z, background = study_map
    figure = plot_orthogonal_view(z, background, 3.0, "c", tmp_path / "o.png", two_sided=False)
    assert [d for d, _ in figure.cuts] == ["x", "y", "z"]
    assert np.allclose([c for _, c in figure.cuts], nb.affines.apply_affine(AFFINE, PEAK))
    sagittal, coronal, axial, colour_bar = _panels(tmp_path / "o.png")
    data = z.get_fdata() != 0
    # The background's grid is the map's: one voxel per square; rows top to bottom.
    assert np.array_equal(_downsampled(_overlay(axial), (SHAPE[1], SHAPE[0])),
                          data[:, ::-1, PEAK[2]].T)
    assert np.array_equal(_downsampled(_overlay(coronal), (SHAPE[2], SHAPE[0])),
                          data[:, PEAK[1], ::-1].T)
    assert np.array_equal(_downsampled(_overlay(sagittal), (SHAPE[2], SHAPE[1])),
                          data[PEAK[0], :, ::-1].T)
    peak_row, peak_column = SHAPE[1] - 1 - PEAK[1], PEAK[0]
    rows, columns = axial.shape[0] / SHAPE[1], axial.shape[1] / SHAPE[0]
    pixel = axial[int((peak_row + 0.5) * rows), int((peak_column + 0.5) * columns)]
    expected = np.round(np.array(colormaps["autumn"](1.0)[:3]) * 255)
    assert np.array_equal(pixel, expected)


def test_axial_cuts_are_nilearns_and_empty_maps_show_the_background(study_map, tmp_path):
    """The axial cuts are where nilearn's ``plot_stat_map`` puts them; a map where nothing
    survives gives the background alone (no coloured pixel, no colour bar)."""
    from nilearn.plotting import find_cut_slices

    z, background = study_map
    figure = plot_thresholded_map(z, background, 3.0, "c", tmp_path / "a.png", two_sided=False)
    assert [c for _, c in figure.cuts] == pytest.approx(
        list(find_cut_slices(z, direction="z", n_cuts=3)))
    empty = nb.Nifti1Image(np.zeros(SHAPE), AFFINE)
    figure = plot_orthogonal_view(empty, background, np.inf, "c", tmp_path / "e.png",
                                  two_sided=False)
    assert figure.colours is None
    rgb = np.asarray(Image.open(tmp_path / "e.png").convert("RGB")).astype(int)
    assert not ((rgb.max(axis=2) - rgb.min(axis=2)) > 60).any()


def test_same_map_same_bytes(study_map, tmp_path):
    """The PNG is the same bytes each time (no time or version in it)."""
    z, background = study_map
    plot_orthogonal_view(z, background, 3.0, "c", tmp_path / "1.png", two_sided=True)
    plot_orthogonal_view(z, background, 3.0, "c", tmp_path / "2.png", two_sided=True)
    assert (tmp_path / "1.png").read_bytes() == (tmp_path / "2.png").read_bytes()


def test_voxels_beyond_the_background_are_drawn(study_map, tmp_path):
    """The cuts span the map's voxels too (nilearn's extent): with a background that is 0
    where the map's voxels are, the orthogonal view still shows the peak's colour."""
    z, _ = study_map
    half = np.zeros(SHAPE)
    half[:, :10, :] = 100.0  # the map's voxels are at y index 15-19
    figure = plot_orthogonal_view(z, nb.Nifti1Image(half, AFFINE), 3.0, "c",
                                  tmp_path / "o.png", two_sided=False)
    top = np.round(np.array(colormaps["autumn"](1.0)[:3]) * 255)
    assert figure.colours is not None
    rgb = np.asarray(Image.open(tmp_path / "o.png").convert("RGB")).astype(int)
    _, places = ndimage.label((np.abs(rgb - top).sum(axis=2) == 0))
    assert places == 4  # the peak in each of the three cuts, and the colour bar's top


def test_maps_at_one_value_nan_and_one_volume_are_drawn(tmp_path):
    """Every surviving voxel at the threshold (a scale of one value) is drawn in the
    scale's top colour; NaN is drawn as 0; an (x, y, z, 1) map is drawn as its volume."""
    z = np.zeros(SHAPE)
    z[5:8, 5:8, 5:8] = 3.0
    figure = plot_orthogonal_view(nb.Nifti1Image(z, AFFINE), None, 3.0, "c",
                                  tmp_path / "flat.png", two_sided=False)
    assert figure.colours.vmin == figure.colours.vmax == 3.0
    rgb = np.asarray(Image.open(tmp_path / "flat.png").convert("RGB")).astype(int)
    top = np.round(np.array(colormaps["autumn"](1.0)[:3]) * 255)
    assert (np.abs(rgb - top).sum(axis=2) == 0).any()
    z[0, 0, 0] = np.nan
    z[5:8, 5:8, 5:8] = np.linspace(3.0, 5.0, 27).reshape(3, 3, 3)
    for img in (nb.Nifti1Image(z, AFFINE), nb.Nifti1Image(z[..., None], AFFINE)):
        figure = plot_thresholded_map(img, None, 3.0, "c", tmp_path / "z.png",
                                      two_sided=False)
        assert figure.colours.vmax == 5.0
