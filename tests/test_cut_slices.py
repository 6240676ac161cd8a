"""Cuts of thresholded maps (``core.cut_slices``) are exactly nilearn's ``find_cut_slices``
on many random maps: sparse and dense, float and integer, few and many slices, as many
cuts as slices or more, flipped and permuted (non-diagonal) affines."""

import warnings

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.core.cut_slices import find_cut_slices

AFFINES = {
    "diagonal": np.diag([3.0, 3.0, 3.0, 1.0]),
    "flipped": np.array([[-2.0, 0, 0, 90], [0, 2.5, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]]),
    "permuted": np.array([[0, 2.0, 0, -40], [2.0, 0, 0, -30], [0, 0, 3.0, -20], [0, 0, 0, 1]]),
}


def _random_map(rng, kind: str, integer: bool) -> np.ndarray:
    """Dense noise, its top few percent ("sparse") or a few voxels ("peaks": the peaks'
    cuts repeat, and the missing cuts come from the candidates)."""
    shape = tuple(int(n) for n in rng.integers(3, 24, size=3))
    data = rng.standard_normal(shape) * rng.uniform(0.5, 8)
    if kind == "sparse":
        data[np.abs(data) < np.quantile(np.abs(data), rng.uniform(0.9, 0.999))] = 0
    elif kind == "peaks":
        kept = rng.choice(data.size, size=rng.integers(1, 5), replace=False)
        heights = np.zeros(data.size)
        heights[kept] = 10.0 ** rng.uniform(-3, 3, size=len(kept))  # peaks far apart in size
        data = heights.reshape(shape)
    return np.round(data * 10).astype(np.int16) if integer else data


@pytest.mark.parametrize("seed", range(40))
def test_cuts_are_nilearns(seed):
    from nilearn.plotting import find_cut_slices as nilearns

    rng = np.random.default_rng(seed)
    for affine_name, affine in AFFINES.items():
        data = _random_map(rng, ("dense", "sparse", "peaks")[seed % 3], integer=seed % 5 == 0)
        img = nb.Nifti1Image(data, affine)
        for direction in "xyz":
            n_slices = data.shape["xyz".index(direction)]
            for n_cuts in sorted({1, 2, 3, 7, n_slices - 1, n_slices, n_slices + 1} - {0}):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    expected = nilearns(img, direction=direction, n_cuts=n_cuts)
                ours = find_cut_slices(img, direction, n_cuts)
                assert np.array_equal(ours, expected), (affine_name, direction, n_cuts)


@pytest.mark.parametrize("peaks", [
    {12: 5.0},  # every peak the same slice: the other cuts are candidates
    {2: 100.0, 0: 1.0},  # the candidate two below the lowest cut is slice 0, and weighs most
    {2: 100.0, 20: 0.5},  # a peak 200 times smaller is still found (its neighbour kept 1e-3)
    {2: 100.0, 20: 0.05},  # ... and one 2,000 times smaller is not
])
def test_repeated_and_small_peaks_are_handled_as_nilearn_handles_them(peaks):
    from nilearn.plotting import find_cut_slices as nilearns

    data = np.zeros((9, 9, 30))
    for height, value in peaks.items():
        data[4, 4, height] = value
    img = nb.Nifti1Image(data, AFFINES["flipped"])
    for n_cuts in (2, 3, 5, 12):
        assert np.array_equal(find_cut_slices(img, "z", n_cuts),
                              nilearns(img, direction="z", n_cuts=n_cuts))
