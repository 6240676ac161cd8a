"""Thresholds and cluster tables when nothing survives, and tables matching the maps."""

import json
import warnings

import nibabel as nb
import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import norm

from glm_workflows import interfaces
from glm_workflows.core.errors import InputError
from glm_workflows.core.figures import (
    ONE_SIDED_CMAP,
    TWO_SIDED_CMAP,
    plot_orthogonal_view,
    plot_thresholded_map,
)
from glm_workflows.core.inference import (
    CLUSTER_COLUMNS,
    cluster_table,
    has_surviving_voxels,
    threshold_map,
)
from glm_workflows.core.slice_figures import TICK_FORMAT
from glm_workflows.settings import DEFAULT_INFERENCE

AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])


def _threshold(**settings) -> dict:
    """threshold_map's settings: the defaults but ``settings``."""
    return {**DEFAULT_INFERENCE.threshold_inputs(), **settings}


def _table(**settings) -> dict:
    """cluster_table's settings: the defaults but ``settings``."""
    return {**DEFAULT_INFERENCE.table_inputs(), **settings}


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """A 24^3 z map of noise with two blobs (z = 6) of 30 and 8 voxels, its mask (a
    central box) and a background; all as files."""
    folder = tmp_path_factory.mktemp("maps")
    z = np.random.default_rng(0).normal(size=(24, 24, 24)).clip(-2.5, 2.5)
    z[4:7, 4:9, 4:6] = 6.0  # 30 voxels
    z[15:17, 15:17, 15:17] = 6.0  # 8 voxels
    mask = np.zeros(z.shape, np.uint8)
    mask[2:22, 2:22, 2:22] = 1
    z[mask == 0] = 0
    paths = {name: str(folder / f"{name}.nii.gz") for name in ("z", "mask", "bg")}
    nb.Nifti1Image(z, AFFINE).to_filename(paths["z"])
    nb.Nifti1Image(mask, AFFINE).to_filename(paths["mask"])
    nb.Nifti1Image(100.0 + 10 * mask, AFFINE).to_filename(paths["bg"])
    return paths


def test_fdr_without_discovery_gives_an_empty_map_and_table(maps):
    """No p value passes fdr at 1e-30: inf threshold, all-zero map on the same grid,
    a table with the columns and no row."""
    thresholded, threshold = threshold_map(maps["z"], mask_img=maps["mask"],
                                           **_threshold(height_control="fdr", alpha=1e-30))
    assert threshold == np.inf
    assert thresholded.shape == (24, 24, 24)
    np.testing.assert_array_equal(thresholded.affine, AFFINE)
    assert not thresholded.get_fdata().any() and not has_surviving_voxels(thresholded)
    table = cluster_table(thresholded, threshold, **_table())
    assert list(table.columns) == list(CLUSTER_COLUMNS) and table.empty


def test_bonferroni_above_the_maximum(maps):
    """Bonferroni at 1e-10 over the mask's 8000 voxels asks z > 7.4 > 6: nothing survives,
    and no warning about the threshold exceeding the maximum."""
    expected = norm.isf(1e-10 / 20 ** 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        thresholded, threshold = threshold_map(
            maps["z"], mask_img=maps["mask"],
            **_threshold(height_control="bonferroni", alpha=1e-10))
    assert threshold == pytest.approx(expected) and threshold > 6
    assert not has_surviving_voxels(thresholded)
    assert cluster_table(thresholded, threshold, **_table()).empty


def test_table_lists_only_clusters_left_in_the_map(maps):
    """The cluster extent (10 voxels) removes the 8-voxel blob from the map, so the table
    of the thresholded map lists the 30-voxel blob only, whatever its own minimum."""
    thresholded, _ = threshold_map(maps["z"], **_threshold(height_control="none", threshold=5.0,
                                                             cluster_threshold=10))
    labels, count = ndimage.label(thresholded.get_fdata() != 0)
    assert count == 1 and (labels > 0).sum() == 30
    table = cluster_table(thresholded, 5.0, **_table(min_cluster_size=0))
    assert table["Cluster Size (mm3)"].tolist() == [30 * 27]
    # the raw map: both
    assert len(cluster_table(maps["z"], 5.0, **_table(min_cluster_size=0))) == 2


def test_extent_removing_every_cluster(maps):
    """A 100-voxel extent empties the map though voxels pass the height threshold."""
    thresholded, threshold = threshold_map(
        maps["z"], **_threshold(height_control="none", threshold=5.0, cluster_threshold=100))
    assert threshold == 5.0 and not has_surviving_voxels(thresholded)
    assert cluster_table(thresholded, threshold, **_table()).empty


def test_nan_threshold_is_refused(maps):
    with pytest.raises(InputError, match="stat_threshold"):
        cluster_table(maps["z"], float("nan"), **_table())


def test_empty_map_figures_centre_on_the_mask(maps, tmp_path):
    """An empty map is drawn over the background at the mask's centre, without the
    'empty image' warnings of nilearn's automatic cut search."""
    empty = nb.Nifti1Image(np.zeros((24, 24, 24)), AFFINE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_thresholded_map(empty, maps["bg"], np.inf, "c (fdr: no voxel survives)",
                             tmp_path / "axial.png", centre_img=maps["mask"], two_sided=False)
        plot_orthogonal_view(empty, maps["bg"], np.inf, "c (fdr: no voxel survives)",
                             tmp_path / "ortho.png", centre_img=maps["mask"], two_sided=False)
    for name in ("axial.png", "ortho.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_threshold_and_table_interfaces_when_nothing_survives(maps, tmp_path):
    """ThresholdMap: null threshold and NoSurvivingVoxels in its sidecar, figures drawn;
    ClusterTable: a header and no row."""
    folder = tmp_path / "t"
    folder.mkdir()
    result = interfaces.ThresholdMap(z_map=maps["z"], mask_file=maps["mask"], bg_file=maps["bg"],
                                     height_control="fdr", alpha=1e-30, cluster_threshold=10,
                                     title="c").run(cwd=str(folder))
    outputs = result.outputs
    with open(outputs.threshold_json) as stream:
        settings = json.load(stream)
    assert settings["Threshold"] is None and settings["NoSurvivingVoxels"] is True
    assert outputs.threshold == np.inf
    assert not nb.load(outputs.thresholded_map).get_fdata().any()
    for figure in (outputs.figure, outputs.ortho_figure):
        assert open(figure, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "k").mkdir()
    table = interfaces.ClusterTable(z_map=outputs.thresholded_map,
                                    stat_threshold=outputs.threshold).run(cwd=str(tmp_path / "k"))
    with open(table.outputs.table) as stream:
        assert stream.read() == "\t".join(CLUSTER_COLUMNS) + "\n"


def test_threshold_interface_records_survivors(maps, tmp_path):
    """Something survives: the threshold is a number and NoSurvivingVoxels is false."""
    result = interfaces.ThresholdMap(z_map=maps["z"], height_control="none", threshold=5.0,
                                     cluster_threshold=10).run(cwd=str(tmp_path))
    with open(result.outputs.threshold_json) as stream:
        settings = json.load(stream)
    assert settings["Threshold"] == 5.0 and settings["NoSurvivingVoxels"] is False


@pytest.fixture(scope="module")
def signed_z(maps, tmp_path_factory):
    """The ``maps`` z map with its 30-voxel blob rising from z = 3.5 to 10 and a negative
    blob (z = -5, 18 voxels) added, as a file."""
    img = nb.load(maps["z"])
    z = img.get_fdata()
    z[4:7, 4:9, 4:6] = np.linspace(3.5, 10.0, 30).reshape(3, 5, 2)
    z[15:18, 4:7, 10:12] = -5.0
    path = str(tmp_path_factory.mktemp("signed") / "signed_z.nii.gz")
    nb.Nifti1Image(z, AFFINE).to_filename(path)
    return path


def _colours(figure) -> tuple:
    """The overlay's colour map names and limits, the colour bar's limits and tick labels
    of a figure drawn (a ``SliceFigure``)."""
    colours = figure.colours
    ticks = [TICK_FORMAT % tick for tick in colours.ticks]
    return {colours.cmap.name}, {(colours.vmin, colours.vmax)}, (colours.vmin, colours.vmax), \
        ticks


def test_one_sided_map_colours_start_at_the_threshold(maps, signed_z, tmp_path):
    """A one-sided map: a hot scale (red to yellow) from the threshold to the map's
    maximum, the threshold labelled on the colour bar; no blue anywhere (nilearn's
    default RdBu_r from 0 drew positive z just above the threshold pale blue)."""
    thresholded, threshold = threshold_map(signed_z,
                                           **_threshold(height_control="fpr", alpha=0.001))
    assert 3 < threshold < 3.2
    z = thresholded.get_fdata()
    assert z.min() == 0 and z.max() == 10.0
    for plot in (plot_thresholded_map, plot_orthogonal_view):
        display = plot(thresholded, maps["bg"], threshold, "c", tmp_path / "f.png",
                       two_sided=False)
        names, limits, cbar_limits, ticks = _colours(display)
        assert names == {ONE_SIDED_CMAP} == {"autumn"}
        assert limits == {(threshold, 10.0)} and cbar_limits == (threshold, 10.0)
        assert f"{threshold:.2f}" in ticks and ticks[0] == f"{threshold:.2f}"


def test_two_sided_map_colours_are_symmetric(maps, signed_z, tmp_path):
    """A two-sided map: cold (blue) below minus the threshold, hot (red) above it, limits
    symmetric around 0, both thresholds labelled on the colour bar."""
    thresholded, threshold = threshold_map(
        signed_z, **_threshold(height_control="fpr", alpha=0.001, two_sided=True))
    assert thresholded.get_fdata().min() == -5.0
    for plot in (plot_thresholded_map, plot_orthogonal_view):
        display = plot(thresholded, maps["bg"], threshold, "c", tmp_path / "f.png",
                       two_sided=True)
        names, limits, cbar_limits, ticks = _colours(display)
        assert names == {TWO_SIDED_CMAP} and limits == {(-10.0, 10.0)}
        assert cbar_limits == (-10.0, 10.0)
        assert {f"{threshold:.2f}", f"-{threshold:.2f}"} <= set(ticks)
        colours = display.colours
        span = colours.vmax - colours.vmin
        assert colours.cmap((threshold - colours.vmin) / span)[:3] == \
            pytest.approx((1, 0, 0), abs=0.02)
        assert colours.cmap((-threshold - colours.vmin) / span)[:3] == \
            pytest.approx((0, 0, 1), abs=0.02)


@pytest.mark.parametrize("two_sided", [False, True])
def test_threshold_interface_figures_show_blue_only_for_negative_z(signed_z, maps, tmp_path,
                                                                   two_sided):
    """The PNGs every level writes (ThresholdMap's): a one-sided map has no blue pixel,
    not even a pale one (the background is grey); a two-sided map shows its negative
    blob in blue."""
    import matplotlib.image

    result = interfaces.ThresholdMap(z_map=signed_z, bg_file=maps["bg"], height_control="fpr",
                                     alpha=0.001, two_sided=two_sided,
                                     title="c").run(cwd=str(tmp_path))
    for figure in (result.outputs.figure, result.outputs.ortho_figure):
        rgb = matplotlib.image.imread(figure)[..., :3]
        blue = rgb[..., 2] > rgb[..., 0] + 0.1
        assert blue.any() == two_sided, figure
    title = interfaces.inference._figure_title("c", "fpr", result.outputs.threshold, True,
                                               two_sided)
    assert title == f"c (fpr, {'|z|' if two_sided else 'z'} > {result.outputs.threshold:.2f})"
