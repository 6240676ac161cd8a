"""The vectorized cluster-extent threshold and cluster table (core.clusters, core.inference)
against nilearn's, on many random maps: equal bit for bit, rows, order and strings."""

from __future__ import annotations

import warnings

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from glm_workflows.core.clusters import cluster_size_threshold, clusters_table

SEEDS = range(50)


def _map(seed: int, dtype=np.float32, plateaus: bool = False) -> nb.Nifti1Image:
    """Smoothed noise scaled to unit variance, on a 3x3.5x4 mm grid (some maps rounded,
    which makes flat peaks and binary-like clusters)."""
    rng = np.random.default_rng(seed)
    shape = (18 + seed % 5, 20, 16 + seed % 3)
    data = gaussian_filter(rng.standard_normal(shape), 1.0 + (seed % 4) * 0.4)
    data /= data.std()
    if plateaus:
        data = np.round(data * 2) / 2
    if seed % 7 == 0:
        data[0, :3, :] = 4.0  # a cluster at the volume's edge
    affine = np.diag([3.0, 3.5, 4.0, 1.0])
    affine[:3, 3] = [-30.0, -40.5, -20.0]
    if seed % 5 == 0:
        affine[0] *= -1
    return nb.Nifti1Image(data.astype(dtype), affine)


def _nilearn_table(img, threshold, **kwargs):
    from nilearn.reporting import get_clusters_table

    return get_clusters_table(img, threshold, **kwargs)


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_size_threshold_equals_nilearn(seed):
    from nilearn.image.image import _apply_cluster_size_threshold

    data = np.asanyarray(_map(seed).dataobj).copy()
    data[np.abs(data) < 1.0 + (seed % 3) * 0.5] = 0
    for k in (1, 2, 5, 10, 40):
        expected = _apply_cluster_size_threshold(data, k, copy=True)
        ours = cluster_size_threshold(data.copy(), k)
        assert ours.dtype == expected.dtype
        assert np.array_equal(ours, expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_clusters_table_equals_nilearn(seed):
    img = _map(seed, dtype=np.float64 if seed % 2 else np.float32, plateaus=seed % 3 == 0)
    for threshold in (1.5, 2.3, 3.1):
        for two_sided in (False, True):
            for k, distance in ((0, 8.0), (5, 8.0), (0, 4.0), (3, 12.5)):
                kwargs = dict(cluster_threshold=k, two_sided=two_sided, min_distance=distance)
                with warnings.catch_warnings(record=True) as theirs_warned:
                    warnings.simplefilter("always")
                    expected = _nilearn_table(img, threshold, **kwargs)
                with warnings.catch_warnings(record=True) as ours_warned:
                    warnings.simplefilter("always")
                    ours = clusters_table(img, threshold, **kwargs)
                pd.testing.assert_frame_equal(ours, expected, check_exact=True)
                assert [type(v) for v in ours.to_numpy().ravel()] == \
                    [type(v) for v in expected.to_numpy().ravel()]
                assert ours.to_csv(sep="\t", index=False) == \
                    expected.to_csv(sep="\t", index=False)
                assert sorted(str(w.message) for w in ours_warned) == \
                    sorted(str(w.message) for w in theirs_warned)


@pytest.mark.parametrize("seed", SEEDS[::5])
def test_threshold_map_equals_nilearn(seed):
    from nilearn.glm import threshold_stats_img

    from glm_workflows.core.inference import threshold_map

    img = _map(seed)
    mask = nb.Nifti1Image((np.abs(np.asanyarray(img.dataobj)) > 0.2).astype(np.uint8),
                          img.affine)
    for control, alpha, threshold in (("fpr", 0.01, None), ("fdr", 0.05, None),
                                      ("none", 0.05, 2.0), ("bonferroni", 0.05, None)):
        for two_sided in (False, True):
            for k in (0, 4, 25):
                for mask_img in (None, mask):
                    ours, z = threshold_map(img, mask_img=mask_img, height_control=control,
                                            alpha=alpha, threshold=threshold,
                                            cluster_threshold=k, two_sided=two_sided)
                    expected, z_expected = _quiet(
                        threshold_stats_img, img, mask_img=mask_img, alpha=alpha,
                        threshold=threshold if control == "none" else None,
                        height_control=None if control == "none" else control,
                        cluster_threshold=k, two_sided=two_sided)
                    assert z == float(z_expected)
                    a, b = np.asanyarray(ours.dataobj), np.asanyarray(expected.dataobj)
                    assert a.dtype == b.dtype and np.array_equal(a, b)
                    assert ours.header.get_data_dtype() == expected.header.get_data_dtype()


@pytest.mark.parametrize("seed", SEEDS[1::4])
def test_threshold_map_with_a_mask_on_its_grid_equals_nilearn(seed):
    """With a 0/1 mask on the map's grid the height threshold is taken from the map's values
    in the mask (no masker): the same threshold and map as nilearn's ``threshold_stats_img``
    for float32 and float64 maps, masks of three types, NaN and infinities in the map
    (nilearn's masker gives them as 0), both tails."""
    from nilearn.glm import threshold_stats_img

    from glm_workflows.core.inference import threshold_map

    img = _map(seed, dtype=np.float64 if seed % 2 else np.float32)
    rng = np.random.default_rng(seed)
    data = np.asanyarray(img.dataobj).copy()
    if seed % 3 == 0:
        data[rng.random(data.shape) < 0.3] = np.nan
    if seed % 3 == 1:
        data[rng.random(data.shape) < 0.02] = np.inf if seed % 2 else -np.inf
    img = nb.Nifti1Image(data, img.affine)
    mask = nb.Nifti1Image((rng.random(data.shape) < 0.8).astype(
        (np.uint8, np.int16, np.float32)[seed % 3]), img.affine)
    for control, alpha, threshold in (("fpr", 0.01, None), ("fdr", 0.05, None),
                                      ("fdr", 0.3, None), ("fdr", 0.9, None),
                                      ("none", 0.05, 2.0), ("bonferroni", 0.05, None)):
        for two_sided in (False, True):
            ours, z = _quiet(threshold_map, img, mask_img=mask, height_control=control,
                             alpha=alpha, threshold=threshold, cluster_threshold=0,
                             two_sided=two_sided)
            expected, z_expected = _quiet(
                threshold_stats_img, img, mask_img=mask, alpha=alpha,
                threshold=threshold if control == "none" else None,
                height_control=None if control == "none" else control,
                cluster_threshold=0, two_sided=two_sided)
            assert z == float(z_expected)
            a, b = np.asanyarray(ours.dataobj), np.asanyarray(expected.dataobj)
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
            assert ours.header.get_data_dtype() == expected.header.get_data_dtype()
